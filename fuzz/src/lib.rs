//! What each fuzz target feeds its input to. The stable test suite
//! (`tests/fuzz_corpus.rs`) replays the corpora through these same
//! functions, so a crash found here stays fixed.
//!
//! Each function returns the parser's result; the fuzzer looks for panics
//! (and hangs). Where two readers of the same input exist, they must agree,
//! and a disagreement panics: verification reads a license straight from
//! its bytes, and that fast path must mean what the `Value` path means.

use std::sync::OnceLock;

use entitle::license::{License, VerifiedLicense};
use entitle::token::{self, Keyring, SigningKey};
use serde_json::Value;

/// The seed of the one key the `token` target trusts; the corpus holds
/// tokens it signed, so mutations reach the signature check and beyond.
pub const FUZZ_KEY_SEED: [u8; 32] = [0x42; 32];

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let mut keyring = Keyring::new();
        keyring.add(SigningKey::from_seed(&FUZZ_KEY_SEED).public_key().clone());
        keyring
    })
}

/// `token`: decode without verifying, verify against a fixed keyring, and
/// verify as a license; the payload readers must agree.
pub fn token(data: &[u8]) -> entitle::Result<()> {
    let text = std::str::from_utf8(data).map_err(|_| not_utf8())?;
    let decoded = token::decode_unverified(text);
    let verified = token::verify_any(text, keyring(), None);
    let license = VerifiedLicense::verify(text, keyring());
    if let (Ok(decoded), Ok(verified)) = (&decoded, &verified) {
        assert_eq!(
            verified.payload(),
            &decoded.payload,
            "payload readers disagree"
        );
    }
    if let Ok(license) = &license {
        let decoded = decoded.as_ref().expect("a verified license decodes");
        let from_value = License::from_json(&Value::Object(decoded.payload.clone()));
        assert_eq!(
            from_value.ok().as_ref(),
            Some(license.license()),
            "license readers disagree"
        );
    }
    decoded.and(verified).map(drop)
}

/// `armor`: read an armored or bare token.
pub fn armor(data: &[u8]) -> entitle::Result<()> {
    let text = std::str::from_utf8(data).map_err(|_| not_utf8())?;
    token::dearmor(text).map(drop)
}

/// `license`: any JSON document read as a license, from a `Value` and
/// straight from the bytes. They agree, except that only the bytes reader
/// can see (and refuses) a repeated key, which a `Value` cannot hold.
pub fn license(data: &[u8]) -> entitle::Result<()> {
    let from_bytes = License::from_json_slice(data);
    let value: serde_json::Value = serde_json::from_slice(data).map_err(|_| not_json())?;
    let from_value = License::from_json(&value);
    match (&from_bytes, &from_value) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "license readers disagree"),
        (Ok(_), Err(e)) => panic!("only the bytes reader accepts it: {e}"),
        // The bytes reader may stop at an earlier fault than the repeat
        // (`{"on_expiry": "x", "on_expiry": "keep"}`), so ask the strict
        // parser whether there is one, not the error message.
        (Err(e), Ok(_)) => assert!(
            token::parse_strict_json(data, "license").is_err(),
            "only the Value reader accepts it, and it has no repeated key: {e}"
        ),
        (Err(_), Err(_)) => {}
    }
    from_value.map(drop)
}

fn not_utf8() -> entitle::Error {
    entitle::Error::InvalidArgument("fuzz input is not UTF-8".into())
}

fn not_json() -> entitle::Error {
    entitle::Error::InvalidArgument("fuzz input is not JSON".into())
}
