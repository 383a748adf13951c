//! Usage reports: what an install accounts for, and whether the vendor's
//! books take a report they are given.

use crate::error::Error;
use crate::license::{
    FeatureUsage, License, LicenseUsage, UsageReport, DEFAULT_ACTIVE_WINDOW_SECS,
};
use crate::policy::consumption::{period, Counter};
use crate::policy::seats::is_active;
use crate::store::{Change, ReportRecord};
use crate::time::Timestamp;
use crate::token::{self, Keyring, PublicKey, TokenType};

/// One license's use at `now`: its users active within its seat window
/// (among its `assigned_users`, if it names them), the devices activated
/// for it, and each metered feature's count in its current period
/// (`counter` gives the count kept for a feature code, if any).
pub fn license_usage<'a>(
    license: &License,
    users: impl IntoIterator<Item = (&'a str, i64)>,
    activations: u64,
    counter: impl Fn(&str) -> Option<Counter>,
    now: i64,
) -> LicenseUsage {
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
    let features = license
        .features
        .iter()
        .filter_map(|feature| {
            let reset = feature.consumption?.reset;
            let kept = counter(&feature.code);
            let used = kept.map_or(0, |c| c.used_at(reset, now));
            let start = kept.map_or(period(reset, now).0, |c| c.period_start_at(reset, now));
            Some(FeatureUsage {
                code: feature.code.clone(),
                used,
                // A count that never resets has no period to start.
                period_starts_at: reset.map(|_| Timestamp::from_unix(start)),
            })
        })
        .collect();
    LicenseUsage {
        id: license.id.clone(),
        active_users,
        activations,
        features,
    }
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
    /// Records the report.
    pub changes: Vec<Change>,
}

/// Whether the vendor's books take a usage report (`text`, a token) at
/// `now`: it must verify against an install key the books recorded for
/// its device (`REPORT_INVALID` otherwise), and a sequence ingested before
/// is `REPORT_REPLAYED`. A gap is no refusal: it is reported, and a late
/// report fills it.
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
    if let Some(earlier) = books
        .ingested
        .iter()
        .find(|r| r.sequence == report.sequence)
    {
        return Err(Error::ReportReplayed {
            fingerprint: report.fingerprint,
            sequence: report.sequence,
            ingested_at: Timestamp::from_unix(earlier.ingested_at),
        });
    }
    let previous = books.ingested.iter().map(|r| r.sequence).max();
    let mut seen: Vec<u64> = books.ingested.iter().map(|r| r.sequence).collect();
    seen.push(report.sequence);
    let missing = gaps(seen);
    let install_key = keys
        .get(verified.kid())
        .map(PublicKey::to_base64url)
        .unwrap_or_default();
    let changes = vec![Change::PutReport(ReportRecord {
        fingerprint: report.fingerprint.clone(),
        sequence: report.sequence,
        install_key,
        created_at: report.created_at.unix(),
        ingested_at: now,
        token: verified.compact().to_owned(),
    })];
    Ok(ReportIngested {
        report,
        kid: verified.kid().to_owned(),
        previous,
        missing,
        changes,
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
