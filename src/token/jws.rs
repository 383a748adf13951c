//! JWS compact serialization (RFC 7515) with EdDSA over Ed25519 (RFC 8037).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::token::json;
use crate::token::keys::{Keyring, SigningKey};
use crate::token::{armor, TokenType};

/// Tokens (armored or bare) larger than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// A token whose signature verified against a trusted key and whose header
/// follows the rules. Only [`verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    typ: TokenType,
    kid: String,
    header: Map<String, Value>,
    payload: Map<String, Value>,
    /// The payload's bytes, for [`payload_as`](VerifiedToken::payload_as).
    payload_json: Vec<u8>,
    compact: String,
}

impl VerifiedToken {
    /// The token's type.
    pub fn typ(&self) -> TokenType {
        self.typ
    }
    /// The `kid` of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The protected header, as a map.
    ///
    /// ```
    /// use entitle::token::{sign, verify, Keyring, SigningKey, TokenType};
    ///
    /// let key = SigningKey::from_seed(&[7; 32]);
    /// let mut keyring = Keyring::new();
    /// keyring.add(key.public_key().clone());
    /// let token = sign(&serde_json::json!({"ids": []}), &key, TokenType::Revocations).unwrap();
    /// let verified = verify(&token, &keyring, TokenType::Revocations).unwrap();
    /// assert_eq!(verified.header()["alg"], "EdDSA");
    /// assert_eq!(verified.header()["kid"], key.kid());
    /// ```
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }
    /// The payload, a JSON object.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }
    /// Reads the payload as a `T`, from its JSON bytes. `what` names the
    /// document in errors, which name the offending field.
    ///
    /// ```
    /// use entitle::token::{sign, verify, Keyring, SigningKey, TokenType};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Revoked { ids: Vec<String> }
    ///
    /// let key = SigningKey::from_seed(&[7; 32]);
    /// let mut keyring = Keyring::new();
    /// keyring.add(key.public_key().clone());
    /// let token = sign(&serde_json::json!({"ids": ["lic_1"]}), &key, TokenType::Revocations).unwrap();
    /// let verified = verify(&token, &keyring, TokenType::Revocations).unwrap();
    /// let revoked: Revoked = verified.payload_as("revocations").unwrap();
    /// assert_eq!(revoked.ids, ["lic_1"]);
    /// ```
    pub fn payload_as<T: DeserializeOwned>(&self, what: &'static str) -> Result<T> {
        json::read(&self.payload_json, what)
    }
    /// The compact form (`header.payload.signature`), as verified.
    pub fn compact(&self) -> &str {
        &self.compact
    }
    /// The compact form, without copying it.
    pub(crate) fn into_compact(self) -> String {
        self.compact
    }
}

/// The pieces of a compact token, decoded but not verified.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnverifiedToken {
    /// The header, a JSON object.
    pub header: Map<String, Value>,
    /// The payload, a JSON object.
    pub payload: Map<String, Value>,
}

/// A compact token cut into its three parts and base64url-decoded; no JSON
/// read yet.
struct Parts {
    compact: String,
    armor_type: Option<TokenType>,
    header_json: Vec<u8>,
    payload_json: Vec<u8>,
    /// `None` for canonical base64url of another length than 64 bytes.
    signature: Option<[u8; 64]>,
    signing_input_len: usize,
}

impl Parts {
    fn split(text: &str) -> Result<Parts> {
        if text.len() > MAX_TOKEN_BYTES {
            return Err(Error::TooLarge {
                what: "token",
                size: text.len(),
                limit: MAX_TOKEN_BYTES,
            });
        }
        let (compact, armor_type) = armor::dearmor(text)?;
        let three_parts = || {
            Error::malformed(
                "token",
                "a token has exactly three base64url parts separated by dots (header.payload.signature)",
            )
        };
        // The first and last dots are searched from their ends, so the
        // long payload between them is read once, by its decoder, which
        // refuses a dot; only then is it asked whether one was the fault.
        let (h, rest) = compact.split_once('.').ok_or_else(three_parts)?;
        let (p, s) = rest.rsplit_once('.').ok_or_else(three_parts)?;
        let header_json = decode_part(h, "token header")?;
        let payload_json = decode_part(p, "token payload").map_err(|e| {
            if p.contains('.') {
                three_parts()
            } else {
                e
            }
        })?;
        // Another length than 64 bytes is a signature that cannot verify.
        let signature = decode_part(s, "token signature")?.try_into().ok();
        let signing_input_len = h.len() + 1 + p.len();
        Ok(Parts {
            compact,
            armor_type,
            header_json,
            payload_json,
            signature,
            signing_input_len,
        })
    }

    fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signing_input_len]
    }
}

/// Decodes canonical unpadded base64url: the `base64` crate's engine
/// refuses padding and set trailing bits, so each token has one spelling.
fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::malformed(what, "it is not canonical unpadded base64url"))
}

/// Decodes a token (armored or bare) into header and payload without
/// checking its signature. For `entitle inspect` and for diagnostics only:
/// nothing decoded here may be trusted.
pub fn decode_unverified(text: &str) -> Result<UnverifiedToken> {
    let parts = Parts::split(text)?;
    Ok(UnverifiedToken {
        header: json::read(&parts.header_json, "token header")?,
        payload: json::read(&parts.payload_json, "token payload")?,
    })
}

/// Verifies a token (armored or bare) of type `expected` against `keyring`.
///
/// Checks, in order: size, armor and base64url; the header's JSON; `alg`
/// is `EdDSA` and there is no `crit`; `kid` and `typ` are present; the key
/// is trusted; the Ed25519 signature verifies strictly; `typ` is
/// `expected`; the payload is one strict JSON object.
///
/// ```
/// use entitle::token::{sign, verify, Keyring, SigningKey, TokenType};
///
/// let key = SigningKey::generate().unwrap();
/// let mut keyring = Keyring::new();
/// keyring.add(key.public_key().clone());
/// let token = sign(&serde_json::json!({"v": 1, "ids": []}), &key, TokenType::Revocations).unwrap();
///
/// let verified = verify(&token, &keyring, TokenType::Revocations).unwrap();
/// assert_eq!(verified.kid(), key.kid());
/// assert_eq!(verify(&token, &keyring, TokenType::License).unwrap_err().code(), "WRONG_TYPE");
/// ```
pub fn verify(text: &str, keyring: &Keyring, expected: TokenType) -> Result<VerifiedToken> {
    verify_any(text, keyring, Some(expected))
}

/// Like [`verify`], but accepts a token of any type when `expected` is
/// `None` (for `apply`, which takes whatever file it is given).
pub fn verify_any(
    text: &str,
    keyring: &Keyring,
    expected: Option<TokenType>,
) -> Result<VerifiedToken> {
    let signed = verify_signature(text, keyring, expected)?;
    // Read only once the signature holds: the payload is the larger part,
    // and unauthenticated bytes get no more parsing than they must.
    let payload = json::read(&signed.payload_json, "token payload")?;
    Ok(VerifiedToken {
        typ: signed.typ,
        kid: signed.kid,
        header: signed.header,
        payload,
        payload_json: signed.payload_json,
        compact: signed.compact,
    })
}

/// A token whose header and signature [`verify_signature`] accepted, but
/// whose payload has not been read at all: not even checked to be JSON.
pub(crate) struct SignedPayload {
    pub(crate) typ: TokenType,
    pub(crate) kid: String,
    pub(crate) header: Map<String, Value>,
    /// The decoded payload bytes, authenticated but unread.
    pub(crate) payload_json: Vec<u8>,
    pub(crate) compact: String,
}

/// Everything [`verify_any`] checks but the payload's JSON, for a caller
/// that reads the payload as its own type (with [`json::read`]), in one
/// pass from the bytes.
pub(crate) fn verify_signature(
    text: &str,
    keyring: &Keyring,
    expected: Option<TokenType>,
) -> Result<SignedPayload> {
    let parts = Parts::split(text)?;
    let header: Map<String, Value> = json::read(&parts.header_json, "token header")?;
    let member = |name: &str| match header.get(name) {
        Some(Value::String(text)) => Ok(text.as_str()),
        Some(_) => Err(Error::malformed(
            "token header",
            format!("`{name}` must be a string"),
        )),
        None => Err(Error::malformed(
            "token header",
            format!("`{name}` is required"),
        )),
    };
    let alg = member("alg")?;
    if alg != "EdDSA" {
        return Err(Error::malformed(
            "token header",
            format!("`alg` is `{alg}`, but only `EdDSA` (Ed25519) tokens are accepted"),
        ));
    }
    if header.contains_key("crit") {
        return Err(Error::malformed(
            "token header",
            "`crit` extensions are not supported, so the token is refused (RFC 7515 section 4.1.11)",
        ));
    }
    let kid = member("kid")?;
    let typ_text = member("typ")?;
    let key = keyring.get(kid).ok_or_else(|| Error::UnknownKey {
        kid: kid.chars().take(100).collect(),
    })?;
    let signature = parts.signature.ok_or(Error::SignatureInvalid)?;
    key.verify_bytes(parts.signing_input(), &signature)?;
    let typ = TokenType::parse(typ_text).ok_or_else(|| Error::WrongType {
        expected: expected.map_or(
            "license, machine, revocations, keys, receipt or report",
            TokenType::as_str,
        ),
        found: typ_text.chars().take(100).collect(),
    })?;
    if parts.armor_type.is_some_and(|label| label != typ) {
        return Err(Error::malformed(
            "armor",
            format!("the armor label does not match the token's `typ` `{typ}`"),
        ));
    }
    if let Some(expected) = expected {
        if typ != expected {
            return Err(Error::WrongType {
                expected: expected.as_str(),
                found: typ_text.to_owned(),
            });
        }
    }
    let kid = kid.to_owned();
    Ok(SignedPayload {
        typ,
        kid,
        header,
        payload_json: parts.payload_json,
        compact: parts.compact,
    })
}

/// Signs `payload` (a JSON object) as a compact token of type `typ`, with
/// the header `{"alg":"EdDSA","kid":<key's thumbprint>,"typ":<typ>}`.
pub fn sign(payload: &Value, key: &SigningKey, typ: TokenType) -> Result<String> {
    sign_with_kid(payload, key, key.kid(), typ)
}

/// Like [`sign`], with an explicit `kid` header. An install's `Keyring`
/// finds keys only by their RFC 7638 thumbprint, so a token signed under
/// any other `kid` is refused there (`UNKNOWN_KEY`); this exists for tests
/// and for other verifiers that name keys their own way.
pub fn sign_with_kid(
    payload: &Value,
    key: &SigningKey,
    kid: &str,
    typ: TokenType,
) -> Result<String> {
    if !payload.is_object() {
        return Err(Error::malformed(
            "token payload",
            "it must be a JSON object",
        ));
    }
    let header = serde_json::json!({"alg": "EdDSA", "kid": kid, "typ": typ.as_str()});
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signing_input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(key.sign_bytes(signing_input.as_bytes()));
    Ok(format!("{signing_input}.{signature}"))
}
