//! # entitle
//!
//! An embedded, offline license enforcement engine.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
mod decision;
pub mod device;
mod error;
pub mod license;
pub mod query;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use decision::{Decision, Reason};
pub use error::{Error, Result};
pub mod engine;
pub mod policy;
pub mod store;

pub use engine::{Engine, EngineBuilder, FeatureGate};
