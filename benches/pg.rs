//! Durable writes on PostgreSQL: `consume` against a bare one-row
//! PostgreSQL commit (the floor: one round trip to begin, one update, one
//! commit that waits for the server's WAL flush), in one run; and eight
//! threads consuming at once on one engine, where batching shares commits
//! (target: 8 threads at least 4x one thread's throughput).
//!
//! Against `$ENTITLE_TEST_PG`, or a throwaway cluster the bench starts
//! (as the tests do, `tests/pg_common/`), `fsync` on.
//!
//! ```text
//! cargo bench --features postgres --bench pg -- --warm-up-time 1 --measurement-time 5
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use entitle::store::PgStore;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

#[path = "../tests/pg_common/mod.rs"]
mod pg_common;

fn engine(namespace: &str) -> Engine {
    let vendor = SigningKey::from_seed(&[7; 32]);
    let engine = Engine::builder("bench")
        .trust(vendor.public_key().clone())
        .clock(SystemClock)
        .store(PgStore::open(pg_common::server_url(), namespace).unwrap())
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

/// The floor beside a durable consume: one row updated in one transaction
/// from a prepared statement, committed with `synchronous_commit` on.
fn bare_commit(c: &mut Criterion) {
    let mut client = postgres::Client::connect(pg_common::server_url(), postgres::NoTls).unwrap();
    client
        .batch_execute(
            "SET synchronous_commit = on; \
             CREATE TABLE IF NOT EXISTS bench_bare (id int PRIMARY KEY, used bigint NOT NULL); \
             INSERT INTO bench_bare VALUES (1, 0) ON CONFLICT DO NOTHING",
        )
        .unwrap();
    let update = client
        .prepare("UPDATE bench_bare SET used = used + 1 WHERE id = 1")
        .unwrap();
    let mut group = c.benchmark_group("pg");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_commit", |b| {
        b.iter(|| {
            client.batch_execute("BEGIN").unwrap();
            client.execute(&update, &[]).unwrap();
            client.batch_execute("COMMIT").unwrap();
        })
    });
    let engine = engine(&pg_common::created_namespace("bench-consume"));
    group.bench_function("consume_durable", |b| {
        b.iter(|| engine.consume("api", 1).unwrap())
    });
    // The two taken in turns, one of each per iteration, so that both
    // meet the same moment of a shared machine (its load, the disk's
    // fsync latency): the time is the consume's, and the ratio to the
    // bare commits beside it is printed after the group.
    // A second floor beside them: the bare commit with the notification
    // every commit of the store sends (other engines learn of changes
    // from it), `NOTIFY` and `COMMIT` in one round trip as the store
    // sends them, with the engine's listener listening.
    let (mut consumes, mut bares, mut notified) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    group.bench_function("consume_durable_interleaved", |b| {
        b.iter_custom(|iters| {
            let mut consume_time = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                client.batch_execute("BEGIN").unwrap();
                client.execute(&update, &[]).unwrap();
                client.batch_execute("COMMIT").unwrap();
                let bare_done = Instant::now();
                client.batch_execute("BEGIN").unwrap();
                client.execute(&update, &[]).unwrap();
                client
                    .batch_execute("SELECT pg_notify('bench_bare', '1'); COMMIT")
                    .unwrap();
                let notify_done = Instant::now();
                engine.consume("api", 1).unwrap();
                consume_time += notify_done.elapsed();
                bares += bare_done - start;
                notified += notify_done - bare_done;
            }
            consumes += consume_time;
            consume_time
        })
    });
    group.finish();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "pg/consume_durable_interleaved: consume / bare commit = {:.2}x, \
         consume / bare commit with NOTIFY = {:.2}x, bare with NOTIFY / bare = {:.2}x \
         (every iteration of warm-up and measurement)",
        ratio(consumes, bares),
        ratio(consumes, notified),
        ratio(notified, bares),
    );
}

/// Eight threads consuming at once on one engine, as a service's requests
/// would: each iteration is one consume per thread, so the figure per
/// element is the cost of one consume under contention.
fn concurrent(c: &mut Criterion) {
    let mut group = c.benchmark_group("pg");
    for threads in [1usize, 8] {
        let engine = Arc::new(engine(&pg_common::created_namespace("bench-threads")));
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

criterion_group!(benches, bare_commit, concurrent);
criterion_main!(benches);
