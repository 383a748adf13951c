//! The API a desktop app holds: gates that follow this engine's leases and
//! quotas, and the lease guard (docs/semantics.md).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use entitle::store::FileStore;
use entitle::{Engine, ManualClock};
use serde_json::json;

/// An engine on the state in `dir`, as one instance of the app on the
/// device `fingerprint`.
fn instance(vendor: &Vendor, clock: &ManualClock, dir: &Path, fingerprint: &str) -> Engine {
    let store = FileStore::open(dir).or_else(|_| FileStore::create(dir));
    vendor
        .builder(clock)
        .fingerprint(fingerprint)
        .store(store.unwrap())
        .build()
        .unwrap()
}

/// Polls `done` for up to ten seconds (the guard's thread beats at least
/// once a second here).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn floating_license(vendor: &Vendor, seats: u64, lease_secs: i64) -> String {
    vendor.license(
        json!({"id": "lic", "features": [{"code": "cad"}, {"code": "view"}],
        "floating": {"seats": seats, "lease_secs": lease_secs}}),
    )
}

/// An engine on the device `desk` (its own memory store) holding one
/// license with `seats` floating seats of `lease_secs`, and its clock.
fn desk_with_pool(seats: u64, lease_secs: i64) -> (ManualClock, Engine) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.builder(&clock).fingerprint("desk").build().unwrap();
    engine
        .add_license(&floating_license(&vendor, seats, lease_secs))
        .unwrap();
    (clock, engine)
}

#[test]
fn a_gate_of_a_floating_feature_allows_only_while_this_engine_holds_a_live_lease() {
    let (clock, engine) = desk_with_pool(2, 300);
    let cad = engine.feature("cad");
    // The license grants it, but a floating right is a seat held.
    assert!(engine.check_feature("cad").allowed());
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");

    // Someone else's lease is not this engine's.
    engine.checkout("someone-else", None).unwrap();
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");

    let lease = engine.checkout(engine.client_id(), None).unwrap();
    let decision = cad.check();
    assert!(decision.allowed());
    assert_eq!(decision.until(), Some(lease.expires_at));

    clock.advance(300);
    assert_eq!(cad.check().reason().code(), "LEASE_EXPIRED");
    engine.heartbeat(&lease.id).unwrap_err();
    let lease = engine.checkout(engine.client_id(), None).unwrap();
    assert!(cad.check().allowed());
    engine.checkin(&lease.id).unwrap();
    // The lapsed lease is remembered for a day (docs/semantics.md#floating-seats-and-leases): the
    // gate says so.
    assert_eq!(cad.check().reason().code(), "LEASE_EXPIRED");
    clock.advance(DAY);
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
}

#[test]
fn a_gate_of_a_metered_feature_says_when_its_quota_is_used_up() {
    let vendor = Vendor::new();
    let clock = clock_at("2026-01-31T23:00:00Z");
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "lic", "features": [{"code": "api",
            "consumption": {"max": 10, "overage": 2, "reset": "monthly"}}]})),
        )
        .unwrap();
    let api = engine.feature("api");
    assert_eq!(api.check().reason().code(), "OK");
    engine.consume("api", 9).unwrap();
    assert_eq!(api.check().reason().code(), "OK");
    engine.consume("api", 1).unwrap();
    // The quota is used up; the next unit falls in the overage band.
    assert_eq!(api.check().reason().code(), "OVERAGE");
    assert!(api.check().allowed());
    engine.consume("api", 2).unwrap();
    let spent = api.check();
    assert_eq!(spent.reason().code(), "CONSUMPTION_LIMIT");
    assert!(!spent.allowed());
    // Until the period resets.
    assert_eq!(spent.until(), Some(t("2026-02-01T00:00:00Z")));
    clock.advance(3600);
    assert_eq!(api.check().reason().code(), "OK");
}

#[test]
fn two_instances_on_one_device_each_hold_their_own_lease() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    let first = instance(&vendor, &clock, dir.path(), "desk");
    first
        .add_license(&floating_license(&vendor, 2, 300))
        .unwrap();
    let second = instance(&vendor, &clock, dir.path(), "desk");
    assert_ne!(first.client_id(), second.client_id());

    let a = first.lease(None).unwrap();
    let b = second.lease(None).unwrap();
    assert_ne!(a.lease().unwrap().id, b.lease().unwrap().id);
    assert!(first.feature("cad").check().allowed());
    assert!(second.feature("cad").check().allowed());

    // A third instance finds both seats taken, and when one frees.
    let third = instance(&vendor, &clock, dir.path(), "desk");
    let refused = third.lease(None).unwrap_err();
    assert_eq!(refused.code(), "FLOATING_EXHAUSTED");
    assert!(matches!(
        refused,
        entitle::Error::Denied {
            retry_at: Some(_),
            ..
        }
    ));
    drop(a);
    assert!(third.lease(None).is_ok());
}

#[test]
fn an_engine_holds_one_seat_per_pool_and_the_last_clone_checks_it_in() {
    let (_clock, engine) = desk_with_pool(1, 300);
    let editor = engine.lease(Some("cad")).unwrap();
    // `view` has no pool of its own: it draws on the same license pool.
    let viewer = engine.lease(Some("view")).unwrap();
    let again = engine.lease(None).unwrap();
    assert_eq!(engine.leases().len(), 1);
    assert_eq!(editor.lease(), viewer.lease());
    let clone = again.clone();
    drop((editor, viewer, again));
    // A clone still holds it.
    assert_eq!(engine.leases().len(), 1);
    assert!(clone.check().allowed());
    drop(clone);
    assert!(engine.leases().is_empty());
    assert_eq!(
        engine.feature("cad").check().reason().code(),
        "LEASE_REQUIRED"
    );
}

#[test]
fn the_guard_heartbeats_so_its_lease_outlives_lease_secs() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    // The real clock: the guard's thread beats in real time.
    let engine = Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .fingerprint("desk")
        .store(FileStore::create(dir.path()).unwrap())
        .build()
        .unwrap();
    engine
        .add_license(
            &vendor.license(json!({"id": "lic", "issued_at": "2020-01-01T00:00:00Z",
            "features": [{"code": "cad"}], "floating": {"seats": 1, "lease_secs": 3}})),
        )
        .unwrap();
    let guard = engine.lease(Some("cad")).unwrap();
    let first_end = guard.lease().unwrap().expires_at;
    // Three lease lengths: without heartbeats the lease would have lapsed
    // twice over.
    std::thread::sleep(Duration::from_secs(9));
    let lease = guard.lease().expect("the lease is held");
    assert!(lease.expires_at.unix() >= first_end.unix() + 5, "{lease:?}");
    assert!(guard.check().allowed());
    assert!(engine.feature("cad").check().allowed());
    assert!(guard.lost().is_none());
}

#[test]
fn a_lost_lease_is_reported_and_retaken_when_a_seat_frees() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    let app = instance(&vendor, &clock, dir.path(), "desk");
    // Three-second leases: the guard beats every second.
    app.add_license(&floating_license(&vendor, 1, 3)).unwrap();
    let admin = instance(&vendor, &clock, dir.path(), "server");
    let guard = app.lease(Some("cad")).unwrap();
    let lost_id = guard.lease().unwrap().id;

    // An administrator frees the seat and someone else takes it.
    admin.checkin(&lost_id).unwrap();
    let other = admin.checkout("someone-else", None).unwrap();
    eventually("the guard reports its lease lost", || {
        guard.lost().is_some()
    });
    assert_eq!(guard.lost().unwrap().code(), "FLOATING_EXHAUSTED");
    // The guard says what the one gate says: no live seat.
    assert!(!guard.check().allowed());
    assert_eq!(guard.check(), app.feature("cad").check());
    assert_eq!(guard.check().reason().code(), "LEASE_REQUIRED");
    assert!(guard.lease().is_none());
    assert_eq!(app.feature("cad").check().reason().code(), "LEASE_REQUIRED");

    // The seat frees: the guard takes it again.
    admin.checkin(&other.id).unwrap();
    assert!(guard.renew().allowed());
    assert!(guard.lost().is_none());
    assert_ne!(guard.lease().unwrap().id, lost_id);
    assert!(app.feature("cad").check().allowed());
}

#[test]
fn a_lease_that_lapsed_while_the_process_slept_is_taken_again_if_free() {
    let (clock, engine) = desk_with_pool(1, 300);
    let guard = engine.lease(None).unwrap();
    // A laptop lid closed for an hour: no beat ran.
    clock.advance(3600);
    assert_eq!(guard.check().reason().code(), "LEASE_EXPIRED");
    assert!(guard.renew().allowed());
    assert_eq!(
        guard.lease().unwrap().expires_at,
        t(T0).plus_secs(3600 + 300)
    );
}

#[test]
fn errors_and_decisions_speak_to_an_end_user_without_commands() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.builder(&clock).fingerprint("desk").build().unwrap();
    engine
        .add_license(
            &vendor.license(json!({"id": "lic", "features": [{"code": "cad"}],
            "activations": {"max": 1, "counted_by": "vendor"}})),
        )
        .unwrap();
    let errors = [
        engine.remove_user("nobody").unwrap_err(),
        engine.add_license("not a token").unwrap_err(),
        engine.activate_this_device().unwrap_err(),
        engine.heartbeat("lease_nope").unwrap_err(),
        engine.deactivate("elsewhere").unwrap_err(),
        FileStore::open(tempfile::tempdir().unwrap().path().join("x")).unwrap_err(),
    ];
    for error in &errors {
        let text = error.to_string();
        assert!(
            !text.contains("`entitle "),
            "a library error names a command: {text}"
        );
        let words = error.user_message();
        assert!(words.ends_with('.') && !words.contains('`'), "{words}");
    }
    assert_eq!(
        errors[2].user_message(),
        "Your license must be activated by your vendor for this computer."
    );
    let denied = engine.check_feature("cad");
    assert_eq!(
        denied.message(),
        "This computer is not activated for your license."
    );
}
