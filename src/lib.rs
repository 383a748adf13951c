//! # entitle
//!
//! An embedded, offline license enforcement engine. A program links the
//! crate, hands it license files signed by its vendor (JWS compact tokens
//! signed with Ed25519), and asks it, thousands of times a second, "may
//! this be done now?".
//!
//! ## Getting started
//!
//! ```
//! use entitle::token::{sign, SigningKey, TokenType};
//! use entitle::{Engine, Reason};
//!
//! // The vendor's side (normally on the vendor's server, in any language).
//! let vendor = SigningKey::generate()?;
//! let license = sign(&serde_json::json!({
//!     "v": 1, "id": "lic_1", "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
//!     "seats": {"max": 5},
//!     "features": [{"code": "export"}, {"code": "render", "limit": 4}]
//! }), &vendor, TokenType::License)?;
//!
//! // The application's side.
//! let engine = Engine::builder("acme-cad")
//!     .trust(vendor.public_key().clone())
//!     .build()?;
//! engine.add_license(&license)?;
//!
//! let export = engine.feature("export");
//! assert!(export.check().allowed());
//! assert_eq!(engine.check_feature("simulate").reason(), Reason::NotLicensed);
//! assert_eq!(engine.limit("render"), Some(4));
//! engine.add_user("ann", "designer")?;
//! assert_eq!(engine.status().active_user_count, 1);
//! # Ok::<(), entitle::Error>(())
//! ```
//!
//! ## How it is built
//!
//! A functional core in an imperative shell: the policies
//! ([`policy`]) are pure functions of (state, licenses, now); the
//! [`Engine`] serialises mutations, makes them durable in a
//! [`store::Store`], and publishes an immutable snapshot that readers use
//! without locking or allocating. Time comes from an injected [`Clock`].
//!
//! The README has guides (desktop app, service, air-gapped install, issuing
//! from other languages) and the threat model.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
mod decision;
pub mod device;
pub mod engine;
mod error;
mod ident;
pub mod license;
pub mod policy;
pub mod query;
pub mod store;
mod time;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Decision, Reason};
pub use engine::{Engine, EngineBuilder, FeatureGate};
pub use error::{Error, Result};
pub use time::Timestamp;

/// The README's examples, compiled and run as tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
