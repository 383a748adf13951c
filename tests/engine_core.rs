//! Engine core: reason codes and their boundaries, licenses in force,
//! seats, replay and revocation.

mod common;

use common::*;
use entitle::Reason;
use serde_json::json;

#[test]
fn validity_boundaries_start_expiry_and_grace() {
    let vendor = Vendor::new();
    let clock = clock_at("2025-12-31T23:59:59Z");
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({
            "id": "lic", "starts_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-02-01T00:00:00Z", "grace_secs": 3600,
            "features": [{"code": "export"}]
        })))
        .unwrap();
    let at = |text: &str| {
        clock.set(t(text));
        engine.check_feature("export")
    };
    let d = at("2025-12-31T23:59:59Z");
    assert_eq!(d.reason(), Reason::NotYetValid);
    assert_eq!(d.until(), Some(t("2026-01-01T00:00:00Z")));
    assert_eq!(at("2026-01-01T00:00:00Z").reason(), Reason::Ok);
    assert_eq!(at("2026-01-31T23:59:59Z").reason(), Reason::Ok);
    let d = at("2026-02-01T00:00:00Z");
    assert_eq!(d.reason(), Reason::InGrace);
    assert!(d.allowed());
    assert_eq!(d.until(), Some(t("2026-02-01T01:00:00Z")));
    assert_eq!(at("2026-02-01T00:59:59Z").reason(), Reason::InGrace);
    let d = at("2026-02-01T01:00:00Z");
    assert_eq!(d.reason(), Reason::Expired);
    assert!(!d.allowed());
    assert_eq!(d.until(), None);
}

#[test]
fn every_check_reason_code_is_reachable() {
    let vendor = Vendor::new();
    let clock = clock_at("2026-06-01T00:00:00Z");
    let engine = vendor
        .builder(&clock)
        .in_memory()
        .release_date(t("2026-03-01T00:00:00Z"))
        .fingerprint("this-device")
        .build()
        .unwrap();
    let add = |doc| engine.add_license(&vendor.license(doc)).unwrap();
    add(json!({"id": "ok", "features": [{"code": "ok"}]}));
    add(
        json!({"id": "grace", "expires_at": "2026-05-31T00:00:00Z", "grace_secs": 7 * DAY, "features": [{"code": "grace"}]}),
    );
    add(
        json!({"id": "kept", "expires_at": "2026-05-01T00:00:00Z", "on_expiry": "keep",
               "notice_on_expire": "renew", "features": [{"code": "kept"}]}),
    );
    add(
        json!({"id": "expired", "expires_at": "2026-05-01T00:00:00Z", "features": [{"code": "expired"}]}),
    );
    add(
        json!({"id": "pending", "starts_at": "2026-07-01T00:00:00Z", "features": [{"code": "pending"}]}),
    );
    add(json!({"id": "off", "enabled": false, "features": [{"code": "suspended"}]}));
    add(
        json!({"id": "maint", "maintenance_until": "2026-02-01T00:00:00Z", "features": [{"code": "maint"}]}),
    );
    add(json!({"id": "locked", "activations": {"max": 2}, "features": [{"code": "locked"}]}));
    add(
        json!({"id": "feat", "features": [{"code": "feature_expired", "expires_at": "2026-05-01T00:00:00Z"}]}),
    );
    add(json!({"id": "rev", "features": [{"code": "revoked"}]}));
    add(json!({"id": "v1", "versions": "^1", "features": [{"code": "version"}]}));
    engine
        .apply_revocations(&vendor.revocations(&["rev"], "2026-01-02T00:00:00Z"))
        .unwrap();
    let table = [
        ("ok", Reason::Ok),
        ("grace", Reason::InGrace),
        ("kept", Reason::ExpiredKept),
        ("expired", Reason::Expired),
        ("pending", Reason::NotYetValid),
        ("suspended", Reason::Suspended),
        ("maint", Reason::MaintenanceExpired),
        ("locked", Reason::NotActivated),
        ("feature_expired", Reason::Expired),
        ("revoked", Reason::Revoked),
        ("version", Reason::VersionNotLicensed),
        ("nothing", Reason::NotLicensed),
    ];
    for (code, reason) in table {
        assert_eq!(
            engine.check_feature(code).reason(),
            reason,
            "feature {code}"
        );
        assert_eq!(engine.feature(code).check().reason(), reason, "gate {code}");
    }
    let kept = engine
        .license_infos()
        .into_iter()
        .find(|l| l.id == "kept")
        .unwrap();
    assert_eq!(kept.status, entitle::license::LicenseStatus::Expired);
    assert_eq!(kept.notice.as_deref(), Some("renew"));
}

#[test]
fn the_union_of_licenses_wins_and_limits_add_up() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "base", "expires_at": "2026-02-01T00:00:00Z",
        "features": [{"code": "envs", "limit": 50}, {"code": "export"}]})),
        )
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "addon",
        "features": [{"code": "envs", "limit": 10}]})))
        .unwrap();
    assert_eq!(engine.limit("envs"), Some(60));
    assert_eq!(engine.limit("export"), None);
    clock.set(t("2026-03-01T00:00:00Z"));
    assert_eq!(engine.limit("envs"), Some(10));
    assert!(engine.check_feature("envs").allowed());
    assert_eq!(engine.check_feature("export").reason(), Reason::Expired);
}

#[test]
fn seats_soft_band_and_hard_limit() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    assert_eq!(engine.can_add_user().reason(), Reason::NotLicensed);
    engine
        .add_license(&vendor.license(json!({"id": "s", "seats": {"max": 2, "hard_max": 3}})))
        .unwrap();
    assert_eq!(engine.can_add_user().reason(), Reason::Ok);
    assert_eq!(engine.add_user("a", "member").unwrap().reason(), Reason::Ok);
    assert_eq!(engine.add_user("b", "member").unwrap().reason(), Reason::Ok);
    assert_eq!(engine.can_add_user().reason(), Reason::Overage);
    assert_eq!(
        engine.add_user("c", "admin").unwrap().reason(),
        Reason::Overage
    );
    assert_eq!(engine.can_add_user().reason(), Reason::SeatLimit);
    let err = engine.add_user("d", "member").unwrap_err();
    assert_eq!(err.code(), "SEAT_LIMIT");
    // Adding an active user again takes no new seat.
    assert!(engine.add_user("a", "member").is_ok());
    let status = engine.status();
    assert_eq!(
        (
            status.active_user_count,
            status.license_seats,
            status.hard_seats
        ),
        (3, 2, 3)
    );
    assert!(!status.can_add_user.allowed());
    let usage = engine.usage(0, 2);
    assert_eq!(usage.users.len(), 2);
    assert_eq!(usage.summary["member"].total, 2);
    assert_eq!(usage.summary["admin"].active, 1);
    engine.remove_user("c").unwrap();
    assert_eq!(engine.can_add_user().reason(), Reason::Overage);
    assert_eq!(
        engine.remove_user("zz").unwrap_err().code(),
        "USER_NOT_FOUND"
    );
}

#[test]
fn idle_users_free_their_seats_and_need_one_to_return() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "s", "seats": {"max": 1, "active_window_secs": 100}})),
        )
        .unwrap();
    engine.add_user("a", "member").unwrap();
    assert_eq!(engine.can_add_user().reason(), Reason::SeatLimit);
    assert_eq!(engine.can_add_user().until(), Some(t(T0).plus_secs(100)));
    clock.advance(99);
    assert_eq!(engine.can_add_user().reason(), Reason::SeatLimit);
    clock.advance(1);
    assert_eq!(
        engine.can_add_user().reason(),
        Reason::Ok,
        "a went idle exactly at the window's end"
    );
    engine.add_user("b", "member").unwrap();
    let err = engine.record_activity("a").unwrap_err();
    assert_eq!(err.code(), "SEAT_LIMIT");
    engine.record_activity("b").unwrap();
    let usage = engine.usage(0, 10);
    assert_eq!(usage.summary["member"].active, 1);
    assert_eq!(usage.summary["member"].inactive, 1);
}

#[test]
fn replay_tombstones_and_revocations() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    let v1 = vendor.license(json!({"id": "lic", "serial": 1, "features": [{"code": "a"}]}));
    let v2 = vendor.license(json!({"id": "lic", "serial": 2, "features": [{"code": "b"}]}));
    engine.add_license(&v2).unwrap();
    engine.add_license(&v2).unwrap(); // idempotent
    assert_eq!(
        engine.add_license(&v1).unwrap_err().code(),
        "LICENSE_REPLAYED"
    );
    assert!(engine.check_feature("b").allowed());
    engine.remove_license("lic", false).unwrap();
    assert_eq!(
        engine.add_license(&v1).unwrap_err().code(),
        "LICENSE_REPLAYED",
        "soft removal remembers the serial"
    );
    engine.add_license(&v2).unwrap();
    engine.remove_license("lic", true).unwrap();
    assert_eq!(
        engine.add_license(&v2).unwrap_err().code(),
        "LICENSE_REVOKED"
    );
    assert_eq!(engine.check_feature("b").reason(), Reason::NotLicensed);
    assert_eq!(
        engine.remove_license("other", false).unwrap_err().code(),
        "LICENSE_NOT_FOUND"
    );
    let other = vendor.license(json!({"id": "other", "product": "elsewhere"}));
    assert_eq!(
        engine.add_license(&other).unwrap_err().code(),
        "PRODUCT_MISMATCH"
    );
}

#[test]
fn a_rolled_back_clock_holds_time_dependent_rights_only() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "perp", "features": [{"code": "perpetual"}]})))
        .unwrap();
    engine
        .add_license(
            &vendor.license(json!({"id": "sub", "expires_at": "2027-01-01T00:00:00Z",
        "features": [{"code": "timed"}]})),
        )
        .unwrap();
    clock.advance(30 * DAY);
    engine.refresh().unwrap(); // persists the latest time seen
    clock.advance(-(30 * DAY) + 601);
    assert_eq!(
        engine.check_feature("timed").reason(),
        Reason::ClockTampered
    );
    assert!(engine.check_feature("perpetual").allowed());
    // Within the tolerance: fine.
    clock.set(t(T0).plus_secs(30 * DAY - 600));
    assert!(engine.check_feature("timed").allowed());
    // An old token does not lower the guard; a newer one does.
    clock.set(t(T0));
    let old = vendor.license(json!({"id": "again", "issued_at": T0}));
    engine.add_license(&old).unwrap();
    assert_eq!(
        engine.check_feature("timed").reason(),
        Reason::ClockTampered
    );
    let fresh = vendor.license(json!({"id": "fresh", "issued_at": "2026-01-01T00:05:00Z"}));
    engine.add_license(&fresh).unwrap();
    assert!(engine.check_feature("timed").allowed());
}

/// A count that resets by the calendar changes with time as an expiry
/// does: units spent in months the clock was set forward into must not
/// come back on the real clock. Under `CLOCK_TAMPERED` the check, the gate
/// and `consume` all hold a metered feature with a `reset` (of a
/// perpetual license), and the one without a reset keeps working.
#[test]
fn a_metered_feature_that_resets_is_held_by_check_gate_and_consume_on_a_tampered_clock() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(json!({"id": "perp", "features": [
            {"code": "api", "consumption": {"max": 100, "reset": "monthly"}},
            {"code": "credits", "consumption": {"max": 1000}},
            {"code": "export"}]})))
        .unwrap();
    let (api, credits) = (engine.feature("api"), engine.feature("credits"));
    for month in 1..=3 {
        clock.set(t(&format!("2026-{:02}-01T00:00:00Z", month + 1)));
        assert_eq!(engine.consume("api", 100).unwrap().used, 100);
    }
    clock.set(t("2026-01-15T00:00:00Z"));
    for (what, reason) in [
        ("check", engine.check_feature("api").reason()),
        ("gate", api.check().reason()),
        (
            "consume",
            engine.consume("api", 1).unwrap_err().reason().unwrap(),
        ),
    ] {
        assert_eq!(reason, Reason::ClockTampered, "{what}");
    }
    assert!(engine.consumption("api").is_empty());
    assert_eq!(engine.check_feature("credits").reason(), Reason::Ok);
    assert_eq!(credits.check().reason(), Reason::Ok);
    assert_eq!(engine.consume("credits", 1).unwrap().used, 1);
    assert_eq!(engine.check_feature("export").reason(), Reason::Ok);
    // Once the clock is right again, the meter answers as before.
    clock.set(t("2026-04-01T00:01:00Z"));
    assert_eq!(api.check().reason(), Reason::ConsumptionLimit);
    clock.set(t("2026-05-01T00:00:00Z"));
    assert_eq!(engine.check_feature("api").reason(), Reason::Ok);
    assert_eq!(engine.consume("api", 1).unwrap().used, 1);
}

#[test]
fn listing_filters_orders_and_pages_stably() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    for (id, expires) in [
        ("a", "2026-03-01T00:00:00Z"),
        ("b", "2025-06-01T00:00:00Z"),
        ("c", "2026-02-01T00:00:00Z"),
        ("d", "2027-01-01T00:00:00Z"),
    ] {
        engine
            .add_license(&vendor.license(json!({"id": id, "expires_at": expires})))
            .unwrap();
    }
    let q =
        |filter: Option<&str>, order: Option<&str>, limit: Option<usize>, cursor: Option<&str>| {
            engine
                .licenses(&entitle::engine::license_query(filter, order, limit, cursor).unwrap())
                .unwrap()
        };
    let active = q(
        Some(r#"status eq "active""#),
        Some("-expires_at"),
        None,
        None,
    );
    let ids: Vec<_> = active.items.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["d", "a", "c"]);
    let expired = q(
        Some(r#"status eq "expired" or expires_at gt "2026-12-31T00:00:00Z""#),
        None,
        None,
        None,
    );
    assert_eq!(
        expired
            .items
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["b", "d"]
    );
    let first = q(None, Some("expires_at"), Some(2), None);
    assert_eq!(
        first
            .items
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["b", "c"]
    );
    // A license added between pages does not shift the next page.
    engine
        .add_license(&vendor.license(json!({"id": "e", "expires_at": "2025-01-01T00:00:00Z"})))
        .unwrap();
    let second = q(
        None,
        Some("expires_at"),
        Some(2),
        first.next_cursor.as_deref(),
    );
    assert_eq!(
        second
            .items
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["a", "d"]
    );
    assert_eq!(second.next_cursor, None);
    assert_eq!(
        entitle::engine::license_query(Some("status eq"), None, None, None)
            .unwrap_err()
            .code(),
        "MALFORMED"
    );
}
