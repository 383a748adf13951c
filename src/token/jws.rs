//! JWS compact serialization (RFC 7515) with EdDSA over Ed25519 (RFC 8037).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::token::json::parse_strict;
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
    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }
    /// The payload, a JSON object.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }
    /// The compact form (`header.payload.signature`), as verified.
    pub fn compact(&self) -> &str {
        &self.compact
    }
}

/// The pieces of a compact token, decoded but not verified.
#[derive(Debug, Clone)]
pub struct UnverifiedToken {
    /// The header, a JSON object.
    pub header: Map<String, Value>,
    /// The payload, a JSON object.
    pub payload: Map<String, Value>,
    signing_input_len: usize,
    signature: Vec<u8>,
    compact: String,
    armor_type: Option<TokenType>,
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part).map_err(|e| {
        Error::malformed(
            what,
            format!("it is not canonical unpadded base64url ({e})"),
        )
    })
}

fn object(value: Value, what: &'static str) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::malformed(what, "it must be a JSON object")),
    }
}

/// Decodes a token (armored or bare) into header and payload without
/// checking its signature. For `entitle inspect` and for diagnostics only:
/// nothing decoded here may be trusted.
pub fn decode_unverified(text: &str) -> Result<UnverifiedToken> {
    if text.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge {
            what: "token",
            size: text.len(),
            limit: MAX_TOKEN_BYTES,
        });
    }
    let (compact, armor_type) = armor::dearmor(text)?;
    let mut parts = compact.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::malformed(
            "token",
            "a token has exactly three base64url parts separated by dots (header.payload.signature)",
        ));
    };
    let header = object(
        parse_strict(&decode_part(h, "token header")?, "token header")?,
        "token header",
    )?;
    let payload = object(
        parse_strict(&decode_part(p, "token payload")?, "token payload")?,
        "token payload",
    )?;
    let signature = decode_part(s, "token signature")?;
    Ok(UnverifiedToken {
        header,
        payload,
        signing_input_len: h.len() + 1 + p.len(),
        signature,
        compact,
        armor_type,
    })
}

fn header_str<'a>(header: &'a Map<String, Value>, name: &str) -> Result<&'a str> {
    match header.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::malformed(
            "token header",
            format!("`{name}` must be a string"),
        )),
        None => Err(Error::malformed(
            "token header",
            format!("`{name}` is required"),
        )),
    }
}

/// Verifies a token (armored or bare) of type `expected` against `keyring`.
///
/// Checks, in order: size, armor, base64url and JSON shape; `alg` is
/// `EdDSA` and there is no `crit`; `kid` and `typ` are present; the key is
/// trusted; the Ed25519 signature verifies strictly; `typ` is `expected`.
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

/// Like [`verify`], but accepts any of the three token types (for `apply`,
/// which takes whatever file it is given).
pub fn verify_any(
    text: &str,
    keyring: &Keyring,
    expected: Option<TokenType>,
) -> Result<VerifiedToken> {
    let token = decode_unverified(text)?;
    let alg = header_str(&token.header, "alg")?;
    if alg != "EdDSA" {
        return Err(Error::malformed(
            "token header",
            format!("`alg` is `{alg}`, but only `EdDSA` (Ed25519) tokens are accepted"),
        ));
    }
    if token.header.contains_key("crit") {
        return Err(Error::malformed(
            "token header",
            "`crit` extensions are not supported, so the token is refused (RFC 7515 section 4.1.11)",
        ));
    }
    let kid = header_str(&token.header, "kid")?;
    let typ_text = header_str(&token.header, "typ")?;
    let key = keyring.get(kid).ok_or_else(|| Error::UnknownKey {
        kid: kid.chars().take(100).collect(),
    })?;
    let signature: [u8; 64] = token
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| Error::SignatureInvalid)?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    let signing_input = &token.compact.as_bytes()[..token.signing_input_len];
    key.verifying_key()
        .verify_strict(signing_input, &signature)
        .map_err(|_| Error::SignatureInvalid)?;
    let typ = TokenType::parse(typ_text).ok_or_else(|| Error::WrongType {
        expected: expected.map_or("license, machine or revocations", TokenType::as_str),
        found: typ_text.chars().take(100).collect(),
    })?;
    if token.armor_type.is_some_and(|label| label != typ) {
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
    Ok(VerifiedToken {
        typ,
        kid: kid.to_owned(),
        header: token.header,
        payload: token.payload,
        compact: token.compact,
    })
}

/// Signs `payload` (a JSON object) as a compact token of type `typ`, with
/// the header `{"alg":"EdDSA","kid":<key's thumbprint>,"typ":<typ>}`.
pub fn sign(payload: &Value, key: &SigningKey, typ: TokenType) -> Result<String> {
    sign_with_kid(payload, key, key.kid(), typ)
}

/// Like [`sign`], with an explicit `kid` (for keys known to installs under
/// another name).
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
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signing_input.as_bytes()));
    Ok(format!("{signing_input}.{signature}"))
}
