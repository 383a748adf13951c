//! Offline deactivation receipts: an install's signed word that it
//! deactivated a device, carried to the vendor's books
//! (docs/formats.md#deactivation-receipt-typ-receipt), and the reading
//! shared with usage reports of tokens an install signs with its own key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ident::is_name;
use crate::time::Timestamp;
use crate::token::{self, Keyring, PublicKey, SigningKey, TokenType, VerifiedToken};

const WHAT: &str = "deactivation receipt";

/// The payload of a `typ: "receipt"` token, signed by the install key of
/// the install that deactivated the device: `{"v": 1, "license_id",
/// "fingerprint", "deactivated_at", "nonce"}`.
///
/// What a receipt proves is that the install holding the key said so; a
/// patched binary, or a copy of the state with its key, can say so too
/// (README, threat model).
///
/// ```
/// use entitle::license::DeactivationReceipt;
/// use entitle::token::{sign, SigningKey, TokenType};
///
/// let install = SigningKey::from_seed(&[3; 32]);
/// let payload = serde_json::json!({"v": 1, "license_id": "lic_1", "fingerprint": "desk-1",
///     "deactivated_at": "2026-05-01T00:00:00Z", "nonce": "n-1"});
/// let token = sign(&payload, &install, TokenType::Receipt).unwrap();
/// let receipt = DeactivationReceipt::verify(&token, install.public_key()).unwrap();
/// assert_eq!(receipt.fingerprint, "desk-1");
/// let stranger = SigningKey::from_seed(&[4; 32]);
/// let err = DeactivationReceipt::verify(&token, stranger.public_key()).unwrap_err();
/// assert_eq!(err.code(), "SIGNATURE_INVALID");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivationReceipt {
    /// Schema version: 1.
    pub v: u32,
    /// The license the device was deactivated for.
    pub license_id: String,
    /// The device.
    pub fingerprint: String,
    /// When the install deactivated it, by the install's clock.
    pub deactivated_at: Timestamp,
    /// A random value: the books accept a receipt once, known by it.
    pub nonce: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DeactivationReceipt {
    /// Reads and checks a receipt payload.
    pub fn from_json(value: &Value) -> Result<Self> {
        let receipt: DeactivationReceipt = token::from_value(value, WHAT)?;
        if receipt.v != 1 {
            return Err(Error::malformed(WHAT, "field `v` must be 1"));
        }
        for (field, text) in [
            ("license_id", &receipt.license_id),
            ("fingerprint", &receipt.fingerprint),
            ("nonce", &receipt.nonce),
        ] {
            if !is_name(text) {
                return Err(Error::malformed(
                    WHAT,
                    format!("field `{field}` must be 1 to 256 printable characters"),
                ));
            }
        }
        Ok(receipt)
    }

    /// Verifies a receipt token (armored or bare) against the install key
    /// that must have signed it, and reads its payload. A token signed by
    /// any other key is `SIGNATURE_INVALID`.
    pub fn verify(text: &str, install_key: &PublicKey) -> Result<Self> {
        let token = verify_by_install(text, install_key, TokenType::Receipt)?;
        Self::from_json(&Value::Object(token.payload().clone()))
    }

    /// What a receipt token claims, read WITHOUT checking its signature:
    /// the vendor's books need the license and device it names to find
    /// the install key to verify it with. Nothing read here may be
    /// trusted until [`verify`](Self::verify) agrees.
    pub fn read_unverified(text: &str) -> Result<Self> {
        let payload = unverified_payload(text, TokenType::Receipt)?;
        Self::from_json(&Value::Object(payload))
    }

    /// Signs this receipt with the install's key: the compact token.
    pub(crate) fn sign(&self, key: &SigningKey) -> Result<String> {
        let payload = serde_json::to_value(self)
            .map_err(|e| Error::malformed(WHAT, format!("it does not serialize: {e}")))?;
        token::sign(&payload, key, TokenType::Receipt)
    }
}

/// Verifies a token an install signed with its own key: against that one
/// key, whose thumbprint its `kid` must be. Any other signer is
/// `SIGNATURE_INVALID` (not `UNKNOWN_KEY`, whose advice is about the
/// vendor's keys).
pub(crate) fn verify_by_install(
    text: &str,
    install_key: &PublicKey,
    typ: TokenType,
) -> Result<VerifiedToken> {
    let mut keyring = Keyring::new();
    keyring.add(install_key.clone());
    token::verify(text, &keyring, typ).map_err(|e| match e {
        Error::UnknownKey { .. } => Error::SignatureInvalid,
        other => other,
    })
}

/// The payload of a token of type `typ`, decoded without verifying it:
/// refused if the header names another type.
pub(crate) fn unverified_payload(text: &str, typ: TokenType) -> Result<Map<String, Value>> {
    let decoded = token::decode_unverified(text)?;
    match decoded.header.get("typ").and_then(Value::as_str) {
        Some(found) if found == typ.as_str() => Ok(decoded.payload),
        Some(found) => Err(Error::WrongType {
            expected: typ.as_str(),
            found: found.chars().take(100).collect(),
        }),
        None => Err(Error::malformed("token header", "`typ` is required")),
    }
}
