//! The engine's state in memory: what is installed and who is using it.
//! It moves by the store's own [`Change`]s, applied here exactly as the
//! store persists them, so the two cannot drift; what the store keeps as
//! signed tokens is held here verified.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::clock::Timestamp;
use crate::license::{CountedBy, KeyRotation, VerifiedLicense};
use crate::policy::consumption::Counter;
use crate::policy::{Activation, Context, LicenseView};
use crate::store::{
    AcceptedReceiptRecord, ActivationRecord, Change, ClosedPeriodRecord, InstallSettings,
    IssueMark, IssuedReceiptRecord, LeaseRecord, ReportRecord, Setting, SignedKind, SignedRecord,
};
use crate::token::{Keyring, SigningKey};

/// A license on this install.
#[derive(Debug, Clone)]
pub(crate) struct InstalledLicense {
    /// The verified document.
    pub verified: Arc<VerifiedLicense>,
    /// When this install first added its id (a trial's window starts
    /// there).
    pub first_used: Option<i64>,
    /// Its token as the store holds it: the same allocation a store that
    /// keeps what it read hands out again, so a reload knows the license
    /// at a glance.
    pub stored: Arc<str>,
    /// When it was added here.
    pub added_at: Timestamp,
    /// Revoked by a revocation list (kept to show why its rights ended).
    pub revoked: bool,
}

impl InstalledLicense {
    /// The view the policies take of it.
    pub fn view(&self, activation: Activation) -> LicenseView<'_> {
        LicenseView {
            license: self.verified.license(),
            revoked: self.revoked,
            activation,
            first_used: self.first_used,
        }
    }
}

/// A named user, as held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// Index into the state's user types.
    pub user_type: u32,
    /// When the user was first added.
    pub added_at: i64,
    /// The latest activity.
    pub last_active_at: i64,
    /// Name and email, shown in usage; behind one pointer, so that a
    /// million users without them cost a word each.
    pub contact: Option<Arc<Contact>>,
}

/// What a user is called and how to reach them: words, granting nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Contact {
    /// The contact of a stored user, if it has any.
    pub fn of(name: Option<String>, email: Option<String>) -> Option<Arc<Contact>> {
        (name.is_some() || email.is_some()).then(|| Arc::new(Contact { name, email }))
    }
}

/// Users by id. The maps reports read are persistent: a snapshot shares
/// them with the writer, and a change copies only the path to the entry
/// changed, so reports read without the writer lock and a million users
/// cost no copy per mutation.
pub(crate) type Users = imbl::OrdMap<Arc<str>, User>;
/// Installed licenses by id.
pub(crate) type Licenses = imbl::OrdMap<String, Arc<InstalledLicense>>;
/// Device activations by (license id, fingerprint).
pub(crate) type Activations = imbl::OrdMap<(String, String), ActivationRecord>;
/// Floating leases by id.
pub(crate) type Leases = imbl::OrdMap<String, LeaseRecord>;
/// Consumption counters by (license id, feature code).
pub(crate) type Counters = imbl::OrdMap<(String, String), Counter>;

/// Counts active users without scanning them: a multiset of last-activity
/// times and a moving cutoff, so advancing time costs only the users who
/// went idle since the last look.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActivityIndex {
    by_time: BTreeMap<i64, u32>,
    total: u64,
    /// Users with `last_active_at <= cutoff` are counted in `idle`.
    cutoff: i64,
    idle: u64,
}

impl ActivityIndex {
    fn insert(&mut self, t: i64) {
        *self.by_time.entry(t).or_insert(0) += 1;
        self.total += 1;
        if t <= self.cutoff {
            self.idle += 1;
        }
    }

    fn remove(&mut self, t: i64) {
        if let Some(n) = self.by_time.get_mut(&t) {
            *n -= 1;
            if *n == 0 {
                self.by_time.remove(&t);
            }
            self.total -= 1;
            if t <= self.cutoff {
                self.idle -= 1;
            }
        }
    }

    /// Users active at `now` (last active after `now - window`).
    pub fn active_at(&mut self, now: i64, window_secs: i64) -> u64 {
        let cutoff = now.saturating_sub(window_secs);
        if cutoff > self.cutoff {
            let moved: u64 = self
                .by_time
                .range(self.cutoff.saturating_add(1)..=cutoff)
                .map(|(_, n)| u64::from(*n))
                .sum();
            self.idle += moved;
        } else if cutoff < self.cutoff {
            let moved: u64 = self
                .by_time
                .range(cutoff.saturating_add(1)..=self.cutoff)
                .map(|(_, n)| u64::from(*n))
                .sum();
            self.idle -= moved;
        }
        self.cutoff = cutoff;
        self.total - self.idle
    }

    /// The instants, after `now`, at which active users go idle (each the
    /// end of someone's window), at most `limit` of them, with how many go
    /// idle at each.
    pub fn next_idle(&self, now: i64, window_secs: i64, limit: usize) -> Vec<(i64, u64)> {
        let cutoff = now.saturating_sub(window_secs);
        self.by_time
            .range(cutoff.saturating_add(1)..)
            .take(limit)
            .map(|(t, n)| (t.saturating_add(window_secs), u64::from(*n)))
            .collect()
    }

    /// The instants, at or before `at`, at which users idle at `at` went
    /// idle, latest first, at most `limit` of them, with how many at each:
    /// going back in time, each is where those users are active again.
    pub fn prev_idle(&self, at: i64, window_secs: i64, limit: usize) -> Vec<(i64, u64)> {
        let cutoff = at.saturating_sub(window_secs);
        self.by_time
            .range(..=cutoff)
            .rev()
            .take(limit)
            .map(|(t, n)| (t.saturating_add(window_secs), u64::from(*n)))
            .collect()
    }
}

/// Everything the engine knows, in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// The latest time seen (the rollback guard's reference).
    pub latest_seen: i64,
    /// The latest `issued_at` of any token for this install.
    pub max_issued_at: i64,
    /// The product the state belongs to, once recorded.
    pub product: Option<String>,
    /// What `entitle init` fixed, if it made this state.
    pub install: Option<InstallSettings>,
    /// The keys the program trusts (the builder's).
    pub root: Arc<Keyring>,
    /// The keys trusted now: `root` with the signed rotations applied.
    pub keyring: Arc<Keyring>,
    /// The `issued_at` of the latest key rotation applied.
    pub rotated_at: Option<i64>,
    /// Revocation lists and key rotations, as signed.
    pub signed: Vec<SignedRecord>,
    /// Installed licenses by id.
    pub licenses: Licenses,
    /// The license rows this state was read from, as the store gave them
    /// (token, added_at, revoked): a reload that reads the same rows, and
    /// the same serials, tombstones and keys, keeps `licenses` as it is.
    pub license_rows: Vec<(Arc<str>, i64, bool)>,
    /// Highest serial seen per license id (shared until it changes).
    pub serials: Arc<FxHashMap<String, IssueMark>>,
    /// Ids that can never be added again (shared until they change).
    pub tombstones: Arc<BTreeMap<String, i64>>,
    /// When each license id with a trial was first added here (shared
    /// until it changes; never forgotten).
    pub first_use: Arc<BTreeMap<String, i64>>,
    /// Users by id.
    pub users: Users,
    /// Interned user types.
    pub user_types: Arc<Vec<Arc<str>>>,
    user_type_index: FxHashMap<Arc<str>, u32>,
    /// Active-user counting.
    pub activity: ActivityIndex,
    /// Device activations.
    pub activations: Activations,
    /// Transfers made per license id (shared with snapshots until it
    /// changes).
    pub transfers: Arc<FxHashMap<String, u32>>,
    /// Floating leases.
    pub leases: Leases,
    /// Consumption counters.
    pub counters: Counters,
    /// This install's own signing key (its receipts and reports), once
    /// made. Zeroed when the last holder drops it; never printed.
    pub install_key: Option<Arc<SigningKey>>,
    /// The sequence number of the last usage report signed here.
    pub report_sequence: u64,
    /// Receipts this install signed, by license and device.
    pub issued_receipts: BTreeMap<(String, String), IssuedReceiptRecord>,
    /// Receipts the vendor's books accepted, by license, device and nonce.
    pub accepted_receipts: BTreeMap<(String, String, String), AcceptedReceiptRecord>,
    /// Usage reports the vendor's books ingested, by device and sequence.
    pub reports: BTreeMap<(String, u64), ReportRecord>,
    /// The last usage report signed here (its compact token), which the
    /// next one chains to.
    pub last_report: Option<String>,
    /// Closed periods no report has carried yet, by license, feature and
    /// start.
    pub closed_periods: BTreeMap<(String, String, i64), ClosedPeriodRecord>,
    /// The records of the vendor's online service, by kind and key (its
    /// books only: an install never reads them).
    pub books: BTreeMap<(String, String), String>,
}

impl State {
    /// An empty state trusting `root`.
    pub fn new(root: Arc<Keyring>) -> Self {
        State {
            latest_seen: i64::MIN,
            max_issued_at: i64::MIN,
            keyring: Arc::clone(&root),
            root,
            ..State::default()
        }
    }

    /// Applies one change in memory, as the store persists it.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Set(Setting::LatestSeen(t)) => self.latest_seen = t,
            Change::Set(Setting::MaxIssuedAt(t)) => self.max_issued_at = t,
            Change::Set(Setting::Product(p)) => self.product = Some(p),
            Change::Set(Setting::Install(s)) => self.install = Some(s),
            Change::Set(Setting::InstallKey(seed)) => {
                // An unreadable seed is refused when the state is read
                // (`state_from`); a plan only ever sets a good one.
                self.install_key = crate::engine::airgap::signing_key(&seed).ok().map(Arc::new);
            }
            Change::Set(Setting::ReportSequence(n)) => self.report_sequence = n,
            Change::Set(Setting::LastReport(token)) => self.last_report = Some(token),
            Change::PutLicense(record) => {
                // The plan hands over the license it verified; a record
                // without one (read back) is verified here.
                let verified = match record.verified {
                    Some(v) => v,
                    None => match VerifiedLicense::verify(&record.token, &self.keyring) {
                        Ok(v) => Arc::new(v),
                        Err(_) => return,
                    },
                };
                // A trial's window starts at its first use here: the
                // first-use record, or, where it is missing or was moved
                // later, when the license was added. Never no start, so
                // never no end (docs/semantics.md#trials).
                let first_used = verified.trial_secs.map(|_| {
                    self.first_use
                        .get(&*record.id)
                        .map_or(record.added_at, |&at| at.min(record.added_at))
                });
                let installed = InstalledLicense {
                    first_used,
                    verified,
                    stored: record.token,
                    added_at: Timestamp::from_unix(record.added_at),
                    revoked: record.revoked,
                };
                self.licenses
                    .insert(record.id.to_string(), Arc::new(installed));
            }
            Change::DeleteLicense(id) => {
                self.licenses.remove(&id);
            }
            Change::Serial(id, mark) => {
                Arc::make_mut(&mut self.serials).insert(id, mark);
            }
            Change::Tombstone(id, at) => {
                Arc::make_mut(&mut self.tombstones).insert(id, at);
            }
            Change::FirstUse(id, at) => {
                Arc::make_mut(&mut self.first_use).entry(id).or_insert(at);
            }
            Change::PutSigned(record) => {
                if self.signed.iter().any(|s| s.token == record.token) {
                    return;
                }
                let rekey = record.kind == SignedKind::Keys;
                self.signed.push(record);
                if rekey {
                    self.rekey();
                }
            }
            Change::PutUser(record) => {
                let user_type = self.intern(&record.user_type);
                let user = User {
                    user_type,
                    added_at: record.added_at,
                    last_active_at: record.last_active_at,
                    contact: Contact::of(record.name, record.email),
                };
                if let Some(old) = self.users.insert(Arc::from(record.id), user) {
                    self.activity.remove(old.last_active_at);
                }
                self.activity.insert(record.last_active_at);
            }
            Change::DeleteUser(id) => {
                if let Some(old) = self.users.remove(id.as_str()) {
                    self.activity.remove(old.last_active_at);
                }
            }
            Change::PutActivation(record) => {
                let key = (record.license_id.clone(), record.fingerprint.clone());
                self.activations.insert(key, record);
            }
            Change::DeleteActivation {
                license_id,
                fingerprint,
            } => {
                self.activations.remove(&(license_id, fingerprint));
            }
            Change::Transfers(license_id, n) => {
                Arc::make_mut(&mut self.transfers).insert(license_id, n);
            }
            Change::PutLease(lease) => {
                self.leases.insert(lease.id.clone(), lease);
            }
            Change::DeleteLease(id) => {
                self.leases.remove(&id);
            }
            Change::PutCounter(c) => {
                let counter = Counter {
                    period_start: c.period_start,
                    used: c.used,
                };
                self.counters.insert((c.license_id, c.code), counter);
            }
            Change::PutIssuedReceipt(r) => {
                let key = (r.license_id.clone(), r.fingerprint.clone());
                self.issued_receipts.insert(key, r);
            }
            Change::PutAcceptedReceipt(r) => {
                let key = (r.license_id.clone(), r.fingerprint.clone(), r.nonce.clone());
                self.accepted_receipts.insert(key, r);
            }
            Change::PutReport(r) => {
                self.reports.insert((r.fingerprint.clone(), r.sequence), r);
            }
            Change::PutClosedPeriod(p) => {
                let key = (p.license_id.clone(), p.code.clone(), p.starts_at);
                self.closed_periods.insert(key, p);
            }
            Change::DeleteClosedPeriod {
                license_id,
                code,
                starts_at,
            } => {
                self.closed_periods.remove(&(license_id, code, starts_at));
            }
            Change::PutBooksRecord(r) => {
                self.books.insert((r.kind, r.key), r.value);
            }
            Change::DeleteBooksRecord { kind, key } => {
                self.books.remove(&(kind, key));
            }
        }
    }

    /// Recomputes the keys trusted: the root, with each stored rotation
    /// that verifies against the keys trusted before it applied in the
    /// order the vendor signed them. A rotation that does not verify
    /// (forged, or signed by a key an earlier one retired) changes nothing.
    pub fn rekey(&mut self) {
        let mut rotations: Vec<(i64, &str)> = self
            .signed
            .iter()
            .filter(|r| r.kind == SignedKind::Keys)
            .filter_map(|r| {
                // Read unverified only to order them; each is verified
                // below against the keys trusted at its turn.
                let payload = crate::token::decode_unverified(&r.token).ok()?.payload;
                let issued_at = Timestamp::parse(payload.get("issued_at")?.as_str()?).ok()?;
                Some((issued_at.unix(), r.token.as_str()))
            })
            .collect();
        rotations.sort_unstable();
        let mut keyring = Keyring::clone(&self.root);
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
        self.keyring = Arc::new(keyring);
        self.rotated_at = rotated_at;
    }

    fn intern(&mut self, user_type: &str) -> u32 {
        if let Some(i) = self.user_type_index.get(user_type) {
            return *i;
        }
        let i = self.user_types.len() as u32;
        let name: Arc<str> = Arc::from(user_type);
        Arc::make_mut(&mut self.user_types).push(Arc::clone(&name));
        self.user_type_index.insert(name, i);
        i
    }

    /// The views of every installed license, for the policies.
    pub fn views(&self, device: &DeviceContext) -> Vec<LicenseView<'_>> {
        let activations = self.device_activations(device);
        self.licenses
            .values()
            .map(|l| l.view(device.activation(l, &activations)))
            .collect()
    }

    /// The licenses this engine's own device is activated for, with the
    /// instant each activation ends (`i64::MAX`: never).
    pub fn device_activations(&self, device: &DeviceContext) -> DeviceActivations {
        let Some(fingerprint) = &device.fingerprint else {
            return DeviceActivations::default();
        };
        self.activations
            .iter()
            .filter(|((license, f), record)| {
                f == fingerprint
                    && grants(record, self.counted_by(license))
                    && device.on_this_machine(record)
            })
            .map(|((license, _), record)| (license.clone(), record.expires_at.unwrap_or(i64::MAX)))
            .collect()
    }

    /// Who activates devices for `license_id`. When only the vendor does
    /// (`counted_by: vendor`), only a verified machine certificate grants
    /// its rights, never a row this install could have written itself.
    fn counted_by(&self, license_id: &str) -> CountedBy {
        self.licenses
            .get(license_id)
            .and_then(|l| l.verified.activations)
            .map_or(CountedBy::Install, |rules| rules.counted_by)
    }

    /// `None` when `fingerprint` is activated for `license_id` at `now`;
    /// otherwise how many other devices are (the count a new activation
    /// is checked against).
    pub fn devices_besides(&self, license_id: &str, fingerprint: &str, now: i64) -> Option<u64> {
        let mut count = 0;
        for (f, _) in self.devices_for(license_id, now) {
            if f == fingerprint {
                return None;
            }
            count += 1;
        }
        Some(count)
    }

    /// Devices activated for `license_id` at `now`.
    pub fn devices_for<'a>(
        &'a self,
        license_id: &'a str,
        now: i64,
    ) -> impl Iterator<Item = (&'a str, &'a ActivationRecord)> + 'a {
        self.activations
            .range((license_id.to_owned(), String::new())..)
            .take_while(move |((l, _), _)| l == license_id)
            .filter(move |(_, r)| r.live_at(now))
            .map(|((_, f), r)| (f.as_str(), r))
    }
}

/// Whether an activation lets its device use the license it is for: a
/// verified certificate always; a counted activation only where the
/// install is the authority; a recorded one never.
pub(crate) fn grants(record: &ActivationRecord, counted_by: CountedBy) -> bool {
    use crate::store::ActivationKind;
    match record.kind {
        ActivationKind::Certificate(_) => true,
        ActivationKind::Counted => counted_by == CountedBy::Install,
        _ => false,
    }
}

/// License id to the end of this device's activation for it.
pub(crate) type DeviceActivations = BTreeMap<String, i64>;

/// What the engine knows about the device it runs on, for node-locked
/// licenses.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceContext {
    /// This engine's device fingerprint: the one the program gave, or this
    /// machine's; `None` only where the system has no machine id, and then
    /// node-locked rights are denied.
    pub fingerprint: Option<String>,
    /// The machine this engine runs on: the fingerprint computed for it,
    /// or, where the program gave its device fingerprint itself, that
    /// fingerprint. An activation of a named device holds only on the
    /// machine it was made on (docs/semantics.md#what-stored-state-is-trusted).
    pub machine: Option<String>,
    /// Whether this device is a virtual machine.
    pub vm: bool,
    /// Validity context (release date).
    pub ctx: Context,
}

impl DeviceContext {
    /// The machine to record with an activation of `fingerprint` made
    /// here: this machine when `fingerprint` is this engine's device and
    /// names something other than the machine itself; otherwise none (the
    /// device is the machine, or another device this install counts).
    pub fn machine_for(&self, fingerprint: &str) -> Option<String> {
        match (&self.fingerprint, &self.machine) {
            (Some(own), Some(machine)) if own == fingerprint && own != machine => {
                Some(machine.clone())
            }
            _ => None,
        }
    }

    /// Whether `record`, an activation of this engine's device, was made
    /// on this machine: its machine (a certificate's, read from the
    /// certificate) or, without one, the device itself must be this
    /// machine. No row of the state says which device this is.
    pub fn on_this_machine(&self, record: &ActivationRecord) -> bool {
        let made_on = record.machine.as_deref().unwrap_or(&record.fingerprint);
        self.machine.as_deref() == Some(made_on)
    }
}

impl DeviceContext {
    /// Whether the license's rights hold on this device. A license with
    /// `activations` is node-locked: on an engine that knows its own
    /// fingerprint, it holds only while that device is activated, so a
    /// state directory copied to another machine carries no rights.
    pub fn activation(
        &self,
        license: &InstalledLicense,
        activations: &DeviceActivations,
    ) -> Activation {
        if license.verified.activations.is_none() {
            return Activation::NotLocked;
        }
        if self.fingerprint.is_none() {
            return Activation::Unknown;
        }
        match activations.get(&license.verified.id) {
            Some(until) => Activation::Until(*until),
            None => Activation::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_index_counts_like_a_scan() {
        let mut index = ActivityIndex::default();
        let times = [5, 10, 10, 20, 35, 50];
        for t in times {
            index.insert(t);
        }
        index.remove(20);
        let live = [5, 10, 10, 35, 50];
        for (now, window) in [(40, 30), (10, 1), (60, 30), (0, 30), (100, 1000), (45, 10)] {
            let scan = live.iter().filter(|&&t| t + window > now).count() as u64;
            assert_eq!(
                index.active_at(now, window),
                scan,
                "now {now} window {window}"
            );
        }
        let next = index.next_idle(40, 30, 10);
        assert_eq!(next, vec![(65, 1), (80, 1)]);
    }
}
