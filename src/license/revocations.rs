//! Revocation lists and offline machine certificates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ident::is_name;
use crate::time::Timestamp;
use crate::token::{self, Keyring, PublicKey, TokenType};

/// The most ids one revocation list may carry.
pub const MAX_REVOKED_IDS: usize = 10_000;

/// The payload of a `typ: "revocations"` token: license ids revoked
/// offline.
///
/// ```
/// use entitle::license::RevocationList;
/// let list = RevocationList::from_json(&serde_json::json!(
///     {"v": 1, "issued_at": "2026-05-01T00:00:00Z", "ids": ["lic_1"]})).unwrap();
/// assert_eq!(list.ids, ["lic_1"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Schema version: 1.
    pub v: u32,
    /// The product whose installs it is for. A list without one revokes
    /// wherever it is applied, but never lowers the clock guard
    /// (docs/semantics.md#clock-rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// When the vendor signed it.
    pub issued_at: Timestamp,
    /// The revoked license ids.
    pub ids: Vec<String>,
}

impl RevocationList {
    /// Reads and checks a revocation list payload.
    pub fn from_json(value: &Value) -> Result<Self> {
        let list: RevocationList = token::from_value(value, "revocations")?;
        if list.v != 1 {
            return Err(Error::malformed("revocations", "field `v` must be 1"));
        }
        if list.ids.len() > MAX_REVOKED_IDS {
            return Err(Error::TooLarge {
                what: "revocations.ids",
                size: list.ids.len(),
                limit: MAX_REVOKED_IDS,
            });
        }
        if let Some(i) = list.ids.iter().position(|id| !is_name(id)) {
            return Err(Error::malformed(
                "revocations",
                format!("field `ids[{i}]` must be 1 to 256 printable characters"),
            ));
        }
        if list.product.as_deref().is_some_and(|p| !is_name(p)) {
            return Err(Error::malformed(
                "revocations",
                "field `product` must be 1 to 256 printable characters",
            ));
        }
        Ok(list)
    }

    /// Verifies a revocations token and reads its list.
    pub fn verify(text: &str, keyring: &Keyring) -> Result<Self> {
        let token = token::verify(text, keyring, TokenType::Revocations)?;
        Self::from_json(&Value::Object(token.payload().clone()))
    }
}

/// The payload of a `typ: "machine"` token: the vendor's statement that
/// one device may use one license, offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineCertificate {
    /// Schema version: 1.
    pub v: u32,
    /// The license the device is activated for.
    pub license_id: String,
    /// The device's fingerprint.
    pub fingerprint: String,
    /// When the vendor signed it.
    pub issued_at: Timestamp,
    /// The activation stops counting at this instant, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The public key of the install the request came from (base64url of
    /// 32 bytes), repeated from the request: the device is bound to that
    /// install, whose receipts and reports the vendor's books check
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_key: Option<String>,
    /// The machine the device runs on (its computed fingerprint), repeated
    /// from the request when the install named its device: the
    /// certificate then activates that device only on that machine.
    /// Absent, the device is the machine itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MachineCertificate {
    /// Reads and checks a machine certificate payload.
    pub fn from_json(value: &Value) -> Result<Self> {
        let cert: MachineCertificate = token::from_value(value, "machine certificate")?;
        if cert.v != 1 {
            return Err(Error::malformed(
                "machine certificate",
                "field `v` must be 1",
            ));
        }
        if !is_name(&cert.license_id) || !is_name(&cert.fingerprint) {
            return Err(Error::malformed(
                "machine certificate",
                "fields `license_id` and `fingerprint` must be 1 to 256 printable characters",
            ));
        }
        if let Some(key) = &cert.install_key {
            PublicKey::from_base64url(key).map_err(|_| {
                Error::malformed(
                    "machine certificate",
                    "field `install_key` must be the base64url of a 32-byte Ed25519 public key",
                )
            })?;
        }
        Ok(cert)
    }

    /// Verifies a machine token against `keyring` and reads its payload.
    pub fn verify(text: &str, keyring: &Keyring) -> Result<Self> {
        let token = token::verify(text, keyring, TokenType::Machine)?;
        Self::from_json(&Value::Object(token.payload().clone()))
    }
}

/// The id of a machine certificate: the first 16 bytes of the SHA-256 of
/// its compact token, base64url without padding (22 characters). The
/// vendor's service names the certificates it withdrew (a slot freed for a
/// lost machine) by it; only whoever holds a certificate knows its id, so
/// a server that never saw one cannot name it.
///
/// ```
/// use entitle::license::certificate_id;
/// let id = certificate_id("eyJ0eXAiOiJlbnRpdGxlK21hY2hpbmUifQ.e30.c2ln");
/// assert_eq!(id.len(), 22);
/// assert_eq!(id, certificate_id("eyJ0eXAiOiJlbnRpdGxlK21hY2hpbmUifQ.e30.c2ln"));
/// assert_ne!(id, certificate_id("another.token.here"));
/// ```
pub fn certificate_id(compact: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(compact.trim().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}
