//! The signed documents: licenses, revocation lists, offline machine
//! certificates and key rotations (signed by the vendor), deactivation
//! receipts and usage reports (signed by an install's own key), the
//! proof types that only verification can make, and the license keys a
//! person types.

mod builder;
mod document;
mod feature;
mod issue;
mod key;
mod receipt;
mod report;
mod revocations;
mod rotation;

pub use crate::policy::validity::LicenseStatus;
pub use builder::LicenseBuilder;
pub use document::{
    Activations, Consumption, CountedBy, Feature, Floating, Kind, License, OnExpiry, Reset, Seats,
    DEFAULT_ACTIVE_WINDOW_SECS, MAX_ASSIGNED_USERS, MAX_CHANNELS, MAX_FEATURES, MAX_NAME_LEN,
};
pub use issue::{IssueWarning, UnknownField};
pub use key::LicenseKey;
pub use receipt::DeactivationReceipt;
pub use report::{
    ClosedPeriod, FeatureUsage, LicenseUsage, ReportClock, UsageReport, MAX_REPORTED_LICENSES,
    MAX_REPORTED_PERIODS,
};
pub use revocations::{certificate_id, MachineCertificate, RevocationList, MAX_REVOKED_IDS};
pub use rotation::{KeyRotation, MAX_ROTATED_KEYS};

use crate::error::Result;
use crate::token::{self, Keyring, TokenType, VerifiedToken};

/// A license whose signature verified against a trusted key and whose
/// document is well formed. Only [`VerifiedLicense::verify`] makes one, so
/// unverified data cannot reach the engine by mistake.
///
/// ```
/// use entitle::license::VerifiedLicense;
/// use entitle::token::{sign, Keyring, SigningKey, TokenType};
///
/// let key = SigningKey::generate().unwrap();
/// let mut keyring = Keyring::new();
/// keyring.add(key.public_key().clone());
/// let token = sign(&serde_json::json!({
///     "v": 1, "id": "lic_1", "product": "acme", "issued_at": "2026-01-01T00:00:00Z",
///     "features": [{"code": "export"}]
/// }), &key, TokenType::License).unwrap();
///
/// let license = VerifiedLicense::verify(&token, &keyring).unwrap();
/// assert_eq!(license.id, "lic_1");
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedLicense {
    license: License,
    kid: String,
    token: String,
}

impl VerifiedLicense {
    /// Verifies a license token (armored or bare) against `keyring`.
    pub fn verify(text: &str, keyring: &Keyring) -> Result<Self> {
        // The document is read from the signed bytes as its own type: an
        // intermediate `Value` would cost more than all the rest of
        // verification but the signature (BENCHMARKS.md).
        let signed = token::verify_signature(text, keyring, Some(TokenType::License))?;
        let license = License::from_json_slice(&signed.payload_json)?;
        Ok(VerifiedLicense {
            license,
            kid: signed.kid,
            token: signed.compact,
        })
    }

    /// Reads the document of a token already verified as a license.
    pub(crate) fn from_token(token: VerifiedToken) -> Result<Self> {
        let license: License = token.payload_as("license")?;
        license.validate()?;
        Ok(VerifiedLicense {
            license,
            kid: token.kid().to_owned(),
            token: token.into_compact(),
        })
    }

    /// The document.
    pub fn license(&self) -> &License {
        &self.license
    }

    /// The `kid` of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The compact token it was read from.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl std::ops::Deref for VerifiedLicense {
    type Target = License;
    fn deref(&self) -> &License {
        &self.license
    }
}
