//! Air-gapped installs, through the library: offline activation round
//! trip and revocations; and the way back (docs/formats.md): install
//! keys, deactivation receipts the vendor's books accept once, and usage
//! reports they ingest.

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
        .in_memory()
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
    let vendor_state = vendor.books(&clock);
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
        .in_memory()
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

// ---- both ways: install keys, receipts, usage reports (docs/formats.md) ---

use entitle::books::Books;
use entitle::license::{DeactivationReceipt, UsageReport};
use entitle::store::{FileStore, Store};
use entitle::token::PublicKey;
use entitle::{Engine, ManualClock};

/// A node-locked license the vendor counts (one device, `transfers`
/// transfers), with a metered feature and seats.
fn desk_license(vendor: &Vendor, transfers: u32) -> String {
    vendor.license(json!({"id": "lic", "seats": {"max": 5},
        "activations": {"max": 1, "max_transfers": transfers, "counted_by": "vendor"},
        "features": [{"code": "cad"},
                     {"code": "api", "consumption": {"max": 100, "reset": "monthly"}}]}))
}

/// The vendor's books (holding `license`) and the install `fingerprint`
/// activated through them: request, record, certificate bound to the
/// install key, apply.
struct Both {
    books: Books,
    install: Engine,
}

fn install_on(vendor: &Vendor, clock: &ManualClock, fingerprint: &str, license: &str) -> Engine {
    let install = vendor
        .builder(clock)
        .in_memory()
        .fingerprint(fingerprint)
        .build()
        .unwrap();
    install.add_license(license).unwrap();
    install
}

/// The vendor's answer to `request`, as `entitle respond` makes it.
/// The vendor's answer, signed now (as `entitle respond` signs it: a
/// certificate signed before a device was deactivated with a receipt
/// does not activate it again).
fn respond(vendor: &Vendor, books: &Books, request: &ActivationRequest) -> String {
    books.record_issued_certificate(request, None).unwrap();
    let mut payload = json!({"v": 1, "license_id": request.license_id,
        "fingerprint": request.fingerprint, "issued_at": books.now().to_string()});
    if let Some(key) = &request.install_key {
        payload["install_key"] = json!(key);
    }
    vendor.sign(payload, TokenType::Machine)
}

fn both(vendor: &Vendor, clock: &ManualClock, transfers: u32) -> Both {
    let license = desk_license(vendor, transfers);
    let books = vendor.books(clock);
    books.add_license(&license).unwrap();
    let install = install_on(vendor, clock, "desk-1", &license);
    let request = install.activation_request(None).unwrap();
    install.apply(&respond(vendor, &books, &request)).unwrap();
    assert!(install.check_feature("cad").allowed());
    Both { books, install }
}

#[test]
fn every_install_gets_its_own_key_and_its_requests_carry_it() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        vendor
            .builder(&clock)
            .fingerprint("desk-1")
            .store(FileStore::create(dir.path()).unwrap())
            .build()
            .unwrap()
    };
    let first = open().install_key().expect("made on first open");
    // Kept in the state: the same key every time the state is opened.
    let engine = open();
    assert_eq!(engine.install_key().unwrap(), first);
    engine.add_license(&desk_license(&vendor, 1)).unwrap();
    let request = engine.activation_request(None).unwrap();
    assert_eq!(request.install_key.as_deref(), Some(&*first.to_base64url()));
    let carried =
        ActivationRequest::from_json_text(&serde_json::to_string(&request).unwrap()).unwrap();
    assert_eq!(carried.install_key, request.install_key);
    // Another state, another key; and a program's in-memory engine has one.
    let other = vendor.engine(&clock).install_key().unwrap();
    assert_ne!(other, first);

    // The secret is in the state, and never in anything printed.
    let (_, persisted) = FileStore::open(dir.path()).unwrap().load().unwrap();
    let seed = persisted.settings.install_key.clone().expect("kept");
    assert_eq!(seed.expose().len(), 43, "base64url of 32 bytes");
    for shown in [
        format!("{persisted:?}"),
        format!("{:?}", persisted.settings),
        format!("{engine:?}"),
    ] {
        assert!(!shown.contains(seed.expose()), "{shown}");
    }
}

#[test]
fn a_request_with_a_bad_install_key_is_malformed() {
    let text = json!({"v": 1, "license_id": "lic", "fingerprint": "desk-1", "hostname": "h",
        "nonce": "n", "created_at": T0, "install_key": "not-a-key"})
    .to_string();
    let err = ActivationRequest::from_json_text(&text).unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(err.to_string().contains("install_key"), "{err}");
    // Requests from installs older than install keys still read.
    let old = json!({"v": 1, "license_id": "lic", "fingerprint": "desk-1", "hostname": "h",
        "nonce": "n", "created_at": T0})
    .to_string();
    assert_eq!(
        ActivationRequest::from_json_text(&old).unwrap().install_key,
        None
    );
}

#[test]
fn a_certificate_binds_the_device_to_the_install_that_asked() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let Both { books, install } = both(&vendor, &clock, 1);
    // The books recorded the key the request carried.
    let key = install.install_key().unwrap().to_base64url();
    assert_eq!(books.activations()[0].install_key.as_deref(), Some(&*key));

    // A state made again on the same device has another key: the
    // certificate issued to the first is not its.
    let license = desk_license(&vendor, 1);
    let again = install_on(&vendor, &clock, "desk-1", &license);
    let request = install.activation_request(None).unwrap();
    let cert = vendor.sign(
        json!({"v": 1, "license_id": "lic", "fingerprint": "desk-1", "issued_at": T0,
               "install_key": request.install_key}),
        TokenType::Machine,
    );
    let err = again.apply(&cert).unwrap_err();
    assert_eq!(err.code(), "FINGERPRINT_MISMATCH");
    assert!(err.to_string().contains("another install"), "{err}");
    assert_eq!(again.check_feature("cad").reason(), Reason::NotActivated);
    // A certificate naming no install key (a vendor that does not bind)
    // still applies.
    let unbound = vendor.sign(
        json!({"v": 1, "license_id": "lic", "fingerprint": "desk-1", "issued_at": T0}),
        TokenType::Machine,
    );
    again.apply(&unbound).unwrap();
    assert!(again.check_feature("cad").allowed());
    // And one whose install key is not a key is malformed.
    let garbled = vendor.sign(
        json!({"v": 1, "license_id": "lic", "fingerprint": "desk-1", "issued_at": T0,
               "install_key": "AAAA"}),
        TokenType::Machine,
    );
    assert_eq!(again.apply(&garbled).unwrap_err().code(), "MALFORMED");
}

#[test]
fn a_receipt_frees_the_slot_in_the_books_once() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let Both { books, install } = both(&vendor, &clock, 2);
    let license = desk_license(&vendor, 2);

    // The slot is taken: a second device is refused.
    let desk2 = install_on(&vendor, &clock, "desk-2", &license);
    let request2 = desk2.activation_request(None).unwrap();
    assert_eq!(
        books
            .record_issued_certificate(&request2, None)
            .unwrap_err()
            .code(),
        "ACTIVATION_LIMIT"
    );

    // Offline, the install deactivates itself and signs a receipt.
    clock.advance(DAY);
    let issued = install.deactivate_with_receipt("desk-1", None).unwrap();
    assert!(!issued.again);
    assert!(issued
        .token
        .starts_with("-----BEGIN ENTITLE RECEIPT-----\n"));
    assert_eq!(issued.kid, install.install_key().unwrap().kid());
    let receipt = &issued.receipt;
    assert_eq!(
        (
            receipt.v,
            receipt.license_id.as_str(),
            receipt.fingerprint.as_str()
        ),
        (1, "lic", "desk-1")
    );
    assert_eq!(receipt.deactivated_at, t("2026-01-02T00:00:00Z"));
    assert!(!receipt.nonce.is_empty());
    assert_eq!(install.check_feature("cad").reason(), Reason::NotActivated);
    assert!(install.activations().is_empty());
    // Anyone holding the install's public key can check it.
    let public = install.install_key().unwrap();
    assert_eq!(
        &DeactivationReceipt::verify(&issued.token, &public).unwrap(),
        receipt
    );

    // The books take it: the slot is free, one transfer counted.
    let accepted = books.accept_receipt(&issued.token).unwrap();
    assert_eq!(&accepted.receipt, receipt);
    assert_eq!(accepted.kid, public.kid());
    assert_eq!((accepted.transfers, accepted.max_transfers), (1, Some(2)));
    assert!(books.activations().is_empty());
    books.record_issued_certificate(&request2, None).unwrap();

    // A receipt counts once.
    let err = books.accept_receipt(&issued.token).unwrap_err();
    assert_eq!(err.code(), "RECEIPT_REPLAYED");
    assert!(err.to_string().contains("2026-01-02T00:00:00Z"), "{err}");
    // Even once the same device is activated again, with the same key:
    // the old receipt does not free the new activation.
    books
        .accept_receipt(&desk2_receipt(&desk2, &vendor))
        .unwrap();
    let request1 = install.activation_request(None).unwrap();
    install.apply(&respond(&vendor, &books, &request1)).unwrap();
    assert_eq!(
        books.accept_receipt(&issued.token).unwrap_err().code(),
        "RECEIPT_REPLAYED"
    );
    assert_eq!(books.activations().len(), 1);
}

/// desk-2 activated through the books, then deactivated with a receipt.
fn desk2_receipt(desk2: &Engine, vendor: &Vendor) -> String {
    let request = desk2.activation_request(None).unwrap();
    let cert = vendor.sign(
        json!({"v": 1, "license_id": "lic", "fingerprint": "desk-2", "issued_at": T0,
               "install_key": request.install_key}),
        TokenType::Machine,
    );
    desk2.apply(&cert).unwrap();
    desk2.deactivate_with_receipt("desk-2", None).unwrap().token
}

#[test]
fn forged_foreign_and_unknown_receipts_are_refused_and_change_nothing() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let Both { books, install } = both(&vendor, &clock, 2);
    let license = desk_license(&vendor, 2);
    let good = install.deactivate_with_receipt("desk-1", None).unwrap();
    let compact = entitle::token::dearmor(&good.token).unwrap().0;

    // Altered: another device named in the payload, signature kept.
    let parts: Vec<&str> = compact.split('.').collect();
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
            .unwrap(),
    )
    .unwrap();
    payload["deactivated_at"] = json!("2025-01-01T00:00:00Z");
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            payload.to_string()
        ),
        parts[2]
    );
    // Foreign: another install on the same device signs one (its state was
    // made again, or a stranger's copy).
    let stranger = install_on(&vendor, &clock, "desk-1", &license);
    let foreign = stranger.sign_receipt_for_test();
    // Unknown: a device these books never activated.
    let elsewhere = install_on(&vendor, &clock, "desk-9", &license);
    let never = elsewhere.sign_receipt_for_test_on("desk-9");
    for (text, code, says) in [
        (altered.as_str(), "RECEIPT_INVALID", "does not verify"),
        (foreign.as_str(), "RECEIPT_INVALID", "does not verify"),
        (never.as_str(), "RECEIPT_INVALID", "never activated"),
        ("not a receipt", "MALFORMED", "token"),
    ] {
        let err = books.accept_receipt(text).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    // Tokens of other types are not receipts, nor receipts anything else.
    assert_eq!(
        books.accept_receipt(&license).unwrap_err().code(),
        "WRONG_TYPE"
    );
    assert_eq!(
        books.ingest_report(&good.token).unwrap_err().code(),
        "WRONG_TYPE"
    );
    assert_eq!(install.apply(&good.token).unwrap_err().code(), "WRONG_TYPE");
    assert_eq!(
        install.add_license(&good.token).unwrap_err().code(),
        "WRONG_TYPE"
    );
    // Nothing was freed or counted: the good one still works.
    assert_eq!(books.activations().len(), 1);
    assert_eq!(books.accept_receipt(&good.token).unwrap().transfers, 1);
}

/// Receipts signed by an install for a device it was never activated for:
/// what a stranger's install (or a state made again) can make. Built from
/// the library's own parts, as such an install would.
trait ReceiptForTest {
    fn sign_receipt_for_test(&self) -> String;
    fn sign_receipt_for_test_on(&self, fingerprint: &str) -> String;
}

impl ReceiptForTest for Engine {
    fn sign_receipt_for_test(&self) -> String {
        self.sign_receipt_for_test_on("desk-1")
    }

    fn sign_receipt_for_test_on(&self, fingerprint: &str) -> String {
        // Activated by a certificate naming its own key, then deactivated.
        let vendor = Vendor::new();
        let request = self.activation_request(None).unwrap();
        let cert = vendor.sign(
            json!({"v": 1, "license_id": "lic", "fingerprint": fingerprint,
                   "issued_at": T0, "install_key": request.install_key}),
            TokenType::Machine,
        );
        self.apply(&cert).unwrap();
        self.deactivate_with_receipt(fingerprint, None)
            .unwrap()
            .token
    }
}

#[test]
fn the_books_count_receipts_against_max_transfers() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let Both { books, install } = both(&vendor, &clock, 1);
    let license = desk_license(&vendor, 1);
    books
        .accept_receipt(
            &install
                .deactivate_with_receipt("desk-1", None)
                .unwrap()
                .token,
        )
        .unwrap();
    // The one transfer is used: desk-2 takes the slot, and its own receipt
    // is refused by the books (its install counts its own transfers, and
    // had one left).
    let desk2 = install_on(&vendor, &clock, "desk-2", &license);
    let request = desk2.activation_request(None).unwrap();
    desk2.apply(&respond(&vendor, &books, &request)).unwrap();
    let receipt = desk2.deactivate_with_receipt("desk-2", None).unwrap();
    let err = books.accept_receipt(&receipt.token).unwrap_err();
    assert_eq!(err.code(), "TRANSFER_LIMIT");
    assert!(err.to_string().contains("max_transfers"), "{err}");
    assert_eq!(books.activations().len(), 1, "desk-2 keeps its slot");
}

#[test]
fn deactivating_again_gives_the_kept_receipt() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let Both { books, install } = both(&vendor, &clock, 3);
    let first = install.deactivate_with_receipt("desk-1", None).unwrap();
    clock.advance(3600);
    let again = install.deactivate_with_receipt("desk-1", None).unwrap();
    assert!(again.again);
    assert_eq!(again.token, first.token);
    assert_eq!(again.receipt, first.receipt);
    let by_license = install
        .deactivate_with_receipt("desk-1", Some("lic"))
        .unwrap();
    assert_eq!(by_license.token, first.token);
    // Only one transfer was counted, and the books take it once.
    books.accept_receipt(&again.token).unwrap();
    assert_eq!(
        books.accept_receipt(&first.token).unwrap_err().code(),
        "RECEIPT_REPLAYED"
    );
    // Nothing activated and nothing kept: not activated.
    for (device, license) in [("desk-7", None), ("desk-1", Some("other"))] {
        let err = install
            .deactivate_with_receipt(device, license)
            .unwrap_err();
        assert_eq!(err.code(), "NOT_ACTIVATED", "{err}");
    }
}

#[test]
fn a_device_activated_for_several_licenses_needs_the_license_named() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let install = vendor
        .builder(&clock)
        .in_memory()
        .fingerprint("desk-1")
        .build()
        .unwrap();
    for id in ["lic-a", "lic-b"] {
        install
            .add_license(&vendor.license(json!({"id": id, "activations": {"max": 1},
                "features": [{"code": "cad"}]})))
            .unwrap();
    }
    install
        .activate(&entitle::device::Device::new("desk-1"))
        .unwrap();
    let err = install.deactivate_with_receipt("desk-1", None).unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert!(err.to_string().contains("lic-a, lic-b"), "{err}");
    let a = install
        .deactivate_with_receipt("desk-1", Some("lic-a"))
        .unwrap();
    assert_eq!(a.receipt.license_id, "lic-a");
    assert_eq!(install.activations().len(), 1, "lic-b stays activated");
    // Now only lic-b is active: no name needed.
    let b = install.deactivate_with_receipt("desk-1", None).unwrap();
    assert_eq!(b.receipt.license_id, "lic-b");
    // Two receipts kept: asking again needs the license named.
    assert_eq!(
        install
            .deactivate_with_receipt("desk-1", None)
            .unwrap_err()
            .code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        install
            .deactivate_with_receipt("desk-1", Some("lic-a"))
            .unwrap()
            .token,
        a.token
    );
}

#[test]
fn usage_reports_count_up_and_say_what_was_used() {
    let vendor = Vendor::new();
    let clock = clock_at("2026-03-10T12:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        vendor
            .builder(&clock)
            .fingerprint("desk-1")
            .store(FileStore::create(dir.path()).unwrap())
            .build()
            .unwrap()
    };
    let install = open();
    install
        .add_license(
            &vendor.license(json!({"id": "lic-team", "seats": {"max": 5},
            "assigned_users": ["ann", "bob", "cy"],
            "features": [{"code": "export"},
                         {"code": "api", "consumption": {"max": 100, "reset": "monthly"}},
                         {"code": "render", "consumption": {}}]})),
        )
        .unwrap();
    install
        .add_license(&vendor.license(
            json!({"id": "lic-site", "seats": {"max": 2, "active_window_secs": 86400},
            "activations": {"max": 2}, "features": [{"code": "cad"}]}),
        ))
        .unwrap();
    for user in ["ann", "bob", "dan"] {
        install.add_user(user, "member").unwrap();
    }
    install.consume("api", 40).unwrap();
    install.consume("render", 3).unwrap();
    install
        .activate(&entitle::device::Device::new("desk-1"))
        .unwrap();
    clock.advance(2 * DAY);
    install.record_activity("ann").unwrap();

    let first = install.usage_report().unwrap();
    assert_eq!(first.kid, install.install_key().unwrap().kid());
    assert!(first.token.starts_with("-----BEGIN ENTITLE REPORT-----\n"));
    let report = &first.report;
    assert_eq!(
        (report.v, report.fingerprint.as_str(), report.sequence),
        (1, "desk-1", 1)
    );
    assert_eq!(report.created_at, t("2026-03-12T12:00:00Z"));
    let by_id = |id: &str| report.licenses.iter().find(|l| l.id == id).unwrap().clone();
    let team = by_id("lic-team");
    // ann and bob of the assigned three are users; dan is not assigned.
    assert_eq!((team.active_users, team.activations), (2, 0));
    let features: Vec<_> = team
        .features
        .iter()
        .map(|f| (f.code.as_str(), f.used, f.period_starts_at))
        .collect();
    assert_eq!(
        features,
        [
            ("api", 40, Some(t("2026-03-01T00:00:00Z"))),
            ("render", 3, None)
        ]
    );
    let site = by_id("lic-site");
    // A one-day window: only ann was active since.
    assert_eq!((site.active_users, site.activations), (1, 1));
    assert!(site.features.is_empty());
    assert_eq!(
        &UsageReport::verify(&first.token, &install.install_key().unwrap()).unwrap(),
        report
    );

    // The sequence is durable: it grows across reopening.
    assert_eq!(install.usage_report().unwrap().report.sequence, 2);
    drop(install);
    assert_eq!(open().usage_report().unwrap().report.sequence, 3);
}

#[test]
fn the_books_refuse_replayed_reports_and_report_gaps() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let Both { books, install } = both(&vendor, &clock, 1);
    install.consume("api", 5).unwrap();
    let reports: Vec<_> = (0..4)
        .map(|_| install.usage_report().unwrap().token)
        .collect();

    let one = books.ingest_report(&reports[0]).unwrap();
    assert_eq!((one.report.sequence, one.previous_sequence), (1, None));
    assert!(one.missing.is_empty() && !one.fork && !one.clock_ahead);
    assert_eq!(one.report.licenses[0].features[0].used, 5);
    assert_eq!(one.kid, install.install_key().unwrap().kid());

    // Report 2 is lost on the way; 4 arrives: the gap is reported, not refused.
    let four = books.ingest_report(&reports[3]).unwrap();
    assert_eq!(four.previous_sequence, Some(1));
    let gaps: Vec<(u64, u64)> = four.missing.iter().map(|g| (g.from, g.to)).collect();
    assert_eq!(gaps, [(2, 3)]);
    // Its predecessor never came: nothing to check it against, no fork.
    assert!(!four.fork);

    // Below the last one taken, a report is refused: late, or a replay of
    // any of them (docs/formats.md#usage-report-typ-report: the books take only later ones).
    for token in [&reports[2], &reports[1], &reports[0], &reports[3]] {
        let err = books.ingest_report(token).unwrap_err();
        assert_eq!(err.code(), "REPORT_REPLAYED", "{err}");
    }

    // Once the device is deactivated, its reports still verify: the books
    // keep the key it reported with.
    books
        .accept_receipt(
            &install
                .deactivate_with_receipt("desk-1", None)
                .unwrap()
                .token,
        )
        .unwrap();
    let last = books
        .ingest_report(&install.usage_report().unwrap().token)
        .unwrap();
    assert_eq!(last.report.sequence, 5);
    assert_eq!(last.report.licenses[0].activations, 0);
    assert!(!last.fork, "5 chains to 4");
    let gaps: Vec<(u64, u64)> = last.missing.iter().map(|g| (g.from, g.to)).collect();
    assert_eq!(gaps, [(2, 3)]);
}

#[test]
fn forged_foreign_and_unknown_reports_are_refused() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let Both { books, install } = both(&vendor, &clock, 1);
    let license = desk_license(&vendor, 1);
    install.consume("api", 9).unwrap();
    let good = install.usage_report().unwrap();

    // Signed by another install naming the same device.
    let stranger = install_on(&vendor, &clock, "desk-1", &license);
    let foreign = stranger.usage_report().unwrap().token;
    // A device the books never heard of.
    let elsewhere = install_on(&vendor, &clock, "desk-9", &license);
    let unknown = elsewhere.usage_report().unwrap().token;
    // The install's own key, over a payload it never signed.
    let mut forged_payload = serde_json::to_value(&good.report).unwrap();
    forged_payload["licenses"][0]["features"][0]["used"] = json!(0);
    let forged = {
        let compact = entitle::token::dearmor(&good.token).unwrap().0;
        let parts: Vec<&str> = compact.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                forged_payload.to_string()
            ),
            parts[2]
        )
    };
    for (text, says) in [
        (&foreign, "does not verify"),
        (&unknown, "recorded no install key"),
        (&forged, "does not verify"),
    ] {
        let err = books.ingest_report(text).unwrap_err();
        assert_eq!(err.code(), "REPORT_INVALID", "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    // A report verifies only against the key it was signed with.
    let other = PublicKey::from_base64url(&stranger.install_key().unwrap().to_base64url()).unwrap();
    assert_eq!(
        UsageReport::verify(&good.token, &other).unwrap_err().code(),
        "SIGNATURE_INVALID"
    );
    books.ingest_report(&good.token).unwrap();
}
