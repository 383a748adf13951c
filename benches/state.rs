//! Durable writes: `consume` on the file store against a bare SQLite commit
//! of one row with an fsync (the physical floor), in one run; and eight
//! threads consuming at once, where group commit shares fsyncs.
//!
//! `cargo bench --bench state`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use entitle::store::FileStore;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

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

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = bare_commit, concurrent
}
criterion_main!(benches);
