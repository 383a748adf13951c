//! The engine: a thin shell around the pure policies.
//!
//! Mutations are serialised by one writer, made durable in the
//! [`Store`], then published as an immutable
//! snapshot. Readers load the snapshot without locking or allocating.

mod builder;
mod codes;
mod consumption;
mod devices;
mod floating;
pub(crate) mod licenses;
pub(crate) mod snapshot;
pub(crate) mod state;
mod users;

pub use builder::EngineBuilder;
pub use consumption::Consumed;
pub use devices::{ActivationInfo, ActivationRequest};
pub use floating::Lease;
pub use licenses::{license_query, Applied, LicenseInfo, LICENSE_FIELDS};
pub use users::{EngineStatus, TypeSummary, Usage, UserUsage};

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

use crate::clock::{is_tampered, Clock, ManualClock, SystemClock, Timestamp};
use crate::decision::Decision;
use crate::error::Result;
use crate::store::Store;
use crate::token::Keyring;
use snapshot::{FeatureTable, SeatEntry, Snapshot};
use state::{Change, DeviceContext, State};

/// How often a running engine persists the latest time it has seen.
const PERSIST_CLOCK_EVERY_SECS: i64 = 60;

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
            ClockSource::System => SystemClock.now_coarse().unix(),
            ClockSource::Manual(c) => c.now().unix(),
            ClockSource::Custom(c) => c.now_coarse().unix(),
        }
    }
}

struct Writer {
    state: State,
    generation: u64,
    /// Whether a snapshot with feature tables has been published yet.
    published: bool,
}

/// Settings fixed when the engine is built.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) product: String,
    /// The keys the program trusts: the builder's. Signed key rotations
    /// stored in the state are applied over them ([`State::keyring`]).
    pub(crate) trust_root: Keyring,
    pub(crate) tolerance_secs: i64,
    pub(crate) device: DeviceContext,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    clock: ClockSource,
    store: Box<dyn Store>,
    config: Config,
    writer: Mutex<Writer>,
    /// Feature codes to stable indices, for gates. Only grows.
    registry: RwLock<FxHashMap<Box<str>, u32>>,
    /// Mutations started and not yet committed to the store: the store
    /// lets them join the group of commits it is about to sync.
    under_way: AtomicUsize,
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
/// let engine = Engine::builder("acme")
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

    /// A handle for one feature, resolved once: the fastest check there
    /// is. It follows later license changes.
    pub fn feature(&self, code: &str) -> FeatureGate {
        FeatureGate {
            engine: self.clone(),
            index: self.index_of(code),
        }
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

    fn index_of(&self, code: &str) -> u32 {
        if let Some(&i) = self.inner.registry.read().get(code) {
            return i;
        }
        let mut registry = self.inner.registry.write();
        let next = registry.len() as u32;
        *registry.entry(Box::from(code)).or_insert(next)
    }

    // ---- the writer ---------------------------------------------------

    /// Runs one mutation: lock, bring the state up to date with the store,
    /// plan (pure), persist, apply, publish.
    pub(crate) fn mutate<T>(
        &self,
        plan: impl FnOnce(&Plan<'_>) -> Result<(Vec<Change>, T)>,
    ) -> Result<T> {
        let inner = &*self.inner;
        // Counted from before the lock is taken, so that a store grouping
        // commits knows this mutation is coming.
        let mut under_way = UnderWay::enter(inner);
        let mut writer = inner.writer.lock();
        let now = inner.clock.now().unix();
        let mut txn = inner.store.begin()?;
        let mut reloaded = false;
        if txn.generation() != writer.generation {
            writer.state =
                builder::state_from(txn.load()?, &inner.config, &inner.store.location())?;
            writer.generation = txn.generation();
            reloaded = true;
        }
        let outcome = {
            let state = &mut writer.state;
            let views = state.views(&inner.config.device);
            let tampered = is_tampered(
                Timestamp::from_unix(now),
                Timestamp::from_unix(state.latest_seen),
                inner.config.tolerance_secs,
            );
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
            };
            plan(&plan_input)
        };
        let (mut changes, out) = match outcome {
            Ok(planned) => planned,
            Err(e) => {
                drop(txn);
                if reloaded {
                    self.publish(&mut writer, now, true);
                }
                return Err(e);
            }
        };
        let guard_set = changes.iter().any(|c| matches!(c, Change::LatestSeen(_)));
        if !guard_set && now > writer.state.latest_seen {
            changes.push(Change::LatestSeen(now));
        }
        txn.write(&changes)?;
        let generation = txn.commit()?;
        under_way.committed = true;
        let rebuild = reloaded
            || !writer.published
            || changes.iter().any(|c| {
                matches!(
                    c,
                    Change::PutLicense(_)
                        | Change::DeleteLicense(_)
                        | Change::PutActivation { .. }
                        | Change::DeleteActivation { .. }
                )
            });
        // A metering step (a consume) changes no seat, user or license:
        // the seat timeline built before still holds.
        let seats_hold = !rebuild
            && changes
                .iter()
                .all(|c| matches!(c, Change::PutCounter { .. }));
        for change in changes {
            writer.state.apply(change);
        }
        writer.generation = generation;
        self.publish_with(&mut writer, now, rebuild, seats_hold);
        drop(writer);
        drop(under_way);
        // Durable before Ok: wait, outside the lock, for the commit and
        // fsync that cover this change (shared with concurrent writers).
        if let Err(e) = inner.store.sync_with(generation, &inner.under_way) {
            // The group this change was committed with may have been rolled
            // back: what the store holds, not memory, is the state now.
            let _ = self.reload(now);
            return Err(e);
        }
        Ok(out)
    }

    /// Builds and publishes a new snapshot from the writer's state.
    fn publish(&self, writer: &mut Writer, now: i64, rebuild_features: bool) {
        self.publish_with(writer, now, rebuild_features, false);
    }

    /// [`publish`](Self::publish), keeping the seat timeline of the last
    /// snapshot if `seats_hold` (nothing it depends on changed) and it is
    /// still good at `now`.
    fn publish_with(
        &self,
        writer: &mut Writer,
        now: i64,
        rebuild_features: bool,
        seats_hold: bool,
    ) {
        let inner = &*self.inner;
        let old = inner.snapshot.load();
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
        writer.published |= rebuild_features;
        let tamper_below = writer
            .state
            .latest_seen
            .saturating_sub(inner.config.tolerance_secs);
        let seats = if seats_hold && old.tamper_below == tamper_below && now < old.seats.horizon {
            old.seats.clone()
        } else {
            SeatEntry::build(&mut writer.state, &inner.config.device, now, tamper_below)
        };
        let snapshot = Snapshot {
            features,
            seats,
            tamper_below,
            licenses,
            device_activations,
            keyring: Arc::clone(&writer.state.keyring),
        };
        inner.snapshot.store(Arc::new(snapshot));
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
        let stored = inner.store.generation()?;
        let (latest_seen, horizon) = {
            let snapshot = inner.snapshot.load();
            (
                snapshot
                    .tamper_below
                    .saturating_add(inner.config.tolerance_secs),
                snapshot.seats.horizon,
            )
        };
        if now >= latest_seen.saturating_add(PERSIST_CLOCK_EVERY_SECS) {
            // A mutation reloads if needed and persists the clock.
            return self.mutate(|_| Ok((Vec::new(), ())));
        }
        let mut writer = inner.writer.lock();
        if stored != writer.generation {
            drop(writer);
            return self.reload(now);
        } else if now >= horizon {
            self.publish(&mut writer, now, false);
        }
        Ok(())
    }

    /// Reads the whole state from the store again and publishes it.
    fn reload(&self, now: i64) -> Result<()> {
        let inner = &*self.inner;
        let mut writer = inner.writer.lock();
        let (generation, persisted) = inner.store.load()?;
        writer.state = builder::state_from(persisted, &inner.config, &inner.store.location())?;
        writer.generation = generation;
        self.publish(&mut writer, now, true);
        Ok(())
    }

    fn spawn_refresher(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        // A thread only for freshness: nothing depends on it for
        // correctness, and it ends within a second of the last clone.
        let _ = std::thread::Builder::new()
            .name("entitle-refresh".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(inner) = weak.upgrade() else { break };
                let _ = Engine { inner }.refresh();
            });
    }
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

/// A handle on one feature, resolved once by [`Engine::feature`].
///
/// ```
/// # use entitle::{Engine};
/// let engine = Engine::builder("acme").build().unwrap();
/// let gate = engine.feature("export");
/// assert!(!gate.check().allowed());
/// ```
#[derive(Clone)]
pub struct FeatureGate {
    engine: Engine,
    index: u32,
}

impl FeatureGate {
    /// Whether the feature may be used now: no hash, no lock, no allocation.
    #[inline]
    pub fn check(&self) -> Decision {
        let inner = &*self.engine.inner;
        let snapshot = inner.snapshot.load();
        let now = inner.clock.now_coarse();
        snapshot
            .features
            .by_index(self.index)
            .decide(now, snapshot.tamper_below)
    }
}

impl std::fmt::Debug for FeatureGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureGate")
            .field("index", &self.index)
            .finish()
    }
}
