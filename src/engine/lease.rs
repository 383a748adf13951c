//! A program's own floating seat, held for as long as it needs it: the
//! lease guard.
//!
//! [`Engine::lease`] checks out a seat as the engine's own client id, a
//! background thread renews it at a third of the lease's length, and the
//! last clone of the guard checks it in when dropped. A lease that is lost
//! (it lapsed while the process was suspended and someone else took the
//! seat, or an administrator checked it in) is retaken when a seat is
//! free, and reported by [`LeaseGuard::lost`] until then.
//!
//! What holds the seat is behind [`Holder`], so that a client of a
//! license server hands out the same guard.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::clock::Timestamp;
use crate::decision::{Decision, Reason};
use crate::engine::floating::Lease;
use crate::engine::{Engine, FeatureGate};
use crate::error::{Error, Result};
use crate::policy::floating;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// Where a guard's seat comes from: this engine's state, a license
/// server (`client::Client`), or a borrowed token held offline. Every
/// call is a round trip that may fail.
pub(crate) trait Holder: Send + Sync + 'static {
    /// Takes (or renews) the seat of `feature`'s pool.
    fn checkout(&self, feature: Option<&str>) -> Result<Lease>;
    /// Renews the lease.
    fn heartbeat(&self, lease_id: &str) -> Result<Lease>;
    /// Frees the seat.
    fn checkin(&self, lease_id: &str) -> Result<()>;
    /// The holder's idea of now.
    fn now(&self) -> Timestamp;
    /// Whether the holder's clock is behind the latest time its install
    /// has seen (the engine's rollback guard): then no lease's end can be
    /// judged by it. A holder with no install to remember time by (a
    /// license server's client, whose server judges its leases) says no.
    fn clock_tampered(&self) -> bool {
        false
    }
}

impl Holder for Engine {
    fn checkout(&self, feature: Option<&str>) -> Result<Lease> {
        Engine::checkout(self, self.client_id(), feature)
    }

    fn heartbeat(&self, lease_id: &str) -> Result<Lease> {
        Engine::heartbeat(self, lease_id)
    }

    fn checkin(&self, lease_id: &str) -> Result<()> {
        Engine::checkin(self, lease_id)
    }

    fn now(&self) -> Timestamp {
        Engine::now(self)
    }

    fn clock_tampered(&self) -> bool {
        Engine::clock_tampered(self)
    }
}

/// What the guard holds now.
#[derive(Debug, Clone)]
enum Held {
    /// A lease, live until its `expires_at` unless renewed.
    Lease(Lease),
    /// The seat was lost and could not be retaken: why, in words.
    Lost { reason: Reason, message: String },
}

/// What the guard and its heartbeat thread share.
struct Shared {
    holder: Box<dyn Holder>,
    feature: Option<String>,
    held: Mutex<Held>,
    stop: Mutex<bool>,
    wake: Condvar,
    /// The gate of the guard's feature on the engine the guard was made
    /// from: what [`LeaseGuard::check`] answers (`None` for a guard of a
    /// license-level pool taken without naming a feature).
    gate: Option<FeatureGate>,
    /// Where the engine counts this seat, when it is held outside the
    /// engine's state (a server's, a borrowed token).
    outside: Option<Registration>,
}

impl Shared {
    /// One renewal: a heartbeat, or a new checkout when the lease is gone.
    /// A refusal (the seat is someone else's now) loses the lease; any
    /// other failure (a store that cannot be written for a moment) keeps
    /// it until it ends, and the next beat tries again.
    fn beat(&self) {
        let current = self.held.lock().clone();
        let renewed = match &current {
            Held::Lease(lease) => match self.holder.heartbeat(&lease.id) {
                Err(Error::Denied {
                    reason: Reason::LeaseExpired | Reason::LeaseNotFound,
                    ..
                }) => self.holder.checkout(self.feature.as_deref()),
                other => other,
            },
            Held::Lost { .. } => self.holder.checkout(self.feature.as_deref()),
        };
        let next = match renewed {
            Ok(lease) => Held::Lease(lease),
            Err(Error::Denied {
                reason, message, ..
            }) => Held::Lost { reason, message },
            Err(_) => return,
        };
        self.announce(&next);
        *self.held.lock() = next;
    }

    /// Tells the engine what is held now, when it is held outside its
    /// state: the engine's gates count the seat from then on.
    fn announce(&self, held: &Held) {
        if let Some(outside) = &self.outside {
            match held {
                Held::Lease(lease) => {
                    outside.set(lease.feature.as_deref(), Some(lease.expires_at.unix()))
                }
                Held::Lost { .. } => outside.lapse(),
            }
        }
    }

    /// How long to wait before the next beat: a third of what is left of
    /// the lease, at least a second (a lost lease is tried again each
    /// second... at most every ten).
    fn interval(&self) -> Duration {
        let left = match &*self.held.lock() {
            Held::Lease(lease) => lease.expires_at.unix() - self.holder.now().unix(),
            Held::Lost { .. } => 10,
        };
        Duration::from_secs((left / 3).clamp(1, 3600) as u64)
    }

    /// The heartbeat thread's loop, until the guard is dropped.
    fn run(self: Arc<Self>) {
        loop {
            let wait = self.interval();
            let mut stop = self.stop.lock();
            if !*stop {
                self.wake.wait_for(&mut stop, wait);
            }
            if *stop {
                return;
            }
            drop(stop);
            self.beat();
        }
    }
}

/// The one lease of a pool in an engine, shared by every clone of its
/// guard. Dropping it stops the thread and checks the seat in.
struct Handle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Held::Lease(lease) = &*self.shared.held.lock() {
            // Best effort: a seat not checked in frees itself when the
            // lease ends.
            let _ = self.shared.holder.checkin(&lease.id);
        }
        if let Some(outside) = &self.shared.outside {
            outside.clear();
        }
    }
}

/// A floating seat this program holds: renewed in the background, freed
/// when the last clone is dropped. Made by [`Engine::lease`].
///
/// While the guard lives, the engine's [`FeatureGate`](crate::FeatureGate)s
/// of the pool's features allow (a gate of a floating feature needs this
/// engine's lease); [`LeaseGuard::check`] says the same of the lease
/// itself.
///
/// ```
/// use entitle::{Engine, ManualClock, Timestamp};
/// use entitle::license::{Feature, License};
/// use entitle::token::SigningKey;
///
/// let vendor = SigningKey::generate().unwrap();
/// let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
/// let engine = Engine::builder("acme").in_memory()
///     .trust(vendor.public_key().clone())
///     .clock(ManualClock::new(now))
///     .fingerprint("3f2a")
///     .build()
///     .unwrap();
/// let license = License::builder("acme")
///     .id("lic_1")
///     .issued_at(now)
///     .feature(Feature::new("cad"))
///     .floating(entitle::license::Floating::new(1, 300))
///     .sign(&vendor)
///     .unwrap();
/// engine.add_license(&license).unwrap();
///
/// let cad = engine.feature("cad");
/// assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
/// let seat = engine.lease(Some("cad")).unwrap();
/// assert!(seat.check().allowed());
/// assert!(cad.check().allowed());
/// drop(seat); // checks the seat in
/// assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
/// assert!(engine.leases().is_empty());
/// ```
#[derive(Clone)]
pub struct LeaseGuard {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("feature", &self.handle.shared.feature)
            .field("held", &*self.handle.shared.held.lock())
            .finish()
    }
}

/// Where a guard's seat is held, as the engine it was made from sees it.
pub(crate) enum Place {
    /// In the engine's own state (its leases table): the gates see it there.
    Engine,
    /// Outside it (a license server's, a borrowed token): the guard tells
    /// the engine.
    Outside,
}

impl LeaseGuard {
    /// Holds `lease`, taken from `holder` for `feature`'s pool for the
    /// program `engine` is the install of: starts the heartbeat thread.
    pub(crate) fn hold(
        holder: Box<dyn Holder>,
        feature: Option<&str>,
        lease: Lease,
        engine: &Engine,
        place: Place,
    ) -> Result<LeaseGuard> {
        let outside = match place {
            Place::Engine => None,
            Place::Outside => Some(Registration::new(engine)),
        };
        let held = Held::Lease(lease);
        let shared = Arc::new(Shared {
            holder,
            feature: feature.map(str::to_owned),
            gate: feature.map(|code| engine.feature(code)),
            outside,
            held: Mutex::new(held.clone()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        shared.announce(&held);
        let runner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("entitle-lease".into())
            .spawn(move || runner.run())
            .map_err(|e| Error::io("starting the lease heartbeat thread", e))?;
        Ok(LeaseGuard {
            handle: Arc::new(Handle {
                shared,
                thread: Some(thread),
            }),
        })
    }

    /// The lease now held (`None` while it is lost).
    pub fn lease(&self) -> Option<Lease> {
        match &*self.handle.shared.held.lock() {
            Held::Lease(lease) => Some(lease.clone()),
            Held::Lost { .. } => None,
        }
    }

    /// Why the seat is not held, when it was lost and could not be taken
    /// again (`FLOATING_EXHAUSTED`: someone else has it now; the guard
    /// keeps trying). `None` while the lease is held.
    pub fn lost(&self) -> Option<Error> {
        match &*self.handle.shared.held.lock() {
            Held::Lease(_) => None,
            Held::Lost { reason, message } => Some(Error::denied(*reason, message.clone())),
        }
    }

    /// What the engine's gate of the guard's feature says
    /// (`engine.feature(code).check()`, the one gate): the program may
    /// use the feature while its licenses allow and this seat (or another
    /// this program holds in the pool) is live. A convenience: gating on
    /// [`Engine::feature`] gives the same answer.
    ///
    /// A guard of a license-level pool taken without naming a feature
    /// (`lease(None)`) answers for the seat alone: `OK` until the lease's
    /// end (renewals move it), `LEASE_EXPIRED` once it has passed
    /// unrenewed, or why the seat was lost; `CLOCK_TAMPERED` while the
    /// engine's clock is behind the latest time it has seen (a clock set
    /// back would stretch the lease).
    pub fn check(&self) -> Decision {
        if let Some(gate) = &self.handle.shared.gate {
            return gate.check();
        }
        let holder = &self.handle.shared.holder;
        if holder.clock_tampered() {
            return Decision::new(Reason::ClockTampered, None);
        }
        let now = holder.now();
        match &*self.handle.shared.held.lock() {
            Held::Lease(lease) if now < lease.expires_at => {
                Decision::new(Reason::Ok, Some(lease.expires_at))
            }
            Held::Lease(_) => Decision::new(Reason::LeaseExpired, None),
            Held::Lost { reason, .. } => Decision::new(*reason, None),
        }
    }

    /// Renews the lease now rather than at the next beat (after the
    /// machine wakes from sleep, say), and answers as [`LeaseGuard::check`].
    pub fn renew(&self) -> Decision {
        self.handle.shared.beat();
        self.check()
    }

    fn downgrade(&self) -> Weak<Handle> {
        Arc::downgrade(&self.handle)
    }

    /// The guard as a map of guards remembers it, without keeping its
    /// seat (a license server's client keeps one guard per pool too).
    #[cfg(feature = "client")]
    pub(crate) fn weak(&self) -> WeakGuard {
        WeakGuard(self.downgrade())
    }

    /// A guard over a borrowed lease token that a license server signed
    /// (saved to disk before a laptop left the network): verified with
    /// the server's public key, it holds until the borrow ends, with no
    /// server to reach. `check()` allows until then and says
    /// `LEASE_EXPIRED` after; dropping it frees nothing (the server holds
    /// the seat until the borrow ends).
    ///
    /// Time is judged by `engine`, the application's own install: its
    /// clock, and its rollback guard. While that clock is behind the
    /// latest time the install has seen (set back to stretch the borrow),
    /// `check()` says `CLOCK_TAMPERED`; once the clock is right again it
    /// answers as before.
    ///
    /// Refused: a token another key signed (`SIGNATURE_INVALID`), a lease
    /// that was not borrowed (`BORROW_NOT_ALLOWED`: it needs heartbeats),
    /// or one already ended (`LEASE_EXPIRED`).
    ///
    /// While the guard lives, the engine's gates of the pool's features
    /// count the seat, as they count one the engine took itself.
    ///
    /// ```
    /// use entitle::license::{Feature, Floating, License};
    /// use entitle::token::{LeaseToken, SigningKey};
    /// use entitle::{Engine, LeaseGuard, Timestamp};
    ///
    /// let vendor = SigningKey::from_seed(&[1; 32]);
    /// let engine = Engine::builder("acme") // the application's install
    ///     .trust(vendor.public_key().clone())
    ///     .in_memory()
    ///     .build()
    ///     .unwrap();
    /// let now = engine.now();
    /// let site = License::builder("acme").id("lic_1").issued_at(now)
    ///     .floating(Floating::new(5, 300)).feature(Feature::new("cad"))
    ///     .sign(&vendor).unwrap();
    /// engine.add_license(&site).unwrap();
    /// let cad = engine.feature("cad");
    /// assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
    ///
    /// // What the laptop wrote to disk before leaving the network.
    /// let server = SigningKey::from_seed(&[9; 32]);
    /// let trip = LeaseToken::new("lease_1", vec!["lic_1".into()], engine.client_id(), None,
    ///     now, Timestamp::from_unix(now.unix() + 7 * 86_400), true);
    /// let saved = trip.sign(&server).unwrap();
    ///
    /// let seat = LeaseGuard::borrowed(&engine, &saved, server.public_key()).unwrap();
    /// assert!(seat.check().allowed());
    /// assert!(cad.check().allowed()); // the one gate counts it
    /// drop(seat);
    /// assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
    /// ```
    pub fn borrowed(
        engine: &Engine,
        token: &str,
        server_key: &crate::token::PublicKey,
    ) -> Result<LeaseGuard> {
        let lease = crate::token::LeaseToken::verify(token, server_key)?;
        if !lease.borrowed {
            return Err(Error::denied(
                Reason::BorrowNotAllowed,
                format!(
                    "lease `{}` was not borrowed: it holds only while the server renews it",
                    lease.lease_id
                ),
            ));
        }
        let offline = Offline {
            engine: engine.clone(),
        };
        // On a clock set back the end cannot be judged: the guard is made,
        // and says CLOCK_TAMPERED until the clock is right again.
        if !offline.clock_tampered() && !lease.live_at(offline.now()) {
            return Err(Error::denied(
                Reason::LeaseExpired,
                format!(
                    "the borrow of lease `{}` ended at {}",
                    lease.lease_id, lease.expires_at
                ),
            ));
        }
        let held = Lease::from_token(&lease);
        LeaseGuard::hold(
            Box::new(offline),
            lease.feature.as_deref(),
            held,
            engine,
            Place::Outside,
        )
    }
}

/// What holds a borrowed seat off the network: nothing to reach, and the
/// application's engine to tell the time by. Every renewal fails as an
/// outage does, so the guard keeps its lease until it ends; a check-in
/// frees nothing.
struct Offline {
    engine: Engine,
}

impl Holder for Offline {
    fn checkout(&self, _feature: Option<&str>) -> Result<Lease> {
        Err(offline())
    }

    fn heartbeat(&self, _lease_id: &str) -> Result<Lease> {
        Err(offline())
    }

    fn checkin(&self, _lease_id: &str) -> Result<()> {
        Ok(())
    }

    fn now(&self) -> Timestamp {
        self.engine.now()
    }

    fn clock_tampered(&self) -> bool {
        self.engine.clock_tampered()
    }
}

fn offline() -> Error {
    Error::io(
        "renewing a borrowed lease",
        std::io::Error::other("a borrowed lease is held offline until it ends"),
    )
}

/// The seats a program holds outside its engine's state (from a license
/// server, borrowed tokens), as its gates count them: by guard, the pool
/// and the lease's end (`None` once the seat was lost).
#[derive(Default)]
pub(crate) struct Outside {
    next: AtomicU64,
    held: Mutex<rustc_hash::FxHashMap<u64, OutsideSeat>>,
}

/// A seat held outside: its pool, and its lease's end (`None`: lost).
type OutsideSeat = (Option<String>, Option<i64>);

impl Outside {
    /// What the program holds outside for `code`, whose pool here is
    /// `key`, at `now`: a seat of that pool, or one named for the feature
    /// itself (a server whose license gives the feature a pool of its
    /// own); live until the latest end among them, or lapsed (until the
    /// guard that held it renews, retakes or drops it, which the gates
    /// hear of).
    pub(crate) fn held(&self, key: Option<&str>, code: &str, now: i64) -> floating::Held {
        use floating::Held as H;
        let held = self.held.lock();
        held.values()
            .filter(|(pool, _)| pool.as_deref() == key || pool.as_deref() == Some(code))
            .fold(H::None, |acc, (_, end)| match (acc, end) {
                (H::Live(a), Some(e)) if now < *e => H::Live(a.max(*e)),
                (_, Some(e)) if now < *e => H::Live(*e),
                (H::Live(a), _) => H::Live(a),
                _ => H::Lapsed(i64::MAX),
            })
    }
}

/// One guard's entry in its engine's [`Outside`].
struct Registration {
    engine: Engine,
    id: u64,
}

impl Registration {
    fn new(engine: &Engine) -> Registration {
        let id = engine
            .inner
            .outside
            .next
            .fetch_add(1, AtomicOrdering::Relaxed);
        Registration {
            engine: engine.clone(),
            id,
        }
    }

    /// The guard holds a seat of `pool` until `end` (`None`: lost).
    fn set(&self, pool: Option<&str>, end: Option<i64>) {
        let outside = &self.engine.inner.outside;
        outside
            .held
            .lock()
            .insert(self.id, (pool.map(str::to_owned), end));
        self.engine.rewrite_gates();
    }

    /// The guard lost its seat (and keeps trying): the pool's gates say
    /// `LEASE_EXPIRED` until it has one again.
    fn lapse(&self) {
        let outside = &self.engine.inner.outside;
        if let Some(entry) = outside.held.lock().get_mut(&self.id) {
            entry.1 = None;
        }
        self.engine.rewrite_gates();
    }

    /// The guard is gone.
    fn clear(&self) {
        self.engine.inner.outside.held.lock().remove(&self.id);
        self.engine.rewrite_gates();
    }
}

/// The guards an engine has handed out, by pool: one lease per pool per
/// engine, however many parts of the program ask for it.
pub(crate) type Guards = Mutex<rustc_hash::FxHashMap<Option<String>, WeakGuard>>;

/// A guard as the engine remembers it: without keeping its seat.
pub(crate) struct WeakGuard(Weak<Handle>);

impl WeakGuard {
    /// The guard, while some clone of it lives.
    #[cfg(feature = "client")]
    pub(crate) fn upgrade(&self) -> Option<LeaseGuard> {
        self.0.upgrade().map(|handle| LeaseGuard { handle })
    }
}

impl Engine {
    /// Whether this engine's clock is now behind the latest time its
    /// install has seen by more than the tolerance (the rollback guard of
    /// `check_feature`'s `CLOCK_TAMPERED`).
    pub(crate) fn clock_tampered(&self) -> bool {
        let snapshot = self.inner.snapshot.load();
        self.now().unix() < snapshot.tamper_below
    }

    /// Takes a floating seat from the pool of `feature` (or the
    /// license-level pool) for this program, as [`Engine::client_id`], and
    /// holds it until the returned guard and all its clones are dropped:
    /// a background thread renews it at a third of the lease's length.
    /// Asking again for the same pool while a guard lives returns that
    /// guard: an engine holds one seat per pool. Two instances of the
    /// program (two engines) each hold their own.
    ///
    /// Fails as [`Engine::checkout`] does: `FLOATING_EXHAUSTED` when every
    /// seat is taken (with `retry_at`), `NOT_ACTIVATED` on a node-locked
    /// license this device is not activated for.
    pub fn lease(&self, feature: Option<&str>) -> Result<LeaseGuard> {
        let mut guards = self.inner.guards.lock();
        guards.retain(|_, weak| weak.0.strong_count() > 0);
        let key = feature.map(str::to_owned);
        if let Some(handle) = guards.get(&key).and_then(|weak| weak.0.upgrade()) {
            return Ok(LeaseGuard { handle });
        }
        // A feature without a pool of its own draws on the license-level
        // pool: the lease says which pool it is, and a guard of that pool
        // may be live already (the checkout renewed its lease).
        let lease = Holder::checkout(self, feature)?;
        let pool = lease.feature.clone();
        let live = guards.get(&pool).and_then(|weak| weak.0.upgrade());
        let guard = match live {
            Some(handle) => LeaseGuard { handle },
            None => LeaseGuard::hold(Box::new(self.clone()), feature, lease, self, Place::Engine)?,
        };
        guards.insert(pool, WeakGuard(guard.downgrade()));
        guards.insert(key, WeakGuard(guard.downgrade()));
        Ok(guard)
    }
}
