//! `entitle_decision`: a check's answer, as plain data.

use entitle::Decision;

use crate::status::entitle_status;

/// The answer to a check: allowed or not, why, the notice to show while
/// allowed, and until when it holds.
///
/// ```
/// use entitle_ffi::{entitle_decision, entitle_status};
/// let d = entitle_decision::from(entitle::Decision::new(entitle::Reason::Expired, None));
/// assert!(!d.allowed);
/// assert_eq!(d.reason, entitle_status::ENTITLE_EXPIRED);
/// assert_eq!(d.until_unix, 0);
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct entitle_decision {
    /// Whether the feature may be used now.
    pub allowed: bool,
    /// Why: `ENTITLE_OK`, `ENTITLE_IN_GRACE`, `ENTITLE_OVERAGE`,
    /// `ENTITLE_EXPIRED_KEPT` allow; every other reason denies.
    /// [`entitle_reason_message`](crate::entitle_reason_message) words it
    /// for the user.
    pub reason: entitle_status,
    /// A notice to show while allowed: `ENTITLE_OK` for none, else
    /// `ENTITLE_IN_GRACE`, `ENTITLE_OVERAGE`, `ENTITLE_EXPIRED_KEPT` or
    /// `ENTITLE_ENDING` (the right ends within 14 days).
    pub warning: entitle_status,
    /// When this answer stops holding by the passage of time alone (a
    /// license expiring, a grace ending), in Unix seconds; 0 when only
    /// something else can change it.
    pub until_unix: i64,
}

impl From<Decision> for entitle_decision {
    #[inline]
    fn from(decision: Decision) -> Self {
        entitle_decision {
            allowed: decision.allowed(),
            reason: entitle_status::of_reason(decision.reason()),
            warning: entitle_status::of_warning(decision.warning()),
            until_unix: decision.until().map_or(0, |t| t.unix()),
        }
    }
}
