//! The engine's state: what is installed and who is using it, and the
//! changes that move it. The store persists [`Change`]s; the engine applies
//! the same changes in memory, so the two cannot drift.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::clock::Timestamp;
use crate::license::{CountedBy, VerifiedLicense};
use crate::policy::consumption::Counter;
use crate::policy::{Activation, Context, LicenseView};
use crate::token::Keyring;

/// A license on this install.
#[derive(Debug, Clone)]
pub struct InstalledLicense {
    /// The verified document.
    pub verified: VerifiedLicense,
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
        }
    }
}

/// A named user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord {
    /// Index into the state's user types.
    pub user_type: u32,
    /// When the user was first added.
    pub added_at: i64,
    /// The latest activity.
    pub last_active_at: i64,
}

/// A device activated for a license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRecord {
    /// When it was activated.
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
}

/// What an activation rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationKind {
    /// Counted by this install (`activate`, for `counted_by: install`): a
    /// counter the install keeps, named in the README's threat model.
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

impl ActivationRecord {
    /// Whether it lets this device use the license it is for: a verified
    /// certificate always; a counted activation only where the install is
    /// the authority; a recorded one never.
    pub fn grants(&self, counted_by: CountedBy) -> bool {
        match self.kind {
            ActivationKind::Certificate(_) => true,
            ActivationKind::Counted => counted_by == CountedBy::Install,
            ActivationKind::Recorded => false,
        }
    }

    /// Whether it counts at `now` (a certificate's end stops it).
    pub fn live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }
}

/// A floating lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The client holding it.
    pub client: String,
    /// The feature pool it draws from (`None`: the license-level pool).
    pub feature: Option<String>,
    /// When it was first taken.
    pub created_at: i64,
    /// When it lapses (a borrow extends it).
    pub expires_at: i64,
    /// Borrowed until this instant: no heartbeat needed until then.
    pub borrowed_until: Option<i64>,
}

impl LeaseRecord {
    /// Whether it still holds a seat at `now`.
    pub fn live_at(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// One durable step. Every mutation is a list of these, written in one
/// transaction and then applied in memory.
#[derive(Debug, Clone)]
pub enum Change {
    /// The latest time the engine has seen (rollback guard).
    LatestSeen(i64),
    /// The latest `issued_at` of any vendor token seen.
    MaxIssuedAt(i64),
    /// Installs or replaces a license.
    PutLicense(Arc<InstalledLicense>),
    /// Removes a license (soft removal, or after a tombstone).
    DeleteLicense(String),
    /// The highest serial seen for a license id.
    Serial(String, u64),
    /// A license id that can never be added again.
    Tombstone(String, i64),
    /// A signed revocation list (its compact token), kept to be applied
    /// again on every open.
    PutRevocations(String),
    /// A signed key rotation: its compact token, kept to be verified and
    /// applied again on every open, and the keyring it leads to.
    PutKeys {
        /// The compact token.
        token: String,
        /// The keys trusted once it is applied.
        keyring: Arc<Keyring>,
        /// Its `issued_at` (Unix seconds): rotations apply in this order.
        issued_at: i64,
    },
    /// Adds or updates a user.
    PutUser {
        /// User id.
        id: String,
        /// User type.
        user_type: String,
        /// First added.
        added_at: i64,
        /// Latest activity.
        last_active_at: i64,
    },
    /// Removes a user.
    DeleteUser(String),
    /// Sets a setting of the install (`product`, `keys`, ...).
    Meta(String, String),
    /// Activates a device for a license.
    PutActivation {
        /// The license.
        license_id: String,
        /// The device.
        fingerprint: String,
        /// The activation.
        record: ActivationRecord,
    },
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
    PutLease(String, LeaseRecord),
    /// Frees a lease.
    DeleteLease(String),
    /// A consumption counter for (license, feature).
    PutCounter {
        /// The license charged.
        license_id: String,
        /// The feature.
        code: String,
        /// The new count.
        counter: Counter,
    },
}

/// Counts active users without scanning them: a multiset of last-activity
/// times and a moving cutoff, so advancing time costs only the users who
/// went idle since the last look.
#[derive(Debug, Clone, Default)]
pub struct ActivityIndex {
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
pub struct State {
    /// The latest time seen (persisted; the rollback guard's reference).
    pub latest_seen: i64,
    /// The latest `issued_at` of any vendor token seen.
    pub max_issued_at: i64,
    /// Settings of the install, as stored.
    pub meta: std::collections::BTreeMap<String, String>,
    /// Installed licenses by id.
    pub licenses: BTreeMap<String, Arc<InstalledLicense>>,
    /// Highest serial seen per license id.
    pub serials: FxHashMap<String, u64>,
    /// Ids that can never be added again.
    pub tombstones: BTreeMap<String, i64>,
    /// The keys trusted now: the engine's own, with the signed rotations
    /// applied.
    pub keyring: Arc<Keyring>,
    /// The `issued_at` of the latest key rotation applied.
    pub rotated_at: Option<i64>,
    /// Users by id.
    pub users: BTreeMap<Box<str>, UserRecord>,
    /// Interned user types.
    pub user_types: Vec<Box<str>>,
    user_type_index: FxHashMap<Box<str>, u32>,
    /// Active-user counting.
    pub activity: ActivityIndex,
    /// Device activations by (license id, fingerprint).
    pub activations: BTreeMap<(String, String), ActivationRecord>,
    /// Transfers made per license id.
    pub transfers: FxHashMap<String, u32>,
    /// Floating leases by id.
    pub leases: BTreeMap<String, LeaseRecord>,
    /// Consumption counters by (license id, feature code).
    pub counters: BTreeMap<(String, String), Counter>,
}

impl State {
    /// Applies one change in memory.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::LatestSeen(t) => self.latest_seen = t,
            Change::MaxIssuedAt(t) => self.max_issued_at = t,
            Change::PutLicense(license) => {
                self.licenses.insert(license.verified.id.clone(), license);
            }
            Change::DeleteLicense(id) => {
                self.licenses.remove(&id);
            }
            Change::Serial(id, serial) => {
                self.serials.insert(id, serial);
            }
            Change::Tombstone(id, at) => {
                self.tombstones.insert(id, at);
            }
            // Its ids come as tombstones and revoked licenses of their own.
            Change::PutRevocations(_) => {}
            Change::PutKeys {
                keyring, issued_at, ..
            } => {
                self.keyring = keyring;
                self.rotated_at = Some(issued_at);
            }
            Change::PutUser {
                id,
                user_type,
                added_at,
                last_active_at,
            } => {
                let user_type = self.intern(&user_type);
                let record = UserRecord {
                    user_type,
                    added_at,
                    last_active_at,
                };
                if let Some(old) = self.users.insert(id.into_boxed_str(), record) {
                    self.activity.remove(old.last_active_at);
                }
                self.activity.insert(last_active_at);
            }
            Change::DeleteUser(id) => {
                if let Some(old) = self.users.remove(id.as_str()) {
                    self.activity.remove(old.last_active_at);
                }
            }
            Change::Meta(key, value) => {
                self.meta.insert(key, value);
            }
            Change::PutActivation {
                license_id,
                fingerprint,
                record,
            } => {
                self.activations.insert((license_id, fingerprint), record);
            }
            Change::DeleteActivation {
                license_id,
                fingerprint,
            } => {
                self.activations.remove(&(license_id, fingerprint));
            }
            Change::Transfers(license_id, n) => {
                self.transfers.insert(license_id, n);
            }
            Change::PutLease(id, lease) => {
                self.leases.insert(id, lease);
            }
            Change::DeleteLease(id) => {
                self.leases.remove(&id);
            }
            Change::PutCounter {
                license_id,
                code,
                counter,
            } => {
                self.counters.insert((license_id, code), counter);
            }
        }
    }

    fn intern(&mut self, user_type: &str) -> u32 {
        if let Some(i) = self.user_type_index.get(user_type) {
            return *i;
        }
        let i = self.user_types.len() as u32;
        self.user_types.push(user_type.into());
        self.user_type_index.insert(user_type.into(), i);
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
                f == fingerprint && record.grants(self.counted_by(license))
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

/// License id to the end of this device's activation for it.
pub type DeviceActivations = BTreeMap<String, i64>;

/// What the engine knows about the device it runs on, for node-locked
/// licenses.
#[derive(Debug, Clone, Default)]
pub struct DeviceContext {
    /// This engine's device fingerprint, if it was given one.
    pub fingerprint: Option<String>,
    /// Whether this device is a virtual machine.
    pub vm: bool,
    /// Validity context (release date).
    pub ctx: Context,
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
        if license.verified.activations.is_none() || self.fingerprint.is_none() {
            return Activation::NotLocked;
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
