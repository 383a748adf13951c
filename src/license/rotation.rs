//! Key rotation: the vendor's signed act that changes which keys an
//! install trusts (docs/formats.md#key-rotation-typ-keys).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::token::{self, Keyring, PublicKey, TokenType};

/// The most keys one rotation may add, and the most it may retire.
pub const MAX_ROTATED_KEYS: usize = 64;

const WHAT: &str = "key rotation";

/// The payload of a `typ: "keys"` token, signed by a key the install
/// already trusts: `{"v": 1, "product", "issued_at", "keys": [...],
/// "retire": [...]}`. Keys are the base64url of their 32 bytes; `retire`
/// names `kid`s no longer to trust.
///
/// ```
/// use entitle::license::KeyRotation;
/// use entitle::token::SigningKey;
/// use base64::Engine as _;
///
/// let new = SigningKey::from_seed(&[7; 32]);
/// let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(new.public_key().as_bytes());
/// let rotation = KeyRotation::from_json(&serde_json::json!({"v": 1, "product": "acme",
///     "issued_at": "2026-05-01T00:00:00Z", "keys": [x]})).unwrap();
/// assert_eq!(rotation.keys[0].kid(), new.kid());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The product whose installs it is for; `None`: any install trusting
    /// the key that signed it (such a rotation never lowers the clock
    /// guard).
    pub product: Option<String>,
    /// When the vendor signed it.
    pub issued_at: Timestamp,
    /// Keys to trust from now on.
    pub keys: Vec<PublicKey>,
    /// `kid`s to trust no longer.
    pub retire: Vec<String>,
}

/// The payload as written, before its keys are read.
#[derive(Deserialize)]
struct Payload {
    v: u32,
    #[serde(default)]
    product: Option<String>,
    issued_at: Timestamp,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    retire: Vec<String>,
}

impl KeyRotation {
    /// Reads and checks a key rotation payload.
    pub fn from_json(value: &Value) -> Result<Self> {
        let payload: Payload = token::from_value(value, WHAT)?;
        if payload.v != 1 {
            return Err(Error::malformed(WHAT, "field `v` must be 1"));
        }
        if payload.keys.is_empty() && payload.retire.is_empty() {
            return Err(Error::malformed(
                WHAT,
                "it must name keys to trust (`keys`) or to retire (`retire`)",
            ));
        }
        for (field, len) in [
            ("keys", payload.keys.len()),
            ("retire", payload.retire.len()),
        ] {
            if len > MAX_ROTATED_KEYS {
                return Err(Error::TooLarge {
                    what: if field == "keys" {
                        "key rotation keys"
                    } else {
                        "key rotation retire"
                    },
                    size: len,
                    limit: MAX_ROTATED_KEYS,
                });
            }
        }
        if let Some(product) = &payload.product {
            if !crate::ident::is_name(product) {
                return Err(Error::malformed(
                    WHAT,
                    "field `product` must be 1 to 256 printable characters",
                ));
            }
        }
        let keys = payload
            .keys
            .iter()
            .enumerate()
            .map(|(i, x)| {
                read_key(x).map_err(|detail| {
                    Error::malformed(WHAT, format!("field `keys[{i}]`: {detail}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyRotation {
            product: payload.product,
            issued_at: payload.issued_at,
            keys,
            retire: payload.retire,
        })
    }

    /// Verifies a `keys` token against `keyring` and reads its payload.
    pub fn verify(text: &str, keyring: &Keyring) -> Result<Self> {
        let token = token::verify(text, keyring, TokenType::Keys)?;
        Self::from_json(&Value::Object(token.payload().clone()))
    }

    /// The keyring after this rotation: its keys added, then the retired
    /// ones removed. Refused if no key would be left: an install that
    /// trusts nothing can never be told anything again.
    pub fn applied_to(&self, keyring: &Keyring) -> Result<Keyring> {
        let mut next = keyring.clone();
        for key in &self.keys {
            next.add(key.clone());
        }
        for kid in &self.retire {
            next.remove(kid);
        }
        if next.is_empty() {
            return Err(Error::InvalidArgument(
                "this key rotation would leave the install trusting no key at all; \
                 a rotation must keep or add at least one"
                    .into(),
            ));
        }
        Ok(next)
    }
}

/// A public key as a rotation carries it: base64url of its 32 bytes.
fn read_key(text: &str) -> std::result::Result<PublicKey, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| "not base64url without padding".to_owned())?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes".to_owned())?;
    PublicKey::from_bytes(&bytes).map_err(|e| e.to_string())
}
