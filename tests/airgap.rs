//! Air-gapped installs: offline activation round trip and revocations,
//! through the library.

mod common;

use common::*;
use entitle::engine::{ActivationRequest, Applied};
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Reason, Timestamp};
use serde_json::json;

fn certificate(
    key: &SigningKey,
    license_id: &str,
    fingerprint: &str,
    expires_at: Option<&str>,
) -> String {
    let mut payload = json!({"v": 1, "license_id": license_id, "fingerprint": fingerprint,
        "issued_at": "2026-01-01T00:00:00Z"});
    if let Some(end) = expires_at {
        payload["expires_at"] = json!(end);
    }
    entitle::token::armor(
        &sign(&payload, key, TokenType::Machine).unwrap(),
        TokenType::Machine,
    )
}

#[test]
fn request_respond_apply_round_trip() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let install = vendor
        .builder(&clock)
        .fingerprint("desk-1")
        .build()
        .unwrap();
    let license = vendor.license(
        json!({"id": "lic", "activations": {"max": 1, "counted_by": "vendor"},
        "features": [{"code": "cad"}]}),
    );
    install.add_license(&license).unwrap();
    assert_eq!(install.check_feature("cad").reason(), Reason::NotActivated);

    // The install writes a request; a person carries it to the vendor.
    let request = install.activation_request(None).unwrap();
    let text = serde_json::to_string(&request).unwrap();
    let carried = ActivationRequest::from_json_text(&text).unwrap();
    assert_eq!(carried.fingerprint, "desk-1");

    // The vendor counts it in its own state and signs a certificate.
    let vendor_state = vendor.engine(&clock);
    vendor_state.add_license(&license).unwrap();
    vendor_state
        .record_issued_certificate(&carried, None)
        .unwrap();
    let other = ActivationRequest {
        fingerprint: "desk-2".into(),
        ..carried.clone()
    };
    assert_eq!(
        vendor_state
            .record_issued_certificate(&other, None)
            .unwrap_err()
            .code(),
        "ACTIVATION_LIMIT"
    );
    let cert = certificate(
        &vendor.key,
        &carried.license_id,
        &carried.fingerprint,
        Some("2026-06-01T00:00:00Z"),
    );

    // Back at the install: applied offline.
    let applied = install.apply(&cert).unwrap();
    assert_eq!(
        applied,
        Applied::Machine {
            license_id: "lic".into(),
            fingerprint: "desk-1".into(),
            expires_at: Some(Timestamp::parse("2026-06-01T00:00:00Z").unwrap())
        }
    );
    assert!(install.check_feature("cad").allowed());
    let d = install.check_feature("cad");
    assert_eq!(d.until(), Some(t("2026-06-01T00:00:00Z")));
    // The certificate stops counting when it expires.
    clock.set(t("2026-06-01T00:00:00Z"));
    assert_eq!(install.check_feature("cad").reason(), Reason::NotActivated);
}

#[test]
fn bad_certificates_are_refused_and_change_nothing() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let install = vendor
        .builder(&clock)
        .fingerprint("desk-1")
        .build()
        .unwrap();
    install
        .add_license(
            &vendor.license(json!({"id": "lic", "activations": {"max": 1},
            "features": [{"code": "cad"}]})),
        )
        .unwrap();
    let stranger = SigningKey::from_seed(&[9; 32]);
    let cases = [
        (
            certificate(&vendor.key, "lic", "desk-2", None),
            "FINGERPRINT_MISMATCH",
        ),
        (
            certificate(&vendor.key, "other", "desk-1", None),
            "LICENSE_NOT_FOUND",
        ),
        (
            certificate(&vendor.key, "lic", "desk-1", Some("2025-12-31T00:00:00Z")),
            "EXPIRED",
        ),
        (certificate(&stranger, "lic", "desk-1", None), "UNKNOWN_KEY"),
    ];
    for (cert, code) in cases {
        assert_eq!(install.apply(&cert).unwrap_err().code(), code);
        assert_eq!(install.apply_certificate(&cert).unwrap_err().code(), code);
    }
    // A certificate is not a license, nor a license a certificate.
    let cert = certificate(&vendor.key, "lic", "desk-1", None);
    assert_eq!(install.add_license(&cert).unwrap_err().code(), "WRONG_TYPE");
    let license = vendor.license(json!({"id": "x"}));
    assert_eq!(
        install.apply_certificate(&license).unwrap_err().code(),
        "WRONG_TYPE"
    );
    assert!(install.activations().is_empty());
    assert_eq!(install.check_feature("cad").reason(), Reason::NotActivated);
    // The good one works.
    install.apply(&cert).unwrap();
    assert!(install.check_feature("cad").allowed());
}

#[test]
fn revocations_travel_as_files() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let install = vendor.engine(&clock);
    install
        .add_license(&vendor.license(json!({"id": "lic", "features": [{"code": "cad"}]})))
        .unwrap();
    let list = entitle::token::armor(&vendor.revocations(&["lic"], T0), TokenType::Revocations);
    assert_eq!(
        install.apply(&list).unwrap(),
        Applied::Revocations {
            ids: vec!["lic".into()]
        }
    );
    assert_eq!(install.check_feature("cad").reason(), Reason::Revoked);
    let again = vendor.license(json!({"id": "lic", "serial": 9, "features": [{"code": "cad"}]}));
    assert_eq!(
        install.add_license(&again).unwrap_err().code(),
        "LICENSE_REVOKED"
    );
}
