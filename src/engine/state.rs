//! The engine's state: what is installed and who is using it, and the
//! changes that move it. The store persists [`Change`]s; the engine applies
//! the same changes in memory, so the two cannot drift.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::clock::Timestamp;
use crate::license::VerifiedLicense;
use crate::policy::{Context, LicenseView};

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
    pub fn view(&self, activated: bool) -> LicenseView<'_> {
        LicenseView {
            license: self.verified.license(),
            revoked: self.revoked,
            activated,
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
    /// Users by id.
    pub users: BTreeMap<Box<str>, UserRecord>,
    /// Interned user types.
    pub user_types: Vec<Box<str>>,
    user_type_index: FxHashMap<Box<str>, u32>,
    /// Active-user counting.
    pub activity: ActivityIndex,
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
        self.licenses
            .values()
            .map(|l| l.view(device.activated(l)))
            .collect()
    }
}

/// What the engine knows about the device it runs on, for node-locked
/// licenses.
#[derive(Debug, Clone, Default)]
pub struct DeviceContext {
    /// This engine's device fingerprint, if it was given one.
    pub fingerprint: Option<String>,
    /// Validity context (release date).
    pub ctx: Context,
}

impl DeviceContext {
    /// Whether the license's rights hold on this device. A license with
    /// `activations` is node-locked: on an engine that knows its own
    /// fingerprint, it holds only once that device is activated.
    pub fn activated(&self, license: &InstalledLicense) -> bool {
        if license.verified.activations.is_none() || self.fingerprint.is_none() {
            return true;
        }
        // Device activations arrive with the devices capability; until then
        // a node-locked license holds nowhere that checks its fingerprint.
        false
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
