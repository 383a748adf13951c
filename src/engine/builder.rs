//! Building an engine: its settings, and its state read from the store.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, Timestamp};
use crate::engine::snapshot::Snapshot;
use crate::engine::state::{DeviceContext, InstalledLicense, State};
use crate::engine::{ClockSource, Config, Engine, Inner, Writer};
use crate::error::{Error, Result};
use crate::license::{MachineCertificate, RevocationList, VerifiedLicense};
use crate::policy::guard::DEFAULT_TOLERANCE_SECS;
use crate::policy::Context;
use crate::store::{
    ActivationKind, ActivationRecord, Change, FileStore, MemoryStore, Persisted, Setting,
    SignedKind, Store,
};
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
    store: Option<Backend>,
    release_date: Option<Timestamp>,
    /// As given: parsed by `build`, which names the call when it is not
    /// a version.
    version: Option<String>,
    channel: Option<String>,
    fingerprint: Option<String>,
    named_device: Option<String>,
    /// Build as on a machine that gives no machine id: tests, and the
    /// vendor's books, which have no device of their own.
    no_machine_id: bool,
    vm: Option<bool>,
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
            version: None,
            channel: None,
            fingerprint: None,
            named_device: None,
            no_machine_id: false,
            vm: None,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
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

    /// Where state lives: a [`FileStore`] for a desktop install, a
    /// `PgStore` for replicas sharing one state. One of `store(..)` and
    /// [`in_memory`](Self::in_memory) is required, so that no program
    /// forgets its state by accident (trials and activations would start
    /// again at every launch).
    pub fn store<S: Store>(mut self, store: S) -> Self {
        self.store = Some(Backend::of(store));
        self
    }

    /// Keeps state in memory only, lost when the engine is dropped: for
    /// tests, and for services whose licenses are applied at every start.
    /// Trials, activations, meters and users start again each time.
    ///
    /// ```
    /// use entitle::Engine;
    /// let engine = Engine::builder("acme")
    ///     .in_memory()
    ///     .background_refresh(false)
    ///     .build()
    ///     .unwrap();
    /// assert!(engine.license_infos().is_empty());
    /// ```
    pub fn in_memory(mut self) -> Self {
        self.store = Some(Backend::of(MemoryStore::new()));
        self
    }

    /// The release date of this build, checked against `maintenance_until`.
    pub fn release_date(mut self, date: Timestamp) -> Self {
        self.release_date = Some(date);
        self
    }

    /// This program's version, a semver version (`"2.3.1"`,
    /// `"2.4.0-beta.1"`), checked against each license's `versions`. A
    /// license that sets `versions` gives a program that does not say its
    /// version nothing (`VERSION_NOT_LICENSED`); one that sets none
    /// accepts any program, with a version or without. Something other
    /// than a version is an error at [`build`](Self::build).
    ///
    /// ```
    /// use entitle::Engine;
    /// let engine = Engine::builder("acme").in_memory().version("2.3.1").channel("beta")
    ///     .background_refresh(false).build().unwrap();
    /// assert_eq!(engine.product(), "acme");
    ///
    /// let err = Engine::builder("acme").in_memory().version("2.3").build().unwrap_err();
    /// assert!(err.to_string().contains("EngineBuilder::version(\"2.3\")"), "{err}");
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// This program's release channel (`"stable"`, `"beta"`), checked
    /// against each license's `channels`. A license that lists channels
    /// gives a program that does not say its channel nothing
    /// (`VERSION_NOT_LICENSED`); one that lists none accepts any. See
    /// [`version`](Self::version).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// This device's fingerprint, which node-locked licenses are bound to
    /// (default: [`machine_fingerprint`](crate::device::machine_fingerprint),
    /// computed when the engine is built). Give your own hardware id, or a
    /// fixed one in tests; never one read back from the state.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// Names this engine's device `name` for activations (requests,
    /// certificates, activation lists) while it stays bound to this
    /// machine: the machine's fingerprint ([`fingerprint`](Self::fingerprint),
    /// or the computed one) is recorded with every activation of `name`
    /// made here, and a vendor's certificate for `name` carries it, so an
    /// activation of `name` holds only on the machine it was made on. A
    /// state copied elsewhere, or edited to say otherwise, grants nothing
    /// there. Where the machine has no machine id there is no device
    /// (`DEVICE_UNKNOWN`).
    ///
    /// ```
    /// use entitle::Engine;
    /// let engine = Engine::builder("acme").in_memory()
    ///     .fingerprint("machine-a")
    ///     .named_device("desk-1")
    ///     .background_refresh(false)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(engine.fingerprint(), Some("desk-1"));
    /// ```
    pub fn named_device(mut self, name: impl Into<String>) -> Self {
        self.named_device = Some(name.into());
        self
    }

    /// Declares whether this device is a virtual machine (licenses with
    /// `prevent_vm` refuse to activate on one). Default: detected when the
    /// engine is built, by
    /// [`detect_virtual_machine`](crate::device::detect_virtual_machine).
    /// Say `false` only where you know better than the detection (a
    /// hypervisor bit set on hardware you trust).
    pub fn virtual_machine(mut self, vm: bool) -> Self {
        self.vm = Some(vm);
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

    /// This machine's fingerprint, the default device.
    fn machine_fingerprint(&self) -> Option<String> {
        if self.no_machine_id {
            return None;
        }
        crate::device::machine_fingerprint()
    }

    /// Builds as on a machine that gives no machine id (tests, and the
    /// vendor's books).
    pub(crate) fn without_machine_id(mut self) -> Self {
        self.no_machine_id = true;
        self
    }

    /// Opens the store, reads the state and publishes the first snapshot.
    pub fn build(self) -> Result<Engine> {
        if self.product.is_empty() {
            return Err(Error::InvalidArgument(
                "the engine needs a product code: Engine::builder(\"your-product\")".into(),
            ));
        }
        let machine = self
            .fingerprint
            .clone()
            .or_else(|| self.machine_fingerprint());
        let fingerprint = match (&machine, &self.named_device) {
            (Some(_), Some(name)) => Some(name.clone()),
            (_, None) => machine.clone(),
            (None, Some(_)) => None,
        };
        let Some(store) = self.store else {
            return Err(Error::InvalidArgument(
                "the engine has nowhere to keep its state: call .store(FileStore::open(dir)?) \
                 to keep licenses, activations and trials across launches, or .in_memory() \
                 to keep them only while the engine lives"
                    .into(),
            ));
        };
        let version = self
            .version
            .as_deref()
            .map(|text| {
                semver::Version::parse(text).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "EngineBuilder::version(\"{text}\"): not a semver version ({e}); give \
                         MAJOR.MINOR.PATCH, such as .version(\"2.3.1\") or \
                         .version(env!(\"CARGO_PKG_VERSION\"))"
                    ))
                })
            })
            .transpose()?;
        if let Some(channel) = &self.channel {
            if !crate::ident::is_name(channel) {
                return Err(Error::InvalidArgument(format!(
                    "EngineBuilder::channel({channel:?}): a channel is 1 to {} printable \
                     characters, such as .channel(\"stable\")",
                    crate::ident::MAX_NAME_LEN
                )));
            }
        }
        let config = Config {
            product: self.product,
            trust_root: Arc::new(self.keyring),
            tolerance_secs: self.tolerance_secs,
            device: DeviceContext {
                fingerprint,
                machine,
                vm: self
                    .vm
                    .unwrap_or_else(crate::device::detect_virtual_machine),
                ctx: Context {
                    release_date: self.release_date,
                    version,
                    channel: self.channel,
                },
            },
        };
        let gate_epoch = self
            .clock
            .now()
            .unix()
            .saturating_sub(super::gate::word::EPOCH_BEFORE);
        // Two instances of a program on one device each hold their own
        // leases: the device, then this instance.
        let instance = super::random_id("");
        let client_id = match &config.device.fingerprint {
            Some(fingerprint) => format!("{fingerprint}#{instance}"),
            None => instance,
        };
        let (generation, persisted) = store.store().load()?;
        if let Some(stored) = &persisted.settings.product {
            if *stored != config.product {
                return Err(Error::InvalidArgument(format!(
                    "the state at {} belongs to product `{stored}`, not `{}`; use another state directory",
                    store.store().location(),
                    config.product
                )));
            }
        }
        let needs_product = persisted.settings.product.is_none();
        // Every state gets its own install key the first time it is opened
        // without one (a new state, or one older entitle wrote): made
        // here, outside the writer lock, and kept only if no other
        // process got there first.
        let new_install_key = match persisted.settings.install_key {
            Some(_) => None,
            None => Some(crate::engine::airgap::new_seed()?),
        };
        let state = state_from(persisted, &config, &store.store().location(), None)?;
        let engine = Engine {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::empty()),
                clock: self.clock,
                store,
                config,
                writer: Mutex::new(Writer {
                    state,
                    generation,
                    committed: false,
                    built: Arc::new(Snapshot::empty()),
                    has_features: false,
                }),
                registry: RwLock::default(),
                gates: Mutex::default(),
                gate_epoch,
                client_id,
                guards: Default::default(),
                outside: Default::default(),
                under_way: AtomicUsize::new(0),
                unsynced: AtomicUsize::new(0),
                serves_site: Default::default(),
            }),
        };
        // Opening persists the latest time seen (and publishes).
        engine.mutate(|plan| {
            let mut changes = Vec::new();
            if needs_product {
                changes.push(Change::Set(Setting::Product(plan.config.product.clone())));
            }
            if let (None, Some(seed)) = (&plan.state.install_key, new_install_key.clone()) {
                changes.push(Change::Set(Setting::InstallKey(seed)));
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

/// Rebuilds the in-memory state from what the store holds. Nothing
/// unsigned is taken at its word where it would grant: every license
/// token is verified again (a hand-edited state is never trusted to grant
/// more), key rotations, revocation lists and machine certificates too,
/// and what they say overrides the rows beside them (docs/semantics.md#what-stored-state-is-trusted).
///
/// A license whose token is the one the `previous` state holds under the
/// same id is not verified again: refreshing after another process's
/// change costs the licenses that changed, not all of them.
pub(crate) fn state_from(
    persisted: Persisted,
    config: &Config,
    location: &str,
    previous: Option<&State>,
) -> Result<State> {
    let mut state = State::new(Arc::clone(&config.trust_root));
    let settings = persisted.settings;
    state.latest_seen = settings.latest_seen.unwrap_or(i64::MIN);
    state.max_issued_at = settings.max_issued_at.unwrap_or(i64::MIN);
    state.product = settings.product;
    state.install = settings.install;
    if let Some(seed) = &settings.install_key {
        let key = crate::engine::airgap::signing_key(seed)
            .map_err(|e| corrupt(location, format!("its install key does not read ({e})")))?;
        state.install_key = Some(Arc::new(key));
    }
    state.report_sequence = settings.report_sequence.unwrap_or(0);
    state.last_report = settings.last_report;
    match previous.filter(|p| p.signed == persisted.signed) {
        // The same signed facts as before: the keys they lead to are known.
        Some(previous) => {
            state.signed = persisted.signed;
            state.keyring = Arc::clone(&previous.keyring);
            state.rotated_at = previous.rotated_at;
        }
        None => {
            state.signed = persisted.signed;
            state.rekey();
        }
    }
    // Serials as before: the same map, shared.
    state.serials = match previous.filter(|p| {
        p.serials.len() == persisted.serials.len()
            && persisted
                .serials
                .iter()
                .all(|(id, n)| p.serials.get(id) == Some(n))
    }) {
        Some(previous) => Arc::clone(&previous.serials),
        None => Arc::new(persisted.serials.into_iter().collect()),
    };
    let first_use: BTreeMap<String, i64> = persisted.first_use.into_iter().collect();
    state.first_use = match previous.filter(|p| *p.first_use == first_use) {
        Some(previous) => Arc::clone(&previous.first_use),
        None => Arc::new(first_use),
    };
    let mut tombstones: BTreeMap<String, i64> = persisted.tombstones.into_iter().collect();
    // A revocation list revokes again every time: deleting its
    // tombstones, or a license's `revoked` flag, takes nothing back.
    let mut revoked_by_lists = Vec::new();
    for record in state
        .signed
        .iter()
        .filter(|r| r.kind == SignedKind::Revocations)
    {
        let Ok(list) = RevocationList::verify(&record.token, &state.keyring) else {
            continue;
        };
        if list.product.as_ref().is_none_or(|p| *p == config.product) {
            revoked_by_lists.extend(list.ids.into_iter().map(|id| (id, record.added_at)));
        }
    }
    for (id, at) in revoked_by_lists {
        tombstones.entry(id).or_insert(at);
    }
    state.tombstones = match previous.filter(|p| *p.tombstones == tombstones) {
        Some(previous) => Arc::clone(&previous.tombstones),
        None => Arc::new(tombstones),
    };
    // The same license rows (the very tokens a store that keeps what it
    // read handed out before), serials, tombstones and keys as before:
    // the licenses are as they were, and not one is read again.
    let rows: Vec<(Arc<str>, i64, bool)> = persisted
        .licenses
        .iter()
        .map(|r| (Arc::clone(&r.token), r.added_at, r.revoked))
        .collect();
    let unchanged = previous.filter(|p| {
        Arc::ptr_eq(&p.keyring, &state.keyring)
            && Arc::ptr_eq(&p.serials, &state.serials)
            && Arc::ptr_eq(&p.tombstones, &state.tombstones)
            && Arc::ptr_eq(&p.first_use, &state.first_use)
            && p.license_rows.len() == rows.len()
            && p.license_rows
                .iter()
                .zip(&rows)
                .all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) && (a.1, a.2) == (b.1, b.2))
    });
    let fresh_licenses = match unchanged {
        Some(previous) => {
            state.licenses = previous.licenses.clone();
            Vec::new()
        }
        None => persisted.licenses,
    };
    state.license_rows = rows;
    for mut record in fresh_licenses {
        let known = previous
            .and_then(|p| p.licenses.get(&*record.id))
            .filter(|l| {
                (Arc::ptr_eq(&l.stored, &record.token) || l.stored == record.token)
                    && state.keyring.get(l.verified.kid()).is_some()
            });
        let verified = match known {
            Some(installed) => Arc::clone(&installed.verified),
            None => match VerifiedLicense::verify(&record.token, &state.keyring) {
                Ok(v) => Arc::new(v),
                // A key this engine does not trust: the license gives
                // nothing here, but stays stored for one that does.
                Err(Error::UnknownKey { .. }) => continue,
                Err(e) => {
                    return Err(corrupt(
                        location,
                        format!("stored license `{}` does not verify ({e})", record.id),
                    ))
                }
            },
        };
        if *verified.id != *record.id {
            return Err(corrupt(
                location,
                format!(
                    "stored license `{}` holds a token for `{}`",
                    record.id, verified.id
                ),
            ));
        }
        // Another product's, or an older issue written back over a newer
        // one: it grants nothing.
        let superseded = state
            .serials
            .get(&verified.id)
            .is_some_and(|known| known.supersedes(verified.serial, verified.issued_at.unix()));
        if verified.product != config.product || superseded {
            continue;
        }
        record.revoked |= state.tombstones.contains_key(&verified.id);
        // The same license as before, in the same standing: the same entry.
        if let Some(installed) = known.filter(|l| {
            Arc::ptr_eq(&l.stored, &record.token)
                && l.revoked == record.revoked
                && l.added_at.unix() == record.added_at
        }) {
            state
                .licenses
                .insert(record.id.to_string(), Arc::clone(installed));
            continue;
        }
        record.verified = Some(verified);
        state.apply(Change::PutLicense(record));
    }
    // A trial whose first-use record is missing starts no later than the
    // latest time this install has seen (docs/semantics.md#trials): an
    // `added_at` edited into the future as well gains nothing. (With the
    // record, the window starts at the earlier of it and `added_at`; the
    // latest time seen may since have been lowered by the way out of a
    // false clock alarm, and must not cut a recorded trial short.)
    if state.latest_seen != i64::MIN {
        let clamped: Vec<_> = state
            .licenses
            .iter()
            .filter(|(id, l)| {
                !state.first_use.contains_key(id.as_str())
                    && l.first_used.is_some_and(|at| at > state.latest_seen)
            })
            .map(|(id, l)| {
                let mut license = InstalledLicense::clone(l);
                license.first_used = Some(state.latest_seen);
                (id.clone(), Arc::new(license))
            })
            .collect();
        for (id, license) in clamped {
            state.licenses.insert(id, license);
        }
    }
    for user in persisted.users {
        state.apply(Change::PutUser(user));
    }
    // Devices this install gave up with a receipt, and when: a certificate
    // signed no later than that was given up with it.
    let given_up: BTreeMap<(String, String), i64> = persisted
        .issued_receipts
        .iter()
        .map(|r| {
            (
                (r.license_id.clone(), r.fingerprint.clone()),
                r.deactivated_at,
            )
        })
        .collect();
    let own_key = state
        .install_key
        .as_ref()
        .map(|key| key.public_key().to_base64url());
    for record in persisted.activations {
        let key = (record.license_id.clone(), record.fingerprint.clone());
        let deactivated = given_up.get(&key).copied();
        // A certificate verified before, under the same keys, holds.
        let known = previous
            .filter(|p| Arc::ptr_eq(&p.keyring, &state.keyring) && deactivated.is_none())
            .and_then(|p| {
                let key = (record.license_id.clone(), record.fingerprint.clone());
                p.activations.get(&key).filter(|r| r.kind == record.kind)
            });
        let record = match known {
            Some(known) => ActivationRecord {
                expires_at: known.expires_at,
                ..record
            },
            None => certified(record, &state.keyring, own_key.as_deref(), deactivated),
        };
        state.apply(Change::PutActivation(record));
    }
    for (license_id, n) in persisted.transfers {
        state.apply(Change::Transfers(license_id, n));
    }
    for lease in persisted.leases {
        state.apply(Change::PutLease(lease));
    }
    for counter in persisted.counters {
        state.apply(Change::PutCounter(counter));
    }
    for receipt in persisted.issued_receipts {
        state.apply(Change::PutIssuedReceipt(receipt));
    }
    for receipt in persisted.accepted_receipts {
        state.apply(Change::PutAcceptedReceipt(receipt));
    }
    for report in persisted.reports {
        state.apply(Change::PutReport(report));
    }
    for record in persisted.books {
        state.apply(Change::PutBooksRecord(record));
    }
    for period in persisted.closed_periods {
        state.apply(Change::PutClosedPeriod(period));
    }
    Ok(state)
}

/// An activation as the state may believe it. One that claims a machine
/// certificate holds it only if the certificate verifies and names this
/// license and device; then it ends when the certificate says, whatever
/// the row says. Otherwise it is only recorded: it counts, and grants
/// nothing. So is a certificate bound to another install's key than this
/// one's (`own_key`: `apply` refuses it, and a row cannot bring it in),
/// and one signed before the device was `deactivated` here with a
/// receipt: that certificate was given up.
fn certified(
    mut record: ActivationRecord,
    keyring: &Keyring,
    own_key: Option<&str>,
    deactivated: Option<i64>,
) -> ActivationRecord {
    let ActivationKind::Certificate(token) = &record.kind else {
        return record;
    };
    match MachineCertificate::verify(token, keyring) {
        Ok(cert)
            if cert.license_id == record.license_id
                && cert.fingerprint == record.fingerprint
                && deactivated.is_none_or(|at| cert.issued_at.unix() >= at)
                && match (&cert.install_key, own_key) {
                    (Some(bound), Some(own)) => bound == own,
                    _ => true,
                } =>
        {
            record.expires_at = cert.expires_at.map(Timestamp::unix);
            record.machine = cert.machine;
        }
        _ => record.kind = ActivationKind::Recorded,
    }
    record
}

/// The store the engine writes to. The crate's own file and PostgreSQL
/// stores are held as themselves, so the engine can tell it what its group commit needs (how many
/// mutations are under way) without making that part of [`Store`].
#[derive(Debug)]
pub(crate) enum Backend {
    File(Box<FileStore>),
    /// PostgreSQL batches the same way.
    #[cfg(feature = "postgres")]
    Pg(Box<crate::store::PgStore>),
    Other(Box<dyn Store>),
}

impl Backend {
    pub(crate) fn of<S: Store>(store: S) -> Self {
        let mut slot = Some(store);
        let any: &mut dyn Any = &mut slot;
        if let Some(file) = any
            .downcast_mut::<Option<FileStore>>()
            .and_then(Option::take)
        {
            return Backend::File(Box::new(file));
        }
        #[cfg(feature = "postgres")]
        if let Some(pg) = any
            .downcast_mut::<Option<crate::store::PgStore>>()
            .and_then(Option::take)
        {
            return Backend::Pg(Box::new(pg));
        }
        match slot {
            Some(store) => Backend::Other(Box::new(store)),
            None => Backend::Other(Box::new(MemoryStore::new())),
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        match self {
            Backend::File(file) => file.as_ref(),
            #[cfg(feature = "postgres")]
            Backend::Pg(pg) => pg.as_ref(),
            Backend::Other(store) => store.as_ref(),
        }
    }

    /// Waits until `generation` is durable; a file store may first wait a
    /// moment for the mutations `under_way` to join the same fsync.
    pub(crate) fn sync_with(&self, generation: u64, under_way: &AtomicUsize) -> Result<()> {
        match self {
            Backend::File(file) => file.sync_with(generation, under_way),
            #[cfg(feature = "postgres")]
            Backend::Pg(pg) => pg.sync_with(generation, under_way),
            Backend::Other(store) => store.sync(generation),
        }
    }

    /// The last mutation under way gave up: a round waiting for it need
    /// not wait any longer.
    pub(crate) fn abandoned(&self) {
        match self {
            Backend::File(file) => file.abandoned(),
            #[cfg(feature = "postgres")]
            Backend::Pg(pg) => pg.abandoned(),
            Backend::Other(_) => {}
        }
    }

    /// Whether the mutation committed at `generation` was rolled back with
    /// its batch (for whatever reason): nothing of it is stored.
    pub(crate) fn rolled_back(&self, generation: u64) -> bool {
        match self {
            Backend::File(file) => file.rolled_back(generation),
            #[cfg(feature = "postgres")]
            Backend::Pg(pg) => pg.rolled_back(generation),
            Backend::Other(_) => false,
        }
    }

    /// Whether the mutation committed at `generation`, whose sync failed,
    /// stored nothing because another writer changed the state after it
    /// was planned (a store that plans without a lock): planning it again
    /// on what is stored is safe.
    pub(crate) fn conflicted(&self, generation: u64) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            Backend::Pg(pg) => pg.conflicted(generation),
            _ => {
                let _ = generation;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::token::{sign, SigningKey, TokenType};
    use crate::{Engine, ManualClock, Reason, Timestamp};

    /// docs/semantics.md#activations-and-transfers: node-locking fails closed. On a machine with no
    /// machine id the engine has no device: node-locked rights are denied
    /// (`DEVICE_UNKNOWN`), never granted, and nothing can activate it.
    #[test]
    fn without_a_machine_id_node_locked_rights_are_denied() {
        let vendor = SigningKey::from_seed(&[5; 32]);
        let engine = Engine::builder("acme")
            .in_memory()
            .trust(vendor.public_key().clone())
            .clock(ManualClock::new(Timestamp::from_unix(1_767_225_600)))
            .background_refresh(false)
            .without_machine_id()
            .build()
            .unwrap();
        assert_eq!(engine.fingerprint(), None);
        let license = |id: &str, locked: bool| {
            let mut doc = serde_json::json!({"v": 1, "id": id, "product": "acme",
                "issued_at": "2026-01-01T00:00:00Z", "features": [{"code": id}]});
            if locked {
                doc["activations"] = serde_json::json!({"max": 3});
            }
            sign(&doc, &vendor, TokenType::License).unwrap()
        };
        engine.add_license(&license("locked", true)).unwrap();
        engine.add_license(&license("free", false)).unwrap();
        assert_eq!(
            engine.check_feature("locked").reason(),
            Reason::DeviceUnknown
        );
        assert_eq!(engine.check_feature("free").reason(), Reason::Ok);
        let err = engine.activate_this_device().unwrap_err();
        assert_eq!(err.code(), "DEVICE_UNKNOWN");
        assert_eq!(
            engine.activation_request(None).unwrap_err().code(),
            "DEVICE_UNKNOWN"
        );
        // Another device can still be counted (a site server), and that
        // grants this engine nothing.
        engine
            .activate(&crate::device::Device::new("client-1"))
            .unwrap();
        assert_eq!(
            engine.check_feature("locked").reason(),
            Reason::DeviceUnknown
        );
        assert!(!engine.is_activated("locked"));
    }
}
