//! Durable writes: `consume` on the file store against a bare SQLite commit
//! of one row with an fsync (the physical floor), in one run; and eight
//! threads consuming at once, where group commit shares fsyncs.
//!
//! Reading state back: `refresh/*`, one engine picking up another's change
//! to a state of 1 or 100 licenses (a change that touches no license
//! must not verify any again: target 100 / 1 at most 1.2), and `open/*`,
//! an engine built on a state of 10 licenses (target at most 5 ms).
//!
//! ```text
//! cargo bench --bench state -- --warm-up-time 1 --measurement-time 4
//! cargo bench --bench state -- --warm-up-time 1 --measurement-time 3 refresh
//! cargo bench --bench state -- --warm-up-time 1 --measurement-time 3 open
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use entitle::store::FileStore;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

#[path = "typical_license.rs"]
mod typical_license;

fn engine(dir: &std::path::Path) -> Engine {
    let vendor = SigningKey::from_seed(&[7; 32]);
    let engine = Engine::builder("bench")
        .trust(vendor.public_key().clone())
        .clock(SystemClock)
        .store(FileStore::create(dir).unwrap())
        .background_refresh(false)
        .build()
        .unwrap();
    let license = json!({"v": 1, "id": "lic", "product": "bench", "issued_at": "2026-01-01T00:00:00Z",
        "seats": {"max": 50}, "features": [{"code": "api", "consumption": {"reset": "monthly"}}]});
    engine
        .add_license(&sign(&license, &vendor, TokenType::License).unwrap())
        .unwrap();
    engine
}

/// The floor: one row updated in one SQLite transaction, WAL mode, fsync
/// at commit (`synchronous=FULL`), as durable as a mutation must be.
fn bare_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("bare.sqlite")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE counters (id TEXT PRIMARY KEY, used INTEGER NOT NULL)")
        .unwrap();
    conn.execute("INSERT INTO counters VALUES ('api', 0)", [])
        .unwrap();
    let mut group = c.benchmark_group("state");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_commit", |b| {
        b.iter(|| {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.execute("UPDATE counters SET used = used + 1 WHERE id = 'api'", [])
                .unwrap();
            conn.execute_batch("COMMIT").unwrap();
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    group.bench_function("consume_durable", |b| {
        b.iter(|| engine.consume("api", 1).unwrap())
    });
    group.finish();
}

/// Eight threads consuming at once, as requests of a service would: each
/// iteration is one consume per thread, so the figure per element is the
/// cost of one consume under contention.
fn concurrent(c: &mut Criterion) {
    let mut group = c.benchmark_group("state");
    for threads in [1usize, 8] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(engine(dir.path()));
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(format!("consume_durable_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let engine = Arc::clone(&engine);
                        s.spawn(move || {
                            for _ in 0..iters {
                                engine.consume("api", 1).unwrap();
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// Users on every state the `refresh` and `open` groups read.
const USERS: usize = 100;

/// The metered feature the `refresh` group's other engine consumes.
const METER: &str = "bench.meter";

/// An engine on `store` as a program would build one: the system clock,
/// no background refresh (the bench calls `refresh` itself).
fn engine_on(vendor: &SigningKey, store: FileStore) -> Engine {
    Engine::builder("bench")
        .trust(vendor.public_key().clone())
        .store(store)
        .background_refresh(false)
        .clock(SystemClock)
        .build()
        .unwrap()
}

/// `benches/typical_license.rs`'s license (seats, activations, floating
/// seats, a dozen features of every kind, metered ones among them) for
/// this product, under its own id and serial, with seats enough for
/// [`USERS`] users on one license and one more metered feature without a
/// limit (`bench.meter`, which any number of iterations can consume),
/// signed.
fn typical_token(vendor: &SigningKey, id: &str, serial: u64) -> String {
    let mut license = typical_license::typical_license();
    license["id"] = json!(id);
    license["product"] = json!("bench");
    license["serial"] = json!(serial);
    license["seats"] = json!({"max": USERS + 20, "hard_max": USERS + 30});
    license["features"]
        .as_array_mut()
        .unwrap()
        .push(json!({"code": METER, "consumption": {"reset": "monthly"}}));
    sign(&license, vendor, TokenType::License).unwrap()
}

/// Fills the state behind `engine` with `licenses` typical licenses and
/// [`USERS`] users.
fn fill(engine: &Engine, vendor: &SigningKey, licenses: usize) {
    for i in 0..licenses {
        engine
            .add_license(&typical_token(vendor, &format!("lic-{i:03}"), 2))
            .unwrap();
    }
    for i in 0..USERS {
        engine
            .add_user(&format!("user-{i:03}"), "designer")
            .unwrap();
    }
}

/// Refreshing after another process's change: engines A and B on one state
/// directory; in each iteration B makes a change (not timed) and A's
/// `refresh` (timed) reads the state again, since the store's generation
/// moved. In `refresh_1_license` and `refresh_100_licenses` B consumes a
/// unit of a metered feature (a change to no license, and one that leaves
/// the state the same size); in `refresh_100_licenses_changed` B replaces
/// one license with a newer issue, which A must verify (and whose rights
/// it must build again): what verification would cost if the cache did
/// not hold.
fn refresh(c: &mut Criterion) {
    let vendor = SigningKey::from_seed(&[7; 32]);
    let mut group = c.benchmark_group("refresh");
    group.throughput(Throughput::Elements(1));
    for (name, licenses, change_license) in [
        ("refresh_1_license", 1, false),
        ("refresh_100_licenses", 100, false),
        ("refresh_100_licenses_changed", 100, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let b_engine = engine_on(&vendor, FileStore::create(dir.path()).unwrap());
        fill(&b_engine, &vendor, licenses);
        let a_engine = engine_on(&vendor, FileStore::create(dir.path()).unwrap());
        // A sees B's change once it has refreshed.
        let used = |e: &Engine| e.consumption(METER).iter().map(|c| c.used).sum::<u64>();
        let before = used(&a_engine);
        b_engine.consume(METER, 1).unwrap();
        a_engine.refresh().unwrap();
        assert_eq!(used(&a_engine), before + 1);
        assert_eq!(a_engine.status().licenses, licenses);
        let mut serial = 2;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if change_license {
                        serial += 1;
                        b_engine
                            .add_license(&typical_token(&vendor, "lic-000", serial))
                            .unwrap();
                    } else {
                        b_engine.consume(METER, 1).unwrap();
                    }
                    let start = Instant::now();
                    a_engine.refresh().unwrap();
                    timed += start.elapsed();
                }
                timed
            })
        });
    }
    group.finish();
}

/// Opening a state of 10 typical licenses and [`USERS`] users: the whole
/// `Engine::builder(..).store(FileStore::open(dir)?).build()`, i.e.
/// SQLite's `integrity_check`, every row read and counted, every license
/// verified, the snapshot built and the time persisted (target: at most 5
/// ms). `open_store_10_licenses` is `FileStore::open` alone (schema check
/// and `integrity_check`). Dropping the engine is not timed.
fn open(c: &mut Criterion) {
    let vendor = SigningKey::from_seed(&[7; 32]);
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = engine_on(&vendor, FileStore::create(dir.path()).unwrap());
        fill(&engine, &vendor, 10);
    }
    let mut group = c.benchmark_group("open");
    group.throughput(Throughput::Elements(1));
    group.bench_function("open_10_licenses", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let engine = engine_on(&vendor, FileStore::open(dir.path()).unwrap());
                timed += start.elapsed();
                assert_eq!(engine.status().licenses, 10);
                drop(engine);
            }
            timed
        })
    });
    group.bench_function("open_store_10_licenses", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let store = FileStore::open(dir.path()).unwrap();
                timed += start.elapsed();
                drop(store);
            }
            timed
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = bare_commit, concurrent, refresh, open
}
criterion_main!(benches);
