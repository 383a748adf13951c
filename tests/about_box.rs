//! What an About box and a notice area can show: which license metered
//! units are charged to, a license's state under a tampered clock, the
//! notice a check gives while it allows, and a feature's own floating pool,
//! which may lend its seats.

mod common;

use common::*;
use entitle::engine::FloatingInfo;
use entitle::{Engine, ManualClock, Reason, Warning};
use serde_json::json;

fn at_offset(secs: i64) -> String {
    t(T0).plus_secs(secs).to_string()
}

/// A trial of `export` (10 units, 14 days from first use), then a license
/// bought for a year (100 units).
fn trial_then_purchase() -> (ManualClock, Engine) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "trial", "trial": true, "trial_secs": 14 * DAY,
            "features": [{"code": "export", "consumption": {"max": 10}}]})),
        )
        .unwrap();
    engine
        .add_license(
            &vendor.license(json!({"id": "bought", "expires_at": at_offset(365 * DAY),
            "features": [{"code": "export", "consumption": {"max": 100}}]})),
        )
        .unwrap();
    (clock, engine)
}

fn used_per_license(engine: &Engine) -> Vec<(String, u64)> {
    engine
        .license_infos()
        .into_iter()
        .map(|l| {
            let used = l.features[0].consumption.map_or(0, |c| c.used);
            (l.id, used)
        })
        .collect()
}

#[test]
fn units_go_to_the_purchased_license_before_a_trial_that_ends_sooner() {
    let (_clock, engine) = trial_then_purchase();
    let charged = engine.consume("export", 5).unwrap();
    assert_eq!(charged.license_id, "bought");
    assert_eq!((charged.used, charged.max), (5, Some(100)));
    // The About box shows the units where they went.
    assert_eq!(
        used_per_license(&engine),
        [("bought".to_owned(), 5), ("trial".to_owned(), 0)]
    );
    let order: Vec<String> = engine
        .consumption("export")
        .into_iter()
        .map(|c| c.license_id)
        .collect();
    assert_eq!(order, ["bought", "trial"]);
}

#[test]
fn a_trial_takes_units_only_once_the_purchase_is_full_and_a_refusal_names_both() {
    let (_clock, engine) = trial_then_purchase();
    engine.consume("export", 100).unwrap();
    assert_eq!(engine.consume("export", 4).unwrap().license_id, "trial");
    let refused = engine.consume("export", 7).unwrap_err();
    assert_eq!(refused.code(), "CONSUMPTION_LIMIT");
    let message = refused.to_string();
    assert!(
        message.contains("100 of 100 units used (license `bought`")
            && message.contains("4 of 10 (trial `trial`"),
        "{message}"
    );
}

#[test]
fn a_license_whose_rights_are_held_by_a_tampered_clock_shows_clock_tampered() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "dated", "expires_at": at_offset(365 * DAY),
            "features": [{"code": "export"}]})),
        )
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "perpetual", "features": [{"code": "view"}]})))
        .unwrap();
    clock.advance(2 * DAY);
    engine.refresh().unwrap();
    clock.advance(-DAY);
    assert_eq!(
        engine.check_feature("export").reason(),
        Reason::ClockTampered
    );
    let status: Vec<(String, &str)> = engine
        .license_infos()
        .into_iter()
        .map(|l| (l.id, l.status.as_str()))
        .collect();
    // A license without dates keeps its rights, and says so.
    assert_eq!(
        status,
        [
            ("dated".to_owned(), "clock_tampered"),
            ("perpetual".to_owned(), "active")
        ]
    );
    clock.advance(DAY);
    assert_eq!(engine.license_infos()[0].status.as_str(), "active");
}

#[test]
fn an_allowed_check_warns_as_its_right_nears_its_end_and_in_grace() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "year", "expires_at": at_offset(30 * DAY),
            "grace_secs": 7 * DAY, "features": [{"code": "export"}, {"code": "view"}]})),
        )
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "perpetual", "features": [{"code": "view"}]})))
        .unwrap();
    let export = engine.feature("export");
    let first = export.check();
    assert_eq!((first.reason(), first.warning()), (Reason::Ok, None));
    assert_eq!(first.until(), Some(t(T0).plus_secs(30 * DAY)));

    // The gate's cached answer gives way when the notice starts, 14 days
    // before the end.
    clock.advance(16 * DAY - 1);
    assert_eq!(export.check().warning(), None);
    clock.advance(1);
    for decision in [export.check(), engine.check_feature("export")] {
        assert!(decision.allowed());
        assert_eq!(decision.reason(), Reason::Ok);
        assert_eq!(decision.warning(), Some(Warning::Ending));
        assert_eq!(decision.until(), Some(t(T0).plus_secs(30 * DAY)));
    }
    // Another license carries `view` on: its right does not end.
    assert_eq!(engine.feature("view").check().warning(), None);

    clock.advance(14 * DAY);
    let grace = export.check();
    assert!(grace.allowed());
    assert_eq!(grace.warning(), Some(Warning::InGrace));
    clock.advance(7 * DAY);
    let expired = export.check();
    assert!(!expired.allowed());
    assert_eq!(expired.warning(), None);
}

#[test]
fn a_check_within_overage_warns() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(
            &vendor.license(json!({"id": "meter", "features": [{"code": "api",
            "consumption": {"max": 1, "overage": 1}}]})),
        )
        .unwrap();
    let api = engine.feature("api");
    assert_eq!(api.check().warning(), None);
    engine.consume("api", 1).unwrap();
    assert!(api.check().allowed());
    assert_eq!(api.check().warning(), Some(Warning::Overage));
}

/// A license with a license-level pool that lends for a day, a feature
/// pool (`render`) that lends for an hour and one (`print`) that does not.
fn pools(vendor: &Vendor) -> String {
    vendor.license(json!({"id": "pools",
        "floating": {"seats": 3, "lease_secs": 60, "borrow_max_secs": DAY},
        "features": [
            {"code": "render", "floating": {"seats": 2, "lease_secs": 60, "borrow_max_secs": 3600}},
            {"code": "print", "floating": {"seats": 1, "lease_secs": 60}},
            {"code": "view"}]}))
}

#[test]
fn a_feature_pool_shows_in_its_feature_info() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine.add_license(&pools(&vendor)).unwrap();
    engine.checkout("desk-1", Some("render")).unwrap();
    engine.checkout("desk-2", None).unwrap();
    let info = &engine.license_infos()[0];
    let floating: Vec<(&str, Option<FloatingInfo>)> = info
        .features
        .iter()
        .map(|f| (f.code.as_str(), f.floating))
        .collect();
    let shown = |f: Option<FloatingInfo>| f.map(|f| (f.seats, f.in_use, f.borrow_max_secs));
    assert_eq!(shown(floating[0].1), Some((2, 1, Some(3600))));
    assert_eq!(shown(floating[1].1), Some((1, 0, None)));
    assert_eq!(shown(floating[2].1), None);
    assert_eq!(shown(info.floating), Some((3, 1, Some(DAY))));
}

#[test]
fn a_feature_pool_lends_its_seats_as_its_own_block_allows() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine.add_license(&pools(&vendor)).unwrap();
    let render = engine.checkout("desk-1", Some("render")).unwrap();
    let too_long = engine.borrow(&render.id, 3601).unwrap_err();
    assert_eq!(too_long.code(), "BORROW_TOO_LONG");
    assert!(too_long.to_string().contains("3600 seconds"), "{too_long}");
    let borrowed = engine.borrow(&render.id, 3600).unwrap();
    assert_eq!(borrowed.borrowed_until, Some(t(T0).plus_secs(3600)));
    // The borrow holds its seat without heartbeats.
    clock.advance(3000);
    assert_eq!(
        engine.checkin(&render.id).unwrap_err().code(),
        "LEASE_BORROWED"
    );

    // A feature pool that does not lend refuses, whatever the
    // license-level pool allows.
    let print = engine.checkout("desk-1", Some("print")).unwrap();
    assert_eq!(
        engine.borrow(&print.id, 60).unwrap_err().code(),
        "BORROW_NOT_ALLOWED"
    );
}
