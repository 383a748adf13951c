//! Building an engine: its settings, and its state read from the store.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, Timestamp, DEFAULT_ROLLBACK_TOLERANCE_SECS};
use crate::engine::snapshot::Snapshot;
use crate::engine::state::{Change, DeviceContext, InstalledLicense, State};
use crate::engine::{ClockSource, Config, Engine, Inner, Writer};
use crate::error::{Error, Result};
use crate::license::VerifiedLicense;
use crate::policy::Context;
use crate::store::{MemoryStore, Persisted, Store};
use crate::token::{Keyring, PublicKey};

/// Builds an [`Engine`].
///
/// ```
/// use entitle::{Engine, ManualClock, Timestamp};
/// use entitle::store::FileStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let engine = Engine::builder("acme")
///     .store(FileStore::create(dir.path()).unwrap())
///     .clock(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()))
///     .release_date(Timestamp::parse("2025-12-01T00:00:00Z").unwrap())
///     .background_refresh(false)
///     .build()
///     .unwrap();
/// assert_eq!(engine.product(), "acme");
/// ```
#[derive(Debug)]
pub struct EngineBuilder {
    product: String,
    keyring: Keyring,
    clock: ClockSource,
    store: Option<Box<dyn Store>>,
    release_date: Option<Timestamp>,
    fingerprint: Option<String>,
    vm: bool,
    tolerance_secs: i64,
    background: bool,
}

impl EngineBuilder {
    /// A builder for an engine enforcing licenses of `product`.
    pub fn new(product: impl Into<String>) -> Self {
        EngineBuilder {
            product: product.into(),
            keyring: Keyring::new(),
            clock: ClockSource::System,
            store: None,
            release_date: None,
            fingerprint: None,
            vm: false,
            tolerance_secs: DEFAULT_ROLLBACK_TOLERANCE_SECS,
            background: true,
        }
    }

    /// Trusts every key of `keyring` (replacing any trusted before).
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = keyring;
        self
    }

    /// Trusts one more vendor key.
    pub fn trust(mut self, key: PublicKey) -> Self {
        self.keyring.add(key);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.clock = ClockSource::from_clock(clock);
        self
    }

    /// Where state lives (default: in memory, lost on drop).
    pub fn store<S: Store>(mut self, store: S) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The release date of this build, checked against `maintenance_until`.
    pub fn release_date(mut self, date: Timestamp) -> Self {
        self.release_date = Some(date);
        self
    }

    /// This device's fingerprint, which node-locked licenses are bound to.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// Declares this device a virtual machine (licenses with `prevent_vm`
    /// refuse to activate on it).
    pub fn virtual_machine(mut self, vm: bool) -> Self {
        self.vm = vm;
        self
    }

    /// How far behind the latest time seen the clock may be before it
    /// counts as tampered (default 10 minutes).
    pub fn rollback_tolerance_secs(mut self, secs: i64) -> Self {
        self.tolerance_secs = secs.max(0);
        self
    }

    /// Whether a background thread refreshes the engine every second
    /// (default: on). Without it, call [`Engine::refresh`] yourself.
    pub fn background_refresh(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// Opens the store, reads the state and publishes the first snapshot.
    pub fn build(self) -> Result<Engine> {
        if self.product.is_empty() {
            return Err(Error::InvalidArgument(
                "the engine needs a product code: Engine::builder(\"your-product\")".into(),
            ));
        }
        let store = self.store.unwrap_or_else(|| Box::new(MemoryStore::new()));
        let config = Config {
            product: self.product,
            keyring: self.keyring,
            tolerance_secs: self.tolerance_secs,
            device: DeviceContext {
                fingerprint: self.fingerprint,
                vm: self.vm,
                ctx: Context {
                    release_date: self.release_date,
                },
            },
        };
        let (generation, persisted) = store.load()?;
        if let Some(stored) = persisted.meta.get("product") {
            if *stored != config.product {
                return Err(Error::InvalidArgument(format!(
                    "the state at {} belongs to product `{stored}`, not `{}`; use another state directory",
                    store.location(),
                    config.product
                )));
            }
        }
        let needs_product = !persisted.meta.contains_key("product");
        let state = state_from(persisted, &config, &store.location())?;
        let engine = Engine {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::empty()),
                clock: self.clock,
                store,
                config,
                writer: Mutex::new(Writer {
                    state,
                    generation,
                    published: false,
                }),
                registry: RwLock::default(),
                under_way: AtomicUsize::new(0),
            }),
        };
        // Opening persists the latest time seen (and publishes).
        engine.mutate(|plan| {
            let mut changes = Vec::new();
            if needs_product {
                changes.push(Change::Meta("product".into(), plan.config.product.clone()));
            }
            Ok((changes, ()))
        })?;
        if self.background {
            engine.spawn_refresher();
        }
        if matches!(engine.inner.clock, ClockSource::System) {
            crate::clock::start_clock_thread();
        }
        Ok(engine)
    }
}

fn corrupt(location: &str, detail: String) -> Error {
    Error::StateCorrupt {
        path: location.to_owned(),
        detail,
    }
}

fn meta_i64(persisted: &Persisted, key: &str, location: &str) -> Result<i64> {
    match persisted.meta.get(key) {
        None => Ok(i64::MIN),
        Some(text) => text
            .parse()
            .map_err(|_| corrupt(location, format!("`{key}` is not a number"))),
    }
}

/// Rebuilds the in-memory state from stored rows. Every license token is
/// verified again: a hand-edited state is never trusted to grant more.
pub(crate) fn state_from(persisted: Persisted, config: &Config, location: &str) -> Result<State> {
    let mut state = State::default();
    state.latest_seen = meta_i64(&persisted, "latest_seen", location)?;
    state.max_issued_at = meta_i64(&persisted, "max_issued_at", location)?;
    for row in persisted.licenses {
        let verified = match VerifiedLicense::verify(&row.token, &config.keyring) {
            Ok(v) => v,
            // A key this build no longer trusts: the license gives nothing
            // here, but stays stored for a build that does.
            Err(Error::UnknownKey { .. }) => continue,
            Err(e) => {
                return Err(corrupt(
                    location,
                    format!("stored license `{}` does not verify ({e})", row.id),
                ))
            }
        };
        if verified.id != row.id {
            return Err(corrupt(
                location,
                format!(
                    "stored license `{}` holds a token for `{}`",
                    row.id, verified.id
                ),
            ));
        }
        if verified.product != config.product {
            continue;
        }
        state.apply(Change::PutLicense(Arc::new(InstalledLicense {
            verified,
            added_at: Timestamp::from_unix(row.added_at),
            revoked: row.revoked,
        })));
    }
    for (id, serial) in persisted.serials {
        state.apply(Change::Serial(id, serial));
    }
    for (id, at) in persisted.tombstones {
        state.apply(Change::Tombstone(id, at));
    }
    for user in persisted.users {
        state.apply(Change::PutUser {
            id: user.id,
            user_type: user.user_type,
            added_at: user.added_at,
            last_active_at: user.last_active_at,
        });
    }
    for (license_id, fingerprint, record) in persisted.activations {
        state.apply(Change::PutActivation {
            license_id,
            fingerprint,
            record,
        });
    }
    for (license_id, n) in persisted.transfers {
        state.apply(Change::Transfers(license_id, n));
    }
    for (id, lease) in persisted.leases {
        state.apply(Change::PutLease(id, lease));
    }
    for (license_id, code, counter) in persisted.counters {
        state.apply(Change::PutCounter {
            license_id,
            code,
            counter,
        });
    }
    for (key, value) in persisted.meta {
        state.apply(Change::Meta(key, value));
    }
    Ok(state)
}
