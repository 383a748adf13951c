//! The token layer against its contract (docs/formats.md#the-token): RFC 8032
//! vectors, the refusals an attacker would try, the armor, and the license
//! document's own rules.
//!
//! Every refusal test first shows that the same construction *without* the
//! defect verifies, so a refusal can only come from the defect itself.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::Engine as _;
use entitle::license::{License, VerifiedLicense, MAX_FEATURES};
use entitle::token::{
    armor, dearmor, decode_unverified, sign, thumbprint, verify, verify_any, Keyring, PublicKey,
    SigningKey, TokenType, MAX_TOKEN_BYTES,
};
use entitle::Error;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Fixtures

fn vendor_key() -> SigningKey {
    SigningKey::from_seed(&[0x42; 32])
}

fn keyring_of(key: &SigningKey) -> Keyring {
    let mut keyring = Keyring::new();
    keyring.add(key.public_key().clone());
    keyring
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn license_claims() -> Value {
    json!({
        "v": 1, "id": "lic_1", "product": "acme", "issued_at": "2026-01-01T00:00:00Z",
        "features": [{"code": "export"}]
    })
}

fn header_for(key: &SigningKey, typ: &str) -> Value {
    json!({"alg": "EdDSA", "kid": key.kid(), "typ": typ})
}

/// A compact token over exactly these encoded parts, correctly signed by
/// `key`: whatever is refused is refused for the parts, not the signature.
fn forge(header_b64: &str, payload_b64: &str, key: &SigningKey) -> String {
    let signing_input = format!("{header_b64}.{payload_b64}");
    let signature = entitle::token::hazmat::sign_bytes(key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature))
}

fn forge_json(header: &Value, payload: &str, key: &SigningKey) -> String {
    forge(
        &b64(header.to_string().as_bytes()),
        &b64(payload.as_bytes()),
        key,
    )
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> &'static str {
    match result {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(err) => err.code(),
    }
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("test hex"))
        .collect()
}

fn hex_array<const N: usize>(text: &str) -> [u8; N] {
    hex(text).try_into().expect("test hex of the right length")
}

// ---------------------------------------------------------------------------
// RFC 8032 section 7.1, tests 1 to 3

struct Vector {
    secret: &'static str,
    public: &'static str,
    message: &'static str,
    signature: &'static str,
}

const RFC8032_VECTORS: [Vector; 3] = [
    Vector {
        secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message: "",
        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                    5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    Vector {
        secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message: "72",
        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                    085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    Vector {
        secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message: "af82",
        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac\
                    18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
];

#[test]
fn rfc8032_vectors_give_the_listed_public_keys_and_signatures() {
    for (i, vector) in RFC8032_VECTORS.iter().enumerate() {
        let key = SigningKey::from_seed(&hex_array(vector.secret));
        let public: [u8; 32] = hex_array(vector.public);
        let message = hex(vector.message);
        let signature: [u8; 64] = hex_array(vector.signature);

        assert_eq!(key.public_key().as_bytes(), &public, "test {}", i + 1);
        assert_eq!(
            entitle::token::hazmat::sign_bytes(&key, &message),
            signature,
            "test {}",
            i + 1
        );
        let from_bytes = PublicKey::from_bytes(&public).unwrap();
        assert_eq!(from_bytes.kid(), key.kid());
        from_bytes
            .verify_bytes(&message, &signature)
            .unwrap_or_else(|e| panic!("test {}: {e}", i + 1));
    }
}

#[test]
fn rfc8032_signatures_do_not_verify_once_altered() {
    for vector in &RFC8032_VECTORS {
        let public = PublicKey::from_bytes(&hex_array(vector.public)).unwrap();
        let message = hex(vector.message);
        let signature: [u8; 64] = hex_array(vector.signature);
        for bit in [0, 7, 255, 256, 511] {
            let mut altered = signature;
            altered[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                code(public.verify_bytes(&message, &altered)),
                "SIGNATURE_INVALID"
            );
        }
        let mut longer = message.clone();
        longer.push(0);
        assert_eq!(
            code(public.verify_bytes(&longer, &signature)),
            "SIGNATURE_INVALID"
        );
    }
}

#[test]
fn rfc8037_example_key_has_the_listed_thumbprint() {
    // RFC 8037 appendix A.3 uses the key of RFC 8032 test 1.
    let public: [u8; 32] = hex_array(RFC8032_VECTORS[0].public);
    assert_eq!(
        thumbprint(&public),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    assert_eq!(
        PublicKey::from_bytes(&public).unwrap().kid(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

// ---------------------------------------------------------------------------
// What verifies

#[test]
fn a_signed_license_verifies_and_the_forge_helper_agrees() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let verified = verify(&token, &keyring, TokenType::License).unwrap();
    assert_eq!(verified.kid(), key.kid());
    assert_eq!(verified.typ(), TokenType::License);
    assert_eq!(verified.payload()["id"], "lic_1");

    // The helper the refusal tests build on makes tokens that verify.
    let forged = forge_json(
        &header_for(&key, "license"),
        &license_claims().to_string(),
        &key,
    );
    assert!(verify(&forged, &keyring, TokenType::License).is_ok());
    let license = VerifiedLicense::verify(&forged, &keyring).unwrap();
    assert_eq!(license.id, "lic_1");
    assert_eq!(license.token(), forged);
}

#[test]
fn any_of_several_trusted_keys_verifies_its_own_tokens() {
    let old = vendor_key();
    let new = SigningKey::from_seed(&[0x43; 32]);
    let mut keyring = keyring_of(&old);
    keyring.add(new.public_key().clone());
    for key in [&old, &new] {
        let token = sign(&license_claims(), key, TokenType::License).unwrap();
        assert_eq!(
            verify(&token, &keyring, TokenType::License).unwrap().kid(),
            key.kid()
        );
    }
}

// ---------------------------------------------------------------------------
// Refusals

#[test]
fn tampered_payload_is_signature_invalid() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let tampered = license_claims().to_string().replace("lic_1", "lic_2");
    let tampered = format!("{h}.{}.{s}", b64(tampered.as_bytes()));
    assert_eq!(
        code(verify(&tampered, &keyring, TokenType::License)),
        "SIGNATURE_INVALID"
    );
    // Signed by someone else under our kid: the same opaque refusal.
    let mallory = SigningKey::from_seed(&[0x66; 32]);
    let impostor = forge_json(
        &header_for(&key, "license"),
        &license_claims().to_string(),
        &mallory,
    );
    assert_eq!(
        code(verify(&impostor, &keyring, TokenType::License)),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn alg_none_is_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let header = json!({"alg": "none", "kid": key.kid(), "typ": "license"});
    let unsigned = format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(license_claims().to_string().as_bytes())
    );
    let err = verify(&unsigned, &keyring, TokenType::License).unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(err.to_string().contains("alg"), "{err}");
    // Even correctly signed, another `alg` is refused.
    for alg in ["none", "None", "eddsa", "ES256", "RS256", "Ed25519"] {
        let header = json!({"alg": alg, "kid": key.kid(), "typ": "license"});
        let token = forge_json(&header, &license_claims().to_string(), &key);
        assert_eq!(
            code(verify(&token, &keyring, TokenType::License)),
            "MALFORMED",
            "alg {alg}"
        );
    }
}

/// HMAC-SHA256 (RFC 2104), written out so the test needs no other crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn hmac_helper_matches_rfc4231() {
    // RFC 4231 test cases 1 and 6 (a key longer than the block).
    assert_eq!(
        hmac_sha256(&[0x0b; 20], b"Hi There").to_vec(),
        hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    );
    assert_eq!(
        hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )
        .to_vec(),
        hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    );
}

#[test]
fn hs256_signed_with_the_public_key_is_malformed() {
    // The classic algorithm confusion: a verifier that lets the token pick
    // `alg` would check this HMAC with the public key as the secret.
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let pem = key.public_key().to_pem();
    let secrets: [&[u8]; 3] = [
        key.public_key().as_bytes(),
        pem.as_bytes(),
        pem.trim().as_bytes(),
    ];
    for secret in secrets {
        let header = json!({"alg": "HS256", "kid": key.kid(), "typ": "license"});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(license_claims().to_string().as_bytes())
        );
        let mac = hmac_sha256(secret, signing_input.as_bytes());
        let token = format!("{signing_input}.{}", b64(&mac));
        let err = verify(&token, &keyring, TokenType::License).unwrap_err();
        assert_eq!(err.code(), "MALFORMED");
        assert!(err.to_string().contains("HS256"), "{err}");
    }
}

/// The group order L of Ed25519, little-endian.
const ORDER_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[test]
fn non_canonical_s_plus_l_is_signature_invalid() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let mut signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap()
        .try_into()
        .unwrap();

    // S + L is the same scalar mod L: a lax verifier accepts it, which makes
    // signatures malleable.
    let mut carry = 0u16;
    for (s, l) in signature[32..].iter_mut().zip(ORDER_L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");

    let malleated = format!("{signing_input}.{}", b64(&signature));
    assert_ne!(malleated, token);
    assert_eq!(
        code(verify(&malleated, &keyring, TokenType::License)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        code(
            key.public_key()
                .verify_bytes(signing_input.as_bytes(), &signature)
        ),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn small_order_public_key_is_signature_invalid() {
    // The identity point as a "public key", with R = identity and S = 0,
    // satisfies the verification equation for every message: a cofactored
    // or lax verifier accepts it. Strict verification must not.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = PublicKey::from_bytes(&identity).unwrap();
    let mut keyring = Keyring::new();
    keyring.add(weak.clone());

    let mut signature = [0u8; 64];
    signature[0] = 1; // R = identity, S = 0
    let header = json!({"alg": "EdDSA", "kid": weak.kid(), "typ": "license"});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(license_claims().to_string().as_bytes())
    );

    // The forgery is real: the lax check of the same library accepts it.
    let lax = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    use ed25519_dalek::Verifier as _;
    assert!(lax
        .verify(
            signing_input.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature)
        )
        .is_ok());

    let token = format!("{signing_input}.{}", b64(&signature));
    assert_eq!(
        code(verify(&token, &keyring, TokenType::License)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        code(weak.verify_bytes(signing_input.as_bytes(), &signature)),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn small_order_r_is_signature_invalid() {
    // A small-order R with an honest key cannot be produced without the
    // secret, but whatever S accompanies it must be refused.
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let mut signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap()
        .try_into()
        .unwrap();
    signature[..32].fill(0);
    signature[0] = 1;
    let token = format!("{signing_input}.{}", b64(&signature));
    assert_eq!(
        code(verify(&token, &keyring, TokenType::License)),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn signature_of_the_wrong_length_is_signature_invalid() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    for len in [0, 32, 63, 65, 128] {
        let mut sig = signature.clone();
        sig.resize(len, 0);
        let token = format!("{signing_input}.{}", b64(&sig));
        assert_eq!(
            code(verify(&token, &keyring, TokenType::License)),
            "SIGNATURE_INVALID",
            "length {len}"
        );
    }
}

#[test]
fn unknown_kid_is_unknown_key() {
    let key = vendor_key();
    let stranger = SigningKey::from_seed(&[0x99; 32]);
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &stranger, TokenType::License).unwrap();
    let err = verify(&token, &keyring, TokenType::License).unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_KEY");
    assert!(err.to_string().contains(stranger.kid()), "{err}");
    assert_eq!(
        code(verify(&token, &Keyring::new(), TokenType::License)),
        "UNKNOWN_KEY"
    );
}

#[test]
fn wrong_typ_is_wrong_type() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let machine = sign(
        &json!({"v": 1, "license_id": "lic_1", "fingerprint": "f", "issued_at": "2026-01-01T00:00:00Z"}),
        &key,
        TokenType::Machine,
    )
    .unwrap();
    assert!(verify(&machine, &keyring, TokenType::Machine).is_ok());
    assert_eq!(
        code(verify(&machine, &keyring, TokenType::License)),
        "WRONG_TYPE"
    );
    assert_eq!(
        code(VerifiedLicense::verify(&machine, &keyring)),
        "WRONG_TYPE"
    );
    assert_eq!(
        code(verify(&machine, &keyring, TokenType::Revocations)),
        "WRONG_TYPE"
    );
    // verify_any takes all three types and nothing else.
    assert_eq!(
        verify_any(&machine, &keyring, None).unwrap().typ(),
        TokenType::Machine
    );
    for typ in ["License", "JWT", "", "license "] {
        let token = forge_json(&header_for(&key, typ), &license_claims().to_string(), &key);
        assert_eq!(
            code(verify(&token, &keyring, TokenType::License)),
            "WRONG_TYPE",
            "typ {typ:?}"
        );
        assert_eq!(code(verify_any(&token, &keyring, None)), "WRONG_TYPE");
    }
}

#[test]
fn crit_header_is_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    for crit in [json!(["exp"]), json!([]), json!("b64")] {
        let header =
            json!({"alg": "EdDSA", "kid": key.kid(), "typ": "license", "crit": crit, "exp": 1});
        let token = forge_json(&header, &license_claims().to_string(), &key);
        let err = verify(&token, &keyring, TokenType::License).unwrap_err();
        assert_eq!(err.code(), "MALFORMED");
        assert!(err.to_string().contains("crit"), "{err}");
    }
}

#[test]
fn missing_or_mistyped_kid_and_typ_are_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let headers = [
        (json!({"alg": "EdDSA", "typ": "license"}), "kid"),
        (json!({"alg": "EdDSA", "kid": key.kid()}), "typ"),
        (json!({"kid": key.kid(), "typ": "license"}), "alg"),
        (json!({"alg": "EdDSA", "kid": 7, "typ": "license"}), "kid"),
        (
            json!({"alg": "EdDSA", "kid": key.kid(), "typ": null}),
            "typ",
        ),
        (
            json!({"alg": ["EdDSA"], "kid": key.kid(), "typ": "license"}),
            "alg",
        ),
    ];
    for (header, field) in headers {
        let token = forge_json(&header, &license_claims().to_string(), &key);
        let err = verify(&token, &keyring, TokenType::License).unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "{header}");
        assert!(err.to_string().contains(field), "{header}: {err}");
    }
}

#[test]
fn header_or_payload_that_is_not_an_object_is_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let header = header_for(&key, "license");
    for payload in ["[]", "1", "\"lic\"", "null", "", " "] {
        let token = forge_json(&header, payload, &key);
        assert_eq!(
            code(verify(&token, &keyring, TokenType::License)),
            "MALFORMED",
            "payload {payload:?}"
        );
    }
    let token = forge(
        &b64(b"[\"EdDSA\"]"),
        &b64(license_claims().to_string().as_bytes()),
        &key,
    );
    assert_eq!(
        code(verify(&token, &keyring, TokenType::License)),
        "MALFORMED"
    );
}

#[test]
fn payload_that_is_not_utf8_or_has_trailing_data_is_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let header = b64(header_for(&key, "license").to_string().as_bytes());
    let claims = license_claims().to_string();
    let payloads: [Vec<u8>; 4] = [
        [&claims.as_bytes()[..20], b"\xff", &claims.as_bytes()[20..]].concat(),
        [claims.as_bytes(), b"\xff"].concat(),
        format!("{claims} {{}}").into_bytes(),
        format!("{claims}x").into_bytes(),
    ];
    for payload in payloads {
        let token = forge(&header, &b64(&payload), &key);
        assert_eq!(
            code(verify(&token, &keyring, TokenType::License)),
            "MALFORMED"
        );
    }
    // Invalid UTF-8 proper (a lone continuation byte), not just a strange char.
    let mut bytes = claims.into_bytes();
    let at = bytes.len() - 5;
    bytes.insert(at, 0x80);
    let token = forge(&header, &b64(&bytes), &key);
    assert_eq!(
        code(verify(&token, &keyring, TokenType::License)),
        "MALFORMED"
    );
}

#[test]
fn input_over_64_kib_is_too_large_before_decoding() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let big = "A".repeat(120 * 1024);
    let err = verify(&big, &keyring, TokenType::License).unwrap_err();
    assert_eq!(err.code(), "TOO_LARGE");
    assert_eq!(code(decode_unverified(&big)), "TOO_LARGE");

    // A signed token with a 120 KB payload: refused for its size, not its
    // signature.
    let mut claims = license_claims();
    claims["padding"] = json!("x".repeat(120 * 1024));
    let token = sign(&claims, &key, TokenType::License).unwrap();
    assert_eq!(
        code(verify(&token, &keyring, TokenType::License)),
        "TOO_LARGE"
    );
    let armored = armor(&token, TokenType::License);
    assert_eq!(
        code(verify(&armored, &keyring, TokenType::License)),
        "TOO_LARGE"
    );
}

#[test]
fn the_size_limit_is_exactly_64_kib_including_whitespace() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let at_limit = format!("{token}{}", "\n".repeat(MAX_TOKEN_BYTES - token.len()));
    assert_eq!(at_limit.len(), MAX_TOKEN_BYTES);
    assert!(verify(&at_limit, &keyring, TokenType::License).is_ok());
    let over = format!("{at_limit}\n");
    assert_eq!(
        code(verify(&over, &keyring, TokenType::License)),
        "TOO_LARGE"
    );
}

#[test]
fn every_truncation_of_a_token_is_refused() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let armored = armor(&token, TokenType::License);
    for text in [&token, &armored] {
        for len in 0..text.len() {
            let cut = &text[..len];
            // A cut that only drops trailing whitespace or the armor's last
            // newline still carries the whole token.
            if cut.trim_end() == text.trim_end() {
                assert!(verify(cut, &keyring, TokenType::License).is_ok());
                continue;
            }
            assert!(
                verify(cut, &keyring, TokenType::License).is_err(),
                "prefix of {len} bytes verified"
            );
        }
    }
}

#[test]
fn garbage_is_refused_without_panic() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let fixed = [
        "",
        " ",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b.c.d",
        "é.é.é",
        "\u{0}",
        "\u{feff}",
        "-----",
        "-----BEGIN ENTITLE LICENSE-----",
        "-----BEGIN ENTITLE LICENSE-----\n-----END ENTITLE LICENSE-----",
        "-----BEGIN ENTITLE é-----\nabc\n-----END ENTITLE é-----",
        "-----BEGIN ENTITLE LICENSE-----é\n-----END ENTITLE LICENSE-----",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
        "eyJ9.eyJ9.AA",
    ];
    for text in fixed {
        assert!(
            verify(text, &keyring, TokenType::License).is_err(),
            "{text:?}"
        );
        assert!(decode_unverified(text).is_err(), "{text:?}");
    }
    let trailing = [
        format!("{token}."),
        format!("{token}.AAAA"),
        format!("{token}x"),
        format!(".{token}"),
        format!("{token} {token}"),
        token.replacen('.', "..", 1),
        token.replace('.', ","),
        token.replacen('e', "é", 1),
    ];
    for text in &trailing {
        assert!(
            verify(text, &keyring, TokenType::License).is_err(),
            "{text:?}"
        );
    }

    // Deterministic noise over the token's own alphabet, and over bytes.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.= \n-é"
            .chars()
            .collect();
    for _ in 0..2_000 {
        let len = (next() % 300) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        assert!(verify(&text, &keyring, TokenType::License).is_err());
        let mut bytes = token.clone().into_bytes();
        let at = (next() % bytes.len() as u64) as usize;
        bytes[at] = (next() % 128) as u8;
        let mutated = String::from_utf8(bytes).unwrap();
        if mutated != token {
            let _ = verify(&mutated, &keyring, TokenType::License);
        }
    }
}

/// The parts of a token whose byte length leaves a partial base64 quantum.
fn claims_with_remainder(remainder: usize) -> String {
    (0..3)
        .map(|n| {
            let mut claims = license_claims();
            claims["pad"] = json!("x".repeat(n));
            claims.to_string()
        })
        .find(|text| text.len() % 3 == remainder)
        .unwrap()
}

#[test]
fn padded_base64_is_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let header = b64(header_for(&key, "license").to_string().as_bytes());
    for (remainder, padding) in [(1, "=="), (2, "=")] {
        let claims = claims_with_remainder(remainder);
        let unpadded = b64(claims.as_bytes());
        assert!(verify(
            &forge(&header, &unpadded, &key),
            &keyring,
            TokenType::License
        )
        .is_ok());

        let padded = format!("{unpadded}{padding}");
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE
                .decode(&padded)
                .unwrap(),
            claims.as_bytes(),
            "the padded form carries the same bytes"
        );
        let err = verify(&forge(&header, &padded, &key), &keyring, TokenType::License).unwrap_err();
        assert_eq!(err.code(), "MALFORMED");
        assert!(err.to_string().contains("payload"), "{err}");
    }
    // Padding on the signature part too.
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    assert_eq!(
        code(verify(&format!("{token}=="), &keyring, TokenType::License)),
        "MALFORMED"
    );
}

#[test]
fn non_canonical_base64_trailing_bits_are_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let lax = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let header = b64(header_for(&key, "license").to_string().as_bytes());
    for remainder in [1, 2] {
        let claims = claims_with_remainder(remainder);
        let canonical = b64(claims.as_bytes());
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = canonical.chars().last().unwrap();
        let index = alphabet.find(last).unwrap();
        // The unused low bits of the last character are zero in the
        // canonical form; set one.
        let other = alphabet.as_bytes()[index + 1] as char;
        let non_canonical = format!("{}{other}", &canonical[..canonical.len() - 1]);
        assert_eq!(lax.decode(&non_canonical).unwrap(), claims.as_bytes());

        let err = verify(
            &forge(&header, &non_canonical, &key),
            &keyring,
            TokenType::License,
        )
        .unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "remainder {remainder}");
        assert!(err.to_string().contains("base64"), "{err}");
    }
}

#[test]
fn duplicate_json_keys_are_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let header = header_for(&key, "license");
    let payloads = [
        r#"{"v":1,"id":"lic_1","id":"lic_2","product":"acme","issued_at":"2026-01-01T00:00:00Z"}"#,
        r#"{"v":1,"id":"lic_1","product":"acme","issued_at":"2026-01-01T00:00:00Z","seats":{"max":1,"max":1000}}"#,
        r#"{"v":1,"id":"lic_1","product":"acme","issued_at":"2026-01-01T00:00:00Z","features":[{"code":"a","limit":1,"limit":9}]}"#,
        r#"{"v":1,"id":"lic_1","product":"acme","issued_at":"2026-01-01T00:00:00Z","x":1,"x":1}"#,
    ];
    for payload in payloads {
        let err = verify(
            &forge_json(&header, payload, &key),
            &keyring,
            TokenType::License,
        )
        .unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "{payload}");
        assert!(err.to_string().contains("duplicate key"), "{err}");
    }
    // Verified as a license, read straight from the bytes, as well; with
    // a key repeated inside an unknown field of a nested object, which
    // serde skips unread.
    let nested = r#"{"v":1,"id":"lic_1","product":"acme","issued_at":"2026-01-01T00:00:00Z","seats":{"max":1,"note":1,"note":2}}"#;
    for payload in payloads.iter().chain([&nested]) {
        let err =
            VerifiedLicense::verify(&forge_json(&header, payload, &key), &keyring).unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "{payload}");
        assert!(err.to_string().contains("duplicate"), "{err}");
    }
    // Without the duplicate, the same shape verifies.
    let single = r#"{"v":1,"id":"lic_1","product":"acme","issued_at":"2026-01-01T00:00:00Z","seats":{"max":1}}"#;
    assert!(VerifiedLicense::verify(&forge_json(&header, single, &key), &keyring).is_ok());
    // In the header as well.
    let header = format!(
        r#"{{"alg":"EdDSA","kid":"{}","typ":"license","typ":"machine"}}"#,
        key.kid()
    );
    let token = forge(
        &b64(header.as_bytes()),
        &b64(license_claims().to_string().as_bytes()),
        &key,
    );
    assert_eq!(
        code(verify(&token, &keyring, TokenType::License)),
        "MALFORMED"
    );
}

#[test]
fn armor_label_other_than_the_typ_is_malformed() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    assert!(verify(
        &armor(&token, TokenType::License),
        &keyring,
        TokenType::License
    )
    .is_ok());
    for label in [TokenType::Machine, TokenType::Revocations] {
        let err = verify(&armor(&token, label), &keyring, TokenType::License).unwrap_err();
        assert_eq!(err.code(), "MALFORMED");
        assert!(err.to_string().contains("armor"), "{err}");
        assert_eq!(
            code(verify_any(&armor(&token, label), &keyring, None)),
            "MALFORMED"
        );
    }
}

// ---------------------------------------------------------------------------
// Armor

#[test]
fn armor_round_trips_for_every_type() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    for (typ, label) in [
        (TokenType::License, "LICENSE"),
        (TokenType::Machine, "MACHINE"),
        (TokenType::Revocations, "REVOCATIONS"),
        (TokenType::Keys, "KEYS"),
    ] {
        let token = sign(&json!({"v": 1, "n": "x".repeat(300)}), &key, typ).unwrap();
        let text = armor(&token, typ);
        assert!(text.starts_with(&format!("-----BEGIN ENTITLE {label}-----\n")));
        assert!(text.ends_with(&format!("-----END ENTITLE {label}-----\n")));
        assert_eq!(dearmor(&text).unwrap(), (token.clone(), Some(typ)));
        let verified = verify(&text, &keyring, typ).unwrap();
        assert_eq!(verified.compact(), token);
    }
}

#[test]
fn armor_wraps_at_64_columns() {
    let key = vendor_key();
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    assert!(token.len() > 2 * 64);
    let text = armor(&token, TokenType::License);
    let lines: Vec<&str> = text.lines().collect();
    let body = &lines[1..lines.len() - 1];
    assert_eq!(body.len(), token.len().div_ceil(64));
    for line in &body[..body.len() - 1] {
        assert_eq!(line.len(), 64, "{line}");
    }
    assert!((1..=64).contains(&body[body.len() - 1].len()));
    assert_eq!(body.concat(), token);
}

#[test]
fn bare_and_armored_tokens_accept_surrounding_whitespace_and_crlf() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let armored = armor(&token, TokenType::License);
    let texts = [
        format!("  \n\t{token}\r\n\n "),
        format!("{token}\n"),
        format!("\n\n{armored}\n\n"),
        armored.replace('\n', "\r\n"),
        format!("  {}", armored.replace('\n', "\n  ")),
    ];
    for text in &texts {
        assert_eq!(
            verify(text, &keyring, TokenType::License)
                .unwrap()
                .compact(),
            token,
            "{text:?}"
        );
    }
    // Whitespace inside a bare token is not surrounding whitespace.
    let (head, tail) = token.split_at(40);
    assert_eq!(
        code(verify(
            &format!("{head} {tail}"),
            &keyring,
            TokenType::License
        )),
        "MALFORMED"
    );
    assert_eq!(
        code(verify(
            &format!("{head}\n{tail}"),
            &keyring,
            TokenType::License
        )),
        "MALFORMED"
    );
}

#[test]
fn broken_armor_is_malformed() {
    let key = vendor_key();
    let token = sign(&license_claims(), &key, TokenType::License).unwrap();
    let armored = armor(&token, TokenType::License);
    let broken = [
        armored.replace("END ENTITLE LICENSE", "END ENTITLE MACHINE"),
        armored.replace("BEGIN ENTITLE LICENSE", "BEGIN ENTITLE LICENCE"),
        armored.replace("-----END ENTITLE LICENSE-----\n", ""),
        armored.replace(
            "-----BEGIN ENTITLE LICENSE-----",
            "-----BEGIN ENTITLE LICENSE",
        ),
        armored.replacen('\n', "\nab cd\n", 1),
        "-----BEGIN ENTITLE LICENSE-----\n\n-----END ENTITLE LICENSE-----".to_owned(),
    ];
    for text in &broken {
        assert_eq!(code(dearmor(text)), "MALFORMED", "{text}");
    }
}

// ---------------------------------------------------------------------------
// The license document

fn license_with(changes: Value) -> Value {
    let mut license = license_claims();
    for (key, value) in changes.as_object().unwrap() {
        license[key] = value.clone();
    }
    license
}

fn refusal_of(document: Value) -> Error {
    License::from_json(&document).expect_err("the document should be refused")
}

#[test]
fn the_base_document_is_valid() {
    let license = License::from_json(&license_claims()).unwrap();
    assert_eq!(license.id, "lic_1");
    assert!(license.enabled);
    assert!(license.extra.is_empty());
}

#[test]
fn each_document_rule_is_malformed_naming_its_field() {
    let cases = [
        (
            json!({"seats": {"max": 5, "hard_max": 4}}),
            "seats.hard_max",
        ),
        (
            json!({"features": [{"code": "api", "consumption": {"max": 10, "reset": "hourly"}}]}),
            "features[0].consumption.reset",
        ),
        (json!({"grace_secs": -1}), "grace_secs"),
        (
            json!({"starts_at": "2026-02-01T00:00:00Z", "expires_at": "2026-02-01T00:00:00Z"}),
            "starts_at",
        ),
        (
            json!({"starts_at": "2026-03-01T00:00:00Z", "expires_at": "2026-02-01T00:00:00Z"}),
            "starts_at",
        ),
        (
            json!({"features": [{"code": "a"}, {"code": "b"}, {"code": "a"}]}),
            "features[2].code",
        ),
        (json!({"v": 2}), "v"),
        (json!({"id": ""}), "id"),
        (json!({"product": "a\u{7}b"}), "product"),
        (json!({"id": "x".repeat(257)}), "id"),
        (json!({"issued_at": "yesterday"}), "issued_at"),
        (json!({"seats": {"max": -1}}), "seats.max"),
        (
            json!({"seats": {"max": 1, "active_window_secs": 0}}),
            "seats.active_window_secs",
        ),
        (
            json!({"floating": {"seats": 2, "lease_secs": 0}}),
            "floating.lease_secs",
        ),
        (
            json!({"floating": {"seats": 2, "lease_secs": 60, "borrow_max_secs": -1}}),
            "floating.borrow_max_secs",
        ),
        (
            json!({"features": [{"code": "a", "limit": -5}]}),
            "features[0].limit",
        ),
        (
            json!({"features": [{"code": "a", "floating": {"seats": 1, "lease_secs": 60, "borrow_max_secs": -1}}]}),
            "features[0].floating.borrow_max_secs",
        ),
        (json!({"on_expiry": "maybe"}), "on_expiry"),
        (json!({"kind": "forever"}), "kind"),
        (json!({"enabled": "yes"}), "enabled"),
    ];
    for (changes, field) in cases {
        for err in refusals_by_every_reader(&license_with(changes.clone())) {
            assert_eq!(err.code(), "MALFORMED", "{changes}: {err}");
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{changes}: `{err}` does not name `{field}`"
            );
        }
    }
    // Missing required fields are named too.
    for field in ["v", "id", "product", "issued_at"] {
        let mut document = license_claims();
        document.as_object_mut().unwrap().remove(field);
        for err in refusals_by_every_reader(&document) {
            assert_eq!(err.code(), "MALFORMED");
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }
}

/// The refusals of the three ways a document is read: from a `Value`, from
/// bytes, and from a signed token (the bytes path behind verification).
fn refusals_by_every_reader(document: &Value) -> [Error; 3] {
    let key = vendor_key();
    let token = sign(document, &key, TokenType::License).unwrap();
    [
        refusal_of(document.clone()),
        License::from_json_slice(document.to_string().as_bytes())
            .expect_err("from_json_slice should refuse it"),
        VerifiedLicense::verify(&token, &keyring_of(&key))
            .expect_err("verification should refuse it"),
    ]
}

#[test]
fn every_reader_reads_a_valid_document_alike() {
    let document = license_with(json!({
        "customer": {"name": "Initech", "tags": ["a", {"b": null}]},
        "metadata": null,
        "seats": {"max": 5},
        "features": [{"code": "a", "x": [1, 2.5, "3"]}, {"code": "b", "consumption": {"reset": "weekly"}}],
        "x_unknown": {"nested": {"deep": true}},
    }));
    let key = vendor_key();
    let token = sign(&document, &key, TokenType::License).unwrap();
    let from_value = License::from_json(&document).unwrap();
    let from_bytes = License::from_json_slice(document.to_string().as_bytes()).unwrap();
    let verified = VerifiedLicense::verify(&token, &keyring_of(&key)).unwrap();
    assert_eq!(from_bytes, from_value);
    assert_eq!(*verified.license(), from_value);
    assert_eq!(from_value.metadata, None);
    assert_eq!(from_value.extra["x_unknown"]["nested"]["deep"], true);
}

#[test]
fn duplicate_keys_anywhere_in_a_license_are_refused_by_the_bytes_readers() {
    // Verification reads a license from the signed bytes, which can hold
    // a repeat that a `Value` cannot: it must be refused everywhere, inside
    // free-form and unknown fields too.
    let base = r#""v":1,"id":"lic_1","product":"acme","issued_at":"2026-01-01T00:00:00Z""#;
    let documents = [
        format!(r#"{{{base},"id":"lic_2"}}"#),
        format!(r#"{{{base},"\u0069d":"lic_2"}}"#),
        format!(r#"{{{base},"x":1,"x":2}}"#),
        format!(r#"{{{base},"customer":{{"name":"a","name":"b"}}}}"#),
        format!(r#"{{{base},"metadata":[{{"k":1,"k":1}}]}}"#),
        format!(r#"{{{base},"custom_fields":{{"a":{{"b":1,"b":2}}}}}}"#),
        format!(r#"{{{base},"x_new":{{"deep":{{"k":1,"k":2}}}}}}"#),
        format!(r#"{{{base},"seats":{{"max":1,"max":9}}}}"#),
        format!(r#"{{{base},"features":[{{"code":"a","code":"b"}}]}}"#),
        format!(r#"{{{base},"features":[{{"code":"a","x":1,"x":2}}]}}"#),
        format!(r#"{{{base},"features":[{{"code":"a","x":{{"y":1,"y":1}}}}]}}"#),
        format!(r#"{{{base},"features":[{{"code":"a","consumption":{{"max":1,"max":2}}}}]}}"#),
    ];
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let header = header_for(&key, "license");
    for document in &documents {
        // A `Value` cannot hold the duplicate: serde_json keeps the last.
        let lenient: Value = serde_json::from_str(document).unwrap();
        assert!(License::from_json(&lenient).is_ok(), "{document}");

        let err = License::from_json_slice(document.as_bytes()).unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "{document}");
        assert!(err.to_string().contains("duplicate"), "{document}: {err}");
        let err =
            VerifiedLicense::verify(&forge_json(&header, document, &key), &keyring).unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "{document}");
        assert!(err.to_string().contains("duplicate"), "{document}: {err}");
    }
}

#[test]
fn the_boundaries_of_each_rule_are_accepted() {
    let accepted = [
        json!({"seats": {"max": 5, "hard_max": 5}}),
        json!({"seats": {"max": 5}}),
        json!({"grace_secs": 0}),
        json!({"starts_at": "2026-01-31T23:59:59Z", "expires_at": "2026-02-01T00:00:00Z"}),
        json!({"features": [{"code": "api", "consumption": {"max": 10, "reset": "monthly"}}]}),
        json!({"id": "x".repeat(256)}),
        json!({"floating": {"seats": 0, "lease_secs": 1, "borrow_max_secs": 0}}),
    ];
    for changes in accepted {
        License::from_json(&license_with(changes.clone()))
            .unwrap_or_else(|e| panic!("{changes}: {e}"));
    }
}

#[test]
fn more_than_1024_features_is_too_large() {
    let features = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"code": format!("f{i}")}))
            .collect::<Vec<_>>()
            .into()
    };
    let at_limit = license_with(json!({ "features": features(MAX_FEATURES) }));
    assert_eq!(
        License::from_json(&at_limit).unwrap().features.len(),
        MAX_FEATURES
    );
    let over = license_with(json!({ "features": features(MAX_FEATURES + 1) }));
    let err = refusal_of(over);
    assert_eq!(err.code(), "TOO_LARGE");
    assert!(err.to_string().contains("features"), "{err}");
}

#[test]
fn unknown_fields_are_kept_in_extra() {
    let document = license_with(json!({
        "x_reseller": {"name": "Acme EU", "tier": 2},
        "future_flag": true,
        "features": [{"code": "export", "x_ui_hint": "beta"}],
    }));
    let license = License::from_json(&document).unwrap();
    assert_eq!(license.extra["x_reseller"]["tier"], 2);
    assert_eq!(license.extra["future_flag"], true);
    assert_eq!(license.extra.len(), 2);
    let feature = license.feature("export").unwrap();
    assert_eq!(feature.extra["x_ui_hint"], "beta");
    assert_eq!(feature.extra.len(), 1);
    // And they survive a round trip through serde.
    let again = License::from_json(&serde_json::to_value(&license).unwrap()).unwrap();
    assert_eq!(again, license);
}

#[test]
fn a_signed_invalid_document_is_refused_after_verification() {
    let key = vendor_key();
    let keyring = keyring_of(&key);
    let document = license_with(json!({"seats": {"max": 5, "hard_max": 4}}));
    let token = sign(&document, &key, TokenType::License).unwrap();
    assert!(verify(&token, &keyring, TokenType::License).is_ok());
    let err = VerifiedLicense::verify(&token, &keyring).unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(err.to_string().contains("seats.hard_max"), "{err}");
}

/// A repeated feature code is refused whether the license has few
/// features (checked by a scan) or many (checked with a hash set), and
/// wherever the repeat is.
#[test]
fn a_repeated_feature_code_is_refused_at_any_count() {
    for count in [2, 5, 32, 33, 100] {
        for repeat_of in [0, (count - 1) / 2, count - 2] {
            let mut features: Vec<Value> = (0..count)
                .map(|i| json!({"code": format!("f{i}")}))
                .collect();
            features[count - 1] = json!({"code": format!("f{repeat_of}")});
            let mut document = license_claims();
            document["features"] = Value::Array(features.clone());
            let err = License::from_json(&document).expect_err("a repeat is refused");
            assert_eq!(err.code(), "MALFORMED");
            assert!(err.to_string().contains("repeats"), "{err}");
            features[count - 1] = json!({"code": "distinct"});
            document["features"] = Value::Array(features);
            License::from_json(&document).expect("distinct codes are accepted");
        }
    }
}
