//! The hot path answers from precomputed timelines; the policies answer
//! from first principles. They must agree at every instant.

mod common;

use common::*;
use entitle::license::License;
use entitle::policy::validity::{feature_decision, Context, LicenseView};
use entitle::Timestamp;
use proptest::prelude::*;
use serde_json::{json, Value};

const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn at(offset: i64) -> String {
    Timestamp::from_unix(BASE + offset).to_string()
}

prop_compose! {
    fn license_doc(id: usize)(
        starts in proptest::option::of(0i64..400),
        length in proptest::option::of(1i64..400),
        grace in 0i64..100,
        keep in any::<bool>(),
        enabled in prop::bool::weighted(0.9),
        features in proptest::collection::vec((0usize..4, proptest::option::of(0i64..600), proptest::option::of(0i64..20)), 0..4),
    ) -> Value {
        let mut doc = json!({"id": format!("lic{id}"), "grace_secs": grace, "enabled": enabled,
            "on_expiry": if keep { "keep" } else { "deny" }});
        if let Some(s) = starts { doc["starts_at"] = json!(at(s)); }
        if let Some(l) = length { doc["expires_at"] = json!(at(starts.unwrap_or(0) + l)); }
        let mut seen = std::collections::HashSet::new();
        let features: Vec<Value> = features.into_iter().filter(|(c, _, _)| seen.insert(*c)).map(|(c, exp, limit)| {
            let mut f = json!({"code": format!("f{c}")});
            if let Some(e) = exp { f["expires_at"] = json!(at(e)); }
            if let Some(l) = limit { f["limit"] = json!(l); }
            f
        }).collect();
        doc["features"] = Value::Array(features);
        doc
    }
}

fn docs() -> impl Strategy<Value = Vec<Value>> {
    (license_doc(0), license_doc(1), license_doc(2), 1usize..=3)
        .prop_map(|(a, b, c, n)| vec![a, b, c].into_iter().take(n).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn timelines_agree_with_the_policies_at_every_instant(docs in docs(), times in proptest::collection::vec(-50i64..900, 1..20)) {
        let vendor = Vendor::new();
        let clock = clock_at(T0);
        let engine = vendor.engine(&clock);
        let mut licenses = Vec::new();
        for doc in &docs {
            let token = vendor.license(doc.clone());
            engine.add_license(&token).unwrap();
            licenses.push(License::from_json(&entitle::token::decode_unverified(&token).unwrap().payload.clone().into()).unwrap());
        }
        let views: Vec<LicenseView<'_>> = licenses.iter().map(LicenseView::of).collect();
        // Checking never moves the rollback guard, so any instant after the
        // last mutation is fair; earlier ones are tampered by design.
        for offset in times {
            let now = BASE + offset.max(0);
            clock.set(Timestamp::from_unix(now));
            for code in ["f0", "f1", "f2", "f3", "f9"] {
                let expected = feature_decision(&views, code, &Context::default(), now, false);
                let decision = engine.check_feature(code);
                prop_assert_eq!(decision.reason(), expected, "{} at +{}", code, offset);
                prop_assert_eq!(engine.feature(code).check(), decision);
                if let Some(until) = decision.until() {
                    // The decision really changes at `until`, and not before.
                    let before = feature_decision(&views, code, &Context::default(), until.unix() - 1, false);
                    prop_assert_eq!(before, expected);
                }
                let limit = entitle::policy::validity::limit(&views, code, &Context::default(), now, false);
                prop_assert_eq!(engine.limit(code), limit);
            }
        }
    }
}
