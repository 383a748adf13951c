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
use crate::engine::Engine;
use crate::error::{Error, Result};

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
        *self.held.lock() = next;
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

impl LeaseGuard {
    /// Holds `lease`, taken from `holder` for `feature`'s pool: starts
    /// the heartbeat thread.
    pub(crate) fn hold(
        holder: Box<dyn Holder>,
        feature: Option<&str>,
        lease: Lease,
    ) -> Result<LeaseGuard> {
        let shared = Arc::new(Shared {
            holder,
            feature: feature.map(str::to_owned),
            held: Mutex::new(Held::Lease(lease)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
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

    /// Whether the seat is held now: `OK` until the lease's end (renewals
    /// move it), `LEASE_EXPIRED` once it has passed unrenewed, or why the
    /// seat was lost. A guard an engine holds (its own lease, or a
    /// borrowed token held through it) says `CLOCK_TAMPERED` while that
    /// engine's clock is behind the latest time it has seen: a clock set
    /// back would stretch the lease.
    pub fn check(&self) -> Decision {
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
    /// ```
    /// use entitle::token::{LeaseToken, SigningKey};
    /// use entitle::{Engine, LeaseGuard, Timestamp};
    ///
    /// let engine = Engine::builder("acme").in_memory().build().unwrap(); // the application's install
    /// let server = SigningKey::from_seed(&[9; 32]);
    /// let now = engine.now();
    /// let trip = LeaseToken::new("lease_1", vec!["lic_1".into()], "laptop-3", Some("cad"),
    ///     now, Timestamp::from_unix(now.unix() + 7 * 86_400), true);
    /// let saved = trip.sign(&server).unwrap(); // what the laptop wrote to disk
    ///
    /// let seat = LeaseGuard::borrowed(&engine, &saved, server.public_key()).unwrap();
    /// assert!(seat.check().allowed());
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
        LeaseGuard::hold(Box::new(offline), lease.feature.as_deref(), held)
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
            None => LeaseGuard::hold(Box::new(self.clone()), feature, lease)?,
        };
        guards.insert(pool, WeakGuard(guard.downgrade()));
        guards.insert(key, WeakGuard(guard.downgrade()));
        Ok(guard)
    }
}
