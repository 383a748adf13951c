//! Signed tokens: JWS compact serialization with EdDSA (Ed25519), their
//! armored file form, and the keys that sign and verify them.
//!
//! The format is an open standard on purpose: any JOSE library can issue a
//! license `entitle` accepts. With PyJWT:
//!
//! ```python
//! jwt.encode(claims, private_pem, algorithm="EdDSA",
//!            headers={"kid": kid, "typ": "license"})
//! ```

mod armor;
mod json;
mod jws;
mod keys;
mod lease;

pub use armor::{armor, dearmor};
pub use jws::{
    decode_unverified, sign, sign_with_kid, verify, verify_any, UnverifiedToken, VerifiedToken,
    MAX_TOKEN_BYTES,
};
pub use keys::{thumbprint, Keyring, PublicKey, SigningKey};
pub use lease::LeaseToken;

pub(crate) use json::{from_value, read};
pub(crate) use jws::verify_signature;

/// Hazardous materials: the bare signing primitive beneath tokens. Signing
/// raw bytes makes signatures over anything, tokens that no header rule
/// checked among them; it is here for checking against the RFC 8032 test
/// vectors and for building malformed tokens in tests. Sign tokens with
/// [`sign`].
pub mod hazmat {
    use super::SigningKey;

    /// The raw Ed25519 signature (RFC 8032) of `message` by `key`.
    ///
    /// ```
    /// use entitle::token::{hazmat, SigningKey};
    ///
    /// let key = SigningKey::from_seed(&[7; 32]);
    /// let signature = hazmat::sign_bytes(&key, b"hello");
    /// assert!(key.public_key().verify_bytes(b"hello", &signature).is_ok());
    /// ```
    pub fn sign_bytes(key: &SigningKey, message: &[u8]) -> [u8; 64] {
        key.sign_bytes(message)
    }
}

/// Parses JSON strictly, as every signed header and payload is read:
/// duplicate keys (at any depth), invalid UTF-8 and trailing data are
/// refused. `what` names the input in errors.
pub(crate) fn parse_strict_json(
    bytes: &[u8],
    what: &'static str,
) -> crate::Result<serde_json::Value> {
    json::read(bytes, what)
}

/// The kinds of token, named by the header's `typ`. A token is only
/// accepted where its type is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenType {
    /// A license document.
    License,
    /// An offline activation certificate for one device.
    Machine,
    /// A list of revoked license ids.
    Revocations,
    /// A key rotation: the keys an install trusts from now on.
    Keys,
    /// An install's receipt for a device it deactivated offline, signed by
    /// the install's own key (docs/formats.md#deactivation-receipt-typ-receipt).
    Receipt,
    /// An install's usage report, signed by the install's own key.
    Report,
    /// A floating seat a license server leased to a client, signed by the
    /// server's lease key (docs/formats.md#lease-token-typ-lease).
    Lease,
}

impl TokenType {
    /// The `typ` header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenType::License => "license",
            TokenType::Machine => "machine",
            TokenType::Revocations => "revocations",
            TokenType::Keys => "keys",
            TokenType::Receipt => "receipt",
            TokenType::Report => "report",
            TokenType::Lease => "lease",
        }
    }

    /// The type named by a `typ` header value.
    pub fn parse(typ: &str) -> Option<Self> {
        match typ {
            "license" => Some(TokenType::License),
            "machine" => Some(TokenType::Machine),
            "revocations" => Some(TokenType::Revocations),
            "keys" => Some(TokenType::Keys),
            "receipt" => Some(TokenType::Receipt),
            "report" => Some(TokenType::Report),
            "lease" => Some(TokenType::Lease),
            _ => None,
        }
    }

    /// The label in the armor lines (`LICENSE`, `MACHINE`, `REVOCATIONS`,
    /// `KEYS`, `RECEIPT`, `REPORT`, `LEASE`).
    pub(crate) const fn armor_label(self) -> &'static str {
        match self {
            TokenType::License => "LICENSE",
            TokenType::Machine => "MACHINE",
            TokenType::Revocations => "REVOCATIONS",
            TokenType::Keys => "KEYS",
            TokenType::Receipt => "RECEIPT",
            TokenType::Report => "REPORT",
            TokenType::Lease => "LEASE",
        }
    }

    fn from_armor_label(label: &str) -> Option<Self> {
        match label {
            "LICENSE" => Some(TokenType::License),
            "MACHINE" => Some(TokenType::Machine),
            "REVOCATIONS" => Some(TokenType::Revocations),
            "KEYS" => Some(TokenType::Keys),
            "RECEIPT" => Some(TokenType::Receipt),
            "REPORT" => Some(TokenType::Report),
            "LEASE" => Some(TokenType::Lease),
            _ => None,
        }
    }
}

impl std::fmt::Display for TokenType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
