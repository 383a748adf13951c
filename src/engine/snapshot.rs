//! The immutable snapshot readers use: every time-dependent decision
//! precomputed as a [`Timeline`], so a check is one hash lookup and a
//! comparison with "now".

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::clock::Timestamp;
use crate::decision::{Decision, Reason};
use crate::engine::state::{DeviceActivations, DeviceContext, InstalledLicense, State};
use crate::license::Feature;
use crate::policy::seats;
use crate::policy::validity::{self, best, feature_reason};
use crate::policy::Timeline;

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
}

impl FeatureEntry {
    fn not_licensed() -> FeatureEntry {
        FeatureEntry {
            timeline: Timeline::constant(Reason::NotLicensed),
            tampered: Reason::NotLicensed,
            limit: Timeline::constant(None),
            limit_tampered: None,
        }
    }

    #[inline]
    pub(crate) fn decide(&self, now: i64, tamper_below: i64) -> Decision {
        if now < tamper_below {
            return Decision::new(self.tampered, None);
        }
        let (reason, until) = self.timeline.at(now);
        Decision::new(reason, until.map(Timestamp::from_unix))
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
    by_code: FxHashMap<Box<str>, u32>,
    entries: Box<[FeatureEntry]>,
}

impl FeatureTable {
    #[inline]
    pub(crate) fn by_code(&self, code: &str) -> Option<&FeatureEntry> {
        match self.by_code.get(code) {
            Some(&i) => self.entries.get(i as usize),
            None => None,
        }
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
        let mut by_code = FxHashMap::default();
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
            };
            let index = index_of(code);
            by_code.insert(Box::from(code), index);
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
#[derive(Debug, Clone)]
pub(crate) struct SeatEntry {
    timeline: Timeline<Reason>,
    tampered: Reason,
    /// After this instant the timeline may be stale (see
    /// `SEAT_HORIZON_EVENTS`); the engine republishes before it.
    pub(crate) horizon: i64,
}

impl SeatEntry {
    #[inline]
    pub(crate) fn decide(&self, now: i64, tamper_below: i64) -> Decision {
        if now < tamper_below {
            return Decision::new(self.tampered, None);
        }
        let (reason, until) = self.timeline.at(now);
        Decision::new(reason, until.map(Timestamp::from_unix))
    }

    pub(crate) fn build(state: &mut State, device: &DeviceContext, now: i64) -> SeatEntry {
        let (totals_now, tampered_totals, mut breakpoints) = {
            let views = state.views(device);
            let mut breakpoints = Vec::new();
            for view in &views {
                validity::view_breakpoints(view, &mut breakpoints);
            }
            (
                seats::totals(&views, &device.ctx, now, false),
                seats::totals(&views, &device.ctx, now, true),
                breakpoints,
            )
        };
        let window = totals_now.window_secs;
        let active_now = state.activity.active_at(now, window);
        let idle = state.activity.next_idle(now, window, SEAT_HORIZON_EVENTS);
        let horizon = if idle.len() == SEAT_HORIZON_EVENTS {
            idle.last().map_or(i64::MAX, |(t, _)| *t)
        } else {
            i64::MAX
        };
        breakpoints.retain(|t| *t <= horizon);
        breakpoints.extend(idle.iter().map(|(t, _)| *t));
        let views = state.views(device);
        let timeline = Timeline::sample(breakpoints, |t| {
            let gone_idle: u64 = idle
                .iter()
                .take_while(|(at, _)| *at <= t)
                .map(|(_, n)| n)
                .sum();
            let totals = seats::totals(&views, &device.ctx, t, false);
            seats::can_add(&totals, active_now.saturating_sub(gone_idle))
        });
        SeatEntry {
            timeline,
            tampered: seats::can_add(&tampered_totals, active_now),
            horizon,
        }
    }
}

/// What readers see: an immutable, consistent view of the engine.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) features: Arc<FeatureTable>,
    pub(crate) seats: SeatEntry,
    /// A hot-path clock reading below this is a tampered clock.
    pub(crate) tamper_below: i64,
    pub(crate) licenses: Arc<[Arc<InstalledLicense>]>,
    /// The licenses this engine's device is activated for.
    pub(crate) device_activations: Arc<DeviceActivations>,
}

impl Snapshot {
    pub(crate) fn empty() -> Snapshot {
        Snapshot {
            features: Arc::default(),
            seats: SeatEntry {
                timeline: Timeline::constant(Reason::NotLicensed),
                tampered: Reason::NotLicensed,
                horizon: i64::MAX,
            },
            tamper_below: i64::MIN,
            licenses: Arc::new([]),
            device_activations: Arc::default(),
        }
    }
}
