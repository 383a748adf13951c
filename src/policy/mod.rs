//! Pure policy: decisions as functions of (state, licenses, now).
//!
//! Nothing here reads a clock, does I/O or takes a lock. The engine asks
//! these functions what to do, applies the answer, persists it and
//! publishes it; the property tests drive them against a reference model.

pub mod activation;
pub mod consumption;
pub mod floating;
pub mod seats;
pub mod timeline;
pub mod validity;

pub use timeline::Timeline;
pub use validity::{Activation, Context, LicenseStatus, LicenseView};
