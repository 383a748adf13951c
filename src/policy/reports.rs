//! Usage reports: what an install accounts for, and whether the vendor's
//! books take a report they are given.

use crate::error::Error;
use crate::license::{
    ClosedPeriod, FeatureUsage, License, LicenseUsage, UsageReport, DEFAULT_ACTIVE_WINDOW_SECS,
};
use crate::policy::consumption::{period, Counter};
use crate::policy::seats::is_active;
use crate::store::{Change, ClosedPeriodRecord, CounterRecord, ReportRecord};
use crate::time::Timestamp;
use crate::token::{self, Keyring, PublicKey, TokenType};

/// How far ahead of the books' clock a report may be dated before it is
/// flagged `clock_ahead`: a day, for time zones and clocks a little off.
pub const CLOCK_AHEAD_SECS: i64 = 24 * 3600;

/// The counter a consume at the counter's new period leaves behind: when
/// `before` (the count kept) belongs to an earlier period than `after`
/// (the count to store) and counted something, that period has closed,
/// and its count is kept until a report carries it (docs/formats.md#usage-report-typ-report).
/// `kept` is a count already kept for the same period, if any.
///
/// ```
/// use entitle::license::Reset;
/// use entitle::policy::consumption::Counter;
/// use entitle::policy::reports::closed_by;
/// use entitle::store::CounterRecord;
/// let jan = 1_767_225_600; // 2026-01-01
/// let feb = 1_769_904_000; // 2026-02-01
/// let mut after = CounterRecord::default();
/// after.period_start = feb;
/// after.used = 1;
/// let before = Counter { period_start: jan, used: 110 };
/// let closed = closed_by(Some(Reset::Monthly), Some(before), &after, None).unwrap();
/// assert_eq!((closed.starts_at, closed.ends_at, closed.used), (jan, feb, 110));
/// ```
pub fn closed_by(
    reset: Option<crate::license::Reset>,
    before: Option<Counter>,
    after: &CounterRecord,
    kept: Option<u64>,
) -> Option<ClosedPeriodRecord> {
    let before = before.filter(|b| b.period_start < after.period_start && b.used > 0)?;
    Some(ClosedPeriodRecord {
        license_id: after.license_id.clone(),
        code: after.code.clone(),
        starts_at: before.period_start,
        ends_at: period(reset, before.period_start).1,
        used: before.used.saturating_add(kept.unwrap_or(0)),
    })
}

/// What a report carried of what the install kept, to be forgotten (or
/// moved on) once the report is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// A closed period kept since a consume closed it.
    Kept {
        /// The feature.
        code: String,
        /// When the period started.
        starts_at: i64,
    },
    /// A counter whose period has ended with no consume since: its count
    /// went into the report, and the counter moves on to the current
    /// period, empty.
    Counter {
        /// The feature.
        code: String,
        /// The start of the current period.
        period_start: i64,
    },
}

/// How many closed periods a report may still carry, and how many it
/// leaves for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodBudget {
    /// Periods the report may still carry.
    pub left: usize,
    /// Periods left for the next report.
    pub pending: u64,
}

/// One license's use at `now`: its users active within its seat window
/// (among its `assigned_users`, if it names them), the devices activated
/// for it, and each metered feature's count in its current period
/// (`counter` gives the count kept for a feature code, if any) and in
/// every period closed since the previous report (`closed` gives those
/// kept for a feature code, oldest first; a counter whose period has
/// ended is one more), as many as `budget` allows, oldest first. Also
/// what it carried, for the report's changes.
pub fn license_usage<'a>(
    license: &License,
    users: impl IntoIterator<Item = (&'a str, i64)>,
    activations: u64,
    counter: impl Fn(&str) -> Option<Counter>,
    closed: impl Fn(&str) -> Vec<ClosedPeriod>,
    budget: &mut PeriodBudget,
    now: i64,
) -> (LicenseUsage, Vec<Carried>) {
    let window = license
        .seats
        .and_then(|s| s.active_window_secs)
        .unwrap_or(DEFAULT_ACTIVE_WINDOW_SECS);
    let assigned = license.assigned_users.as_deref();
    let active_users = users
        .into_iter()
        .filter(|(id, _)| assigned.is_none_or(|names| names.iter().any(|n| n == id)))
        .filter(|&(_, last_active)| is_active(last_active, now, window))
        .count() as u64;
    let mut carried = Vec::new();
    let features = license
        .features
        .iter()
        .filter_map(|feature| {
            let reset = feature.consumption?.reset;
            let code = &feature.code;
            let kept = counter(code);
            let used = kept.map_or(0, |c| c.used_at(reset, now));
            let start = kept.map_or(period(reset, now).0, |c| c.period_start_at(reset, now));
            let mut periods = Vec::new();
            for closed in closed(code) {
                if budget.left == 0 {
                    budget.pending += 1;
                    continue;
                }
                budget.left -= 1;
                carried.push(Carried::Kept {
                    code: code.clone(),
                    starts_at: closed.starts_at.unix(),
                });
                periods.push(closed);
            }
            // A counter of an earlier period, with no consume since to
            // move it on: that period has closed too.
            if let Some(ended) = kept.filter(|c| c.used > 0 && c.period_start < start) {
                if budget.left == 0 {
                    budget.pending += 1;
                } else {
                    budget.left -= 1;
                    periods.push(ClosedPeriod {
                        starts_at: Timestamp::from_unix(ended.period_start),
                        ends_at: Timestamp::from_unix(period(reset, ended.period_start).1),
                        used: ended.used,
                    });
                    carried.push(Carried::Counter {
                        code: code.clone(),
                        period_start: start,
                    });
                }
            }
            Some(FeatureUsage {
                code: code.clone(),
                used,
                // A count that never resets has no period to start.
                period_starts_at: reset.map(|_| Timestamp::from_unix(start)),
                periods,
            })
        })
        .collect();
    let usage = LicenseUsage {
        id: license.id.clone(),
        active_users,
        activations,
        features,
    };
    (usage, carried)
}

/// What the vendor's books hold about the device a report names, for
/// [`ingest_report`].
#[derive(Debug, Clone, Default)]
pub struct ReportBooks<'a> {
    /// The install keys recorded for the device (base64url): bound to its
    /// activations, or those its receipts and reports verified against.
    pub keys: Vec<&'a str>,
    /// The reports ingested from the device before, by sequence.
    pub ingested: Vec<&'a ReportRecord>,
}

/// A range of sequence numbers no report has come for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SequenceGap {
    /// The first missing sequence.
    pub from: u64,
    /// The last missing sequence.
    pub to: u64,
}

/// What the books see in a report beside its figures, derived from the
/// stored tokens themselves (never kept as columns of their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReportFlags {
    /// Its `previous` does not match the report ingested before it from
    /// the same device (the one of the sequence just below): the install
    /// was restored from a backup or copied, and two states report as
    /// one.
    pub fork: bool,
    /// It is dated more than a day ([`CLOCK_AHEAD_SECS`]) after the books
    /// ingested it: the install's clock was set forward.
    pub clock_ahead: bool,
}

/// The flags of a stored report (`record`), given the report stored from
/// the same device just before it in sequence (`before`), if any. A
/// report whose predecessor the books never received (a gap) cannot be
/// checked against it, and is not called a fork.
///
/// A report without `previous` after one that carried the install's
/// clock (so came from an install that chains) is a fork too: an install
/// that chains names its previous report in every report after its first.
pub fn report_flags(record: &ReportRecord, before: Option<&ReportRecord>) -> ReportFlags {
    let Ok(report) = UsageReport::read_unverified(&record.token) else {
        return ReportFlags::default();
    };
    let fork = before
        .filter(|b| b.sequence.checked_add(1) == Some(record.sequence))
        .is_some_and(|before| match &report.previous {
            Some(previous) => *previous != UsageReport::hash(&before.token),
            None => UsageReport::read_unverified(&before.token).is_ok_and(|b| b.clock.is_some()),
        });
    ReportFlags {
        fork,
        clock_ahead: record.created_at > record.ingested_at.saturating_add(CLOCK_AHEAD_SECS),
    }
}

/// A report the books take: the verified report, what it says about the
/// sequence, and the change that records it.
#[derive(Debug, Clone)]
pub struct ReportIngested {
    /// The report, as verified.
    pub report: UsageReport,
    /// The `kid` of the install key that signed it.
    pub kid: String,
    /// The highest sequence ingested from the device before this one.
    pub previous: Option<u64>,
    /// The sequences still missing up to the highest ingested, this one
    /// included.
    pub missing: Vec<SequenceGap>,
    /// What the books see in it beside its figures.
    pub flags: ReportFlags,
    /// Records the report.
    pub changes: Vec<Change>,
}

/// Whether the vendor's books take a usage report (`text`, a token) at
/// `now`: it must verify against an install key the books recorded for
/// its device (`REPORT_INVALID` otherwise), and a sequence at or below the
/// last one ingested from the device is `REPORT_REPLAYED` (a stored
/// report is never overwritten). A gap is no refusal: it is reported. A
/// report taken is recorded with its [`ReportFlags`] derived as
/// [`report_flags`] derives them from the stored tokens.
pub fn ingest_report(
    text: &str,
    books: &ReportBooks<'_>,
    now: i64,
) -> Result<ReportIngested, Error> {
    let claimed = UsageReport::read_unverified(text)?;
    let device = &claimed.fingerprint;
    let mut keys = Keyring::new();
    for key in books
        .keys
        .iter()
        .filter_map(|x| PublicKey::from_base64url(x).ok())
    {
        keys.add(key);
    }
    if keys.is_empty() {
        return Err(Error::ReportInvalid {
            detail: format!(
                "these books recorded no install key for device `{device}`: they never answered \
                 an activation request from it with `entitle --state BOOKS respond` (or answered \
                 one made before installs had keys); check that these are the right books"
            ),
        });
    }
    let verified = token::verify(text, &keys, TokenType::Report).map_err(|e| match e {
        Error::SignatureInvalid | Error::UnknownKey { .. } => Error::ReportInvalid {
            detail: format!(
                "it does not verify against the install key recorded for device `{device}`: it \
                 was altered, forged, or signed by another install"
            ),
        },
        other => other,
    })?;
    let report = UsageReport::from_json(&serde_json::Value::Object(verified.payload().clone()))?;
    let last = books.ingested.iter().max_by_key(|r| r.sequence);
    if let Some(last) = last.filter(|last| report.sequence <= last.sequence) {
        let same = books
            .ingested
            .iter()
            .find(|r| r.sequence == report.sequence);
        let detail = match same {
            Some(stored) if stored.token == verified.compact() => format!(
                "it was ingested at {} already",
                Timestamp::from_unix(stored.ingested_at)
            ),
            Some(stored) => format!(
                "another report {} from this device, made at {}, was ingested at {}: two states \
                 of one install are reporting (it was restored from a backup or copied); the \
                 books keep the first, and flag the next report of the other `fork`",
                report.sequence,
                Timestamp::from_unix(stored.created_at),
                Timestamp::from_unix(stored.ingested_at)
            ),
            None => format!(
                "report {} from this device was ingested at {} already, and the books take \
                 only later ones",
                last.sequence,
                Timestamp::from_unix(last.ingested_at)
            ),
        };
        return Err(Error::ReportReplayed {
            fingerprint: report.fingerprint,
            sequence: report.sequence,
            detail,
        });
    }
    let previous = last.map(|r| r.sequence);
    let mut seen: Vec<u64> = books.ingested.iter().map(|r| r.sequence).collect();
    seen.push(report.sequence);
    let missing = gaps(seen);
    let install_key = keys
        .get(verified.kid())
        .map(PublicKey::to_base64url)
        .unwrap_or_default();
    let record = ReportRecord {
        fingerprint: report.fingerprint.clone(),
        sequence: report.sequence,
        install_key,
        created_at: report.created_at.unix(),
        ingested_at: now,
        token: verified.compact().to_owned(),
    };
    let flags = report_flags(&record, last.copied());
    Ok(ReportIngested {
        report,
        kid: verified.kid().to_owned(),
        previous,
        missing,
        flags,
        changes: vec![Change::PutReport(record)],
    })
}

/// The ranges of 1..=max(seen) that `seen` leaves out.
///
/// ```
/// use entitle::policy::reports::{gaps, SequenceGap};
/// assert_eq!(gaps(vec![5, 1, 2]), [SequenceGap { from: 3, to: 4 }]);
/// assert!(gaps(vec![1, 2, 3]).is_empty());
/// ```
pub fn gaps(mut seen: Vec<u64>) -> Vec<SequenceGap> {
    seen.sort_unstable();
    seen.dedup();
    let mut missing = Vec::new();
    let mut next = 1u64;
    for sequence in seen {
        if sequence > next {
            missing.push(SequenceGap {
                from: next,
                to: sequence - 1,
            });
        }
        next = sequence.saturating_add(1);
    }
    missing
}
