//! The reader's hot path against a time-blind baseline, measured in one run
//! so that each figure is read as a ratio to `hot_path/baseline_map`.
//!
//! The engine runs on the real `SystemClock`: the coarse clock read is part
//! of the production hot path, and a fake clock would hide its cost (the
//! `parts` group measures it, and the rest, apart). The background refresher
//! is off so that a second thread does not compete for the (possibly two)
//! cores while criterion measures. Results and how to read them:
//! `BENCHMARKS.md`, "Hot path".

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Clock, Engine, ManualClock, SystemClock, Timestamp};
use rustc_hash::FxHashMap;
use serde_json::{json, Value};

const DAY: i64 = 24 * 3600;

/// A vendor key and licenses dated around the real "now", since the engine
/// reads the system clock.
struct Vendor {
    key: SigningKey,
    now: Timestamp,
}

impl Vendor {
    fn new() -> Self {
        Vendor {
            key: SigningKey::from_seed(&[42; 32]),
            now: SystemClock.now(),
        }
    }

    fn at(&self, offset_secs: i64) -> String {
        self.now.plus_secs(offset_secs).to_rfc3339()
    }

    fn license(&self, mut doc: Value) -> String {
        let obj = doc
            .as_object_mut()
            .expect("a license document is an object");
        obj.insert("v".into(), json!(1));
        obj.insert("product".into(), json!("acme"));
        obj.insert("issued_at".into(), json!(self.at(-DAY)));
        sign(&doc, &self.key, TokenType::License).expect("bench license signs")
    }

    /// An engine on the system clock, or on `clock` when given.
    fn engine(&self, clock: Option<ManualClock>) -> Engine {
        let builder = Engine::builder("acme")
            .in_memory()
            .trust(self.key.public_key().clone())
            .background_refresh(false);
        let builder = match clock {
            Some(clock) => builder.clock(clock),
            None => builder,
        };
        builder.build().expect("bench engine builds")
    }
}

fn features(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({ "code": format!("{prefix}_{i}") }))
        .collect()
}

mod hot_path {
    use super::*;

    /// How many feature codes the realistic engine (and the baseline map)
    /// holds.
    const FEATURE_COUNT: usize = 20;
    const USERS: usize = 40;
    /// Eight base codes, six core codes and `export` make up the rest.
    const ADDON_FEATURES: usize = FEATURE_COUNT - 8 - 6 - 1;

    /// Three licenses: a seat license that started a month ago and expires
    /// in a year with a week of grace (so `export`, which only it grants, has
    /// a four-point timeline), a perpetual one, and a time-boxed add-on;
    /// 20 features, 40 users.
    pub(crate) fn realistic_engine(clock: Option<ManualClock>) -> Engine {
        let vendor = Vendor::new();
        let engine = vendor.engine(clock);
        let mut base = features("base", 8);
        base.push(json!({"code": "export"}));
        engine
            .add_license(&vendor.license(json!({
                "id": "lic_seats",
                "starts_at": vendor.at(-30 * DAY),
                "expires_at": vendor.at(365 * DAY),
                "grace_secs": 7 * DAY,
                "seats": {"max": 50, "hard_max": 60},
                "features": base,
            })))
            .expect("seat license applies");
        let perpetual = features("core", 6);
        engine
            .add_license(&vendor.license(json!({
                "id": "lic_perpetual",
                "features": perpetual,
            })))
            .expect("perpetual license applies");
        engine
            .add_license(&vendor.license(json!({
                "id": "lic_addon",
                "starts_at": vendor.at(-DAY),
                "expires_at": vendor.at(90 * DAY),
                "grace_secs": 3 * DAY,
                "features": features("addon", ADDON_FEATURES),
            })))
            .expect("add-on license applies");
        for i in 0..USERS {
            let kind = if i % 5 == 0 { "admin" } else { "member" };
            engine
                .add_user(&format!("user_{i}"), kind)
                .expect("user fits in the seats");
        }
        assert!(engine.check_feature("export").allowed());
        assert!(engine.feature("export").check().allowed());
        assert!(!engine.check_feature("not_a_feature").allowed());
        assert!(engine.can_add_user().allowed());
        engine
    }

    /// The naive reader: a published map of code to "allowed", which knows
    /// nothing of time. Same key count as the engine's feature table.
    pub(crate) fn baseline_map() -> ArcSwap<FxHashMap<String, bool>> {
        let mut map = FxHashMap::default();
        for (prefix, n) in [("base", 8), ("core", 6), ("addon", ADDON_FEATURES)] {
            for i in 0..n {
                map.insert(format!("{prefix}_{i}"), true);
            }
        }
        map.insert("export".to_owned(), true);
        assert_eq!(map.len(), FEATURE_COUNT);
        ArcSwap::from(Arc::new(map))
    }

    pub fn bench(c: &mut Criterion) {
        let engine = realistic_engine(None);
        let gate = engine.feature("export");
        let baseline = baseline_map();

        let mut group = c.benchmark_group("hot_path");
        group.throughput(Throughput::Elements(1));
        group.bench_function("gate", |b| b.iter(|| black_box(&gate).check()));
        group.bench_function("check_feature", |b| {
            b.iter(|| engine.check_feature(black_box("export")))
        });
        group.bench_function("check_feature_miss", |b| {
            b.iter(|| engine.check_feature(black_box("not_a_feature")))
        });
        group.bench_function("can_add_user", |b| {
            b.iter(|| black_box(&engine).can_add_user())
        });
        group.bench_function("baseline_map", |b| {
            b.iter(|| {
                let map = baseline.load();
                map.get(black_box("export")).copied().unwrap_or(false)
            })
        });
        group.bench_function("system_time_now", |b| b.iter(std::time::SystemTime::now));

        // The peer: unleash-yggdrasil, the feature-flag engine inside
        // Unleash's SDKs, on a flag with no strategy (its fastest case).
        let mut peer = unleash_yggdrasil::EngineState::default();
        let features: unleash_types::client_features::ClientFeatures = serde_json::from_value(json!({
            "version": 2,
            "features": (0..FEATURE_COUNT).map(|i| json!({"name": if i == 0 { "export".to_owned() } else { format!("flag_{i}") },
                "enabled": true, "strategies": []})).collect::<Vec<_>>()
        }))
        .expect("peer features parse");
        peer.take_state(unleash_yggdrasil::UpdateMessage::FullResponse(features));
        let context = unleash_yggdrasil::Context::default();
        assert!(peer.is_enabled("export", &context, &None));
        group.bench_function("peer_yggdrasil", |b| {
            b.iter(|| peer.is_enabled(black_box("export"), black_box(&context), &None))
        });

        // A metered feature on the in-memory store: the whole mutation path
        // (lock, plan, apply, publish) without the disk.
        let metered = Vendor::new().engine(None);
        metered
            .add_license(&Vendor::new().license(json!({"id": "metered",
                "features": [{"code": "api", "consumption": {"reset": "monthly"}}]})))
            .expect("metered license applies");
        group.bench_function("consume_memory", |b| {
            b.iter(|| metered.consume(black_box("api"), 1).expect("unlimited"))
        });
        group.finish();
    }
}

/// Reads under contention: the per-read cost with two reader threads, and
/// with a writer mutating about 10,000 times a second.
mod contention {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    pub fn bench(c: &mut Criterion) {
        let engine = hot_path::realistic_engine(None);
        let gate = engine.feature("export");
        let mut group = c.benchmark_group("contention");
        group.throughput(Throughput::Elements(1));
        group.bench_function("read_1_thread", |b| b.iter(|| black_box(&gate).check()));
        // Each iteration is one read on each of two threads at once; the
        // figure is the time per read as each thread sees it.
        group.bench_function("read_2_threads", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        let gate = gate.clone();
                        s.spawn(move || {
                            for _ in 0..iters {
                                black_box(black_box(&gate).check());
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        // The time-blind baseline on two threads: what the machine itself
        // does to two readers of one published map.
        let baseline = hot_path::baseline_map();
        group.bench_function("baseline_1_thread", |b| {
            b.iter(|| {
                let map = baseline.load();
                map.get(black_box("export")).copied().unwrap_or(false)
            })
        });
        group.bench_function("baseline_2_threads", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        let baseline = &baseline;
                        s.spawn(move || {
                            for _ in 0..iters {
                                let map = baseline.load();
                                black_box(map.get(black_box("export")).copied().unwrap_or(false));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let writer = engine.clone();
            let stop = &stop;
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // add_user publishes a new snapshot each time.
                    let _ = writer.add_user(&format!("writer_{}", i % 5), "member");
                    i += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
            });
            group.bench_function("read_with_writer", |b| b.iter(|| black_box(&gate).check()));
            stop.store(true, Ordering::Relaxed);
        });
        group.finish();
    }
}

/// The hot path taken apart, to say what bounds each figure above.
mod parts {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let baseline = hot_path::baseline_map();
        let map: FxHashMap<String, bool> = (*baseline.load_full()).clone();
        let published: ArcSwap<u64> = ArcSwap::from(Arc::new(7));
        let manual = hot_path::realistic_engine(Some(ManualClock::new(SystemClock.now())));
        let manual_gate = manual.feature("export");

        let mut group = c.benchmark_group("parts");
        group.throughput(Throughput::Elements(1));
        group.bench_function("coarse_clock", |b| {
            b.iter(|| black_box(entitle::clock::CoarseClock).now())
        });
        group.bench_function("arc_swap_load", |b| {
            b.iter(|| **black_box(&published).load())
        });
        group.bench_function("fx_map_get", |b| {
            b.iter(|| {
                black_box(&map)
                    .get(black_box("export"))
                    .copied()
                    .unwrap_or(false)
            })
        });
        // A manual clock is one atomic load: what the engine costs without
        // the system clock read.
        group.bench_function("check_feature_manual_clock", |b| {
            b.iter(|| manual.check_feature(black_box("export")))
        });
        group.bench_function("gate_manual_clock", |b| {
            b.iter(|| black_box(&manual_gate).check())
        });
        group.finish();
    }
}

mod scale {
    use super::*;

    /// A license may carry at most `MAX_FEATURES` (1,024) codes and a token
    /// at most 64 KiB, so 10,000 features take ten licenses of 1,000.
    const LICENSES: usize = 10;
    const FEATURES_PER_LICENSE: usize = 1_000;

    pub fn bench(c: &mut Criterion) {
        let vendor = Vendor::new();
        let engine = vendor.engine(None);
        for l in 0..LICENSES {
            engine
                .add_license(&vendor.license(json!({
                    "id": format!("lic_wide_{l}"),
                    "expires_at": vendor.at(365 * DAY),
                    "grace_secs": 7 * DAY,
                    "features": features(&format!("l{l}"), FEATURES_PER_LICENSE),
                })))
                .expect("wide license applies");
        }
        let code = format!("l{}_{}", LICENSES / 2, FEATURES_PER_LICENSE / 2);
        assert!(engine.check_feature(&code).allowed());

        let mut group = c.benchmark_group("scale");
        group.throughput(Throughput::Elements(1));
        group.bench_function("check_feature_10k_features", |b| {
            b.iter(|| engine.check_feature(black_box(code.as_str())))
        });

        // One million named users: a usage page from the middle and the
        // summary by type over all of them (see also
        // examples/million_users.rs for memory).
        let million = vendor.engine(None);
        million
            .add_license(&vendor.license(json!({"id": "site", "seats": {"max": 1_100_000}})))
            .expect("site license applies");
        for i in 0..1_000_000u32 {
            let kind = ["designer", "reviewer", "admin"][(i % 3) as usize];
            million
                .add_user(&format!("user-{i:07}"), kind)
                .expect("seat");
        }
        group.sample_size(10);
        group.bench_function("usage_1m_users", |b| {
            b.iter(|| million.usage(black_box(500_000), 100))
        });
        group.bench_function("check_feature_1m_users", |b| {
            b.iter(|| million.can_add_user())
        });
        group.finish();
    }
}

/// The one gate on a floating feature: a seat this engine took itself
/// against a seat held outside its state (a borrowed token, registered with
/// the engine exactly as a license server's client registers its seats).
/// Both are the same word load; the baseline map runs in the same group.
mod floating {
    use super::*;
    use entitle::token::{LeaseToken, SigningKey};
    use entitle::{Clock, LeaseGuard, SystemClock};

    fn engine(vendor: &Vendor) -> Engine {
        let engine = vendor.engine(None);
        engine
            .add_license(&vendor.license(json!({"id": "lic_float",
                "floating": {"seats": 5, "lease_secs": 3600, "borrow_max_secs": 86_400},
                "features": [{"code": "render"}]})))
            .expect("floating license applies");
        engine
    }

    pub fn bench(c: &mut Criterion) {
        let vendor = Vendor::new();
        let local = engine(&vendor);
        let gate_local = local.feature("render");
        let _seat = local.lease(Some("render")).expect("a local seat");
        assert!(gate_local.check().allowed());

        let outside = engine(&vendor);
        let gate_outside = outside.feature("render");
        let server = SigningKey::from_seed(&[7; 32]);
        let now = SystemClock.now();
        let token = LeaseToken::new(
            "lease_1",
            vec!["lic_float".into()],
            outside.client_id(),
            None,
            now,
            entitle::Timestamp::from_unix(now.unix() + 86_400),
            true,
        )
        .sign(&server)
        .expect("lease token signs");
        let _borrowed =
            LeaseGuard::borrowed(&outside, &token, server.public_key()).expect("borrowed seat");
        assert!(gate_outside.check().allowed());
        let baseline = hot_path::baseline_map();

        let mut group = c.benchmark_group("floating");
        group.throughput(Throughput::Elements(1));
        group.bench_function("gate_local_lease", |b| {
            b.iter(|| black_box(&gate_local).check())
        });
        group.bench_function("gate_lease_held_outside", |b| {
            b.iter(|| black_box(&gate_outside).check())
        });
        group.bench_function("baseline_map", |b| {
            b.iter(|| {
                let map = baseline.load();
                map.get(black_box("export")).copied().unwrap_or(false)
            })
        });
        group.finish();
    }
}

criterion_group!(
    benches,
    hot_path::bench,
    floating::bench,
    contention::bench,
    scale::bench,
    parts::bench
);
criterion_main!(benches);
