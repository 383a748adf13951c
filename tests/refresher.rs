//! Many engines in one process share one refresher thread (a service with
//! one engine per tenant must not run a thread per tenant), and each still
//! sees another process's change within about a second.

mod common;

use std::time::{Duration, Instant};

use common::{clock_at, Vendor, T0};
use entitle::store::FileStore;
use serde_json::json;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| tasks.count())
        .unwrap_or(0)
}

#[test]
fn two_hundred_engines_share_one_refresher_thread_and_all_stay_fresh() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dirs: Vec<tempfile::TempDir> = (0..200).map(|_| tempfile::tempdir().unwrap()).collect();
    let open = |dir: &tempfile::TempDir, background: bool| {
        vendor
            .builder(&clock)
            .background_refresh(background)
            .store(if background {
                FileStore::create(dir.path()).unwrap()
            } else {
                FileStore::open(dir.path()).unwrap()
            })
            .build()
            .unwrap()
    };
    let first = open(&dirs[0], true);
    let before = threads();
    let engines: Vec<_> = dirs.iter().skip(1).map(|dir| open(dir, true)).collect();
    let after = threads();
    assert!(
        after <= before + 1,
        "199 more engines started {} more threads",
        after.saturating_sub(before)
    );

    // Another "process" (an engine on the same directory that does not
    // refresh by itself; opened, not created) adds a license; the watched engine sees it
    // without being asked.
    let other = open(&dirs[199], false);
    other
        .add_license(&vendor.license(json!({"id": "L1", "features": [{"code": "x"}]})))
        .unwrap();
    let watched = engines.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watched.check_feature("x").allowed() {
        assert!(Instant::now() < deadline, "the change was never seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(first);
}

/// A refresh racing this engine's own mutations never takes their commit
/// for another process's change: an engine on the in-memory store (which
/// keeps nothing to reload) keeps its licenses and counts through
/// thousands of refreshes made while other threads consume. Before the
/// stored generation was read under the writer lock, a commit landing
/// between that read and the lock made the refresh reload an empty state
/// (CI, `tests/model_floating.rs`: `NOT_LICENSED` mid-run).
#[test]
fn a_refresh_racing_mutations_never_reloads_over_them() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor
        .builder(&clock)
        .background_refresh(false)
        .build()
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "lic", "features": [{"code": "api"}]})))
        .unwrap();
    const THREADS: u64 = 2;
    const EACH: u64 = 3_000;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut refreshes = 0;
            while engine.consumption("api").first().map_or(0, |c| c.used) < THREADS * EACH {
                engine.refresh().unwrap();
                refreshes += 1;
                assert!(
                    engine.check_feature("api").allowed(),
                    "the license vanished after {refreshes} refreshes"
                );
            }
        });
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..EACH {
                    engine.consume("api", 1).unwrap();
                }
            });
        }
    });
    assert_eq!(engine.consumption("api")[0].used, THREADS * EACH);
}
