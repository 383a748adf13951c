//! Crash injection: a worker process makes durable mutations and says which
//! ones were acknowledged; it is killed with SIGKILL at random moments.
//! After every kill the state must open, every acknowledged mutation must
//! be there, and none may be applied twice. A third worker deactivates
//! with receipts (`deactivate --receipt`): a receipt file must only ever
//! stand for a durable deactivation, and one lost to the kill must be
//! given again by the state.
//!
//! The short run is part of `cargo test`. The long one:
//! `ENTITLE_CRASH_KILLS=1000 cargo test --release --test crash -- --nocapture`

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use entitle::device::Device;
use entitle::license::DeactivationReceipt;
use entitle::store::FileStore;
use entitle::{Engine, SystemClock};
use serde_json::json;

const DIR_ENV: &str = "ENTITLE_CRASH_DIR";

fn open(dir: &str) -> Engine {
    let vendor = Vendor::new();
    Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .clock(SystemClock)
        .store(FileStore::create(dir).unwrap())
        .background_refresh(false)
        .build()
        .unwrap()
}

/// How many kills, and a state directory holding a license with a
/// metered feature `api`.
fn setup() -> (u32, tempfile::TempDir) {
    let kills = std::env::var("ENTITLE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let tmp = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    open(tmp.path().to_str().unwrap())
        .add_license(&vendor.license(json!({"id": "lic",
            "features": [{"code": "api", "consumption": {}}]})))
        .unwrap();
    (kills, tmp)
}

/// Runs the worker test `worker` of this binary with `envs`, kills it with
/// SIGKILL at a random moment (xorshift on `seed`: 20..120 ms, start-up
/// included) and returns the numbers it printed after `ACK `. (Parsed
/// after "ACK ": the harness's own "test ... " line may precede the
/// first.)
fn run_and_kill(worker: &str, envs: &[(&str, &str)], seed: &mut u64) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", worker, "--nocapture", "--test-threads", "1"])
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let wait = Duration::from_millis(20 + *seed % 100);
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.split_once("ACK ")?.1.trim().parse::<u64>().ok())
            .collect::<Vec<u64>>()
    });
    std::thread::sleep(wait);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// The worker: runs only when spawned by `kills_never_lose_or_double_a_mutation`.
#[test]
fn crash_worker() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let start: u64 = std::env::var("ENTITLE_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let engine = open(&dir);
    for n in start.. {
        // Two kinds of mutation: a new user (must appear once) and one unit
        // of a metered feature (must be counted once).
        engine.add_user(&format!("u{n:06}"), "member").unwrap();
        engine.consume("api", 1).unwrap();
        println!("ACK {n}");
    }
}

#[test]
fn kills_never_lose_or_double_a_mutation() {
    let (kills, tmp) = setup();
    let dir = tmp.path().to_str().unwrap().to_owned();
    let mut acked: u64 = 0; // mutations 0..acked were acknowledged
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    for kill in 0..kills {
        let start = acked.to_string();
        let envs = [(DIR_ENV, dir.as_str()), ("ENTITLE_CRASH_START", &start)];
        let printed = run_and_kill("crash_worker", &envs, &mut seed);
        if let Some(last) = printed.last() {
            acked = last + 1;
        }
        // The state must open, and hold every acknowledged mutation once.
        let engine = open(&dir);
        let users = engine.usage(0, 0).total;
        let used = engine.consumption("api")[0].used;
        assert!(
            users >= acked && users <= acked + 1,
            "kill {kill}: {users} users after {acked} acknowledged"
        );
        assert!(
            used >= acked && used <= acked + 1,
            "kill {kill}: {used} units after {acked} acknowledged"
        );
        // An interrupted mutation left no half: the worker resumes after
        // what is there (a user written without its unit is completed).
        if used < users {
            engine.consume("api", 1).unwrap();
        }
        acked = users;
        if users > used + 1 {
            panic!("kill {kill}: users and units drifted apart ({users} vs {used})");
        }
    }
    println!(
        "crash injection: {kills} kills survived, {acked} mutation pairs checked, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked > 0, "the worker never acknowledged anything");
}

const CONCURRENT_DIR_ENV: &str = "ENTITLE_CRASH_CONCURRENT_DIR";

/// Callers of one engine at once, as a service's requests are.
const WORKER_THREADS: u64 = 4;

/// The concurrent worker: runs only when spawned by
/// `kills_never_lose_a_consume_acknowledged_by_a_group_commit`.
#[test]
fn crash_worker_concurrent() {
    let Ok(dir) = std::env::var(CONCURRENT_DIR_ENV) else {
        return;
    };
    let engine = open(&dir);
    std::thread::scope(|s| {
        for _ in 0..WORKER_THREADS {
            s.spawn(|| loop {
                let used = engine.consume("api", 1).unwrap().used;
                println!("ACK {used}");
            });
        }
    });
}

/// Several threads consuming at once share batches, commits and fsyncs
/// (group commit): after a kill, every consume that returned `Ok` is in
/// the state, and at most one more per thread (committed, not yet
/// acknowledged). Fails if a caller is released before the round that
/// covers it has committed.
#[test]
fn kills_never_lose_a_consume_acknowledged_by_a_group_commit() {
    let (kills, tmp) = setup();
    let dir = tmp.path().to_str().unwrap().to_owned();
    let mut durable: u64 = 0; // units in the state when the worker started
    let mut acked_in_all: u64 = 0;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let started = Instant::now();
    for kill in 0..kills {
        // The count each acknowledged consume returned.
        let envs = [(CONCURRENT_DIR_ENV, dir.as_str())];
        let mut counts = run_and_kill("crash_worker_concurrent", &envs, &mut seed);
        let acked = counts.len() as u64;
        acked_in_all += acked;
        let used = open(&dir).consumption("api")[0].used;
        // Each acknowledged consume is there, at the count it was told.
        counts.sort_unstable();
        counts.dedup();
        assert_eq!(
            counts.len() as u64,
            acked,
            "kill {kill}: a count told twice"
        );
        if let Some(&highest) = counts.last() {
            assert!(
                highest <= used,
                "kill {kill}: {used} units, {highest} acknowledged"
            );
        }
        assert!(
            used >= durable + acked && used <= durable + acked + WORKER_THREADS,
            "kill {kill}: {used} units after {durable} + {acked} acknowledged"
        );
        durable = used;
    }
    println!(
        "concurrent crash injection: {kills} kills survived, {acked_in_all} acknowledged consumes checked, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked_in_all > 0, "the worker never acknowledged anything");
}

const RECEIPT_DIR_ENV: &str = "ENTITLE_CRASH_RECEIPT_DIR";

/// An install on device `desk-1` over the state in `dir`.
fn open_desk(dir: &str) -> Engine {
    let vendor = Vendor::new();
    Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .clock(SystemClock)
        .fingerprint("desk-1")
        .store(FileStore::create(dir).unwrap())
        .background_refresh(false)
        .build()
        .unwrap()
}

/// The receipt worker: runs only when spawned by
/// `kills_never_leave_a_receipt_without_its_deactivation`. Over and over,
/// as `entitle activate` then `entitle deactivate --receipt FILE` do:
/// activate the device, deactivate it with a receipt (durable), then
/// write the receipt's file, named by its nonce.
#[test]
fn crash_worker_receipts() {
    let Ok(dir) = std::env::var(RECEIPT_DIR_ENV) else {
        return;
    };
    let engine = open_desk(&dir);
    let files = std::path::Path::new(&dir).join("receipts");
    for n in 0u64.. {
        engine.activate(&Device::new("desk-1")).unwrap();
        let issued = engine.deactivate_with_receipt("desk-1", None).unwrap();
        std::fs::write(files.join(&issued.receipt.nonce), &issued.token).unwrap();
        println!("ACK {n}");
    }
}

/// Transfers counted in the state: one per durable deactivation.
fn transfers(dir: &std::path::Path) -> u64 {
    let db = rusqlite::Connection::open(dir.join("state.sqlite")).unwrap();
    db.query_row(
        "SELECT count FROM transfers WHERE license_id = 'lic-node'",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn kills_never_leave_a_receipt_without_its_deactivation() {
    let kills = std::env::var("ENTITLE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_owned();
    let receipts = tmp.path().join("receipts");
    std::fs::create_dir(&receipts).unwrap();
    let vendor = Vendor::new();
    open_desk(&dir)
        .add_license(&vendor.license(json!({"id": "lic-node",
            "activations": {"max": 1}, "features": [{"code": "cad"}]})))
        .unwrap();
    let mut seed: u64 = 0x6a09_e667_f3bc_c908;
    let mut acked_in_all = 0;
    let mut mended = 0;
    let mut verified = std::collections::HashSet::new();
    let started = Instant::now();
    for kill in 0..kills {
        let envs = [(RECEIPT_DIR_ENV, dir.as_str())];
        acked_in_all += run_and_kill("crash_worker_receipts", &envs, &mut seed).len();
        let engine = open_desk(&dir);
        let key = engine.install_key().unwrap();
        // Every whole receipt file verifies and stands for a deactivation
        // the state holds; one cut short by the kill is no receipt. (A
        // file verified once is not again: verification is slow in a
        // debug build, and a whole file never changes.)
        for entry in std::fs::read_dir(&receipts).unwrap() {
            let path = entry.unwrap().path();
            if verified.contains(&path) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match DeactivationReceipt::verify(&text, &key) {
                Ok(receipt) => {
                    assert_eq!(path.file_name().unwrap().to_str(), Some(&*receipt.nonce));
                    verified.insert(path);
                }
                Err(_) => std::fs::remove_file(&path).unwrap(),
            }
        }
        let written = verified.len() as u64;
        let durable = transfers(tmp.path());
        assert!(
            written <= durable,
            "kill {kill}: {written} receipts written for {durable} deactivations"
        );
        if !engine.activations().is_empty() {
            // Killed after the next activation: the last receipt was written.
            assert_eq!(written, durable, "kill {kill}: a receipt went missing");
            continue;
        }
        if durable == 0 {
            // Killed before the first activation: nothing to give again.
            continue;
        }
        // Deactivated: its receipt is kept in the state, written or not.
        assert!(
            durable - written <= 1,
            "kill {kill}: {written} of {durable}"
        );
        let again = engine.deactivate_with_receipt("desk-1", None).unwrap();
        assert!(again.again, "kill {kill}: a second deactivation was made");
        let file = receipts.join(&again.receipt.nonce);
        if written < durable {
            // The kill came between the deactivation and its file: the
            // state gives the receipt again, as `deactivate --receipt` does.
            assert!(!file.exists(), "kill {kill}");
            std::fs::write(&file, &again.token).unwrap();
            verified.insert(file);
            mended += 1;
        } else {
            assert_eq!(std::fs::read_to_string(&file).unwrap(), again.token);
        }
        assert_eq!(
            transfers(tmp.path()),
            durable,
            "kill {kill}: no transfer counted again"
        );
    }
    let durable = transfers(tmp.path());
    assert_eq!(
        std::fs::read_dir(&receipts).unwrap().count() as u64,
        durable
    );
    println!(
        "receipt crash injection: {kills} kills survived, {acked_in_all} acknowledged receipts, \
         {durable} deactivations each with its receipt ({mended} given again after a kill), {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked_in_all > 0, "the worker never acknowledged anything");
}
