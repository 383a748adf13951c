//! Many tenants in one process: a thousand tenant engines over one
//! PostgreSQL database, each with background refresh on, as a service
//! holding one engine per tenant would. Prints the threads and the
//! resident memory they cost, against a thousand engines on the in-memory
//! store built in the same run (the baseline: what the engines themselves
//! cost), and the PostgreSQL connections held.
//!
//! Against `$ENTITLE_TEST_PG`, or a throwaway cluster it starts (as the
//! tests do, `tests/pg_common/`). Linux (reads `/proc`).
//!
//! ```sh
//! cargo run --release --features postgres --example pg_tenants [TENANTS]
//! ```
//!
//! Figures: `BENCHMARKS.md`, "Many tenants on PostgreSQL".

use std::time::{Duration, Instant};

use entitle::store::{MemoryStore, PgStore};
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

#[path = "../tests/pg_common/mod.rs"]
mod pg_common;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), entitle::Error> {
    let tenants: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let url = pg_common::fresh_database("tenants_example");
    let vendor = SigningKey::from_seed(&[7; 32]);
    let license = sign(
        &json!({"v": 1, "id": "lic", "product": "bench", "issued_at": "2026-01-01T00:00:00Z",
            "seats": {"max": 50}, "features": [{"code": "api", "consumption": {}}]}),
        &vendor,
        TokenType::License,
    )?;
    let build = |store: Option<PgStore>| {
        let builder = Engine::builder("bench")
            .trust(vendor.public_key().clone())
            .clock(SystemClock);
        let engine = match store {
            Some(store) => builder.store(store).build()?,
            None => builder.store(MemoryStore::new()).build()?,
        };
        engine.add_license(&license)?;
        Ok::<Engine, entitle::Error>(engine)
    };

    let (threads_0, rss_0) = (threads(), rss_kib());
    let started = Instant::now();
    let in_memory: Vec<Engine> = (0..tenants)
        .map(|_| build(None))
        .collect::<Result<_, _>>()?;
    let memory_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let (threads_1, rss_1) = (threads(), rss_kib());

    let started = Instant::now();
    let on_pg: Vec<Engine> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (url, build) = (&url, &build);
                s.spawn(move || {
                    (w..tenants)
                        .step_by(8)
                        .map(|i| build(Some(PgStore::create(url, &format!("tenant-{i}"))?)))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a builder thread"))
            .collect::<Result<Vec<Vec<_>>, _>>()
            .map(|all| all.into_iter().flatten().collect())
    })?;
    let pg_secs = started.elapsed().as_secs_f64();
    // Let the refresher go round them all a few times.
    std::thread::sleep(Duration::from_secs(3));
    let (threads_2, rss_2) = (threads(), rss_kib());
    let connections = pg_common::psql(
        &url,
        "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()",
    );
    let per = |kib: u64| kib as f64 / tenants as f64;
    println!("{tenants} tenant engines, background refresh on");
    println!(
        "in memory (baseline): +{} threads, +{} KiB resident ({:.1} KiB per tenant), built in {memory_secs:.2} s",
        threads_1 - threads_0,
        rss_1.saturating_sub(rss_0),
        per(rss_1.saturating_sub(rss_0)),
    );
    println!(
        "on PostgreSQL:        +{} threads, +{} KiB resident ({:.1} KiB per tenant), built in {pg_secs:.2} s, {connections} connections",
        threads_2 - threads_1,
        rss_2.saturating_sub(rss_1),
        per(rss_2.saturating_sub(rss_1)),
    );
    println!("threads in the process: {threads_2} (with the main thread)");
    println!(
        "PostgreSQL / memory per tenant: {:.2}x",
        per(rss_2.saturating_sub(rss_1)) / per(rss_1.saturating_sub(rss_0)).max(f64::MIN_POSITIVE)
    );
    drop((in_memory, on_pg));
    Ok(())
}
