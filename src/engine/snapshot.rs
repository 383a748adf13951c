//! The immutable snapshot readers use: every time-dependent decision
//! precomputed as a [`Timeline`], so a check is one hash lookup and a
//! comparison with "now".

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::clock::Timestamp;
use crate::decision::{Decision, Reason, ENDING_NOTICE_SECS};
use crate::engine::codes::CodeTable;
use crate::engine::state::{
    Activations, Counters, DeviceActivations, DeviceContext, InstalledLicense, Leases, State, Users,
};
use crate::license::Feature;
use crate::policy::validity::{self, best, feature_reason};
use crate::policy::Timeline;
use crate::policy::{floating, seats};
use crate::token::{Keyring, SigningKey};

/// How many upcoming "a user goes idle" instants the seat timeline covers.
/// Beyond them the last value holds, which can only err towards refusing
/// (idle users only free seats); the engine republishes long before.
const SEAT_HORIZON_EVENTS: usize = 64;

static NOT_LICENSED: once_cell::sync::Lazy<FeatureEntry> =
    once_cell::sync::Lazy::new(FeatureEntry::not_licensed);

/// The decisions for one feature code.
#[derive(Debug, Clone)]
pub(crate) struct FeatureEntry {
    timeline: Timeline<Reason>,
    /// The decision while the clock is tampered with: constant, because
    /// only time-independent rights survive it.
    tampered: Reason,
    limit: Timeline<Option<i64>>,
    limit_tampered: Option<i64>,
    /// Some license grants it through a floating pool: a gate allows it
    /// only while the program holds a lease.
    pub(crate) leased: bool,
    /// Some license meters it: a gate says when its quota is used up.
    pub(crate) metered: bool,
}

impl FeatureEntry {
    fn not_licensed() -> FeatureEntry {
        FeatureEntry {
            timeline: Timeline::constant(Reason::NotLicensed),
            tampered: Reason::NotLicensed,
            limit: Timeline::constant(None),
            limit_tampered: None,
            leased: false,
            metered: false,
        }
    }

    #[inline]
    pub(crate) fn decide(&self, now: i64, tamper_below: i64) -> Decision {
        if now < tamper_below {
            return Decision::new(self.tampered, None);
        }
        let (reason, until) = self.timeline.at(now);
        // Equal neighbours merge: what follows an `OK` is the right
        // lapsing, so an `OK` whose `until` is near ends.
        let ending = until.is_some_and(|u| u.saturating_sub(now) <= ENDING_NOTICE_SECS);
        Decision::new(reason, until.map(Timestamp::from_unix)).ending(ending)
    }

    pub(crate) fn limit(&self, now: i64, tamper_below: i64) -> Option<i64> {
        if now < tamper_below {
            self.limit_tampered
        } else {
            self.limit.at(now).0
        }
    }
}

/// Every feature's decisions, indexed by the engine's code registry so a
/// [`FeatureGate`](crate::FeatureGate) skips the hash.
#[derive(Debug, Default)]
pub(crate) struct FeatureTable {
    /// By code, holding its own copy of the entry: one probe and no
    /// second indirection on `check_feature`.
    by_code: CodeTable<FeatureEntry>,
    entries: Box<[FeatureEntry]>,
}

impl FeatureTable {
    #[inline]
    pub(crate) fn by_code(&self, code: &str) -> Option<&FeatureEntry> {
        self.by_code.get(code)
    }

    #[inline]
    pub(crate) fn by_index(&self, index: u32) -> &FeatureEntry {
        match self.entries.get(index as usize) {
            Some(entry) => entry,
            None => &NOT_LICENSED,
        }
    }

    /// Builds the table from the installed licenses. `index_of` gives each
    /// code its registry index (registering new ones).
    pub(crate) fn build(
        state: &State,
        device: &DeviceContext,
        now: i64,
        mut index_of: impl FnMut(&str) -> u32,
    ) -> FeatureTable {
        let views = state.views(device);
        // Group once by code: a license with thousands of features must not
        // cost thousands of scans of itself.
        let mut grants: FxHashMap<&str, Vec<(usize, &Feature)>> = FxHashMap::default();
        for (i, view) in views.iter().enumerate() {
            for feature in &view.license.features {
                grants
                    .entry(feature.code.as_str())
                    .or_default()
                    .push((i, feature));
            }
        }
        let mut by_code = CodeTable::default();
        let mut entries: Vec<(u32, FeatureEntry)> = Vec::with_capacity(grants.len());
        for (code, granted_by) in grants {
            let mut breakpoints = Vec::new();
            for &(i, _) in &granted_by {
                validity::view_breakpoints(&views[i], &mut breakpoints);
            }
            let reason_at = |t: i64, tampered: bool| {
                granted_by.iter().fold(Reason::NotLicensed, |acc, &(i, f)| {
                    best(acc, feature_reason(&views[i], f, &device.ctx, t, tampered))
                })
            };
            let limit_at = |t: i64, tampered: bool| {
                granted_by
                    .iter()
                    .fold(None, |acc: Option<i64>, &(i, f)| match f.limit {
                        Some(limit)
                            if feature_reason(&views[i], f, &device.ctx, t, tampered).allows() =>
                        {
                            Some(acc.unwrap_or(0).saturating_add(limit))
                        }
                        _ => acc,
                    })
            };
            let entry = FeatureEntry {
                timeline: Timeline::sample(breakpoints.clone(), |t| reason_at(t, false)),
                tampered: reason_at(now, true),
                limit: Timeline::sample(breakpoints, |t| limit_at(t, false)),
                limit_tampered: limit_at(now, true),
                leased: granted_by
                    .iter()
                    .any(|&(i, _)| floating::grants_floating(views[i].license, code)),
                metered: granted_by.iter().any(|(_, f)| f.consumption.is_some()),
            };
            let index = index_of(code);
            by_code.insert(code, entry.clone());
            entries.push((index, entry));
        }
        let len = entries
            .iter()
            .map(|(i, _)| *i as usize + 1)
            .max()
            .unwrap_or(0);
        let mut table = vec![FeatureEntry::not_licensed(); len];
        for (i, entry) in entries {
            table[i as usize] = entry;
        }
        FeatureTable {
            by_code,
            entries: table.into_boxed_slice(),
        }
    }
}

/// Whether one more user may take a seat, over time.
///
/// Both timelines count users exactly as a mutation would at the instant
/// asked, not as they stood when the snapshot was built: the untampered one
/// from `tamper_below` on (a clock set back within the tolerance sees users
/// active again who had gone idle), with the active window of each stretch
/// between license breakpoints (the window is the longest among the
/// licenses in force, so it changes when one starts or ends); the tampered
/// one below it, where only time-independent licenses count.
#[derive(Debug, Clone)]
pub(crate) struct SeatEntry {
    timeline: Timeline<Reason>,
    tampered: Timeline<Reason>,
    /// After this instant the timeline may be stale (see
    /// `SEAT_HORIZON_EVENTS`); the engine republishes before it.
    pub(crate) horizon: i64,
    /// Active users from each point of the timeline on (the counts its
    /// reasons were decided from), for `status()`.
    active: Arc<[(i64, u64)]>,
}

impl SeatEntry {
    #[inline]
    /// Active users at `now`, if the timeline knows it (an untampered
    /// clock, before the horizon).
    pub(crate) fn active_at(&self, now: i64, tamper_below: i64) -> Option<u64> {
        if now < tamper_below || now >= self.horizon {
            return None;
        }
        let i = self.active.partition_point(|(at, _)| *at <= now);
        i.checked_sub(1).map(|i| self.active[i].1)
    }

    #[inline]
    pub(crate) fn decide(&self, now: i64, tamper_below: i64) -> Decision {
        if now < tamper_below {
            return Decision::new(self.tampered.at(now).0, None);
        }
        let (reason, until) = self.timeline.at(now);
        Decision::new(reason, until.map(Timestamp::from_unix))
    }

    pub(crate) fn build(
        state: &mut State,
        device: &DeviceContext,
        now: i64,
        tamper_below: i64,
    ) -> SeatEntry {
        // The untampered timeline is only read from `tamper_below` on.
        let from = tamper_below;
        let (stretches, tampered_totals) = {
            let views = state.views(device);
            let mut breakpoints = Vec::new();
            for view in &views {
                validity::view_breakpoints(view, &mut breakpoints);
            }
            breakpoints.retain(|t| *t > from);
            breakpoints.push(from);
            breakpoints.sort_unstable();
            breakpoints.dedup();
            let stretches: Vec<(i64, seats::SeatTotals)> = breakpoints
                .into_iter()
                .map(|start| (start, seats::totals(&views, &device.ctx, start, false)))
                .collect();
            // Only time-independent licenses count on a tampered clock, so
            // these totals hold at every tampered instant.
            (stretches, seats::totals(&views, &device.ctx, now, true))
        };

        // Forward from `from`, stretch by stretch, each with its window.
        let mut points: Vec<(i64, Reason, u64)> = Vec::new();
        let mut budget = SEAT_HORIZON_EVENTS;
        let mut horizon = i64::MAX;
        for (i, (start, totals)) in stretches.iter().enumerate() {
            let end = stretches.get(i + 1).map_or(i64::MAX, |(next, _)| *next);
            let window = totals.window_secs;
            let mut active = state.activity.active_at(*start, window);
            points.push((*start, seats::can_add(totals, active), active));
            let idle = state.activity.next_idle(*start, window, budget);
            let truncated = idle.len() == budget;
            let mut last = *start;
            for (at, n) in idle.into_iter().take_while(|(at, _)| *at < end) {
                active = active.saturating_sub(n);
                points.push((at, seats::can_add(totals, active), active));
                budget -= 1;
                last = at;
            }
            if truncated && budget == 0 {
                horizon = last;
                break;
            }
        }
        let timeline = Timeline::sample(points.iter().map(|(t, _, _)| *t).collect(), |t| {
            let i = points.partition_point(|(at, _, _)| *at <= t);
            points[i.saturating_sub(1)].1
        });
        let active_counts: Arc<[(i64, u64)]> = points.iter().map(|(t, _, n)| (*t, *n)).collect();

        // Backward from `tamper_below`: users idle there are active again
        // earlier. Beyond the events kept, everyone counts as active, which
        // can only err towards refusing. Counting is skipped when no count can matter (the usual case: a
        // subscription's seats do not survive a tampered clock), as moving
        // the index to another window costs a scan of the users between.
        let counts = tampered_totals.counted && tampered_totals.reason.allows();
        let window = tampered_totals.window_secs;
        let (active_at_guard, idle) = if counts {
            (
                state.activity.active_at(tamper_below, window),
                state
                    .activity
                    .prev_idle(tamper_below, window, SEAT_HORIZON_EVENTS),
            )
        } else {
            (0, Vec::new())
        };
        let mut back: Vec<(i64, Reason)> = Vec::with_capacity(idle.len() + 1);
        let mut active = active_at_guard;
        for (at, n) in idle {
            back.push((at, seats::can_add(&tampered_totals, active)));
            active = active.saturating_add(n);
        }
        let everyone = if counts {
            state.users.len() as u64
        } else {
            active
        };
        back.push((i64::MIN, seats::can_add(&tampered_totals, everyone)));
        back.reverse();
        let tampered = Timeline::sample(back.iter().map(|(t, _)| *t).collect(), |t| {
            let i = back.partition_point(|(at, _)| *at <= t);
            back[i.saturating_sub(1)].1
        });
        SeatEntry {
            timeline,
            tampered,
            horizon,
            active: active_counts,
        }
    }
}

/// What readers see: an immutable, consistent view of the engine.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Built in this order, under the writer lock: a snapshot is published
    /// only over an earlier one.
    pub(crate) seq: u64,
    pub(crate) features: Arc<FeatureTable>,
    pub(crate) seats: SeatEntry,
    /// A hot-path clock reading below this is a tampered clock.
    pub(crate) tamper_below: i64,
    pub(crate) licenses: Arc<[Arc<InstalledLicense>]>,
    /// The licenses this engine's device is activated for.
    pub(crate) device_activations: Arc<DeviceActivations>,
    /// The keys trusted now, for verifying outside the writer lock.
    pub(crate) keyring: Arc<Keyring>,
    /// What reports read: shared with the writer's state (persistent
    /// maps), so a report never takes the writer lock.
    pub(crate) users: Users,
    pub(crate) user_types: Arc<Vec<Arc<str>>>,
    pub(crate) activations: Activations,
    pub(crate) leases: Leases,
    pub(crate) counters: Counters,
    pub(crate) transfers: Arc<rustc_hash::FxHashMap<String, u32>>,
    /// This install's own key, whose public half requests carry.
    pub(crate) install_key: Option<Arc<SigningKey>>,
}

impl Snapshot {
    /// The views the policies take of the licenses, on `device`.
    pub(crate) fn views(&self, device: &DeviceContext) -> Vec<validity::LicenseView<'_>> {
        self.licenses
            .iter()
            .map(|l| l.view(device.activation(l, &self.device_activations)))
            .collect()
    }

    pub(crate) fn empty() -> Snapshot {
        Snapshot {
            seq: 0,
            features: Arc::default(),
            seats: SeatEntry {
                timeline: Timeline::constant(Reason::NotLicensed),
                tampered: Timeline::constant(Reason::NotLicensed),
                horizon: i64::MAX,
                active: Arc::new([]),
            },
            tamper_below: i64::MIN,
            licenses: Arc::new([]),
            device_activations: Arc::default(),
            keyring: Arc::default(),
            users: Users::default(),
            user_types: Arc::default(),
            activations: Activations::default(),
            leases: Leases::default(),
            counters: Counters::default(),
            transfers: Arc::default(),
            install_key: None,
        }
    }
}
