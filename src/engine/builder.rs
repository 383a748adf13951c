//! Building an engine: its settings, and its state read from the store.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, Timestamp, DEFAULT_ROLLBACK_TOLERANCE_SECS};
use crate::engine::snapshot::Snapshot;
use crate::engine::state::{
    ActivationKind, ActivationRecord, Change, DeviceContext, InstalledLicense, State,
};
use crate::engine::{ClockSource, Config, Engine, Inner, Writer};
use crate::error::{Error, Result};
use crate::license::{KeyRotation, MachineCertificate, RevocationList, VerifiedLicense};
use crate::policy::Context;
use crate::store::{MemoryStore, Persisted, SignedRow, Store};
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
            trust_root: self.keyring,
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

/// Rebuilds the in-memory state from stored rows. Nothing unsigned is
/// taken at its word where it would grant: every license token is
/// verified again (a hand-edited state is never trusted to grant more),
/// key rotations, revocation lists and machine certificates too, and what
/// they say overrides the rows beside them (DESIGN section 11).
pub(crate) fn state_from(persisted: Persisted, config: &Config, location: &str) -> Result<State> {
    let mut state = State::default();
    state.latest_seen = meta_i64(&persisted, "latest_seen", location)?;
    state.max_issued_at = meta_i64(&persisted, "max_issued_at", location)?;
    let (keyring, rotated_at) = rotated_keyring(&config.trust_root, &persisted.signed);
    state.keyring = Arc::new(keyring);
    state.rotated_at = rotated_at;
    for (id, serial) in persisted.serials {
        state.apply(Change::Serial(id, serial));
    }
    for (id, at) in persisted.tombstones {
        state.apply(Change::Tombstone(id, at));
    }
    // A revocation list revokes again every time: deleting its
    // tombstones, or a license's `revoked` flag, takes nothing back.
    for row in persisted.signed.iter().filter(|r| r.typ == "revocations") {
        let Ok(list) = RevocationList::verify(&row.token, &state.keyring) else {
            continue;
        };
        if list.product.as_ref().is_none_or(|p| *p == config.product) {
            for id in list.ids {
                state.tombstones.entry(id).or_insert(row.added_at);
            }
        }
    }
    for row in persisted.licenses {
        let verified = match VerifiedLicense::verify(&row.token, &state.keyring) {
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
        // An older issue written back over a newer one grants nothing.
        if state
            .serials
            .get(&verified.id)
            .is_some_and(|&known| verified.serial < known)
        {
            continue;
        }
        let revoked = row.revoked || state.tombstones.contains_key(&verified.id);
        state.apply(Change::PutLicense(Arc::new(InstalledLicense {
            verified,
            added_at: Timestamp::from_unix(row.added_at),
            revoked,
        })));
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
        let record = certified(&license_id, &fingerprint, record, &state.keyring);
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

/// The keys trusted after the stored key rotations: the engine's own,
/// with each rotation that verifies against the keys trusted before it
/// applied in the order the vendor signed them, and the `issued_at` of
/// the last. A rotation that does not verify (forged, or signed by a key
/// an earlier one retired) changes nothing.
fn rotated_keyring(root: &Keyring, signed: &[SignedRow]) -> (Keyring, Option<i64>) {
    let mut rotations: Vec<(i64, &str)> = signed
        .iter()
        .filter(|r| r.typ == "keys")
        .filter_map(|r| {
            // Read unverified only to order them; each is verified below
            // against the keys trusted at its turn.
            let payload = crate::token::decode_unverified(&r.token).ok()?.payload;
            let issued_at = Timestamp::parse(payload.get("issued_at")?.as_str()?).ok()?;
            Some((issued_at.unix(), r.token.as_str()))
        })
        .collect();
    rotations.sort_unstable();
    let mut keyring = root.clone();
    let mut rotated_at = None;
    for (_, token) in rotations {
        let Ok(rotation) = KeyRotation::verify(token, &keyring) else {
            continue;
        };
        if let Ok(next) = rotation.applied_to(&keyring) {
            keyring = next;
            rotated_at = Some(rotation.issued_at.unix());
        }
    }
    (keyring, rotated_at)
}

/// An activation as the state may believe it. One that claims a machine
/// certificate holds it only if the certificate verifies and names this
/// license and device; then it ends when the certificate says, whatever
/// the row says. Otherwise it is only recorded: it counts, and grants
/// nothing.
fn certified(
    license_id: &str,
    fingerprint: &str,
    mut record: ActivationRecord,
    keyring: &Keyring,
) -> ActivationRecord {
    let ActivationKind::Certificate(token) = &record.kind else {
        return record;
    };
    match MachineCertificate::verify(token, keyring) {
        Ok(cert) if cert.license_id == license_id && cert.fingerprint == fingerprint => {
            record.expires_at = cert.expires_at.map(Timestamp::unix);
        }
        _ => record.kind = ActivationKind::Recorded,
    }
    record
}
