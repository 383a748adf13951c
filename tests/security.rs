//! Tests named after the threat they stop, at the level of the engine and
//! its state. Token-level attacks (alg none, HS256 with the public key,
//! S+L signatures, small-order keys, non-canonical base64, duplicate keys)
//! are in tests/token.rs; copying state between machines in
//! tests/devices.rs; hand-edited licenses and corrupt files in
//! tests/durability.rs; crashes in tests/crash.rs.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use entitle::store::FileStore;
use entitle::token::{sign_with_kid, SigningKey, TokenType};
use entitle::Reason;
use serde_json::json;

#[test]
fn forged_license_grants_nothing_and_changes_nothing() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    let token = vendor.license(json!({"id": "lic", "features": [{"code": "basic"}]}));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let richer = json!({"v": 1, "id": "lic", "product": "acme", "issued_at": T0,
        "features": [{"code": "basic"}, {"code": "enterprise"}]});
    parts[1] = URL_SAFE_NO_PAD.encode(richer.to_string());
    assert_eq!(
        engine.add_license(&parts.join(".")).unwrap_err().code(),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        engine.check_feature("enterprise").reason(),
        Reason::NotLicensed
    );
    assert!(engine.license_infos().is_empty());
}

#[test]
fn key_substitution_a_trusted_kid_over_another_keys_signature() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    let attacker = SigningKey::from_seed(&[66; 32]);
    let doc = json!({"v": 1, "id": "lic", "product": "acme", "issued_at": T0,
        "features": [{"code": "enterprise"}]});
    // The header names the vendor's key; the attacker's key signed.
    let token = sign_with_kid(&doc, &attacker, vendor.key.kid(), TokenType::License).unwrap();
    assert_eq!(
        engine.add_license(&token).unwrap_err().code(),
        "SIGNATURE_INVALID"
    );
    // The attacker's own kid is simply unknown.
    let token = entitle::token::sign(&doc, &attacker, TokenType::License).unwrap();
    assert_eq!(
        engine.add_license(&token).unwrap_err().code(),
        "UNKNOWN_KEY"
    );
}

#[test]
fn replay_of_an_older_serial_is_refused_even_after_a_restart() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        vendor
            .builder(&clock)
            .store(FileStore::create(dir.path()).unwrap())
            .build()
            .unwrap()
    };
    let old = vendor.license(json!({"id": "lic", "serial": 1, "seats": {"max": 50}}));
    let new = vendor.license(json!({"id": "lic", "serial": 2, "seats": {"max": 5}}));
    {
        let engine = open();
        engine.add_license(&new).unwrap();
        engine.remove_license("lic", false).unwrap();
    }
    let engine = open();
    assert_eq!(
        engine.add_license(&old).unwrap_err().code(),
        "LICENSE_REPLAYED"
    );
    engine.add_license(&new).unwrap();
    assert_eq!(engine.status().license_seats, 5);
}

#[test]
fn a_token_of_one_type_is_never_accepted_as_another() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    let revocations = vendor.revocations(&["lic"], T0);
    assert_eq!(
        engine.add_license(&revocations).unwrap_err().code(),
        "WRONG_TYPE"
    );
    let license = vendor.license(json!({"id": "lic"}));
    assert_eq!(
        engine.apply_revocations(&license).unwrap_err().code(),
        "WRONG_TYPE"
    );
    // Relabelling the armor does not change what the token is.
    let armored = entitle::token::armor(&revocations, TokenType::License);
    assert_eq!(
        engine.add_license(&armored).unwrap_err().code(),
        "MALFORMED"
    );
}

#[test]
fn an_old_token_cannot_clear_a_clock_rollback() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "sub", "issued_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-02-01T00:00:00Z", "features": [{"code": "f"}]})),
        )
        .unwrap();
    // The clock jumps ahead by mistake (or on purpose), then comes back.
    clock.set(t("2026-01-31T00:00:00Z"));
    engine.refresh().unwrap();
    clock.set(t("2026-01-05T00:00:00Z"));
    assert_eq!(engine.check_feature("f").reason(), Reason::ClockTampered);
    // Re-adding every token seen so far does not help...
    let replayed = vendor.license(json!({"id": "other", "issued_at": "2026-01-01T00:00:00Z"}));
    engine.add_license(&replayed).unwrap();
    assert_eq!(engine.check_feature("f").reason(), Reason::ClockTampered);
    // ...only a token the vendor signed later than all of them does: the
    // guard comes down to its issued_at, and the clock is right again.
    let fresh = vendor.license(json!({"id": "renewal", "issued_at": "2026-01-05T00:00:00Z"}));
    engine.add_license(&fresh).unwrap();
    assert_eq!(engine.check_feature("f").reason(), Reason::Ok);
}

#[test]
fn a_license_from_a_key_no_longer_trusted_grants_nothing_after_restart() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = vendor
            .builder(&clock)
            .store(FileStore::create(dir.path()).unwrap())
            .build()
            .unwrap();
        engine
            .add_license(&vendor.license(json!({"id": "lic", "features": [{"code": "f"}]})))
            .unwrap();
    }
    // A build that dropped the old key (rotation) opens the same state.
    let rotated = SigningKey::from_seed(&[5; 32]);
    let engine = entitle::Engine::builder("acme")
        .trust(rotated.public_key().clone())
        .clock(clock.clone())
        .store(FileStore::create(dir.path()).unwrap())
        .background_refresh(false)
        .build()
        .unwrap();
    assert_eq!(engine.check_feature("f").reason(), Reason::NotLicensed);
}
