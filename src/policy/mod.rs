//! Pure policy: decisions as functions of (state, licenses, now).
//!
//! Nothing here reads a clock, does I/O or takes a lock. The engine asks
//! these functions what to do, applies the answer, persists it and
//! publishes it; the property tests drive them against a reference model.

pub mod activation;
pub mod consumption;
pub mod floating;
pub mod guard;
pub mod reports;
pub mod seats;
pub mod timeline;
pub mod validity;

pub use timeline::Timeline;

use crate::decision::Reason;

/// A mutation refused by policy: why, and when trying again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    /// The stable reason.
    pub reason: Reason,
    /// When a retry may succeed (Unix seconds), where that is known.
    pub retry_at: Option<i64>,
}

impl From<Reason> for Denial {
    fn from(reason: Reason) -> Self {
        Denial {
            reason,
            retry_at: None,
        }
    }
}
pub use validity::{Activation, Context, LicenseView};
