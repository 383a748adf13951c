//! Licenses for some versions and release channels of a program: outside
//! them, every feature of the license is `VERSION_NOT_LICENSED`. And the
//! words a feature carries besides its rights: a name and metadata.

mod common;

use common::*;
use entitle::license::{Feature, License};
use entitle::semver::VersionReq;
use entitle::{Engine, Reason};
use serde_json::json;

/// An engine of `version` and `channel` (each `None`: not given) with
/// one license holding `limits` (its `versions` and `channels`) and
/// granting `export`; the reason `export` gets, from the check and from
/// a gate.
fn export_reason(
    limits: serde_json::Value,
    version: Option<&str>,
    channel: Option<&str>,
) -> Reason {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let mut builder = vendor.builder(&clock).in_memory();
    if let Some(version) = version {
        builder = builder.version(version);
    }
    if let Some(channel) = channel {
        builder = builder.channel(channel);
    }
    let engine = builder.build().unwrap();
    let mut doc = json!({"id": "lic", "features": [{"code": "export"}]});
    doc.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    engine.add_license(&vendor.license(doc)).unwrap();
    let reason = engine.check_feature("export").reason();
    assert_eq!(
        engine.feature("export").check().reason(),
        reason,
        "the gate agrees"
    );
    reason
}

#[test]
fn a_version_inside_the_requirement_is_licensed() {
    let limits = json!({"versions": ">=2.0, <3"});
    assert_eq!(
        export_reason(limits.clone(), Some("2.0.0"), None),
        Reason::Ok
    );
    assert_eq!(export_reason(limits, Some("2.3.1"), None), Reason::Ok);
}

#[test]
fn a_version_outside_the_requirement_is_version_not_licensed() {
    let limits = json!({"versions": ">=2.0, <3"});
    assert_eq!(
        export_reason(limits.clone(), Some("3.0.0"), None),
        Reason::VersionNotLicensed
    );
    assert_eq!(
        export_reason(limits, Some("1.9.9"), None),
        Reason::VersionNotLicensed
    );
}

#[test]
fn a_prerelease_is_licensed_only_where_the_requirement_names_one() {
    assert_eq!(
        export_reason(json!({"versions": ">=2.0, <3"}), Some("2.4.0-beta.1"), None),
        Reason::VersionNotLicensed
    );
    assert_eq!(
        export_reason(
            json!({"versions": ">=2.4.0-beta.1, <3"}),
            Some("2.4.0-beta.1"),
            None
        ),
        Reason::Ok
    );
}

#[test]
fn a_program_that_gives_no_version_is_refused_by_a_license_with_versions() {
    assert_eq!(
        export_reason(json!({"versions": "*"}), None, Some("stable")),
        Reason::VersionNotLicensed
    );
}

#[test]
fn a_license_without_versions_or_channels_accepts_any_program() {
    assert_eq!(export_reason(json!({}), None, None), Reason::Ok);
    assert_eq!(
        export_reason(json!({}), Some("0.1.0-alpha"), Some("nightly")),
        Reason::Ok
    );
}

#[test]
fn a_listed_channel_is_licensed_and_any_other_or_none_is_not() {
    let limits = json!({"channels": ["stable", "beta"]});
    assert_eq!(
        export_reason(limits.clone(), None, Some("beta")),
        Reason::Ok
    );
    assert_eq!(
        export_reason(limits.clone(), None, Some("nightly")),
        Reason::VersionNotLicensed
    );
    assert_eq!(
        export_reason(limits, Some("2.0.0"), None),
        Reason::VersionNotLicensed
    );
}

#[test]
fn the_license_for_this_version_wins_over_one_for_another() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor
        .builder(&clock)
        .in_memory()
        .version("3.1.0")
        .build()
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "v2", "versions": "^2",
            "seats": {"max": 5}, "features": [{"code": "export"}, {"code": "old"}]})))
        .unwrap();
    assert_eq!(
        engine.check_feature("export").reason(),
        Reason::VersionNotLicensed
    );
    // Nothing new is granted under it either: no seat.
    assert_eq!(engine.can_add_user().reason(), Reason::VersionNotLicensed);
    engine
        .add_license(&vendor.license(json!({"id": "v3", "versions": "^3",
            "features": [{"code": "export"}]})))
        .unwrap();
    assert_eq!(engine.check_feature("export").reason(), Reason::Ok);
    assert_eq!(
        engine.check_feature("old").reason(),
        Reason::VersionNotLicensed
    );
    let infos = engine.license_infos();
    let v2 = infos.iter().find(|l| l.id == "v2").unwrap();
    assert_eq!(v2.versions.as_deref(), Some("^2"));
    assert!(!v2.version_licensed);
    assert!(
        infos
            .iter()
            .find(|l| l.id == "v3")
            .unwrap()
            .version_licensed
    );
}

#[test]
fn a_bad_engine_version_or_channel_is_an_error_at_build_naming_the_call() {
    for bad in ["2.3", "v2.3.1", "", "2.3.1.4"] {
        let err = Engine::builder("acme")
            .in_memory()
            .version(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{bad}");
        assert!(
            err.to_string()
                .contains(&format!("EngineBuilder::version(\"{bad}\")")),
            "{err}"
        );
    }
    let err = Engine::builder("acme")
        .in_memory()
        .channel("")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("EngineBuilder::channel"), "{err}");
}

#[test]
fn a_bad_requirement_is_refused_at_issue_time_with_its_path() {
    let now = t(T0);
    let err =
        License::from_spec(r#"{"product": "acme", "versions": ">=2.0 <3 x"}"#, now).unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(err.to_string().contains("field `versions`"), "{err}");
    let err = License::from_spec(r#"{"product": "acme", "channels": ["ok", 7]}"#, now).unwrap_err();
    assert!(err.to_string().contains("channels[1]"), "{err}");
    // And at install time, from a token signed by hand.
    let vendor = Vendor::new();
    let engine = vendor.engine(&clock_at(T0));
    let err = engine
        .add_license(&vendor.license(json!({"id": "bad", "versions": "two"})))
        .unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(err.to_string().contains("field `versions`"), "{err}");
}

#[test]
fn the_builder_issues_versions_and_channels_an_engine_enforces() {
    let vendor = Vendor::new();
    let token = License::builder("acme")
        .id("lic_b")
        .versions(VersionReq::parse(">=2.0, <3").unwrap())
        .channels(["stable"])
        .feature(Feature::new("export"))
        .sign(&vendor.key)
        .unwrap();
    let clock = clock_at(T0);
    let on = |version: &str, channel: &str| {
        let engine = vendor
            .builder(&clock)
            .in_memory()
            .version(version)
            .channel(channel)
            .build()
            .unwrap();
        engine.add_license(&token).unwrap();
        engine.check_feature("export").reason()
    };
    assert_eq!(on("2.5.0", "stable"), Reason::Ok);
    assert_eq!(on("2.5.0", "beta"), Reason::VersionNotLicensed);
    assert_eq!(on("3.0.0", "stable"), Reason::VersionNotLicensed);
}

#[test]
fn feature_names_and_metadata_are_shown() {
    let vendor = Vendor::new();
    let engine = vendor.engine(&clock_at(T0));
    engine
        .add_license(&vendor.license(json!({"id": "lic", "features": [
            {"code": "export", "name": "Export to PDF", "metadata": {"tier": "pro"}},
            {"code": "plain"}
        ]})))
        .unwrap();
    let info = engine.license_infos().remove(0);
    assert_eq!(info.features[0].name.as_deref(), Some("Export to PDF"));
    assert_eq!(info.features[0].metadata, Some(json!({"tier": "pro"})));
    assert_eq!(
        (
            info.features[1].name.as_ref(),
            info.features[1].metadata.as_ref()
        ),
        (None, None)
    );
}
