//! Named-user seats: how many the licenses in force allow, and whether one
//! more user may take one.

use crate::decision::Reason;
use crate::license::DEFAULT_ACTIVE_WINDOW_SECS;
use crate::policy::validity::{best, grants_new, license_reason, Context, LicenseView};

/// What the licenses in force allow at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatTotals {
    /// Sum of `seats.max` over licenses granting new rights.
    pub licensed: u64,
    /// Sum of `seats.hard_max` over the same licenses.
    pub hard: u64,
    /// Whether any of them counts seats at all; if none does, users are
    /// not limited.
    pub counted: bool,
    /// The active window: the longest of the counting licenses' windows.
    pub window_secs: i64,
    /// The best reason any license gives; `Ok`/`InGrace` when one grants
    /// new rights, else why none does.
    pub reason: Reason,
}

/// Adds up the seats of the licenses that grant new rights at `now`.
pub fn totals<'a>(
    views: impl IntoIterator<Item = &'a LicenseView<'a>>,
    ctx: &Context,
    now: i64,
    tampered: bool,
) -> SeatTotals {
    let mut totals = SeatTotals {
        licensed: 0,
        hard: 0,
        counted: false,
        window_secs: 0,
        reason: Reason::NotLicensed,
    };
    for view in views {
        let reason = license_reason(view, ctx, now, tampered);
        // `keep` lets old features run, but gives no one a new seat.
        let reason = if reason == Reason::ExpiredKept {
            Reason::Expired
        } else {
            reason
        };
        totals.reason = best(totals.reason, reason);
        if !grants_new(view, ctx, now, tampered) {
            continue;
        }
        if let Some(seats) = &view.license.seats {
            totals.counted = true;
            totals.licensed = totals.licensed.saturating_add(u64::from(seats.max));
            totals.hard = totals.hard.saturating_add(u64::from(seats.hard_max()));
            totals.window_secs = totals.window_secs.max(seats.active_window_secs());
        }
    }
    if totals.window_secs == 0 {
        totals.window_secs = DEFAULT_ACTIVE_WINDOW_SECS;
    }
    totals
}

/// Whether one more user may become active, when `active` users are.
/// Within `max`: `Ok`; within `hard_max`: `Overage`; beyond: `SeatLimit`.
///
/// ```
/// use entitle::policy::seats::{can_add, SeatTotals};
/// use entitle::Reason;
/// let t = SeatTotals { licensed: 2, hard: 3, counted: true, window_secs: 60, reason: Reason::Ok };
/// assert_eq!(can_add(&t, 1), Reason::Ok);
/// assert_eq!(can_add(&t, 2), Reason::Overage);
/// assert_eq!(can_add(&t, 3), Reason::SeatLimit);
/// ```
pub fn can_add(totals: &SeatTotals, active: u64) -> Reason {
    if !totals.reason.allows() {
        return totals.reason;
    }
    if !totals.counted {
        return totals.reason;
    }
    let after = active.saturating_add(1);
    if after <= totals.licensed {
        totals.reason
    } else if after <= totals.hard {
        Reason::Overage
    } else {
        Reason::SeatLimit
    }
}

/// Whether a user last active at `last_active` is active at `now`.
#[inline]
pub fn is_active(last_active: i64, now: i64, window_secs: i64) -> bool {
    last_active.saturating_add(window_secs) > now
}
