//! Model-based test of the engine core: random sequences of license, user
//! and clock operations run against the engine and against a small
//! reference model that recomputes every answer from scratch, from the
//! semantics of docs/formats.md#license-typ-license and docs/semantics.md. The model shares no code with
//! the crate's policies: if the two disagree, one of them is wrong.
//!
//! Covered: licenses (validity window, grace, `on_expiry`, `enabled`,
//! feature expiry and limits, seats with soft and hard limits and active
//! windows), trials from first use (docs/semantics.md#trials: the first-use record
//! outlives soft and hard removal, re-adding never restarts a trial, a
//! higher serial with a larger `trial_secs` extends it), replays by serial,
//! soft and hard removal, revocation lists, named users, the clock-rollback
//! guard and its way out (a token newer than every token seen), `refresh`,
//! consumption without a reset (the charge order: purchased licenses before
//! trials, then the first to end first; the all-or-nothing charge within
//! `max`, then within overage; what a gate of a metered feature says).
//! Not covered here: activations, floating leases, counts that reset,
//! `maintenance_until`, `assigned_users`.
//! Persistence: on the in-memory store, not covered (it keeps nothing);
//! with the `postgres` feature the same sequences also run on PostgreSQL
//! (`engine_agrees_with_the_reference_model_on_postgres`, at
//! `$ENTITLE_PG_PROPTEST_CASES` cases, default 24: each mutation there is
//! a durable commit), and an engine opened afresh on the namespace at the
//! end must agree with the model too.

mod common;
#[cfg(feature = "postgres")]
mod pg_common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use entitle::{Decision, Engine, FeatureGate, ManualClock, Reason, Warning, ENDING_NOTICE_SECS};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

const CODES: [&str; 5] = ["export", "report", "sync", "audit", "teleport"];
/// Licenses grant only the first four codes; the last is never granted.
const GRANTABLE: usize = 4;
const IDS: [&str; 4] = ["lic_a", "lic_b", "lic_c", "lic_d"];
const USERS: [&str; 8] = ["ana", "bo", "cy", "di", "ed", "fay", "gus", "hal"];
const USER_TYPES: [&str; 2] = ["member", "admin"];
const TOLERANCE: i64 = 600;
const DEFAULT_WINDOW: i64 = 365 * DAY;
const PERSIST_CLOCK_EVERY: i64 = 60;
/// Far enough ahead that every license time of the pool is behind it.
const FOREVER: i64 = 100 * 365 * DAY;

// ---- the documents ------------------------------------------------------

/// Times are offsets in seconds from `T0`, where the clock starts.
#[derive(Debug, Clone, PartialEq)]
struct FeatureSpec {
    code: usize,
    limit: Option<i64>,
    expires_at: Option<i64>,
    /// Metered: `consumption` with this `max` and `overage`.
    meter: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
struct SeatSpec {
    max: u32,
    hard_max: Option<u32>,
    active_window_secs: Option<i64>,
}

impl SeatSpec {
    fn hard(&self) -> u64 {
        u64::from(self.hard_max.unwrap_or(self.max))
    }

    fn window(&self) -> i64 {
        self.active_window_secs.unwrap_or(DEFAULT_WINDOW)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LicenseSpec {
    id: usize,
    serial: u64,
    issued_at: i64,
    enabled: bool,
    starts_at: Option<i64>,
    expires_at: Option<i64>,
    grace_secs: i64,
    keep: bool,
    /// `trial: true`; always so with `trial_secs`.
    trial: bool,
    /// Valid for this long from its id's first use on the install.
    trial_secs: Option<i64>,
    seats: Option<SeatSpec>,
    features: Vec<FeatureSpec>,
}

fn at(offset: i64) -> String {
    t(T0).plus_secs(offset).to_string()
}

impl LicenseSpec {
    fn document(&self) -> Value {
        let features: Vec<Value> = self
            .features
            .iter()
            .map(|f| {
                let mut doc = json!({ "code": CODES[f.code] });
                if let Some(limit) = f.limit {
                    doc["limit"] = json!(limit);
                }
                if let Some(end) = f.expires_at {
                    doc["expires_at"] = json!(at(end));
                }
                if let Some((max, overage)) = f.meter {
                    doc["consumption"] = json!({"max": max, "overage": overage});
                }
                doc
            })
            .collect();
        let mut doc = json!({
            "id": IDS[self.id],
            "serial": self.serial,
            "issued_at": at(self.issued_at),
            "features": features,
        });
        if !self.enabled {
            doc["enabled"] = json!(false);
        }
        if let Some(start) = self.starts_at {
            doc["starts_at"] = json!(at(start));
        }
        if let Some(end) = self.expires_at {
            doc["expires_at"] = json!(at(end));
        }
        if self.grace_secs > 0 {
            doc["grace_secs"] = json!(self.grace_secs);
        }
        if self.keep {
            doc["on_expiry"] = json!("keep");
        }
        if self.trial {
            doc["trial"] = json!(true);
        }
        if let Some(secs) = self.trial_secs {
            doc["trial_secs"] = json!(secs);
        }
        if let Some(seats) = &self.seats {
            let mut s = json!({ "max": seats.max });
            if let Some(hard) = seats.hard_max {
                s["hard_max"] = json!(hard);
            }
            if let Some(window) = seats.active_window_secs {
                s["active_window_secs"] = json!(window);
            }
            doc["seats"] = s;
        }
        doc
    }

    /// Whether anything about it depends on the time of day.
    fn time_dependent(&self) -> bool {
        self.starts_at.is_some()
            || self.expires_at.is_some()
            || self.trial_secs.is_some()
            || self.features.iter().any(|f| f.expires_at.is_some())
    }
}

#[derive(Debug, Clone, PartialEq)]
struct RevocationSpec {
    ids: Vec<usize>,
    issued_at: i64,
    /// Names the engine's product: only then may it lower the clock guard.
    for_product: bool,
}

/// `issued_at` mostly equal (so the way out of a tamper alarm is rare),
/// sometimes older or newer, sometimes well in the future.
fn issued_at() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => Just(0i64),
        1 => Just(-DAY),
        2 => 1i64..4000,
        1 => Just(20_000i64),
    ]
}

fn seat_spec() -> impl Strategy<Value = SeatSpec> {
    (
        0u32..4,
        proptest::option::of(0u32..3),
        proptest::option::weighted(0.8, 50i64..500),
    )
        .prop_map(|(max, extra, window)| SeatSpec {
            max,
            hard_max: extra.map(|e| max + e),
            active_window_secs: window,
        })
}

fn license_spec() -> impl Strategy<Value = LicenseSpec> {
    let features = proptest::collection::vec(
        (
            prop::bool::weighted(0.6),
            proptest::option::of(0i64..100),
            proptest::option::weighted(0.3, -600i64..6000),
            proptest::option::weighted(0.4, (0u64..12, prop_oneof![3 => Just(0u64), 1 => 1u64..4])),
        ),
        GRANTABLE,
    )
    .prop_map(|fs| {
        fs.into_iter()
            .enumerate()
            .filter(|(_, (granted, _, _, _))| *granted)
            .map(|(code, (_, limit, expires_at, meter))| FeatureSpec {
                code,
                limit,
                expires_at,
                meter,
            })
            .collect::<Vec<_>>()
    });
    (
        (
            0..IDS.len(),
            0u64..4,
            issued_at(),
            prop::bool::weighted(0.85),
        ),
        (
            proptest::option::weighted(0.3, -600i64..3000),
            proptest::option::weighted(0.6, -600i64..6000),
            prop_oneof![Just(0i64), 1i64..1000],
            any::<bool>(),
        ),
        // Trials as long as a few steps, or as many big ones.
        proptest::option::weighted(0.35, prop_oneof![1i64..600, 600i64..8000]),
        prop::bool::weighted(0.1),
        proptest::option::weighted(0.7, seat_spec()),
        features,
    )
        .prop_map(
            |(
                (id, serial, issued_at, enabled),
                (starts_at, expires_at, grace, keep),
                trial_secs,
                trial,
                seats,
                features,
            )| {
                // A license starts before it ends.
                let expires_at = match (starts_at, expires_at) {
                    (Some(s), Some(e)) if e <= s => Some(s + 1 + (s - e)),
                    (_, e) => e,
                };
                LicenseSpec {
                    id,
                    serial,
                    issued_at,
                    enabled,
                    starts_at,
                    expires_at,
                    grace_secs: grace,
                    keep,
                    trial: trial || trial_secs.is_some(),
                    trial_secs,
                    seats,
                    features,
                }
            },
        )
}

/// Licenses to add, some of them the vendor's extension of a trial before
/// them in the pool: the same id and terms, a higher serial and a longer
/// `trial_secs`.
fn license_pool() -> impl Strategy<Value = Vec<LicenseSpec>> {
    (
        proptest::collection::vec(license_spec(), 1..8),
        proptest::collection::vec(
            proptest::option::weighted(0.3, (any::<Index>(), 1i64..4000)),
            8,
        ),
    )
        .prop_map(|(mut specs, extensions)| {
            for (i, extension) in extensions.into_iter().enumerate().skip(1) {
                let Some((of, more)) = extension.filter(|_| i < specs.len()) else {
                    continue;
                };
                let base = specs[of.index(i)].clone();
                if let Some(secs) = base.trial_secs {
                    specs[i] = LicenseSpec {
                        serial: base.serial + 1,
                        trial_secs: Some(secs + more),
                        ..base
                    };
                }
            }
            specs
        })
}

fn revocation_spec() -> impl Strategy<Value = RevocationSpec> {
    (
        proptest::sample::subsequence((0..IDS.len()).collect::<Vec<_>>(), 1..=2),
        issued_at(),
        any::<bool>(),
    )
        .prop_map(|(ids, issued_at, for_product)| RevocationSpec {
            ids,
            issued_at,
            for_product,
        })
}

// ---- the operations -----------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Adds a license of the pool.
    AddLicense(Index),
    RemoveLicense {
        id: usize,
        hard: bool,
    },
    /// Applies a revocation list of the pool.
    Revoke(Index),
    AddUser {
        user: usize,
        user_type: usize,
    },
    RecordActivity(usize),
    RemoveUser(usize),
    /// Moves the clock (negative: back).
    Advance(i64),
    Refresh,
    /// Consumes units of a feature.
    Consume {
        code: usize,
        amount: u64,
    },
}

/// Mostly a few regulars, so activity and removal find the users added.
fn user() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..3usize, 1 => 0..USERS.len()]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => any::<Index>().prop_map(Op::AddLicense),
        1 => (0..IDS.len(), any::<bool>()).prop_map(|(id, hard)| Op::RemoveLicense { id, hard }),
        1 => any::<Index>().prop_map(Op::Revoke),
        5 => (user(), 0..USER_TYPES.len())
            .prop_map(|(user, user_type)| Op::AddUser { user, user_type }),
        3 => user().prop_map(Op::RecordActivity),
        1 => user().prop_map(Op::RemoveUser),
        5 => (0i64..=400).prop_map(Op::Advance),
        1 => (1000i64..20_000).prop_map(Op::Advance),
        1 => (1i64..=TOLERANCE).prop_map(|s| Op::Advance(-s)),
        1 => (TOLERANCE + 1..8000).prop_map(|s| Op::Advance(-s)),
        1 => Just(Op::Refresh),
        4 => (0..CODES.len(), 1u64..=5).prop_map(|(code, amount)| Op::Consume { code, amount }),
    ]
}

// ---- the reference model ------------------------------------------------

/// Among several licenses' answers, the one kept: any allowing answer
/// beats every denial; among denials, the most helpful one.
const PREFERENCE: [Reason; 13] = [
    Reason::Ok,
    Reason::Overage,
    Reason::InGrace,
    Reason::ExpiredKept,
    Reason::ClockTampered,
    Reason::NotActivated,
    Reason::MaintenanceExpired,
    Reason::NotYetValid,
    Reason::Expired,
    Reason::Suspended,
    Reason::Revoked,
    Reason::SeatLimit,
    Reason::NotLicensed,
];

fn better(a: Reason, b: Reason) -> Reason {
    let place = |r: Reason| PREFERENCE.iter().position(|p| *p == r).unwrap();
    if place(b) < place(a) {
        b
    } else {
        a
    }
}

fn allows(r: Reason) -> bool {
    matches!(
        r,
        Reason::Ok | Reason::InGrace | Reason::Overage | Reason::ExpiredKept
    )
}

#[derive(Debug, Clone)]
struct Installed {
    spec: LicenseSpec,
    token: String,
    revoked: bool,
    /// The install's first-use record of its id when it was added (the
    /// record never changes once made).
    first_use: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct User {
    user_type: usize,
    last_active_at: i64,
}

/// Seats over the licenses that grant new rights at an instant.
#[derive(Debug, Clone, Copy)]
struct Seats {
    /// The best reason any license gives (expired-but-kept counts as
    /// expired: it grants nothing new).
    reason: Reason,
    counted: bool,
    licensed: u64,
    hard: u64,
    window: i64,
}

/// An outcome both sides report: `Ok` with the decision a mutation
/// returns, if any, or the error code.
type Outcome = Result<Option<Reason>, String>;

#[derive(Debug, Clone)]
struct Model {
    now: i64,
    latest_seen: i64,
    max_issued_at: Option<i64>,
    licenses: BTreeMap<usize, Installed>,
    /// The latest issue seen per id: (serial, issued_at).
    serials: BTreeMap<usize, (u64, i64)>,
    tombstones: BTreeSet<usize>,
    /// When each id with a trial was first added: kept through removal,
    /// soft or hard, and revocation.
    first_use: BTreeMap<usize, i64>,
    users: BTreeMap<usize, User>,
    /// Units used per (license id, code): kept through removal.
    counters: BTreeMap<(usize, usize), u64>,
}

/// A license a metered feature may be charged to: (id, max, overage, used),
/// `max` `None` for a license that grants the feature unmetered.
type Meter = (usize, Option<u64>, u64, u64);

impl Model {
    fn new() -> Self {
        // Opening the engine persists the time it opened at.
        Model {
            now: 0,
            latest_seen: 0,
            max_issued_at: None,
            licenses: BTreeMap::new(),
            serials: BTreeMap::new(),
            tombstones: BTreeSet::new(),
            first_use: BTreeMap::new(),
            users: BTreeMap::new(),
            counters: BTreeMap::new(),
        }
    }

    fn tampered_at(&self, now: i64) -> bool {
        now < self.latest_seen - TOLERANCE
    }

    // -- what a license gives at an instant --

    /// Where the license is valid here, `[start, end)` (`None`: open). A
    /// trial's own window, `trial_secs` from its id's first use, is cut by
    /// the license's dates.
    fn window(l: &Installed) -> (Option<i64>, Option<i64>) {
        let s = &l.spec;
        let Some(secs) = s.trial_secs else {
            return (s.starts_at, s.expires_at);
        };
        let first = l.first_use.expect("a trial added here has a first use");
        let start = [s.starts_at, Some(first)].into_iter().flatten().max();
        let end = [s.expires_at, Some(first + secs)]
            .into_iter()
            .flatten()
            .min();
        (start, end)
    }

    fn status(l: &Installed, now: i64) -> &'static str {
        let s = &l.spec;
        let (start, end) = Self::window(l);
        if l.revoked {
            "revoked"
        } else if !s.enabled {
            "suspended"
        } else if start.is_some_and(|start| now < start) {
            "pending"
        } else {
            match end {
                Some(end) if now >= end + s.grace_secs => "expired",
                Some(end) if now >= end => "grace",
                _ => "active",
            }
        }
    }

    fn license_reason(l: &Installed, now: i64, tampered: bool) -> Reason {
        match Self::status(l, now) {
            "revoked" => Reason::Revoked,
            "suspended" => Reason::Suspended,
            _ if tampered && l.spec.time_dependent() => Reason::ClockTampered,
            "pending" => Reason::NotYetValid,
            "grace" => Reason::InGrace,
            "expired" if l.spec.keep => Reason::ExpiredKept,
            "expired" => Reason::Expired,
            _ => Reason::Ok,
        }
    }

    fn feature_reason(l: &Installed, f: &FeatureSpec, now: i64, tampered: bool) -> Reason {
        let reason = Self::license_reason(l, now, tampered);
        match f.expires_at {
            Some(end) if allows(reason) && now >= end => Reason::Expired,
            _ => reason,
        }
    }

    fn grants(&self, code: usize) -> impl Iterator<Item = (&Installed, &FeatureSpec)> {
        self.licenses.values().filter_map(move |l| {
            l.spec
                .features
                .iter()
                .find(|f| f.code == code)
                .map(|f| (l, f))
        })
    }

    fn check(&self, code: usize, now: i64, tampered: bool) -> Reason {
        self.grants(code)
            .map(|(l, f)| Self::feature_reason(l, f, now, tampered))
            .fold(Reason::NotLicensed, better)
    }

    /// The notice an allowed check gives: `IN_GRACE`, `EXPIRED_KEPT`, or,
    /// for `OK`, that the right lapses within the notice window (some
    /// instant a license's answer changes at, within it, where the check no
    /// longer says `OK`). Never on a tampered clock.
    fn warning(&self, code: usize, now: i64, tampered: bool) -> Option<Warning> {
        match self.check(code, now, tampered) {
            Reason::InGrace => Some(Warning::InGrace),
            Reason::ExpiredKept => Some(Warning::ExpiredKept),
            Reason::Ok if !tampered => {
                let changes = self.grants(code).flat_map(|(l, f)| {
                    let (start, end) = Self::window(l);
                    [start, end, end.map(|e| e + l.spec.grace_secs), f.expires_at]
                });
                changes
                    .flatten()
                    .filter(|&x| now < x && x <= now + ENDING_NOTICE_SECS)
                    .any(|x| self.check(code, x, false) != Reason::Ok)
                    .then_some(Warning::Ending)
            }
            _ => None,
        }
    }

    fn limit(&self, code: usize, now: i64, tampered: bool) -> Option<i64> {
        self.grants(code)
            .filter(|(l, f)| allows(Self::feature_reason(l, f, now, tampered)))
            .filter_map(|(_, f)| f.limit)
            .reduce(|a, b| a + b)
    }

    /// Said without the model's reasons: some license not revoked, enabled,
    /// started, not past its grace (or kept), with the feature not expired,
    /// and, on a tampered clock, not time-dependent, grants `code`.
    fn some_valid_grant(&self, code: usize, now: i64, tampered: bool) -> bool {
        self.grants(code).any(|(l, f)| {
            let s = &l.spec;
            let (start, end) = Self::window(l);
            !l.revoked
                && s.enabled
                && !(tampered && s.time_dependent())
                && start.is_none_or(|start| start <= now)
                && (s.keep || end.is_none_or(|end| now < end + s.grace_secs))
                && f.expires_at.is_none_or(|end| now < end)
        })
    }

    /// The licenses `code` may be charged to, in the order they are
    /// charged: those granting new rights with the feature allowed;
    /// purchased before trials, then the first to end first (a license
    /// that never ends last), then by id.
    fn meters(&self, code: usize, now: i64, tampered: bool) -> Vec<Meter> {
        let mut found: Vec<(bool, bool, Option<i64>, &str, Meter)> = self
            .grants(code)
            .filter(|(l, f)| {
                matches!(
                    Self::license_reason(l, now, tampered),
                    Reason::Ok | Reason::InGrace
                ) && allows(Self::feature_reason(l, f, now, tampered))
            })
            .map(|(l, f)| {
                let end = Self::window(l).1;
                let id = l.spec.id;
                let used = self.counters.get(&(id, code)).copied().unwrap_or(0);
                let meter = match f.meter {
                    Some((max, overage)) => (id, Some(max), overage, used),
                    None => (id, None, 0, used),
                };
                (l.spec.trial, end.is_none(), end, IDS[id], meter)
            })
            .collect();
        found.sort_by(|a, b| (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)));
        found.into_iter().map(|f| f.4).collect()
    }

    /// Where `amount` units of `code` go: the first license that takes them
    /// within `max`, else the first within its overage.
    fn charge(
        &self,
        code: usize,
        amount: u64,
        now: i64,
        tampered: bool,
    ) -> Option<(usize, Reason)> {
        let meters = self.meters(code, now, tampered);
        let within = meters
            .iter()
            .find(|(_, max, _, used)| max.is_none_or(|max| used + amount <= max));
        let over = || {
            meters.iter().find(|(_, max, overage, used)| {
                max.is_some_and(|max| used + amount <= max + overage)
            })
        };
        within
            .map(|m| (m.0, Reason::Ok))
            .or_else(|| over().map(|m| (m.0, Reason::Overage)))
    }

    /// What a gate says: the check, and, while it allows with a license to
    /// charge, whether one more unit fits.
    fn gate(&self, code: usize, now: i64, tampered: bool) -> Reason {
        let reason = self.check(code, now, tampered);
        if !allows(reason) || self.meters(code, now, tampered).is_empty() {
            return reason;
        }
        match self.charge(code, 1, now, tampered) {
            Some((_, Reason::Ok)) => reason,
            Some((_, other)) => other,
            None => Reason::ConsumptionLimit,
        }
    }

    /// When a gate's answer for `code` stops holding, given the check's
    /// `until`: for a metered feature the licenses a unit can be charged to
    /// change whenever a license granting it starts or ends (or any of its
    /// features ends), even where the check's reason does not.
    fn gate_until(&self, code: usize, now: i64, tampered: bool, until: Option<i64>) -> Option<i64> {
        let metered = self.grants(code).any(|(_, f)| f.meter.is_some());
        if !metered || tampered || !allows(self.check(code, now, tampered)) {
            return until;
        }
        let changes = self.grants(code).flat_map(|(l, _)| {
            let (start, end) = Self::window(l);
            let features = l.spec.features.iter().map(|f| f.expires_at);
            [start, end, end.map(|e| e + l.spec.grace_secs)]
                .into_iter()
                .chain(features)
        });
        changes.flatten().filter(|&x| x > now).chain(until).min()
    }

    fn seats(&self, now: i64, tampered: bool) -> Seats {
        let mut seats = Seats {
            reason: Reason::NotLicensed,
            counted: false,
            licensed: 0,
            hard: 0,
            window: 0,
        };
        for l in self.licenses.values() {
            let reason = match Self::license_reason(l, now, tampered) {
                Reason::ExpiredKept => Reason::Expired,
                r => r,
            };
            seats.reason = better(seats.reason, reason);
            if !matches!(reason, Reason::Ok | Reason::InGrace) {
                continue;
            }
            if let Some(s) = &l.spec.seats {
                seats.counted = true;
                seats.licensed += u64::from(s.max);
                seats.hard += s.hard();
                seats.window = seats.window.max(s.window());
            }
        }
        if seats.window == 0 {
            seats.window = DEFAULT_WINDOW;
        }
        seats
    }

    fn is_active(user: &User, now: i64, window: i64) -> bool {
        user.last_active_at + window > now
    }

    fn active_users(&self, now: i64, window: i64) -> u64 {
        self.users
            .values()
            .filter(|u| Self::is_active(u, now, window))
            .count() as u64
    }

    fn can_add(&self, now: i64, tampered: bool) -> Reason {
        let seats = self.seats(now, tampered);
        if !allows(seats.reason) || !seats.counted {
            return seats.reason;
        }
        let after = self.active_users(now, seats.window) + 1;
        if after <= seats.licensed {
            seats.reason
        } else if after <= seats.hard {
            Reason::Overage
        } else {
            Reason::SeatLimit
        }
    }

    // -- mutations --

    /// A mutation that succeeded persists the latest time seen.
    fn commit(&mut self) {
        self.latest_seen = self.latest_seen.max(self.now);
    }

    /// The way out of a false tamper alarm: a token newer than every token
    /// seen lowers the guard to its `issued_at` (or now, if later).
    fn note_issued_at(&mut self, issued_at: i64) -> bool {
        if self.max_issued_at.is_some_and(|seen| issued_at <= seen) {
            return false;
        }
        self.max_issued_at = Some(issued_at);
        if self.tampered_at(self.now) {
            self.latest_seen = issued_at.max(self.now);
            return true;
        }
        false
    }

    fn add_license(&mut self, spec: &LicenseSpec, token: &str) -> Outcome {
        if self.tombstones.contains(&spec.id) {
            return Err("LICENSE_REVOKED".into());
        }
        // The latest issue seen of the id, installed now or removed since:
        // a lower serial, or the same serial signed earlier, is a replay.
        if self
            .serials
            .get(&spec.id)
            .is_some_and(|&(serial, issued_at)| {
                spec.serial < serial || (spec.serial == serial && spec.issued_at < issued_at)
            })
        {
            return Err("LICENSE_REPLAYED".into());
        }
        if let Some(installed) = self.licenses.get(&spec.id) {
            if installed.token == token {
                self.commit();
                return Ok(None);
            }
            if spec.serial == installed.spec.serial && spec.issued_at < installed.spec.issued_at {
                return Err("LICENSE_REPLAYED".into());
            }
        }
        if !self.note_issued_at(spec.issued_at) {
            self.commit();
        }
        // A trial's clock starts the first time its id is added here, and
        // only then.
        if spec.trial_secs.is_some() {
            self.first_use.entry(spec.id).or_insert(self.now);
        }
        let mark = self
            .serials
            .entry(spec.id)
            .or_insert((spec.serial, spec.issued_at));
        *mark = (*mark).max((spec.serial, spec.issued_at));
        self.licenses.insert(
            spec.id,
            Installed {
                spec: spec.clone(),
                token: token.to_owned(),
                revoked: false,
                // The first use, or this add if earlier (a clock set back):
                // a trial never starts later than the add.
                first_use: self.first_use.get(&spec.id).map(|&at| at.min(self.now)),
            },
        );
        Ok(None)
    }

    fn remove_license(&mut self, id: usize, hard: bool) -> Outcome {
        if !self.licenses.contains_key(&id) && !hard {
            return Err("LICENSE_NOT_FOUND".into());
        }
        if hard {
            self.tombstones.insert(id);
        }
        self.licenses.remove(&id);
        self.commit();
        Ok(None)
    }

    fn revoke(&mut self, list: &RevocationSpec) -> Outcome {
        // A list without a product is not a token for this install: it
        // revokes, and never lowers the guard (docs/semantics.md#clock-rollback).
        if !list.for_product || !self.note_issued_at(list.issued_at) {
            self.commit();
        }
        for id in &list.ids {
            self.tombstones.insert(*id);
            if let Some(l) = self.licenses.get_mut(id) {
                l.revoked = true;
            }
        }
        Ok(None)
    }

    /// A user who is not active needs a seat: the reason that lets them in.
    fn take_seat(&self, user: usize) -> Result<Reason, String> {
        let tampered = self.tampered_at(self.now);
        let window = self.seats(self.now, tampered).window;
        match self.users.get(&user) {
            Some(u) if Self::is_active(u, self.now, window) => Ok(Reason::Ok),
            _ => {
                let reason = self.can_add(self.now, tampered);
                if allows(reason) {
                    Ok(reason)
                } else {
                    Err(reason.code().into())
                }
            }
        }
    }

    fn add_user(&mut self, user: usize, user_type: usize) -> Outcome {
        let reason = self.take_seat(user)?;
        let last_active_at = self
            .users
            .get(&user)
            .map_or(self.now, |u| u.last_active_at.max(self.now));
        self.users.insert(
            user,
            User {
                user_type,
                last_active_at,
            },
        );
        self.commit();
        Ok(Some(reason))
    }

    fn record_activity(&mut self, user: usize) -> Outcome {
        let Some(&existing) = self.users.get(&user) else {
            return Err("USER_NOT_FOUND".into());
        };
        self.take_seat(user)?;
        self.users.insert(
            user,
            User {
                last_active_at: existing.last_active_at.max(self.now),
                ..existing
            },
        );
        self.commit();
        Ok(None)
    }

    fn remove_user(&mut self, user: usize) -> Outcome {
        if self.users.remove(&user).is_none() {
            return Err("USER_NOT_FOUND".into());
        }
        self.commit();
        Ok(None)
    }

    fn consume(&mut self, code: usize, amount: u64) -> Outcome {
        let tampered = self.tampered_at(self.now);
        if self.meters(code, self.now, tampered).is_empty() {
            let reason = match self.check(code, self.now, tampered) {
                r if allows(r) => Reason::Expired,
                r => r,
            };
            return Err(reason.code().into());
        }
        let Some((id, reason)) = self.charge(code, amount, self.now, tampered) else {
            return Err("CONSUMPTION_LIMIT".into());
        };
        *self.counters.entry((id, code)).or_insert(0) += amount;
        self.commit();
        Ok(Some(reason))
    }

    fn refresh(&mut self) -> Outcome {
        if self.now >= self.latest_seen + PERSIST_CLOCK_EVERY {
            self.commit();
        }
        Ok(None)
    }
}

// ---- the run ------------------------------------------------------------

struct Pools {
    licenses: Vec<(LicenseSpec, String)>,
    revocations: Vec<(RevocationSpec, String)>,
}

impl Pools {
    fn sign(vendor: &Vendor, licenses: &[LicenseSpec], revocations: &[RevocationSpec]) -> Self {
        Pools {
            licenses: licenses
                .iter()
                .map(|s| (s.clone(), vendor.license(s.document())))
                .collect(),
            revocations: revocations
                .iter()
                .map(|r| {
                    let ids: Vec<&str> = r.ids.iter().map(|&i| IDS[i]).collect();
                    let product = r.for_product.then_some("acme");
                    (
                        r.clone(),
                        vendor.revocations_for(product, &ids, &at(r.issued_at)),
                    )
                })
                .collect(),
        }
    }
}

fn outcome<T>(result: entitle::Result<T>, decision: impl FnOnce(T) -> Option<Reason>) -> Outcome {
    result.map(decision).map_err(|e| e.code().to_owned())
}

fn on_engine(engine: &Engine, clock: &ManualClock, pools: &Pools, op: &Op) -> Outcome {
    match op {
        Op::AddLicense(i) => outcome(
            engine.add_license(&pools.licenses[i.index(pools.licenses.len())].1),
            |_| None,
        ),
        Op::RemoveLicense { id, hard } => outcome(engine.remove_license(IDS[*id], *hard), |_| None),
        Op::Revoke(i) => outcome(
            engine.apply_revocations(&pools.revocations[i.index(pools.revocations.len())].1),
            |_| None,
        ),
        Op::AddUser { user, user_type } => {
            outcome(engine.add_user(USERS[*user], USER_TYPES[*user_type]), |d| {
                Some(d.reason())
            })
        }
        Op::RecordActivity(user) => outcome(engine.record_activity(USERS[*user]), |_| None),
        Op::RemoveUser(user) => outcome(engine.remove_user(USERS[*user]), |_| None),
        Op::Advance(secs) => {
            clock.advance(*secs);
            Ok(None)
        }
        Op::Refresh => outcome(engine.refresh(), |_| None),
        Op::Consume { code, amount } => {
            outcome(engine.consume(CODES[*code], *amount), |c| Some(c.reason))
        }
    }
}

fn on_model(model: &mut Model, pools: &Pools, op: &Op) -> Outcome {
    match op {
        Op::AddLicense(i) => {
            let (spec, token) = &pools.licenses[i.index(pools.licenses.len())];
            model.add_license(spec, token)
        }
        Op::RemoveLicense { id, hard } => model.remove_license(*id, *hard),
        Op::Revoke(i) => model.revoke(&pools.revocations[i.index(pools.revocations.len())].0),
        Op::AddUser { user, user_type } => model.add_user(*user, *user_type),
        Op::RecordActivity(user) => model.record_activity(*user),
        Op::RemoveUser(user) => model.remove_user(*user),
        Op::Advance(secs) => {
            model.now += secs;
            Ok(None)
        }
        Op::Refresh => model.refresh(),
        Op::Consume { code, amount } => model.consume(*code, *amount),
    }
}

/// A decision's `until` says when time alone changes its reason
/// (`answer`): the model must give the same answer just before and a
/// different one at that instant, and, without one, the same answer for
/// ever after.
fn check_until<T: Copy + PartialEq + std::fmt::Debug>(
    what: &str,
    decision: Decision,
    answer: T,
    now: i64,
    tampered: bool,
    model_at: impl Fn(i64) -> T,
) -> Result<(), TestCaseError> {
    let until = decision.until().map(|u| u.unix() - t(T0).unix());
    if tampered {
        prop_assert_eq!(until, None, "{}: a tampered answer holds no time", what);
        return Ok(());
    }
    match until {
        Some(end) => {
            prop_assert!(
                end > now,
                "{}: until {} is not after now {}",
                what,
                end,
                now
            );
            prop_assert_eq!(
                model_at(end - 1),
                answer,
                "{}: until {} (now {})",
                what,
                end,
                now
            );
            prop_assert_ne!(
                model_at(end),
                answer,
                "{}: nothing changes at until {}",
                what,
                end
            );
        }
        None => prop_assert_eq!(
            model_at(FOREVER),
            answer,
            "{}: changes later with no until",
            what
        ),
    }
    Ok(())
}

/// Every read the engine offers, against the model, at the current time.
fn check_reads(engine: &Engine, gates: &[FeatureGate], model: &Model) -> Result<(), TestCaseError> {
    let now = model.now;
    prop_assert_eq!(engine.now().unix(), t(T0).unix() + now);
    let tampered = model.tampered_at(now);
    for (i, code) in CODES.iter().enumerate() {
        let decision = engine.check_feature(code);
        prop_assert_eq!(
            decision.reason(),
            model.check(i, now, tampered),
            "check_feature({}) at {}",
            code,
            now
        );
        // A gate also says whether one more unit of a metered feature
        // fits; it holds as long as the check does (no count resets).
        let warning = model.warning(i, now, tampered);
        prop_assert_eq!(
            decision.warning(),
            warning,
            "warning of {} at {}",
            code,
            now
        );
        let gate_reason = model.gate(i, now, tampered);
        let gate_warning = match gate_reason {
            Reason::Overage => Some(Warning::Overage),
            r if r == decision.reason() => warning,
            _ => None,
        };
        let offset = |at: entitle::Timestamp| at.unix() - t(T0).unix();
        let gate_until = model
            .gate_until(i, now, tampered, decision.until().map(offset))
            .map(|at| t(T0).plus_secs(at));
        let gate = (gate_reason, gate_until, gate_warning);
        let seen = |d: Decision| (d.reason(), d.until(), d.warning());
        prop_assert_eq!(
            seen(gates[i].check()),
            gate,
            "gate {} made at the start",
            code
        );
        prop_assert_eq!(
            seen(engine.feature(code).check()),
            gate,
            "fresh gate {}",
            code
        );
        let charged: Vec<(String, u64, Option<u64>)> = engine
            .consumption(code)
            .into_iter()
            .map(|c| (c.license_id, c.used, c.max))
            .collect();
        let expected: Vec<(String, u64, Option<u64>)> = model
            .meters(i, now, tampered)
            .into_iter()
            .map(|(id, max, _, used)| (IDS[id].to_owned(), used, max))
            .collect();
        prop_assert_eq!(charged, expected, "consumption({}) at {}", code, now);
        prop_assert_eq!(
            engine.limit(code),
            model.limit(i, now, tampered),
            "limit({})",
            code
        );
        if decision.allowed() {
            prop_assert!(
                model.some_valid_grant(i, now, tampered),
                "{} allowed ({:?}) but no valid license grants it",
                code,
                decision.reason()
            );
        }
        check_until(code, decision, decision.reason(), now, tampered, |at| {
            model.check(i, at, false)
        })?;
    }

    let can_add = engine.can_add_user();
    prop_assert_eq!(
        can_add.reason(),
        model.can_add(now, tampered),
        "can_add_user at {}",
        now
    );
    check_until(
        "can_add_user",
        can_add,
        can_add.reason(),
        now,
        tampered,
        |at| model.can_add(at, false),
    )?;

    let seats = model.seats(now, tampered);
    let status = engine.status();
    prop_assert_eq!(
        (
            status.active_user_count,
            status.license_seats,
            status.hard_seats,
            status.can_add_user.reason(),
            status.clock_tampered,
            status.total_users,
        ),
        (
            model.active_users(now, seats.window),
            seats.licensed,
            seats.hard,
            model.can_add(now, tampered),
            tampered,
            model.users.len() as u64,
        ),
        "status at {}",
        now
    );

    // Each license with its effective window (a trial's included), as a
    // program shows it.
    let offset = |at: Option<entitle::Timestamp>| at.map(|at| at.unix() - t(T0).unix());
    type Shown = (
        String,
        &'static str,
        bool,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let listed: Vec<Shown> = engine
        .license_infos()
        .into_iter()
        .map(|l| {
            (
                l.id,
                l.status.as_str(),
                l.trial,
                offset(l.starts_at),
                offset(l.expires_at),
                offset(l.grace_ends_at),
            )
        })
        .collect();
    let expected: Vec<Shown> = model
        .licenses
        .iter()
        .map(|(id, l)| {
            let (start, end) = Model::window(l);
            let status = match Model::status(l, now) {
                "revoked" | "suspended" => Model::status(l, now),
                _ if tampered && l.spec.time_dependent() => "clock_tampered",
                other => other,
            };
            (
                IDS[*id].to_owned(),
                status,
                l.spec.trial,
                start,
                end,
                end.map(|end| end + l.spec.grace_secs),
            )
        })
        .collect();
    prop_assert_eq!(listed, expected, "license_infos at {}", now);

    let usage = engine.usage(0, USERS.len());
    let users: Vec<(String, String, bool, i64)> = usage
        .users
        .iter()
        .map(|u| {
            (
                u.id.clone(),
                u.user_type.clone(),
                u.active,
                u.last_active_at.unix() - t(T0).unix(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String, bool, i64)> = model
        .users
        .iter()
        .map(|(id, u)| {
            (
                USERS[*id].to_owned(),
                USER_TYPES[u.user_type].to_owned(),
                Model::is_active(u, now, seats.window),
                u.last_active_at,
            )
        })
        .collect();
    expected.sort();
    prop_assert_eq!(users, expected, "usage at {}", now);
    let active_in_summary: u64 = usage.summary.values().map(|s| s.active).sum();
    prop_assert_eq!(
        active_in_summary,
        status.active_user_count,
        "usage summary vs status"
    );
    Ok(())
}

/// Opens an engine on the store a run uses, the same state each time it is
/// called (`None`: the in-memory store, which keeps nothing).
type Reopen<'a> = Option<&'a dyn Fn(&Vendor, &ManualClock) -> Engine>;

fn run(
    licenses: &[LicenseSpec],
    revocations: &[RevocationSpec],
    ops: &[Op],
) -> Result<(), TestCaseError> {
    run_on(licenses, revocations, ops, None)
}

fn run_on(
    licenses: &[LicenseSpec],
    revocations: &[RevocationSpec],
    ops: &[Op],
    store: Reopen<'_>,
) -> Result<(), TestCaseError> {
    let vendor = Vendor::new();
    let pools = Pools::sign(&vendor, licenses, revocations);
    let clock = clock_at(T0);
    let engine = match store {
        Some(open) => open(&vendor, &clock),
        None => vendor.engine(&clock),
    };
    let gates: Vec<FeatureGate> = CODES.iter().map(|c| engine.feature(c)).collect();
    let mut model = Model::new();
    // Ids removed for good, tracked apart from the model.
    let mut buried: BTreeSet<&str> = BTreeSet::new();
    check_reads(&engine, &gates, &model)?;
    for (step, op) in ops.iter().enumerate() {
        let needed_seat = match op {
            Op::AddUser { user, .. } | Op::RecordActivity(user) => {
                let window = model.seats(model.now, model.tampered_at(model.now)).window;
                model
                    .users
                    .get(user)
                    .is_none_or(|u| !Model::is_active(u, model.now, window))
            }
            _ => false,
        };
        let expected = on_model(&mut model, &pools, op);
        let actual = on_engine(&engine, &clock, &pools, op);
        prop_assert_eq!(&actual, &expected, "step {}: {:?}", step, op);
        if actual.is_ok() {
            match op {
                Op::RemoveLicense { id, hard: true } => {
                    buried.insert(IDS[*id]);
                }
                Op::Revoke(i) => {
                    let list = &pools.revocations[i.index(pools.revocations.len())].0;
                    buried.extend(list.ids.iter().map(|&id| IDS[id]));
                }
                Op::AddLicense(i) => {
                    let id = IDS[pools.licenses[i.index(pools.licenses.len())].0.id];
                    prop_assert!(!buried.contains(id), "{} came back", id);
                }
                _ => {}
            }
        }
        if needed_seat && actual.is_ok() {
            let seats = model.seats(model.now, model.tampered_at(model.now));
            let status = engine.status();
            prop_assert!(
                !seats.counted || status.active_user_count <= status.hard_seats,
                "step {}: {} active users over {} hard seats",
                step,
                status.active_user_count,
                status.hard_seats
            );
        }
        for info in engine.license_infos() {
            prop_assert!(
                !buried.contains(info.id.as_str()) || info.status.as_str() == "revoked",
                "{} is back as {}",
                info.id,
                info.status
            );
        }
        check_reads(&engine, &gates, &model)?;
    }
    if let Some(open) = store {
        // What was acknowledged is what a fresh engine reads back.
        drop(gates);
        let again = open(&vendor, &clock);
        let gates: Vec<FeatureGate> = CODES.iter().map(|c| again.feature(c)).collect();
        check_reads(&again, &gates, &model)?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_reference_model(
        licenses in license_pool(),
        revocations in proptest::collection::vec(revocation_spec(), 1..3),
        ops in proptest::collection::vec(op(), 1..50),
    ) {
        run(&licenses, &revocations, &ops)?;
    }
}

#[cfg(feature = "postgres")]
fn pg_cases() -> u32 {
    std::env::var("ENTITLE_PG_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24)
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: pg_cases(), ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_reference_model_on_postgres(
        licenses in license_pool(),
        revocations in proptest::collection::vec(revocation_spec(), 1..3),
        ops in proptest::collection::vec(op(), 1..50),
    ) {
        let namespace = pg_common::created_namespace("model");
        let open = |vendor: &Vendor, clock: &ManualClock| {
            vendor
                .builder(clock)
                .store(entitle::store::PgStore::open(pg_common::server_url(), &namespace).unwrap())
                .build()
                .unwrap()
        };
        run_on(&licenses, &revocations, &ops, Some(&open))?;
    }
}

// ---- regressions the model found ---------------------------------------

/// `add_user` on a known user set `last_active_at` to now even when the
/// clock had been set back a little, moving activity back in time (and
/// freeing the seat early); `record_activity` already kept the latest.
#[test]
fn regression_add_user_moved_activity_back_in_time() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "s", "seats": {"max": 1, "active_window_secs": 100}})),
        )
        .unwrap();
    clock.advance(100);
    engine.add_user("ana", "member").unwrap();
    clock.advance(-60); // within the tolerance
    engine.add_user("ana", "member").unwrap();
    assert_eq!(
        engine.usage(0, 10).users[0].last_active_at,
        t(T0).plus_secs(100)
    );
    clock.advance(110); // 150: ana, active at 100, holds her seat until 200
    assert_eq!(engine.can_add_user().reason(), Reason::SeatLimit);
    assert_eq!(
        engine.add_user("bo", "member").unwrap_err().code(),
        "SEAT_LIMIT"
    );
}

/// On a tampered clock `status` counted users with the window of the
/// licenses still in force, `usage` with that of every license: the report
/// and the count disagreed.
#[test]
fn regression_usage_and_status_disagreed_on_a_tampered_clock() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "sub", "expires_at": "2027-01-01T00:00:00Z",
                   "seats": {"max": 1, "active_window_secs": 50}})),
        )
        .unwrap();
    engine.add_user("ana", "member").unwrap();
    clock.advance(1000);
    engine.refresh().unwrap(); // persists the latest time seen
    clock.advance(-601);
    let status = engine.status();
    assert!(status.clock_tampered);
    let usage = engine.usage(0, 10);
    assert_eq!(usage.summary["member"].active, status.active_user_count);
    assert_eq!(usage.users[0].active, status.active_user_count == 1);
}

/// The seat snapshot counted users with the window in force when it was
/// built. When a license with a longer window starts later, users idle
/// under the short window are active again: `can_add_user` said `OK` while
/// `add_user` refused.
#[test]
fn regression_seat_window_grows_when_a_license_starts() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "base", "seats": {"max": 1, "active_window_secs": 50}})),
        )
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "later", "starts_at": at(100),
                   "seats": {"max": 0, "active_window_secs": 1000}})))
        .unwrap();
    engine.add_user("ana", "member").unwrap();
    clock.advance(60);
    assert_eq!(engine.can_add_user().reason(), Reason::Ok, "ana idle at 50");
    clock.advance(40); // 100: the 1000 s window is in force, ana is active
    assert_eq!(engine.can_add_user().reason(), Reason::SeatLimit);
    assert_eq!(
        engine.add_user("bo", "member").unwrap_err().code(),
        "SEAT_LIMIT"
    );
}

/// The other way: the license with the long window ends, and users go idle
/// sooner than the snapshot thought.
#[test]
fn regression_seat_window_shrinks_when_its_license_expires() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "base", "seats": {"max": 1, "active_window_secs": 50}})),
        )
        .unwrap();
    engine
        .add_license(
            &vendor.license(json!({"id": "ending", "expires_at": at(100), "seats": {"max": 0}})),
        )
        .unwrap();
    engine.add_user("ana", "member").unwrap();
    clock.advance(1000);
    assert_eq!(engine.can_add_user().reason(), Reason::Ok);
    assert_eq!(
        engine.add_user("bo", "member").unwrap().reason(),
        Reason::Ok
    );
}

/// The seat snapshot counted active users from the instant it was built
/// onwards only. A clock set back within the tolerance sees users active
/// again who had gone idle: `can_add_user` allowed what `add_user` refused.
#[test]
fn regression_seat_count_after_the_clock_went_back_within_the_tolerance() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    let token = vendor
        .license(json!({"id": "s", "seats": {"max": 0, "hard_max": 2, "active_window_secs": 50}}));
    engine.add_license(&token).unwrap();
    engine.add_user("ana", "member").unwrap();
    engine.add_user("bo", "member").unwrap();
    clock.advance(50);
    engine.add_license(&token).unwrap(); // any mutation: a new snapshot at 50
    assert_eq!(engine.can_add_user().reason(), Reason::Overage);
    clock.advance(-1);
    assert_eq!(engine.can_add_user().reason(), Reason::SeatLimit);
    assert_eq!(
        engine.add_user("cy", "member").unwrap_err().code(),
        "SEAT_LIMIT"
    );
}

/// On a tampered clock the seat answer was a constant computed when the
/// snapshot was built, so users going idle never freed a seat in it.
#[test]
fn regression_seats_on_a_tampered_clock_follow_users_going_idle() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(
            json!({"id": "perp", "seats": {"max": 1, "hard_max": 2, "active_window_secs": 50}}),
        ))
        .unwrap();
    clock.advance(1000);
    engine.refresh().unwrap(); // persists the latest time seen
    clock.set(t(T0));
    assert!(engine.status().clock_tampered);
    // Perpetual seats survive a tampered clock.
    assert_eq!(
        engine.add_user("ana", "member").unwrap().reason(),
        Reason::Ok
    );
    assert_eq!(engine.can_add_user().reason(), Reason::Overage);
    clock.advance(50); // ana idle, clock still tampered
    assert_eq!(engine.can_add_user().reason(), Reason::Ok);
    assert_eq!(
        engine.add_user("bo", "member").unwrap().reason(),
        Reason::Ok
    );
    clock.advance(-40); // further back: ana active again
    assert_eq!(engine.can_add_user().reason(), Reason::SeatLimit);
}
