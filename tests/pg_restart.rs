//! PostgreSQL restarted under load: while it is down every mutation is
//! refused with `STORE_UNAVAILABLE`, naming the host and port, and
//! nothing panics; once it is back the engines carry on by themselves,
//! the listener listens again, and nothing acknowledged was lost. On a
//! cluster of this test's own (it stops it), never `$ENTITLE_TEST_PG`.
#![cfg(feature = "postgres")]

mod common;
mod pg_common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use entitle::store::{PgStore, Store};
use entitle::{Engine, SystemClock};
use pg_common::Cluster;
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn entitle(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_entitle"))
        .args(["--json", "--store", url, "--namespace", "restart"])
        .args(args)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_STORE")
        .output()
        .unwrap()
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let since = Instant::now();
    while !done() {
        assert!(since.elapsed() < within, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restart_under_load_refuses_clearly_while_down_and_loses_nothing_acknowledged() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let public = write(dir.path(), "vendor.pub", &vendor.key.public_key().to_pem());
    let init = entitle(&url, &["init", "--pub", &public, "--product", "acme"]);
    assert!(init.status.success(), "{init:?}");
    let build = || {
        Engine::builder("acme")
            .trust(vendor.key.public_key().clone())
            .clock(SystemClock)
            .store(PgStore::open(&url, "restart").unwrap())
            .build()
            .unwrap()
    };
    let engine = build();
    engine
        .add_license(
            &vendor.license(json!({"id": "lic", "issued_at": "2020-01-01T00:00:00Z",
            "features": [{"code": "api", "consumption": {}}]})),
        )
        .unwrap();
    let observer = PgStore::open(&url, "restart").unwrap();
    wait_for("listening", Duration::from_secs(5), || observer.listening());

    let acked = AtomicU64::new(0);
    let down = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let refusals: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let address = format!("127.0.0.1:{}", cluster.port());
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (engine, acked, down, stop, refusals) = (&engine, &acked, &down, &stop, &refusals);
            s.spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    // Whether the server was down for the whole call.
                    let was_down = down.load(Ordering::Acquire);
                    match engine.consume("api", 1) {
                        Ok(_) => {
                            acked.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(e) => {
                            if was_down && down.load(Ordering::Acquire) {
                                refusals
                                    .lock()
                                    .unwrap()
                                    .push((e.code().to_owned(), e.to_string()));
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(700));
        let before_stop = acked.load(Ordering::Acquire);
        assert!(before_stop > 0, "nothing acknowledged before the stop");
        cluster.stop();
        wait_for("the listener noticing", Duration::from_secs(5), || {
            !observer.listening()
        });
        // Calls that were waiting for a connection when it went down have
        // given up (the URL's connect_timeout is 2 s); from here on each
        // call starts and ends while it is down.
        std::thread::sleep(Duration::from_millis(2500));
        let refused_from = acked.load(Ordering::Acquire);
        down.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_millis(1500));
        // A store opened now is refused too, quickly.
        let started = Instant::now();
        let err = PgStore::open(&url, "restart").unwrap_err();
        assert_eq!(err.code(), "STORE_UNAVAILABLE", "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
        down.store(false, Ordering::Release);
        let while_down = acked.load(Ordering::Acquire);
        assert_eq!(while_down, refused_from, "a mutation succeeded while down");
        cluster.run();
        wait_for(
            "consumes after the restart",
            Duration::from_secs(15),
            || acked.load(Ordering::Acquire) > while_down + 20,
        );
        stop.store(true, Ordering::Release);
    });
    let refusals = refusals.into_inner().unwrap();
    // Refused at once, not each after waiting out a timeout in turn: four
    // threads pausing 50 ms between calls, for 1.5 s.
    assert!(
        refusals.len() >= 20,
        "only {} refusals while down",
        refusals.len()
    );
    for (code, message) in &refusals {
        assert_eq!(code, "STORE_UNAVAILABLE", "{message}");
        assert!(message.contains(&address), "{message}");
    }

    // The listener is back, and hears another process's change.
    wait_for("listening again", Duration::from_secs(10), || {
        observer.listening()
    });
    let license = write(
        dir.path(),
        "more.lic",
        &vendor.license(json!({"id": "more", "issued_at": "2020-01-01T00:00:00Z",
            "features": [{"code": "export"}]})),
    );
    let before = observer.generation().unwrap();
    let added = entitle(&url, &["license", "add", &license]);
    assert!(added.status.success(), "{added:?}");
    wait_for("the notification", Duration::from_millis(500), || {
        observer.generation().unwrap() != before
    });
    wait_for("the engine seeing it", Duration::from_millis(1500), || {
        engine.check_feature("export").allowed()
    });

    // Nothing acknowledged was lost; at most the batch in flight when the
    // server stopped (up to one per thread) committed unacknowledged.
    let acked = acked.load(Ordering::Acquire);
    let used = build().consumption("api")[0].used;
    assert!(
        used >= acked && used <= acked + 4,
        "{used} units stored, {acked} acknowledged"
    );
}
