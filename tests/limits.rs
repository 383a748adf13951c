//! Every input path is bounded: giant or deeply nested input is refused
//! quickly with TOO_LARGE or MALFORMED. (Token size, filter size and depth,
//! and features per license are covered in tests/token.rs and
//! tests/query.rs.)

mod common;

use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use entitle::engine::ActivationRequest;
use entitle::token::{Keyring, TokenType};
use serde_json::json;

#[test]
fn deeply_nested_json_in_a_token_is_refused_without_recursing_away() {
    let mut keyring = Keyring::new();
    let vendor = Vendor::new();
    keyring.add(vendor.key.public_key().clone());
    let header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "EdDSA", "kid": vendor.key.kid(), "typ": "license"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode("[".repeat(40_000));
    let input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(entitle::token::hazmat::sign_bytes(
        &vendor.key,
        input.as_bytes(),
    ));
    let token = format!("{input}.{signature}");
    let started = Instant::now();
    let err = entitle::token::verify(&token, &keyring, TokenType::License).unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(started.elapsed().as_secs() < 2);
}

#[test]
fn usage_pages_are_capped() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic", "seats": {"max": 2000}})))
        .unwrap();
    for i in 0..1100 {
        engine.add_user(&format!("u{i:04}"), "member").unwrap();
    }
    let page = engine.usage(0, usize::MAX);
    assert_eq!(page.users.len(), 1000);
    assert_eq!(page.summary["member"].total, 1100);
    assert!(engine.usage(usize::MAX, 10).users.is_empty());
}

#[test]
fn oversized_requests_ids_and_lists_are_refused() {
    let huge = format!(r#"{{"v":1,"license_id":"{}"}}"#, "x".repeat(20_000));
    assert_eq!(
        ActivationRequest::from_json_text(&huge).unwrap_err().code(),
        "TOO_LARGE"
    );
    assert_eq!(
        ActivationRequest::from_json_text("{\"v\":1}")
            .unwrap_err()
            .code(),
        "MALFORMED"
    );

    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    let ids: Vec<String> = (0..10_001).map(|i| format!("l{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let list = vendor.revocations(&ids, T0);
    assert_eq!(
        engine.apply_revocations(&list).unwrap_err().code(),
        "TOO_LARGE"
    );

    let long = "u".repeat(257);
    assert_eq!(
        engine.add_user(&long, "member").unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        engine.checkout(&long, None).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        engine.add_user("", "member").unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
}
