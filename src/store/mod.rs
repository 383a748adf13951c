//! Durable state: the [`Store`] trait, its vocabulary, an in-memory store
//! for tests and short-lived engines, and the crash-safe [`FileStore`].
//!
//! A store persists [`Change`]s in transactions and reads the whole state
//! back as a [`Persisted`]. It knows nothing of policy: the engine decides,
//! the store remembers. Everything here is plain data (ids, tokens,
//! numbers), so a backend needs nothing of the engine's to store it; the
//! engine verifies every signed token again when it reads a state back.
//!
//! A backend is held to one contract, tested by the conformance suite
//! (`tests/conformance/`) every backend runs: a committed transaction is
//! durable once [`Store::sync`] returns for its generation; a transaction
//! dropped without committing leaves no trace; writers exclude each other
//! (across processes and hosts, for stores that can be shared), so a
//! transaction always works on the latest committed state; and
//! [`Store::generation`] changes whenever any writer commits.

pub(crate) mod group;
mod history;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

pub use history::{
    minute_buckets, point_count, series, EventCursor, EventKind, EventPage, History, HistoryEvent,
    MinuteBucket, Point, Step, StoredEvent, MAX_POINTS,
};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgStore, SCHEMA_VERSION as PG_SCHEMA_VERSION};
pub use sqlite::FileStore;

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::license::VerifiedLicense;

/// The version of the stored layout this crate writes. A state written by
/// an older version opens (and is brought up to date); one written by a
/// newer version is refused.
pub(crate) const FORMAT_VERSION: u32 = 6;

/// The latest issue of a license id an install has seen: the highest
/// serial, and the latest `issued_at` among the tokens of that serial
/// (Unix seconds; `None` in a state written before it was kept). An
/// issue below it grants nothing, and is refused (`LICENSE_REPLAYED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssueMark {
    /// The highest serial.
    pub serial: u64,
    /// The latest `issued_at` of that serial.
    pub issued_at: Option<i64>,
}

impl IssueMark {
    /// The mark of an issue `serial` signed at `issued_at`.
    pub fn new(serial: u64, issued_at: i64) -> Self {
        IssueMark {
            serial,
            issued_at: Some(issued_at),
        }
    }

    /// Whether an issue `serial` signed at `issued_at` is older than this
    /// mark: a lower serial, or the same serial signed earlier.
    pub fn supersedes(&self, serial: u64, issued_at: i64) -> bool {
        serial < self.serial
            || (serial == self.serial && self.issued_at.is_some_and(|at| issued_at < at))
    }
}

/// A stored license. Its token is verified again whenever the state is
/// read, so a hand-edited row never grants more.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LicenseRecord {
    /// License id.
    pub id: Arc<str>,
    /// The compact token the vendor signed. Shared, not copied: a store
    /// that keeps what it read hands the same token out again, and the
    /// engine knows it has verified it.
    pub token: Arc<str>,
    /// When it was added (Unix seconds).
    pub added_at: i64,
    /// Revoked by a revocation list (kept to show why its rights ended).
    pub revoked: bool,
    /// The engine's own reading of `token`, when it has one already (a
    /// store neither writes nor reads it), so that the engine need not
    /// verify again a license it has just verified.
    pub(crate) verified: Option<Arc<VerifiedLicense>>,
}

impl PartialEq for LicenseRecord {
    fn eq(&self, other: &Self) -> bool {
        (&self.id, &self.token, self.added_at, self.revoked)
            == (&other.id, &other.token, other.added_at, other.revoked)
    }
}

impl Eq for LicenseRecord {}

/// A named user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserRecord {
    /// User id.
    pub id: String,
    /// User type.
    pub user_type: String,
    /// When the user was first added (Unix seconds).
    pub added_at: i64,
    /// The latest activity (Unix seconds).
    pub last_active_at: i64,
    /// A display name (words: it grants nothing).
    pub name: Option<String>,
    /// An email address (words: it grants nothing).
    pub email: Option<String>,
}

/// What an activation rests on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivationKind {
    /// Counted by this install (`activate`, for `counted_by: install`): a
    /// counter the install keeps, named in the README's threat model.
    #[default]
    Counted,
    /// A vendor-signed machine certificate (its compact token), verified
    /// on every open: the only source of the activation's license, device
    /// and end.
    Certificate(String),
    /// Recorded as certified with no certificate that verifies here: the
    /// vendor's books recording one they issued, or a row that claims a
    /// certificate it does not hold. It counts toward `max` and grants
    /// nothing.
    Recorded,
}

/// A device activated for a license.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActivationRecord {
    /// The license.
    pub license_id: String,
    /// The device.
    pub fingerprint: String,
    /// When it was activated (Unix seconds).
    pub activated_at: i64,
    /// When it stops counting: a machine certificate's `expires_at`, read
    /// from the certificate itself every time the state is opened.
    pub expires_at: Option<i64>,
    /// What made it, and so whether it grants.
    pub kind: ActivationKind,
    /// The device's host name, as it reported it.
    pub hostname: String,
    /// The device declared or was detected as a virtual machine.
    pub vm: bool,
    /// The public key of the install on the device (base64url of its 32
    /// bytes), as its activation request carried it: what the vendor's
    /// books check the install's deactivation receipts and usage reports
    /// against. `None` for activations made before installs had keys.
    pub install_key: Option<String>,
    /// The machine the activation was made on (its computed fingerprint),
    /// where the activated device is a name the program gave rather than
    /// the machine itself: such an activation holds only on that machine.
    /// For a certificate it is read from the certificate on every open,
    /// never from the row.
    pub machine: Option<String>,
}

impl ActivationRecord {
    /// Whether it counts at `now` (a certificate's end stops it).
    pub(crate) fn live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }
}

/// A floating lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseRecord {
    /// Lease id.
    pub id: String,
    /// The client holding it.
    pub client: String,
    /// The feature pool it draws from (`None`: the license-level pool).
    pub feature: Option<String>,
    /// When it was first taken (Unix seconds).
    pub created_at: i64,
    /// When it lapses (a borrow extends it).
    pub expires_at: i64,
    /// Borrowed until this instant: no heartbeat needed until then.
    pub borrowed_until: Option<i64>,
}

impl LeaseRecord {
    /// Whether it still holds a seat at `now`.
    pub(crate) fn live_at(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// A consumption counter: units of one feature charged to one license in
/// the period that starts at `period_start`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterRecord {
    /// The license charged.
    pub license_id: String,
    /// The feature.
    pub code: String,
    /// Start of the period the count belongs to (Unix seconds).
    pub period_start: i64,
    /// Units used in it.
    pub used: u64,
}

/// The kinds of signed fact kept as tokens beside the licenses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignedKind {
    /// A revocation list: applied again on every open.
    #[default]
    Revocations,
    /// A key rotation: the keys trusted over the engine's own.
    Keys,
}

impl SignedKind {
    /// Its `typ`, as stored.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            SignedKind::Revocations => "revocations",
            SignedKind::Keys => "keys",
        }
    }

    /// The kind stored as `typ`.
    pub(crate) fn parse(typ: &str) -> Option<Self> {
        match typ {
            "revocations" => Some(SignedKind::Revocations),
            "keys" => Some(SignedKind::Keys),
            _ => None,
        }
    }
}

/// A signed fact kept as its token: a revocation list or a key rotation.
/// Verified and applied again every time the state is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedRecord {
    /// What it is.
    pub kind: SignedKind,
    /// The compact token.
    pub token: String,
    /// When it was first stored (Unix seconds).
    pub added_at: i64,
}

/// The install's own Ed25519 signing key, which signs its deactivation
/// receipts and usage reports: the 32-byte secret seed, base64url without
/// padding, as the state keeps it. A secret: its `Debug` never shows it,
/// and it is zeroed when dropped.
///
/// ```
/// use entitle::store::InstallKeySeed;
/// let seed = InstallKeySeed::new("c2VjcmV0".to_owned());
/// assert!(!format!("{seed:?}").contains("c2VjcmV0"));
/// assert_eq!(seed.expose(), "c2VjcmV0");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct InstallKeySeed(zeroize::Zeroizing<String>);

impl InstallKeySeed {
    /// The seed as base64url text (taken as given: the engine checks it
    /// when it reads the state).
    pub fn new(base64url: String) -> Self {
        InstallKeySeed(zeroize::Zeroizing::new(base64url))
    }

    /// The secret itself, for a store to write. Named so that every use
    /// stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InstallKeySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstallKeySeed(<secret>)")
    }
}

/// A deactivation receipt this install signed, kept (one per license and
/// device, the latest) so that it can be written out again: a crash
/// between the deactivation and the file leaves the receipt here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedReceiptRecord {
    /// The license the device was deactivated for.
    pub license_id: String,
    /// The device.
    pub fingerprint: String,
    /// When it was deactivated (Unix seconds), and so the instant before
    /// which every certificate for the device was given up: never earlier
    /// than just after the certificate it held was signed, whatever the
    /// clock said (the receipt itself carries the clock's time).
    pub deactivated_at: i64,
    /// The receipt's nonce.
    pub nonce: String,
    /// The compact token, signed by the install key.
    pub token: String,
}

/// A deactivation receipt the vendor's books accepted: the activation it
/// names was freed then, and the same receipt again is refused
/// (`RECEIPT_REPLAYED`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptedReceiptRecord {
    /// The license the device was deactivated for.
    pub license_id: String,
    /// The device.
    pub fingerprint: String,
    /// The receipt's nonce: a receipt is known by it.
    pub nonce: String,
    /// The install key it verified against (base64url of 32 bytes).
    pub install_key: String,
    /// When the install says it deactivated the device (Unix seconds).
    pub deactivated_at: i64,
    /// When the books accepted it (Unix seconds).
    pub accepted_at: i64,
    /// The compact token, as signed.
    pub token: String,
}

/// A usage report the vendor's books ingested from one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportRecord {
    /// The device that reported.
    pub fingerprint: String,
    /// Its sequence number: one report per device and sequence.
    pub sequence: u64,
    /// The install key it verified against (base64url of 32 bytes).
    pub install_key: String,
    /// When the install made it (Unix seconds).
    pub created_at: i64,
    /// When the books ingested it (Unix seconds).
    pub ingested_at: i64,
    /// The compact token, as signed.
    pub token: String,
}

/// The count of a metered feature's period that has closed (a consume
/// moved its counter on to a later period), kept by the install until a
/// usage report has carried it to the vendor (docs/formats.md#usage-report-typ-report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClosedPeriodRecord {
    /// The license charged.
    pub license_id: String,
    /// The feature.
    pub code: String,
    /// When the period started (Unix seconds): with the license and
    /// feature, what the record is known by.
    pub starts_at: i64,
    /// When it ended (Unix seconds).
    pub ends_at: i64,
    /// Units used in it.
    pub used: u64,
}

/// A record of the vendor's online service, kept in its books: what a
/// license key, an account, an assignment, a trial or a withdrawn
/// certificate is (`kind`), what it is known by (`key`) and its contents
/// (`value`, JSON the books write and read back). A store keeps them as
/// given; an install never reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BooksRecord {
    /// What the record is (the books name their kinds).
    pub kind: String,
    /// What it is known by, within its kind.
    pub key: String,
    /// Its contents.
    pub value: String,
}

impl BooksRecord {
    /// A record of `kind`, known by `key`, holding `value`.
    ///
    /// ```
    /// let record = entitle::store::BooksRecord::new("trial", "desk-1", "{}");
    /// assert_eq!(record.kind, "trial");
    /// ```
    pub fn new(kind: impl Into<String>, key: impl Into<String>, value: impl Into<String>) -> Self {
        BooksRecord {
            kind: kind.into(),
            key: key.into(),
            value: value.into(),
        }
    }
}

/// What `entitle init` fixes about an install it makes: the keys and
/// release date the command-line tool trusts, the device it names and the
/// machine it was made on. A program's own state has none: a program
/// passes its keys to `EngineBuilder`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstallSettings {
    /// The trusted public keys, as PEM (none when compiled into the tool).
    pub trusted_keys: Vec<String>,
    /// The application build's release date (Unix seconds).
    pub release_date: Option<i64>,
    /// The device named with `init --fingerprint`, when one was.
    pub device: Option<String>,
    /// This machine's fingerprint when `init` ran.
    pub machine: Option<String>,
    /// The application's version (`init --app-version`), for licenses
    /// with `versions`.
    pub version: Option<String>,
    /// The application's release channel (`init --channel`), for
    /// licenses with `channels`.
    pub channel: Option<String>,
}

/// One setting of an install.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// The product the state belongs to.
    Product(String),
    /// The latest time the engine has seen (the clock guard's reference).
    LatestSeen(i64),
    /// The latest `issued_at` of any token for this install.
    MaxIssuedAt(i64),
    /// What `entitle init` fixed.
    Install(InstallSettings),
    /// The install's own signing key (set once, when the state is first
    /// opened without one).
    InstallKey(InstallKeySeed),
    /// The sequence number of the last usage report this install signed.
    ReportSequence(u64),
    /// The compact token of the last usage report this install signed:
    /// the next one names its hash as `previous`.
    LastReport(String),
}

/// The settings of an install, as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The product the state belongs to.
    pub product: Option<String>,
    /// The latest time the engine has seen.
    pub latest_seen: Option<i64>,
    /// The latest `issued_at` of any token for this install.
    pub max_issued_at: Option<i64>,
    /// What `entitle init` fixed, if it made this state.
    pub install: Option<InstallSettings>,
    /// The install's own signing key, once made.
    pub install_key: Option<InstallKeySeed>,
    /// The sequence number of the last usage report signed here.
    pub report_sequence: Option<u64>,
    /// The last usage report signed here (its compact token).
    pub last_report: Option<String>,
}

/// The keys under which every backend keeps the settings, one row each.
pub(crate) mod setting_key {
    pub const PRODUCT: &str = "product";
    pub const LATEST_SEEN: &str = "latest_seen";
    pub const MAX_ISSUED_AT: &str = "max_issued_at";
    /// A JSON array of PEM public keys; it marks a state `init` made.
    pub const KEYS: &str = "keys";
    /// The backend's own representation of an instant (see
    /// [`Settings::from_rows`](super::Settings::from_rows)).
    pub const RELEASE_DATE: &str = "release_date";
    pub const DEVICE: &str = "fingerprint";
    pub const MACHINE: &str = "machine";
    pub const VERSION: &str = "app_version";
    pub const CHANNEL: &str = "app_channel";
    /// The install's secret seed (base64url): the one secret a state holds.
    pub const INSTALL_KEY: &str = "install_key";
    pub const REPORT_SEQUENCE: &str = "report_sequence";
    pub const LAST_REPORT: &str = "last_report";
}

impl Settings {
    /// The settings from their rows (key to text), as every backend keeps
    /// them; `instant` reads the backend's representation of the release
    /// date. `Err` says, for `STATE_CORRUPT`, which setting does not read.
    pub(crate) fn from_rows(
        rows: &std::collections::BTreeMap<String, String>,
        instant: impl Fn(&str) -> std::result::Result<i64, String>,
    ) -> std::result::Result<Settings, String> {
        use setting_key as key;
        let number = |k: &str| {
            rows.get(k)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("the setting `{k}` is not a number"))
                })
                .transpose()
        };
        let install = match rows.get(key::KEYS) {
            None => None,
            Some(keys) => Some(InstallSettings {
                trusted_keys: serde_json::from_str(keys)
                    .map_err(|e| format!("its trusted keys are not a JSON list of PEM ({e})"))?,
                release_date: rows
                    .get(key::RELEASE_DATE)
                    .map(|t| instant(t))
                    .transpose()?,
                device: rows.get(key::DEVICE).cloned(),
                machine: rows.get(key::MACHINE).cloned(),
                version: rows.get(key::VERSION).cloned(),
                channel: rows.get(key::CHANNEL).cloned(),
            }),
        };
        let report_sequence = number(key::REPORT_SEQUENCE)?
            .map(|n| {
                u64::try_from(n)
                    .map_err(|_| format!("the setting `{}` is negative", key::REPORT_SEQUENCE))
            })
            .transpose()?;
        Ok(Settings {
            product: rows.get(key::PRODUCT).cloned(),
            latest_seen: number(key::LATEST_SEEN)?,
            max_issued_at: number(key::MAX_ISSUED_AT)?,
            install,
            install_key: rows
                .get(key::INSTALL_KEY)
                .map(|seed| InstallKeySeed::new(seed.clone())),
            report_sequence,
            last_report: rows.get(key::LAST_REPORT).cloned(),
        })
    }
}

/// Everything a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Persisted {
    /// The install's settings.
    pub settings: Settings,
    /// Installed licenses.
    pub licenses: Vec<LicenseRecord>,
    /// The latest issue seen per license id: its serial, and the
    /// `issued_at` of the latest token of that serial (absent in a state
    /// an older entitle wrote).
    pub serials: Vec<(String, IssueMark)>,
    /// Ids that can never be added again, and when they were buried.
    pub tombstones: Vec<(String, i64)>,
    /// When each license id with a trial was first added here.
    pub first_use: Vec<(String, i64)>,
    /// Users.
    pub users: Vec<UserRecord>,
    /// Device activations.
    pub activations: Vec<ActivationRecord>,
    /// Transfers made per license id.
    pub transfers: Vec<(String, u32)>,
    /// Floating leases.
    pub leases: Vec<LeaseRecord>,
    /// Consumption counters.
    pub counters: Vec<CounterRecord>,
    /// Revocation lists and key rotations, as signed.
    pub signed: Vec<SignedRecord>,
    /// Deactivation receipts this install signed (the latest per license
    /// and device).
    pub issued_receipts: Vec<IssuedReceiptRecord>,
    /// Deactivation receipts the vendor's books accepted.
    pub accepted_receipts: Vec<AcceptedReceiptRecord>,
    /// Usage reports the vendor's books ingested.
    pub reports: Vec<ReportRecord>,
    /// Closed periods of metered features no report has carried yet.
    pub closed_periods: Vec<ClosedPeriodRecord>,
    /// The records of the vendor's online service (none on an install).
    pub books: Vec<BooksRecord>,
}

/// One durable step. Every mutation is a list of these, written in one
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Sets one setting.
    Set(Setting),
    /// Installs or replaces a license.
    PutLicense(LicenseRecord),
    /// Removes a license.
    DeleteLicense(String),
    /// The latest issue seen for a license id.
    Serial(String, IssueMark),
    /// A license id that can never be added again.
    Tombstone(String, i64),
    /// When this install first added a license id: a trial's clock starts
    /// there, and the record outlives the license's removal.
    FirstUse(String, i64),
    /// Keeps a revocation list or key rotation (once per token).
    PutSigned(SignedRecord),
    /// Adds or updates a user.
    PutUser(UserRecord),
    /// Removes a user.
    DeleteUser(String),
    /// Activates a device for a license.
    PutActivation(ActivationRecord),
    /// Deactivates a device.
    DeleteActivation {
        /// The license.
        license_id: String,
        /// The device.
        fingerprint: String,
    },
    /// The number of transfers (deactivations) made for a license.
    Transfers(String, u32),
    /// Takes or renews a floating lease.
    PutLease(LeaseRecord),
    /// Frees a lease.
    DeleteLease(String),
    /// Sets a consumption counter.
    PutCounter(CounterRecord),
    /// Keeps the receipt this install signed for a deactivation (replacing
    /// the one kept for the same license and device).
    PutIssuedReceipt(IssuedReceiptRecord),
    /// Records a receipt the vendor's books accepted.
    PutAcceptedReceipt(AcceptedReceiptRecord),
    /// Records a usage report the vendor's books ingested.
    PutReport(ReportRecord),
    /// Keeps a closed period's count until a report carries it (replacing
    /// the one kept for the same license, feature and start).
    PutClosedPeriod(ClosedPeriodRecord),
    /// Forgets a closed period a report has carried.
    DeleteClosedPeriod {
        /// The license.
        license_id: String,
        /// The feature.
        code: String,
        /// When the period started (Unix seconds).
        starts_at: i64,
    },
    /// Keeps a record of the vendor's online service (replacing the one of
    /// the same kind and key).
    PutBooksRecord(BooksRecord),
    /// Forgets a record of the vendor's online service.
    DeleteBooksRecord {
        /// Its kind.
        kind: String,
        /// Its key.
        key: String,
    },
}

/// Where the engine's state lives.
///
/// Every mutation runs in one [`Transaction`]: writers exclude each other
/// (across processes, for stores that can be shared), a mutation sees the
/// latest committed state, and a transaction that is dropped without
/// [`commit`](Transaction::commit) leaves no trace.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A counter that changes whenever any writer commits. Cheap: the
    /// engine polls it to notice other processes' changes.
    fn generation(&self) -> Result<u64>;

    /// Reads the whole state and the generation it was read at.
    fn load(&self) -> Result<(u64, Persisted)>;

    /// Starts a write transaction, waiting (bounded) for other writers.
    fn begin(&self) -> Result<Box<dyn Transaction + '_>>;

    /// Makes every transaction committed up to `generation` durable, or
    /// fails if its write did not reach the disk. A store whose commits
    /// are durable by themselves does nothing. Called after the engine's
    /// writer lock is released, so that concurrent writers can share one
    /// write and one fsync.
    fn sync(&self, generation: u64) -> Result<()> {
        let _ = generation;
        Ok(())
    }

    /// Where the state lives, for messages.
    fn location(&self) -> String {
        "memory".to_owned()
    }

    /// The license server's history kept beside the state
    /// (docs/http.md#history), if this store keeps one. Never part of
    /// [`Store::load`].
    ///
    /// ```
    /// use entitle::store::{MemoryStore, Store};
    /// assert!(MemoryStore::new().history().is_some());
    /// ```
    fn history(&self) -> Option<&dyn History> {
        None
    }
}

/// One write transaction.
pub trait Transaction {
    /// The generation the transaction started from.
    fn generation(&self) -> u64;

    /// Reads the whole state as of this transaction.
    fn load(&mut self) -> Result<Persisted>;

    /// The generation of the latest committed state, held so until the
    /// transaction ends. The engine asks before it returns a refusal
    /// planned on what it already held: a store that plans on what it
    /// knows rather than under a lock (PostgreSQL) may know less than is
    /// committed, and then the engine reads the state again and plans
    /// once more, so that no refusal stands on a state another writer
    /// has moved past. A store whose transactions start from the latest
    /// state keeps this default, [`Transaction::generation`].
    ///
    /// ```
    /// use entitle::store::{MemoryStore, Store};
    /// let store = MemoryStore::new();
    /// let mut txn = store.begin()?;
    /// assert_eq!(txn.latest_generation()?, txn.generation());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    fn latest_generation(&mut self) -> Result<u64> {
        Ok(self.generation())
    }

    /// Records changes (not durable until commit).
    fn write(&mut self, changes: &[Change]) -> Result<()>;

    /// Ends the transaction, all of its changes at once, returning the new
    /// generation. They are durable once [`Store::sync`] returns for that
    /// generation; a store may write them with other transactions' only
    /// then, and fail them all there if that write fails.
    fn commit(self: Box<Self>) -> Result<u64>;
}

impl fmt::Debug for dyn Transaction + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("generation", &self.generation())
            .finish()
    }
}
