//! Issuing from Rust: what `License::builder` signs is what an engine
//! enforces, and what an install would refuse is refused before signing.

mod common;

use common::*;
use entitle::license::{
    Activations, Consumption, Feature, Floating, IssueWarning, Kind, License, OnExpiry, Reset,
    Seats, VerifiedLicense, MAX_FEATURES,
};
use entitle::token::{armor, Keyring, TokenType, MAX_TOKEN_BYTES};
use entitle::Reason;
use serde_json::json;

#[test]
fn a_license_signed_by_the_builder_gives_the_rights_it_says() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    let token = License::builder("acme")
        .id("lic_built")
        .name("Acme Team")
        .customer(json!({"name": "Example Ltd"}))
        .metadata(json!({"order": 1234}))
        .kind(Kind::Subscription)
        .issued_at(t(T0))
        .expires_at(t("2026-07-01T00:00:00Z"))
        .grace_secs(7 * DAY)
        .seats(Seats::new(2).with_hard_max(3))
        .floating(Floating::new(1, 600))
        .feature(Feature::new("export"))
        .feature(Feature::new("environments").with_limit(50))
        .feature(
            Feature::new("api").with_consumption(
                Consumption::up_to(10)
                    .with_overage(2)
                    .with_reset(Reset::Monthly),
            ),
        )
        .feature(Feature::new("beta").with_expires_at(t("2026-02-01T00:00:00Z")))
        .sign(&vendor.key)
        .unwrap();
    assert_eq!(
        engine
            .add_license(&armor(&token, TokenType::License))
            .unwrap(),
        "lic_built"
    );

    assert_eq!(engine.check_feature("export").reason(), Reason::Ok);
    assert_eq!(engine.check_feature("beta").reason(), Reason::Ok);
    assert_eq!(
        engine.check_feature("simulate").reason(),
        Reason::NotLicensed
    );
    assert_eq!(engine.limit("environments"), Some(50));

    for user in ["ann", "bob"] {
        assert_eq!(engine.add_user(user, "staff").unwrap().reason(), Reason::Ok);
    }
    assert_eq!(
        engine.add_user("cy", "staff").unwrap().reason(),
        Reason::Overage
    );
    assert_eq!(
        engine.add_user("di", "staff").unwrap_err().code(),
        "SEAT_LIMIT"
    );

    assert_eq!(engine.consume("api", 10).unwrap().reason, Reason::Ok);
    assert_eq!(engine.consume("api", 2).unwrap().reason, Reason::Overage);
    assert_eq!(
        engine.consume("api", 1).unwrap_err().code(),
        "CONSUMPTION_LIMIT"
    );

    engine.checkout("ws-1", None).unwrap();
    assert_eq!(
        engine.checkout("ws-2", None).unwrap_err().code(),
        "FLOATING_EXHAUSTED"
    );

    let info = &engine.license_infos()[0];
    assert_eq!(info.kind, Kind::Subscription);
    assert_eq!(info.name.as_deref(), Some("Acme Team"));
    assert_eq!(info.customer.as_ref().unwrap()["name"], "Example Ltd");
    assert_eq!(info.metadata.as_ref().unwrap()["order"], 1234);

    clock.set(t("2026-02-01T00:00:00Z"));
    assert_eq!(engine.check_feature("beta").reason(), Reason::Expired);
    clock.set(t("2026-07-01T00:00:00Z"));
    assert_eq!(engine.check_feature("export").reason(), Reason::InGrace);
    clock.set(t("2026-07-08T00:00:00Z"));
    assert_eq!(engine.check_feature("export").reason(), Reason::Expired);
}

#[test]
fn a_node_locked_trial_from_the_builder_runs_from_first_use_on_the_activated_device() {
    let vendor = Vendor::new();
    let clock = clock_at("2026-03-01T00:00:00Z");
    let engine = vendor
        .builder(&clock)
        .fingerprint("laptop-1")
        .build()
        .unwrap();
    // Signed long before this install first uses it.
    let token = License::builder("acme")
        .id("lic_trial")
        .kind(Kind::TimeLimited)
        .issued_at(t(T0))
        .trial_secs(14 * DAY)
        .activations(Activations::up_to(1).with_max_transfers(0))
        .feature(Feature::new("export"))
        .sign(&vendor.key)
        .unwrap();
    engine.add_license(&token).unwrap();
    assert_eq!(
        engine.check_feature("export").reason(),
        Reason::NotActivated
    );
    engine.activate_this_device().unwrap();
    assert_eq!(engine.check_feature("export").reason(), Reason::Ok);
    clock.advance(14 * DAY - 1);
    assert_eq!(engine.check_feature("export").reason(), Reason::Ok);
    clock.advance(1);
    assert_eq!(engine.check_feature("export").reason(), Reason::Expired);
}

#[test]
fn the_builder_fills_in_what_issue_fills_in_and_nothing_unknown() {
    let license = License::builder("acme").build().unwrap();
    assert_eq!(license.v, 1);
    assert!(
        license.id.len() == 20 && license.id.starts_with("lic_"),
        "a random id as `entitle issue` makes: {}",
        license.id
    );
    let other = License::builder("acme").build().unwrap();
    assert_ne!(license.id, other.id);
    assert!(license.extra.is_empty());

    // The JSON the builder signs reads as a spec with no unknown field,
    // and means the same license.
    let document = serde_json::to_value(&license).unwrap();
    let (read, spec) = License::from_spec(&document.to_string(), t(T0)).unwrap();
    assert_eq!(read, license);
    assert!(read.unknown_fields(&spec).is_empty());
}

#[test]
fn the_builder_refuses_what_an_install_would_refuse() {
    let malformed = [
        (
            License::builder("acme").seats(Seats::new(5).with_hard_max(4)),
            "seats.hard_max",
        ),
        (
            License::builder("acme").seats(Seats::new(5).with_active_window_secs(0)),
            "seats.active_window_secs",
        ),
        (License::builder("acme").trial_secs(0), "trial_secs"),
        (License::builder("acme").grace_secs(-1), "grace_secs"),
        (
            License::builder("acme")
                .starts_at(t("2027-01-01T00:00:00Z"))
                .expires_at(t("2026-01-01T00:00:00Z")),
            "starts_at",
        ),
        (License::builder("ac\nme"), "product"),
        (License::builder("acme").id(""), "id"),
        (
            License::builder("acme")
                .feature(Feature::new("a"))
                .feature(Feature::new("a")),
            "features[1].code",
        ),
        (
            License::builder("acme").feature(Feature::new("a").with_limit(-1)),
            "features[0].limit",
        ),
        (
            License::builder("acme").floating(Floating::new(1, 0)),
            "floating.lease_secs",
        ),
        (
            License::builder("acme").feature(
                Feature::new("a").with_floating(Floating::new(1, 60).with_borrow_max_secs(-1)),
            ),
            "features[0].floating.borrow_max_secs",
        ),
    ];
    let key = Vendor::new().key;
    for (builder, field) in malformed {
        let err = builder.clone().build().unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "{field}: {err}");
        assert!(
            err.to_string().contains(&format!("`{field}`")),
            "{field}: {err}"
        );
        assert_eq!(builder.sign(&key).unwrap_err().code(), "MALFORMED");
    }

    let many = (0..=MAX_FEATURES).fold(License::builder("acme"), |b, i| {
        b.feature(Feature::new(format!("f{i}")))
    });
    assert_eq!(many.build().unwrap_err().code(), "TOO_LARGE");

    // Too deep for any install's JSON reader: refused before signing.
    let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
    let err = License::builder("acme").metadata(deep).build().unwrap_err();
    assert_eq!(err.code(), "MALFORMED", "{err}");

    // Too large to install: refused at signing.
    let big = "x".repeat(MAX_TOKEN_BYTES);
    let err = License::builder("acme").notice(big).sign(&key).unwrap_err();
    assert_eq!(err.code(), "TOO_LARGE", "{err}");
}

#[test]
fn a_signed_license_is_exactly_the_one_built() {
    let vendor = Vendor::new();
    let license = License::builder("acme")
        .id("lic_exact")
        .serial(3)
        .issued_at(t(T0))
        .on_expiry(OnExpiry::Keep)
        .assigned_users(["ann"])
        .prevent_vm(true)
        .activations(Activations::unlimited())
        .feature(Feature::new("export"))
        .build()
        .unwrap();
    let token = license.sign(&vendor.key).unwrap();
    let mut keyring = Keyring::new();
    keyring.add(vendor.key.public_key().clone());
    let verified = VerifiedLicense::verify(&token, &keyring).unwrap();
    assert_eq!(*verified.license(), license);

    // A field in `extra` that repeats a known one would be read as only
    // one of the two: refused rather than signed.
    let mut shadowed = license.clone();
    shadowed.features[0]
        .extra
        .insert("code".into(), json!("other"));
    assert_eq!(shadowed.sign(&vendor.key).unwrap_err().code(), "MALFORMED");
}

#[test]
fn built_licenses_carry_the_issue_warnings_of_their_kind() {
    let end = t("2027-01-01T00:00:00Z");
    let perpetual = License::builder("acme").expires_at(end).build().unwrap();
    assert_eq!(
        perpetual.issue_warnings(),
        [IssueWarning::PerpetualWithExpiry { expires_at: end }]
    );
    let subscription = License::builder("acme")
        .kind(Kind::Subscription)
        .build()
        .unwrap();
    assert_eq!(
        subscription.issue_warnings(),
        [IssueWarning::KindWithoutEnd {
            kind: Kind::Subscription
        }]
    );
    assert!(License::builder("acme")
        .kind(Kind::Subscription)
        .expires_at(end)
        .build()
        .unwrap()
        .issue_warnings()
        .is_empty());
}
