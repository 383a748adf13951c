//! Devices, floating seats, borrowing and metered features.

mod common;

use common::*;
use entitle::device::Device;
use entitle::Reason;
use serde_json::json;

fn device(f: &str) -> Device {
    Device {
        fingerprint: f.into(),
        hostname: "host".into(),
        vm: false,
    }
}

#[test]
fn activations_limit_transfers_and_idempotence() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "activations": {"max": 2, "max_transfers": 1}, "features": [{"code": "f"}]})))
        .unwrap();
    assert_eq!(engine.activate(&device("a")).unwrap(), ["lic"]);
    engine.activate(&device("a")).unwrap(); // idempotent
    engine.activate(&device("b")).unwrap();
    assert_eq!(
        engine.activate(&device("c")).unwrap_err().code(),
        "ACTIVATION_LIMIT"
    );
    engine.deactivate("a").unwrap();
    engine.activate(&device("c")).unwrap();
    assert_eq!(engine.deactivate("b").unwrap_err().code(), "TRANSFER_LIMIT");
    assert_eq!(engine.deactivate("zz").unwrap_err().code(), "NOT_ACTIVATED");
    assert_eq!(engine.activations().len(), 2);
}

#[test]
fn zero_transfers_vm_and_vendor_counted() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic", "prevent_vm": true,
            "activations": {"max_transfers": 0}})))
        .unwrap();
    let mut vm = device("vm");
    vm.vm = true;
    assert_eq!(engine.activate(&vm).unwrap_err().code(), "VM_NOT_ALLOWED");
    engine.activate(&device("a")).unwrap();
    assert_eq!(engine.deactivate("a").unwrap_err().code(), "TRANSFER_LIMIT");

    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "v", "activations": {"counted_by": "vendor"}})))
        .unwrap();
    assert_eq!(
        engine.activate(&device("a")).unwrap_err().code(),
        "CERTIFICATE_REQUIRED"
    );
}

#[test]
fn node_locked_rights_hold_only_on_the_activated_device() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    let open = |fingerprint: &str| {
        vendor
            .builder(&clock)
            .fingerprint(fingerprint)
            .store(entitle::store::FileStore::create(dir.path()).unwrap())
            .build()
            .unwrap()
    };
    {
        let engine = open("laptop");
        engine
            .add_license(
                &vendor.license(json!({"id": "lic", "activations": {"max": 1},
                "features": [{"code": "f"}]})),
            )
            .unwrap();
        assert_eq!(engine.check_feature("f").reason(), Reason::NotActivated);
        engine.activate(&device("laptop")).unwrap();
        assert!(engine.check_feature("f").allowed());
    }
    // The same state directory on another machine: no rights follow it.
    let elsewhere = open("desktop");
    assert_eq!(elsewhere.check_feature("f").reason(), Reason::NotActivated);
}

#[test]
fn floating_leases_exhaust_renew_lapse_and_reclaim() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "floating": {"seats": 2, "lease_secs": 60, "borrow_max_secs": 3600}})))
        .unwrap();
    let a = engine.checkout("a", None).unwrap();
    assert_eq!(a.expires_at, t(T0).plus_secs(60));
    let b = engine.checkout("b", None).unwrap();
    let err = engine.checkout("c", None).unwrap_err();
    assert_eq!(err.code(), "FLOATING_EXHAUSTED");
    match err {
        entitle::Error::Denied { retry_at, .. } => assert_eq!(retry_at, Some(t(T0).plus_secs(60))),
        other => panic!("{other}"),
    }
    clock.advance(30);
    let a2 = engine.checkout("a", None).unwrap();
    assert_eq!(a2.id, a.id, "the same client renews its lease");
    assert_eq!(a2.expires_at, t(T0).plus_secs(90));
    // b lapses exactly at its end.
    clock.set(t(T0).plus_secs(59));
    engine.heartbeat(&b.id).unwrap();
    clock.set(t(T0).plus_secs(59 + 60));
    assert_eq!(engine.heartbeat(&b.id).unwrap_err().code(), "LEASE_EXPIRED");
    assert_eq!(
        engine.heartbeat("nope").unwrap_err().code(),
        "LEASE_NOT_FOUND"
    );
    // a lapsed at 90 too: both seats free, reclaimed lazily.
    engine.checkout("c", None).unwrap();
    engine.checkout("d", None).unwrap();
    assert_eq!(engine.leases().len(), 2);
}

#[test]
fn borrowing_keeps_a_seat_without_heartbeats() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "floating": {"seats": 1, "lease_secs": 60, "borrow_max_secs": 3600}})))
        .unwrap();
    let lease = engine.checkout("laptop", None).unwrap();
    assert_eq!(
        engine.borrow(&lease.id, 3601).unwrap_err().code(),
        "BORROW_TOO_LONG"
    );
    let borrowed = engine.borrow(&lease.id, 3600).unwrap();
    assert_eq!(borrowed.borrowed_until, Some(t(T0).plus_secs(3600)));
    clock.advance(3599);
    assert_eq!(
        engine.checkout("other", None).unwrap_err().code(),
        "FLOATING_EXHAUSTED"
    );
    clock.advance(1);
    engine.checkout("other", None).unwrap();

    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "nb", "floating": {"seats": 1, "lease_secs": 60}})),
        )
        .unwrap();
    let lease = engine.checkout("x", None).unwrap();
    assert_eq!(
        engine.borrow(&lease.id, 10).unwrap_err().code(),
        "BORROW_NOT_ALLOWED"
    );
    engine.return_borrow(&lease.id).unwrap();
    engine.checkout("y", None).unwrap();
}

#[test]
fn a_heartbeat_on_a_lease_that_lapsed_and_lost_its_seat_says_lease_expired() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "floating": {"seats": 1, "lease_secs": 60}})))
        .unwrap();
    let laptop = engine.checkout("laptop", None).unwrap();
    // The laptop sleeps; its lease lapses and another client takes (and
    // so reclaims) the seat.
    clock.advance(600);
    engine.checkout("desk", None).unwrap();
    let err = engine.heartbeat(&laptop.id).unwrap_err();
    assert_eq!(err.code(), "LEASE_EXPIRED", "{err}");
    assert_eq!(engine.leases().len(), 1, "the lapsed lease holds no seat");
    // A day after its end it is forgotten.
    clock.advance(24 * 3600);
    engine.checkout("desk", None).unwrap();
    assert_eq!(
        engine.heartbeat(&laptop.id).unwrap_err().code(),
        "LEASE_NOT_FOUND"
    );
}

#[test]
fn a_borrow_never_shortens_a_lease() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "floating": {"seats": 1, "lease_secs": 600, "borrow_max_secs": 3600}})))
        .unwrap();
    let lease = engine.checkout("laptop", None).unwrap();
    let borrowed = engine.borrow(&lease.id, 60).unwrap();
    assert_eq!(
        borrowed.expires_at,
        t(T0).plus_secs(600),
        "kept its later end"
    );
    let long = engine.borrow(&lease.id, 3600).unwrap();
    assert_eq!(long.expires_at, t(T0).plus_secs(3600));
    let again = engine.borrow(&lease.id, 60).unwrap();
    assert_eq!(
        again.expires_at,
        t(T0).plus_secs(3600),
        "a shorter borrow keeps the longer"
    );
}

#[test]
fn feature_pools_and_node_locked_concurrency() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "lic", "activations": {"max": 3},
            "floating": {"seats": 1, "lease_secs": 60},
            "features": [{"code": "render", "floating": {"seats": 2, "lease_secs": 30}}]})),
        )
        .unwrap();
    assert_eq!(
        engine.checkout("a", None).unwrap_err().code(),
        "NOT_ACTIVATED"
    );
    engine.activate(&device("a")).unwrap();
    engine.activate(&device("b")).unwrap();
    engine.checkout("a", None).unwrap();
    assert_eq!(
        engine.checkout("b", None).unwrap_err().code(),
        "FLOATING_EXHAUSTED"
    );
    assert_eq!(
        engine.checkout("a", Some("render")).unwrap().expires_at,
        t(T0).plus_secs(30)
    );
    engine.checkout("b", Some("render")).unwrap();
}

#[test]
fn consumption_is_all_or_nothing_with_overage_and_resets() {
    let vendor = Vendor::new();
    let clock = clock_at("2026-01-31T23:59:59Z");
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "lic", "features": [{"code": "api",
            "consumption": {"max": 10, "overage": 2, "reset": "monthly"}}]})),
        )
        .unwrap();
    let c = engine.consume("api", 10).unwrap();
    assert_eq!((c.used, c.max, c.overage), (10, Some(10), false));
    assert_eq!(c.period_ends_at, Some(t("2026-02-01T00:00:00Z")));
    assert_eq!(
        engine.consume("api", 3).unwrap_err().code(),
        "CONSUMPTION_LIMIT"
    );
    let c = engine.consume("api", 2).unwrap();
    assert!(c.overage);
    assert_eq!(c.used, 12);
    assert_eq!(
        engine.consume("api", 1).unwrap_err().code(),
        "CONSUMPTION_LIMIT"
    );
    clock.advance(1); // 2026-02-01T00:00:00Z: a new month
    assert_eq!(engine.consume("api", 1).unwrap().used, 1);
    assert_eq!(
        engine.consume("nothing", 1).unwrap_err().code(),
        "NOT_LICENSED"
    );
}

#[test]
fn consumption_is_charged_to_the_license_that_expires_first() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "later", "expires_at": "2027-01-01T00:00:00Z",
            "features": [{"code": "api", "consumption": {"max": 5}}]})),
        )
        .unwrap();
    engine
        .add_license(
            &vendor.license(json!({"id": "sooner", "expires_at": "2026-06-01T00:00:00Z",
            "features": [{"code": "api", "consumption": {"max": 5}}]})),
        )
        .unwrap();
    assert_eq!(engine.consume("api", 5).unwrap().license_id, "sooner");
    assert_eq!(engine.consume("api", 1).unwrap().license_id, "later");
    assert_eq!(
        engine.consume("api", 5).unwrap_err().code(),
        "CONSUMPTION_LIMIT"
    );
}

#[test]
fn a_feature_without_its_own_pool_shares_the_license_pool() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "floating": {"seats": 1, "lease_secs": 60}, "features": [{"code": "export"}]})))
        .unwrap();
    engine.checkout("ws1", None).unwrap();
    let err = engine.checkout("ws2", Some("export")).unwrap_err();
    assert_eq!(err.code(), "FLOATING_EXHAUSTED");
}
