//! Linger (docs/semantics.md#floating-seats-and-leases, FlexNet's LINGER): after a check-in the seat
//! stays with its client for `floating.linger_secs`; the client gets it
//! back at once, nobody else does, and it gives no right meanwhile.

use entitle::license::{Feature, Floating, License};
use entitle::token::SigningKey;
use entitle::{Engine, ManualClock, Timestamp};

fn engine_with(floating: Floating) -> (Engine, ManualClock) {
    let vendor = SigningKey::generate().unwrap();
    let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    let clock = ManualClock::new(now);
    let engine = Engine::builder("acme")
        .in_memory()
        .trust(vendor.public_key().clone())
        .clock(clock.clone())
        .fingerprint("3f2a")
        .build()
        .unwrap();
    let license = License::builder("acme")
        .id("lic_1")
        .issued_at(now)
        .feature(Feature::new("cad"))
        .floating(floating)
        .sign(&vendor)
        .unwrap();
    engine.add_license(&license).unwrap();
    (engine, clock)
}

#[test]
fn a_checked_in_seat_lingers_for_its_client_only_until_linger_ends() {
    let (engine, clock) = engine_with(Floating::new(1, 300).with_linger_secs(60));
    let lease = engine.checkout("desk-1", None).unwrap();
    engine.checkin(&lease.id).unwrap();
    // The seat is still taken, by a lingering record for desk-1.
    let held = engine.leases();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].client, "desk-1");
    assert_eq!(held[0].id, format!("linger_{}", lease.id));
    let refused = engine.checkout("desk-2", None).unwrap_err();
    assert_eq!(refused.code(), "FLOATING_EXHAUSTED");
    // Its client gets it back at once, as a new lease.
    clock.advance(30);
    let back = engine.checkout("desk-1", None).unwrap();
    assert_ne!(back.id, lease.id);
    assert_eq!(engine.leases().len(), 1, "the lingering record is gone");
    // Checked in again, and left to linger out: then the seat is free.
    engine.checkin(&back.id).unwrap();
    clock.advance(59);
    assert!(engine.checkout("desk-2", None).is_err());
    clock.advance(1);
    assert!(engine.checkout("desk-2", None).is_ok());
}

#[test]
fn without_linger_a_check_in_frees_the_seat_at_once() {
    let (engine, _clock) = engine_with(Floating::new(1, 300));
    let lease = engine.checkout("desk-1", None).unwrap();
    engine.checkin(&lease.id).unwrap();
    assert!(engine.leases().is_empty());
    assert!(engine.checkout("desk-2", None).is_ok());
}

#[test]
fn a_lingering_seat_gives_its_program_no_right() {
    let (engine, _clock) = engine_with(Floating::new(1, 300).with_linger_secs(60));
    let cad = engine.feature("cad");
    let seat = engine.lease(Some("cad")).unwrap();
    assert!(cad.check().allowed());
    drop(seat);
    assert_eq!(engine.leases().len(), 1, "the seat lingers");
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
    // The program takes it back at once.
    let again = engine.lease(Some("cad")).unwrap();
    assert!(again.check().allowed() && cad.check().allowed());
}

#[test]
fn checking_in_a_lingering_seat_frees_it() {
    let (engine, _clock) = engine_with(Floating::new(1, 300).with_linger_secs(60));
    let lease = engine.checkout("desk-1", None).unwrap();
    engine.checkin(&lease.id).unwrap();
    engine.checkin(&format!("linger_{}", lease.id)).unwrap();
    assert!(engine.leases().is_empty());
}

#[test]
fn linger_secs_is_read_from_the_license_document_and_checked() {
    let doc = serde_json::json!({"v": 1, "id": "l", "product": "acme",
        "issued_at": "2026-01-01T00:00:00Z",
        "floating": {"seats": 1, "lease_secs": 60, "linger_secs": 30},
        "features": [{"code": "cad", "floating": {"seats": 1, "lease_secs": 60, "linger_secs": 5}}]});
    let license = License::from_json(&doc).unwrap();
    assert_eq!(license.floating.unwrap().linger_secs, Some(30));
    assert_eq!(license.features[0].floating.unwrap().linger_secs, Some(5));
    let mut negative = doc.clone();
    negative["floating"]["linger_secs"] = serde_json::json!(-1);
    assert_eq!(
        License::from_json(&negative).unwrap_err().code(),
        "MALFORMED"
    );
}
