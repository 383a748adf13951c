//! The clock-rollback guard: the latest time seen, whether the clock is
//! behind it, and the one documented way out of a false alarm.

use crate::store::{Change, Setting};

/// How far behind the latest time seen the clock may be before it counts
/// as set back: 10 minutes, unless the builder says otherwise.
pub const DEFAULT_TOLERANCE_SECS: i64 = 600;

/// How often a running engine persists the latest time it has seen.
pub const PERSIST_EVERY_SECS: i64 = 60;

/// Whether `now` is more than `tolerance_secs` behind `latest_seen`: then
/// every right that depends on time is held.
///
/// ```
/// use entitle::policy::guard::tampered;
/// assert!(!tampered(9_500, 10_000, 600));
/// assert!(tampered(9_399, 10_000, 600));
/// ```
pub const fn tampered(now: i64, latest_seen: i64, tolerance_secs: i64) -> bool {
    now < latest_seen.saturating_sub(tolerance_secs)
}

/// The change that records `now` as the latest time seen, when it is
/// later. Every mutation carries it (unless it moves the guard itself).
pub fn seen(now: i64, latest_seen: i64) -> Option<Change> {
    (now > latest_seen).then_some(Change::Set(Setting::LatestSeen(now)))
}

/// Whether a running engine, which last recorded `latest_seen`, should
/// record the time again at `now`: at most once a minute, never on the
/// hot path itself.
pub const fn persist_due(now: i64, latest_seen: i64) -> bool {
    now >= latest_seen.saturating_add(PERSIST_EVERY_SECS)
}

/// The way out of a false alarm (a clock once set years ahead by
/// mistake): a token for this install (docs/semantics.md#clock-rollback: a license of
/// this product, a certificate for this device, a revocation list or key
/// rotation naming this product) signed at `issued_at`, later than every
/// such token seen (`max_issued_at`), lowers the guard to `issued_at`, or
/// to `now` if later. No old token can do it again, and no token made for
/// another install can do it at all, so the way out is not a way around.
/// Callers ask only for tokens that are for this install.
///
/// ```
/// use entitle::policy::guard::way_out;
/// // A newer token while tampered: remembered, and the guard lowered.
/// assert_eq!(way_out(500, 400, true, 450).len(), 2);
/// // The same token again: nothing.
/// assert!(way_out(500, 500, true, 450).is_empty());
/// ```
pub fn way_out(issued_at: i64, max_issued_at: i64, tampered: bool, now: i64) -> Vec<Change> {
    if issued_at <= max_issued_at {
        return Vec::new();
    }
    let mut changes = vec![Change::Set(Setting::MaxIssuedAt(issued_at))];
    if tampered {
        changes.push(Change::Set(Setting::LatestSeen(issued_at.max(now))));
    }
    changes
}
