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
//! let engine = Engine::builder("acme-cad").in_memory()
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
//! A functional core in an imperative shell, in layers:
//!
//! - [`token`] verifies and signs JWS/EdDSA tokens; [`license`] reads the
//!   signed documents (licenses, machine certificates, revocation lists,
//!   key rotations from the vendor; deactivation receipts and usage
//!   reports from an install, signed by its own key) and makes the proof
//!   types only verification can make.
//! - The policies (a crate-private `policy` module) are pure functions of
//!   (state, licenses, now) returning the [`store::Change`]s a mutation
//!   makes, or a denial.
//! - The [`Engine`] is the shell: it serialises mutations, writes their
//!   changes to a [`store::Store`], and once the store says they are
//!   durable publishes an immutable snapshot that readers (the hot path,
//!   and every report) use without locking or allocating.
//! - [`books::Books`] are the vendor's side of the air-gapped lifecycle:
//!   activations counted for customers' devices, the receipts and usage
//!   reports installs send back. An [`Engine`] is an install and has none
//!   of their methods.
//! - [`store`] owns its vocabulary ([`store::Change`], the records, typed
//!   settings) as plain data, so a backend needs nothing of the engine's.
//!
//! Time comes from an injected [`Clock`].
//!
//! ## Features
//!
//! - `cli` (default): the `entitle` command-line tool. Turn it off
//!   (`default-features = false`) to link the engine alone.
//! - `server`: the `server` module, the license server behind `entitle
//!   serve` (tokio, axum, a Prometheus exporter).
//! - `client`: the `client` module, a blocking client of that server
//!   whose lease guard is the same [`LeaseGuard`] (ureq).
//! - `fuzzing`: reach the internals the fuzz targets exercise; not a
//!   stable API.
//!
//! The README has guides (desktop app, service, air-gapped install, issuing
//! from other languages) and the threat model; the repository's `docs/`
//! specifies the token formats (docs/formats.md), the engine's semantics
//! (docs/semantics.md), the error codes (docs/errors.md), the command line
//! (docs/cli.md) and the license server's HTTP API (docs/http.md).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod books;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
mod decision;
pub mod device;
pub mod engine;
mod error;
mod ident;
pub mod license;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod policy;
#[cfg(not(feature = "fuzzing"))]
#[allow(dead_code)]
mod policy;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod query;
#[cfg(not(feature = "fuzzing"))]
#[allow(dead_code)]
mod query;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
mod time;
pub mod token;

/// Entry points the fuzz targets reach that no program needs: not a
/// stable API, present with the `fuzzing` feature only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Strict JSON: what every signed payload goes through first.
    pub fn parse_strict_json(bytes: &[u8], what: &'static str) -> crate::Result<serde_json::Value> {
        crate::token::parse_strict_json(bytes, what)
    }
}

pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Decision, Reason, Warning, ENDING_NOTICE_SECS};
pub use engine::{Engine, EngineBuilder, FeatureGate, LeaseGuard};
pub use error::{Error, Result};
/// The version library whose types (`VersionReq` in a license's
/// `versions`) appear in this crate's API, re-exported so that a program
/// uses the same version.
pub use semver;
/// The JSON library whose types (`Value`, `Map`) appear in this crate's
/// API, re-exported so that a program uses the same version.
pub use serde_json;
pub use time::Timestamp;

/// The README's examples, compiled and run as tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
