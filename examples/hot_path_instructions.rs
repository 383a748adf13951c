//! The hot path counted in instructions rather than seconds: one million
//! checks of one kind, to run under `valgrind --tool=callgrind`, whose
//! instruction count is the same from run to run whatever else the machine
//! does (criterion's figures on this shared VM move by up to 40%).
//!
//! ```sh
//! cargo build --release --example hot_path_instructions
//! for kind in none baseline check_feature gate can_add_user gate_local_lease gate_lease_outside; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/hot_path_instructions $kind 2>&1 | grep refs
//! done
//! ```
//!
//! Subtract `none` (the set-up alone) and divide by a million for
//! instructions per check. The engine is `benches/hot_path.rs`'s in small:
//! a license of 20 features that started a month ago and ends in a year
//! with a week of grace; the baseline is the same time-blind map.

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Clock, Engine, SystemClock};
use rustc_hash::FxHashMap;
use serde_json::json;

const CHECKS: u64 = 1_000_000;

/// Runs one kind of check a million times (one loop per kind, so no
/// dispatch is counted), returning how many were allowed.
fn count(check: impl Fn() -> bool) -> u64 {
    (0..CHECKS).map(|_| u64::from(check())).sum()
}
const DAY: i64 = 24 * 3600;

fn main() -> Result<(), entitle::Error> {
    let kind = std::env::args().nth(1).unwrap_or_else(|| "none".into());
    let key = SigningKey::from_seed(&[42; 32]);
    let now = SystemClock.now();
    let at = |days: i64| now.plus_secs(days * DAY).to_rfc3339();
    let engine = Engine::builder("acme")
        .in_memory()
        .trust(key.public_key().clone())
        .background_refresh(false)
        .build()?;
    let mut features: Vec<_> = (0..19)
        .map(|i| json!({"code": format!("base_{i}")}))
        .collect();
    features.push(json!({"code": "export"}));
    let license = json!({"v": 1, "id": "lic", "product": "acme", "issued_at": at(-1),
        "starts_at": at(-30), "expires_at": at(365), "grace_secs": 7 * DAY,
        "seats": {"max": 50}, "features": features});
    engine.add_license(&sign(&license, &key, TokenType::License)?)?;
    let mut map = FxHashMap::default();
    for i in 0..19 {
        map.insert(format!("base_{i}"), true);
    }
    map.insert("export".to_owned(), true);
    let baseline = ArcSwap::from(Arc::new(map));
    let gate = engine.feature("export");
    // A floating feature, for the gate with a seat held: taken by the
    // engine itself, or held outside its state (a borrowed token, which
    // registers with the engine as a license server's client's seat does).
    // The seat is taken in the kind's own branch: a few thousand
    // instructions of set-up that `none` does not subtract.
    let floating = Engine::builder("acme")
        .in_memory()
        .trust(key.public_key().clone())
        .background_refresh(false)
        .build()?;
    let pool = json!({"v": 1, "id": "float", "product": "acme", "issued_at": at(-1),
        "floating": {"seats": 5, "lease_secs": 3600}, "features": [{"code": "render"}]});
    floating.add_license(&sign(&pool, &key, TokenType::License)?)?;
    let render = floating.feature("render");

    let allowed = match kind.as_str() {
        "baseline" => count(|| {
            baseline
                .load()
                .get(black_box("export"))
                .copied()
                .unwrap_or(false)
        }),
        "check_feature" => count(|| engine.check_feature(black_box("export")).allowed()),
        "gate" => count(|| black_box(&gate).check().allowed()),
        "can_add_user" => count(|| black_box(&engine).can_add_user().allowed()),
        "gate_local_lease" => {
            let _seat = floating.lease(Some("render"))?;
            count(|| black_box(&render).check().allowed())
        }
        "gate_lease_outside" => {
            let server = SigningKey::from_seed(&[7; 32]);
            let token = entitle::token::LeaseToken::new(
                "lease_1",
                vec!["float".into()],
                floating.client_id(),
                None,
                now,
                now.plus_secs(DAY),
                true,
            )
            .sign(&server)?;
            let _seat = entitle::LeaseGuard::borrowed(&floating, &token, server.public_key())?;
            count(|| black_box(&render).check().allowed())
        }
        _ => 0,
    };
    println!("{kind}: {allowed} of {CHECKS} allowed");
    Ok(())
}
