//! The engine: a thin shell around the pure policies.
//!
//! Mutations are serialised by one writer, made durable in the
//! [`Store`](crate::store::Store), then published as an immutable
//! snapshot. Readers load the snapshot without locking or allocating.

pub(crate) mod airgap;
mod builder;
mod codes;
mod consumption;
pub(crate) mod devices;
mod floating;
mod gate;
mod info;
pub(crate) mod lease;
pub(crate) mod licenses;
pub(crate) mod snapshot;
pub(crate) mod state;
mod users;

pub use crate::query::{Page, Query};
pub use airgap::{IssuedReceipt, SignedReport};
pub use builder::EngineBuilder;
pub use consumption::Consumed;
pub use devices::{ActivationInfo, ActivationRequest};
pub use floating::Lease;
#[cfg(feature = "server")]
pub(crate) use floating::PoolUse;
pub use gate::FeatureGate;
pub use info::{
    license_query, ActivationsInfo, ConsumptionInfo, FeatureInfo, FloatingInfo, LicenseInfo,
    SeatsInfo,
};
pub use lease::LeaseGuard;
pub use licenses::Applied;
pub use users::{EngineStatus, NewUser, TypeSummary, Usage, UserUsage};

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

use crate::clock::{Clock, CoarseClock, ManualClock, SystemClock, Timestamp};
use crate::decision::Decision;
use crate::error::Result;
use crate::policy::guard;
use crate::store::{Change, InstallSettings, Setting};
use crate::token::Keyring;
use builder::Backend;
use snapshot::{FeatureTable, SeatEntry, Snapshot};
use state::{DeviceContext, State};

/// The clock, dispatched without a virtual call for the two clocks the
/// crate ships.
#[derive(Debug, Clone)]
enum ClockSource {
    System,
    Manual(ManualClock),
    Custom(Arc<dyn Clock>),
}

impl ClockSource {
    fn from_clock<C: Clock>(clock: C) -> Self {
        let any: &dyn Any = &clock;
        if let Some(manual) = any.downcast_ref::<ManualClock>() {
            ClockSource::Manual(manual.clone())
        } else if any.is::<SystemClock>() {
            ClockSource::System
        } else {
            ClockSource::Custom(Arc::new(clock))
        }
    }

    #[inline]
    fn now(&self) -> Timestamp {
        match self {
            ClockSource::System => SystemClock.now(),
            ClockSource::Manual(c) => c.now(),
            ClockSource::Custom(c) => c.now(),
        }
    }

    #[inline(always)]
    fn now_coarse(&self) -> i64 {
        match self {
            ClockSource::System => CoarseClock.now().unix(),
            ClockSource::Manual(c) => c.now().unix(),
            ClockSource::Custom(c) => c.now_coarse().unix(),
        }
    }
}

struct Writer {
    state: State,
    generation: u64,
    /// Whether `generation` is one this engine's last commit was handed
    /// (its change applied to `state` before it is durable), rather than
    /// one read from the store with `state`.
    committed: bool,
    /// The last snapshot built from `state` (published, or waiting for
    /// its mutation to be durable): the parts that did not change are
    /// reused from it.
    built: Arc<Snapshot>,
    /// Whether the feature tables have been built yet.
    has_features: bool,
}

/// Settings fixed when the engine is built.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) product: String,
    /// The keys the program trusts: the builder's. Signed key rotations
    /// stored in the state are applied over them ([`State::keyring`]).
    pub(crate) trust_root: Arc<Keyring>,
    pub(crate) tolerance_secs: i64,
    pub(crate) device: DeviceContext,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    clock: ClockSource,
    store: Backend,
    config: Config,
    writer: Mutex<Writer>,
    /// Feature codes to stable indices, for gates. Only grows.
    registry: RwLock<FxHashMap<Box<str>, u32>>,
    /// The words of the gates handed out, by code index. Held while a
    /// snapshot is published, so words are always the latest snapshot's.
    gates: Mutex<FxHashMap<u32, Arc<gate::Slot>>>,
    /// The instant gate words count time from.
    gate_epoch: i64,
    /// This engine's client id for the leases it takes itself: its
    /// device's fingerprint and `#` and a name for this instance.
    client_id: String,
    /// The lease guards handed out ([`Engine::lease`]), by pool.
    guards: lease::Guards,
    /// Leases this program holds outside the engine's state (from a
    /// license server through the client, or borrowed tokens): its gates
    /// count them as they count its own.
    outside: lease::Outside,
    /// Mutations started and not yet committed to the store: the store
    /// lets them join the group of commits it is about to sync.
    under_way: AtomicUsize,
    /// Whether this engine hands out a site server's seats: then a
    /// node-locked license counts its clients as this machine
    /// ([`Plan::serves_site`]).
    serves_site: std::sync::atomic::AtomicBool,
    /// Mutations committed whose sync has not returned: their snapshot is
    /// built but not yet published, and nothing else may publish the
    /// writer's state before them. Raised under the writer lock, lowered
    /// without it (a caller released by its fsync must not queue behind
    /// the next round's mutations for the lock).
    unsynced: AtomicUsize,
}

/// Counts one mutation in [`Inner::under_way`] until dropped. The last
/// one under way that ends without committing (refused, failed) tells the
/// store: its callers may be waiting for it to join their group. One that
/// committed goes on to sync, and leads the group itself if it is last.
struct UnderWay<'a> {
    inner: &'a Inner,
    committed: bool,
}

impl<'a> UnderWay<'a> {
    fn enter(inner: &'a Inner) -> Self {
        inner.under_way.fetch_add(1, Ordering::AcqRel);
        UnderWay {
            inner,
            committed: false,
        }
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        let before = self.inner.under_way.fetch_sub(1, Ordering::AcqRel);
        if before == 1 && !self.committed {
            self.inner.store.abandoned();
        }
    }
}

/// The license enforcement engine. Cheap to clone (clones share
/// everything); `Send + Sync`.
///
/// ```
/// use entitle::{Engine, ManualClock, Timestamp};
/// use entitle::token::{sign, SigningKey, TokenType};
///
/// let vendor = SigningKey::generate().unwrap();
/// let clock = ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap());
/// let engine = Engine::builder("acme").in_memory()
///     .trust(vendor.public_key().clone())
///     .clock(clock.clone())
///     .build()
///     .unwrap();
///
/// let token = sign(&serde_json::json!({
///     "v": 1, "id": "lic_1", "product": "acme", "issued_at": "2026-01-01T00:00:00Z",
///     "expires_at": "2026-02-01T00:00:00Z", "features": [{"code": "export"}]
/// }), &vendor, TokenType::License).unwrap();
/// engine.add_license(&token).unwrap();
///
/// let gate = engine.feature("export");
/// assert!(gate.check().allowed());
/// clock.advance(31 * 24 * 3600);
/// assert_eq!(engine.check_feature("export").reason().code(), "EXPIRED");
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("product", &self.inner.config.product)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// The plan of a mutation: what the pure policies see.
pub(crate) struct Plan<'a> {
    pub(crate) state: &'a State,
    pub(crate) now: i64,
    pub(crate) tampered: bool,
    pub(crate) config: &'a Config,
    pub(crate) active_users: u64,
    pub(crate) seats: crate::policy::seats::SeatTotals,
    /// The engine serves a site's seats (`entitle serve`): a node-locked
    /// license is bound to the server's machine, and its clients take
    /// seats while that machine is activated (docs/http.md#node-locked-licenses).
    pub(crate) serves_site: bool,
}

impl Engine {
    /// Starts building an engine for `product`.
    pub fn builder(product: impl Into<String>) -> EngineBuilder {
        EngineBuilder::new(product)
    }

    // ---- the hot path -------------------------------------------------

    /// Whether `code` may be used now. Never fails, never blocks, never
    /// allocates.
    #[inline]
    pub fn check_feature(&self, code: &str) -> Decision {
        // Snapshot first, so the clock read overlaps the load.
        let snapshot = self.inner.snapshot.load();
        let now = self.inner.clock.now_coarse();
        match snapshot.features.by_code(code) {
            Some(entry) => entry.decide(now, snapshot.tamper_below),
            None => Decision::new(crate::Reason::NotLicensed, None),
        }
    }

    /// Whether one more user may be added now: `OK` within the licensed
    /// seats, `OVERAGE` within the hard limit, `SEAT_LIMIT` beyond.
    #[inline]
    pub fn can_add_user(&self) -> Decision {
        // Snapshot first: any snapshot is valid at any instant, and in this
        // order the clock read overlaps the load (9.5 -> 8.4 ns, `hot_path`
        // bench).
        let snapshot = self.inner.snapshot.load();
        let now = self.inner.clock.now_coarse();
        snapshot.seats.decide(now, snapshot.tamper_below)
    }

    /// The quota for `code` (the sum of `limit` over licenses that grant it
    /// now), if any license sets one.
    pub fn limit(&self, code: &str) -> Option<i64> {
        let now = self.inner.clock.now_coarse();
        let snapshot = self.inner.snapshot.load();
        snapshot
            .features
            .by_code(code)
            .and_then(|entry| entry.limit(now, snapshot.tamper_below))
    }

    /// The current time by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The product this engine enforces.
    pub fn product(&self) -> &str {
        &self.inner.config.product
    }

    /// Records what `entitle init` fixes about an install it makes (its
    /// trust root, release date, device and machine), once: a state that
    /// has them already refuses with `STATE_EXISTS`, so they cannot be
    /// changed afterwards (docs/semantics.md#what-stored-state-is-trusted). A program linking the crate
    /// has no need of them: it gives its keys to the builder.
    pub fn fix_install_settings(&self, settings: InstallSettings) -> Result<()> {
        if let Some(device) = &settings.device {
            crate::ident::check("a device fingerprint", device)?;
        }
        self.mutate(|plan| {
            if plan.state.install.is_some() {
                return Err(crate::Error::StateExists {
                    path: self.inner.store.store().location(),
                    detail: "its settings are fixed at creation".into(),
                });
            }
            Ok((vec![Change::Set(Setting::Install(settings.clone()))], ()))
        })
    }

    fn index_of(&self, code: &str) -> u32 {
        if let Some(&i) = self.inner.registry.read().get(code) {
            return i;
        }
        let mut registry = self.inner.registry.write();
        let next = registry.len() as u32;
        *registry.entry(Box::from(code)).or_insert(next)
    }

    /// Reads the writer's state, brought up to date with the store first
    /// (what other processes sharing it committed): for the vendor's
    /// service, whose records are not in the readers' snapshot. Takes the
    /// writer's lock; never on a hot path.
    // Used by the vendor's service (`server`).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn read_state<T>(&self, read: impl FnOnce(&State, i64) -> T) -> Result<T> {
        self.refresh()?;
        let now = self.inner.clock.now().unix();
        let writer = self.inner.writer.lock();
        Ok(read(&writer.state, now))
    }

    // ---- the writer ---------------------------------------------------

    /// Runs one mutation: lock, bring the state up to date with the store,
    /// plan (pure), persist, apply; then, once the store says the change
    /// is durable, publish it (docs/semantics.md#architecture: readers never see a right
    /// that a crash could take back).
    ///
    /// A store that plans without a lock (PostgreSQL, see its `batch`
    /// module) may roll a commit back because another writer changed the
    /// state first: nothing of it was stored, and the mutation is planned
    /// again on what is, a few times at most (the store takes its lock
    /// first after a conflict, so the second plan stands).
    pub(crate) fn mutate<T>(
        &self,
        mut plan: impl FnMut(&Plan<'_>) -> Result<(Vec<Change>, T)>,
    ) -> Result<T> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            let mut conflicted = false;
            match self.mutate_once(&mut plan, &mut conflicted) {
                Err(_) if conflicted && attempt < ATTEMPTS => attempt += 1,
                done => return done,
            }
        }
    }

    /// One attempt of [`Engine::mutate`]; sets `conflicted` if its commit
    /// was rolled back by a conflict.
    fn mutate_once<T>(
        &self,
        plan: &mut impl FnMut(&Plan<'_>) -> Result<(Vec<Change>, T)>,
        conflicted: &mut bool,
    ) -> Result<T> {
        let inner = &*self.inner;
        // Counted from before the lock is taken, so that a store grouping
        // commits knows this mutation is coming.
        let mut under_way = UnderWay::enter(inner);
        let mut writer = inner.writer.lock();
        let now = inner.clock.now().unix();
        let store = inner.store.store();
        let mut txn = store.begin()?;
        let mut reloaded = false;
        // A commit of this engine's that was rolled back (another writer
        // had moved on) left its changes in `state`, under a generation
        // that the other writer's commit may have brought the store to as
        // well (each hands out the next number): until the mutation whose
        // sync failed reloads, equal generations do not mean the same
        // state.
        if txn.generation() != writer.generation
            || (writer.committed && inner.store.rolled_back(writer.generation))
        {
            let fresh = builder::state_from(
                txn.load()?,
                &inner.config,
                &store.location(),
                Some(&writer.state),
            )?;
            writer.state = fresh;
            writer.generation = txn.generation();
            writer.committed = false;
            reloaded = true;
        }
        let (mut changes, out) = loop {
            let outcome = {
                let state = &mut writer.state;
                let views = state.views(&inner.config.device);
                let tampered = guard::tampered(now, state.latest_seen, inner.config.tolerance_secs);
                let seats =
                    crate::policy::seats::totals(&views, &inner.config.device.ctx, now, tampered);
                drop(views);
                let active_users = state.activity.active_at(now, seats.window_secs);
                let plan_input = Plan {
                    state,
                    now,
                    tampered,
                    config: &inner.config,
                    active_users,
                    seats,
                    serves_site: inner.serves_site.load(std::sync::atomic::Ordering::Relaxed),
                };
                plan(&plan_input)
            };
            let refusal = match outcome {
                Ok(planned) => break planned,
                Err(e) => e,
            };
            // Planned on what this engine held: a store that plans on what
            // it knows (PostgreSQL) may know less than another process
            // has committed, and a refusal must stand on the latest state
            // (a grant cannot: its commit would conflict). Asked once,
            // under the store's lock; planned again on what is stored if
            // it moved.
            if !reloaded && txn.latest_generation()? != writer.generation {
                let fresh = builder::state_from(
                    txn.load()?,
                    &inner.config,
                    &store.location(),
                    Some(&writer.state),
                )?;
                writer.state = fresh;
                writer.generation = txn.generation();
                writer.committed = false;
                reloaded = true;
                continue;
            }
            drop(txn);
            if reloaded && inner.unsynced.load(Ordering::Acquire) == 0 {
                // What another process committed: publish it now.
                let snapshot = self.build(&mut writer, now, true, false);
                self.publish(snapshot);
            }
            return Err(refusal);
        };
        let guard_set = changes
            .iter()
            .any(|c| matches!(c, Change::Set(Setting::LatestSeen(_))));
        if !guard_set {
            changes.extend(guard::seen(now, writer.state.latest_seen));
        }
        txn.write(&changes)?;
        let generation = txn.commit()?;
        under_way.committed = true;
        let rebuild = reloaded
            || !writer.has_features
            || changes.iter().any(|c| {
                matches!(
                    c,
                    Change::PutLicense(_)
                        | Change::DeleteLicense(_)
                        | Change::PutActivation(_)
                        | Change::DeleteActivation { .. }
                        | Change::PutSigned(_)
                )
            });
        // A metering step (a consume) changes no seat, user or license:
        // the seat timeline built before still holds.
        let seats_hold = !rebuild
            && changes
                .iter()
                .all(|c| matches!(c, Change::PutCounter(_) | Change::PutClosedPeriod(_)));
        for change in changes {
            writer.state.apply(change);
        }
        writer.generation = generation;
        writer.committed = true;
        let snapshot = self.build(&mut writer, now, rebuild, seats_hold);
        inner.unsynced.fetch_add(1, Ordering::AcqRel);
        drop(writer);
        drop(under_way);
        // Durable before Ok and before anyone sees it: wait, outside the
        // lock, for the commit and fsync that cover this change (shared
        // with concurrent writers).
        let synced = inner.store.sync_with(generation, &inner.under_way);
        inner.unsynced.fetch_sub(1, Ordering::AcqRel);
        match synced {
            Ok(()) => {
                self.publish(snapshot);
                Ok(out)
            }
            Err(e) => {
                // The group this change was committed with may have been
                // rolled back: what the store holds, not memory, is the
                // state now.
                let _ = self.reload(now);
                *conflicted = inner.store.conflicted(generation);
                Err(e)
            }
        }
    }

    /// Builds a snapshot of the writer's state, reusing what did not
    /// change: the feature tables unless `rebuild_features`, and the seat
    /// timeline if `seats_hold` (nothing it depends on changed) and it is
    /// still good at `now`.
    fn build(
        &self,
        writer: &mut Writer,
        now: i64,
        rebuild_features: bool,
        seats_hold: bool,
    ) -> Arc<Snapshot> {
        let inner = &*self.inner;
        let old = Arc::clone(&writer.built);
        let features = if rebuild_features {
            Arc::new(FeatureTable::build(
                &writer.state,
                &inner.config.device,
                now,
                |code| self.index_of(code),
            ))
        } else {
            Arc::clone(&old.features)
        };
        let (licenses, device_activations) = if rebuild_features {
            (
                writer.state.licenses.values().cloned().collect(),
                Arc::new(writer.state.device_activations(&inner.config.device)),
            )
        } else {
            (
                Arc::clone(&old.licenses),
                Arc::clone(&old.device_activations),
            )
        };
        writer.has_features |= rebuild_features;
        let tamper_below = writer
            .state
            .latest_seen
            .saturating_sub(inner.config.tolerance_secs);
        let seats = if seats_hold && old.tamper_below == tamper_below && now < old.seats.horizon {
            old.seats.clone()
        } else {
            SeatEntry::build(&mut writer.state, &inner.config.device, now, tamper_below)
        };
        let snapshot = Arc::new(Snapshot {
            seq: old.seq + 1,
            features,
            seats,
            tamper_below,
            licenses,
            device_activations,
            keyring: Arc::clone(&writer.state.keyring),
            users: writer.state.users.clone(),
            user_types: Arc::clone(&writer.state.user_types),
            activations: writer.state.activations.clone(),
            leases: writer.state.leases.clone(),
            counters: writer.state.counters.clone(),
            transfers: Arc::clone(&writer.state.transfers),
            install_key: writer.state.install_key.clone(),
        });
        writer.built = Arc::clone(&snapshot);
        snapshot
    }

    /// Brings the engine up to date: picks up changes other processes made
    /// to a shared state, persists the latest time seen (at most once a
    /// minute), and refreshes seat counts as users go idle.
    ///
    /// A background thread calls this every second unless the builder
    /// turned it off ([`EngineBuilder::background_refresh`]); call it
    /// yourself then.
    pub fn refresh(&self) -> Result<()> {
        let inner = &*self.inner;
        let now = inner.clock.now().unix();
        let stored = inner.store.store().generation()?;
        let (latest_seen, horizon) = {
            let snapshot = inner.snapshot.load();
            (
                snapshot
                    .tamper_below
                    .saturating_add(inner.config.tolerance_secs),
                snapshot.seats.horizon,
            )
        };
        if guard::persist_due(now, latest_seen) {
            // A mutation reloads if needed and persists the clock.
            return self.mutate(|_| Ok((Vec::new(), ())));
        }
        let mut writer = inner.writer.lock();
        // A difference is read again under the writer lock: a mutation of
        // this engine committed between the first read and the lock would
        // look like another process's change, and an in-memory store,
        // which keeps nothing, would reload an empty state over it.
        if stored != writer.generation && inner.store.store().generation()? != writer.generation {
            drop(writer);
            return self.reload(now);
        } else if now >= horizon && inner.unsynced.load(Ordering::Acquire) == 0 {
            let snapshot = self.build(&mut writer, now, false, false);
            self.publish(snapshot);
        }
        Ok(())
    }

    /// Reads the whole state from the store again and publishes it.
    fn reload(&self, now: i64) -> Result<()> {
        let inner = &*self.inner;
        let mut writer = inner.writer.lock();
        let store = inner.store.store();
        let (generation, persisted) = store.load()?;
        let fresh = builder::state_from(
            persisted,
            &inner.config,
            &store.location(),
            Some(&writer.state),
        )?;
        // Another process's change that left every right as it was (a user,
        // a lease, a count): the feature tables still hold.
        let rights_changed = !same_rights(&writer.state, &fresh, &inner.config.device);
        // And with the same users too, the seat timeline does.
        let seats_hold = !rights_changed && writer.state.users == fresh.users;
        writer.state = fresh;
        writer.generation = generation;
        writer.committed = false;
        let snapshot = self.build(&mut writer, now, rights_changed, seats_hold);
        if inner.unsynced.load(Ordering::Acquire) == 0 {
            self.publish(snapshot);
        }
        Ok(())
    }

    /// Puts the engine on the process-wide refresher's list.
    fn spawn_refresher(&self) {
        refresher::watch(Arc::downgrade(&self.inner));
    }
}

/// One thread for the whole process refreshes every engine with background
/// refresh on, once a second: a process holding a thousand engines (one
/// per tenant) runs one thread for them, not a thousand. Nothing depends
/// on it for correctness; an engine leaves the list when its last clone is
/// dropped.
mod refresher {
    use std::sync::{Arc, Once, Weak};
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::{Engine, Inner};

    static ENGINES: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
    static THREAD: Once = Once::new();

    pub(super) fn watch(engine: Weak<Inner>) {
        ENGINES.lock().push(engine);
        THREAD.call_once(|| {
            // Should the thread not start, engines still refresh on every
            // mutation and on `Engine::refresh`.
            let _ = std::thread::Builder::new()
                .name("entitle-refresh".into())
                .spawn(run);
        });
    }

    fn run() {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            // Take the live engines out of the lock: a slow refresh must
            // not hold up a builder registering another engine.
            let live: Vec<Arc<Inner>> = {
                let mut engines = ENGINES.lock();
                engines.retain(|weak| weak.strong_count() > 0);
                engines.iter().filter_map(Weak::upgrade).collect()
            };
            for inner in live {
                let _ = Engine { inner }.refresh();
            }
        }
    }
}

/// Whether two states give the same rights on `device`: the same licenses
/// (the same verified documents, revoked or not), the same device
/// activations and the same keys.
fn same_rights(old: &State, new: &State, device: &DeviceContext) -> bool {
    let same_license = |(a, b): (&Arc<state::InstalledLicense>, &Arc<state::InstalledLicense>)| {
        Arc::ptr_eq(&a.verified, &b.verified) && a.revoked == b.revoked && a.added_at == b.added_at
    };
    Arc::ptr_eq(&old.keyring, &new.keyring)
        && old.licenses.len() == new.licenses.len()
        && old
            .licenses
            .values()
            .zip(new.licenses.values())
            .all(same_license)
        && old.device_activations(device) == new.device_activations(device)
}

/// A random id with a prefix: 16 hex characters from the system's
/// generator (or, should it fail, from the clock and a counter).
pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = SystemClock.now().unix() as u64;
        bytes = (t.rotate_left(20) ^ n).to_be_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}
