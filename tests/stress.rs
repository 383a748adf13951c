//! Concurrency: threads of two engines (as two processes would) on one
//! state directory, adding users, taking leases and consuming at once. The
//! limits hold, nothing is lost, nothing is counted twice. Processes are
//! covered by tests/cli_concurrency.rs and tests/durability.rs.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use entitle::store::FileStore;
use entitle::{Engine, SystemClock};
use serde_json::json;

fn open(vendor: &Vendor, dir: &std::path::Path) -> Engine {
    Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .clock(SystemClock)
        .store(FileStore::create(dir).unwrap())
        .background_refresh(false)
        .build()
        .unwrap()
}

#[test]
fn users_leases_and_consumption_together_keep_their_limits() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let first = open(&vendor, dir.path());
    first
        .add_license(
            &vendor.license(json!({"id": "lic", "issued_at": "2020-01-01T00:00:00Z",
            "seats": {"max": 10, "hard_max": 12},
            "floating": {"seats": 3, "lease_secs": 3600},
            "features": [{"code": "api", "consumption": {"max": 50, "overage": 5}}]})),
        )
        .unwrap();
    let second = open(&vendor, dir.path());
    let (users_ok, leases_ok, units_ok) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let engine = if t % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let (users_ok, leases_ok, units_ok) = (&users_ok, &leases_ok, &units_ok);
            s.spawn(move || {
                for i in 0..12u64 {
                    match engine.add_user(&format!("t{t}-u{i}"), "member") {
                        Ok(_) => users_ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            assert_eq!(e.code(), "SEAT_LIMIT", "{e}");
                            0
                        }
                    };
                    match engine.checkout(&format!("t{t}-c{i}"), None) {
                        Ok(_) => leases_ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            assert_eq!(e.code(), "FLOATING_EXHAUSTED", "{e}");
                            0
                        }
                    };
                    match engine.consume("api", 1) {
                        Ok(c) => {
                            assert!(c.used <= 55);
                            units_ok.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            assert_eq!(e.code(), "CONSUMPTION_LIMIT", "{e}");
                            0
                        }
                    };
                }
            });
        }
    });
    // A fresh engine reads what is durable.
    let check = open(&vendor, dir.path());
    let status = check.status();
    assert_eq!(
        users_ok.load(Ordering::Relaxed),
        12,
        "exactly the hard limit admitted"
    );
    assert_eq!(status.active_user_count, 12);
    assert_eq!(
        leases_ok.load(Ordering::Relaxed),
        3,
        "exactly the floating seats leased"
    );
    assert_eq!(check.leases().len(), 3);
    assert_eq!(
        units_ok.load(Ordering::Relaxed),
        55,
        "exactly max + overage consumed"
    );
    assert_eq!(check.consumption("api")[0].used, 55);
}
