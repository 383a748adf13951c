//! Many tenants in one process (docs/semantics.md#durability-and-sharing): a thousand engines over
//! one PostgreSQL share one pool and one listener. Alone in its test
//! binary, so that the threads counted are this test's.
#![cfg(feature = "postgres")]

mod common;
mod pg_common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use entitle::store::PgStore;
use entitle::{Engine, SystemClock};
use pg_common::{fresh_database, psql};
use serde_json::json;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A service holding one engine per tenant: a thousand engines over one
/// database, each refreshing in the background, run a handful of threads
/// and connections, not one or two per engine; and each still sees its
/// own tenant's changes.
#[test]
fn a_thousand_tenant_engines_run_a_bounded_number_of_threads() {
    let url = fresh_database("tenants");
    let vendor = Vendor::new();
    let before = threads();
    let built = AtomicU64::new(0);
    let engines: Vec<(String, Engine)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (url, vendor, built) = (&url, &vendor, &built);
                s.spawn(move || {
                    (0..125)
                        .map(|i| {
                            let ns = format!("tenant-{}", w * 125 + i);
                            let engine = Engine::builder("acme")
                                .trust(vendor.key.public_key().clone())
                                .clock(SystemClock)
                                .store(PgStore::create(url, &ns).unwrap())
                                .build()
                                .unwrap();
                            built.fetch_add(1, Ordering::Relaxed);
                            (ns, engine)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(engines.len(), 1000);
    // Give the refresher a few rounds over all of them.
    std::thread::sleep(Duration::from_secs(2));
    let grown = threads().saturating_sub(before);
    // The refresher, the listener, the pool's scheduler, the clock.
    assert!(grown <= 6, "{grown} more threads for 1000 engines");
    let connections: usize = psql(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
    )
    .parse()
    .unwrap();
    // The pool's ten, the listener's one and this psql.
    assert!(connections <= 12, "{connections} connections");
    // Each tenant is its own install: a license for one reaches it alone.
    let (ns, engine) = &engines[617];
    let writer = Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .clock(SystemClock)
        .store(PgStore::open(&url, ns).unwrap())
        .build()
        .unwrap();
    writer
        .add_license(
            &vendor.license(json!({"id": "lic", "issued_at": "2020-01-01T00:00:00Z",
            "features": [{"code": "export"}]})),
        )
        .unwrap();
    let since = Instant::now();
    while !engine.check_feature("export").allowed() {
        assert!(
            since.elapsed() < Duration::from_secs(2),
            "tenant 617 never saw its license"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!engines[616].1.check_feature("export").allowed());
}
