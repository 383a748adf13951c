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
