//! Crash injection on PostgreSQL: worker processes make durable mutations
//! on a namespace and say which were acknowledged; each is killed with
//! SIGKILL at a random moment, mid-mutation or mid-batch. After every
//! kill the state must open, every acknowledged mutation must be there,
//! and none may be half-applied or applied twice (tests/crash.rs does the
//! same for the file store).
//!
//! The short run is part of `cargo test --features postgres`. The long
//! one: `ENTITLE_CRASH_KILLS=1000 cargo test --release --features postgres
//! --test pg_crash -- --nocapture`
#![cfg(feature = "postgres")]

mod common;
mod pg_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use entitle::store::PgStore;
use entitle::{Engine, SystemClock};
use pg_common::{created_namespace, server_url, TEST_PG_ENV};
use serde_json::json;

const NAMESPACE_ENV: &str = "ENTITLE_PG_CRASH_NAMESPACE";

fn open(namespace: &str) -> Engine {
    let vendor = Vendor::new();
    Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .clock(SystemClock)
        .store(PgStore::open(server_url(), namespace).unwrap())
        .background_refresh(false)
        .build()
        .unwrap()
}

/// How many kills, and a namespace holding a license with a metered
/// feature `api`.
fn setup() -> (u32, String) {
    let kills = std::env::var("ENTITLE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let ns = created_namespace("crash");
    let vendor = Vendor::new();
    open(&ns)
        .add_license(&vendor.license(json!({"id": "lic",
            "features": [{"code": "api", "consumption": {}}]})))
        .unwrap();
    (kills, ns)
}

/// Runs the worker test `worker` of this binary on `namespace`, kills it
/// with SIGKILL at a random moment (xorshift on `seed`: 40..240 ms, the
/// start included) and returns the numbers it printed after `ACK `.
fn run_and_kill(worker: &str, namespace: &str, envs: &[(&str, &str)], seed: &mut u64) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", worker, "--nocapture", "--test-threads", "1"])
        .env(NAMESPACE_ENV, namespace)
        .envs(envs.iter().copied())
        .env(TEST_PG_ENV, server_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let wait = Duration::from_millis(40 + *seed % 200);
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

/// The worker: runs only when spawned by
/// `kills_never_lose_or_half_apply_a_mutation_on_postgres`. Each step is
/// two mutations, a user then a unit: after a kill at most the unit of
/// the last step is missing, never a unit without its user.
#[test]
fn pg_crash_worker() {
    let Ok(ns) = std::env::var(NAMESPACE_ENV) else {
        return;
    };
    let start: u64 = std::env::var("ENTITLE_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let engine = open(&ns);
    for n in start.. {
        engine.add_user(&format!("u{n:06}"), "member").unwrap();
        engine.consume("api", 1).unwrap();
        println!("ACK {n}");
    }
}

#[test]
fn kills_never_lose_or_half_apply_a_mutation_on_postgres() {
    let (kills, ns) = setup();
    let mut acked: u64 = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    for kill in 0..kills {
        let start = acked.to_string();
        let envs = [("ENTITLE_CRASH_START", start.as_str())];
        let printed = run_and_kill("pg_crash_worker", &ns, &envs, &mut seed);
        if let Some(last) = printed.last() {
            acked = last + 1;
        }
        let engine = open(&ns);
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
        // Each user stored whole.
        for user in engine.usage(0, users as usize + 1).users {
            assert_eq!(user.user_type, "member", "kill {kill}: {user:?}");
        }
        if used < users {
            engine.consume("api", 1).unwrap();
        }
        assert!(
            users <= used + 1,
            "kill {kill}: users and units drifted apart ({users} vs {used})"
        );
        acked = users;
    }
    println!(
        "postgres crash injection: {kills} kills survived, {acked} mutation pairs checked, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked > 0, "the worker never acknowledged anything");
}

/// Callers of one engine at once, as a service's requests are.
const WORKER_THREADS: u64 = 4;

/// The concurrent worker: runs only when spawned by
/// `kills_never_lose_a_consume_acknowledged_by_a_batch_on_postgres`.
#[test]
fn pg_crash_worker_concurrent() {
    let Ok(ns) = std::env::var(NAMESPACE_ENV) else {
        return;
    };
    let engine = open(&ns);
    std::thread::scope(|s| {
        for _ in 0..WORKER_THREADS {
            s.spawn(|| loop {
                let used = engine.consume("api", 1).unwrap().used;
                println!("ACK {used}");
            });
        }
    });
}

/// Threads consuming at once share batches (one transaction, one commit):
/// after a kill, every consume that returned `Ok` is in the state, at the
/// count it was told, and at most one more per thread.
#[test]
fn kills_never_lose_a_consume_acknowledged_by_a_batch_on_postgres() {
    let (kills, ns) = setup();
    let mut durable: u64 = 0;
    let mut acked_in_all: u64 = 0;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let started = Instant::now();
    for kill in 0..kills {
        let mut counts = run_and_kill("pg_crash_worker_concurrent", &ns, &[], &mut seed);
        let acked = counts.len() as u64;
        acked_in_all += acked;
        let used = open(&ns).consumption("api")[0].used;
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
        "postgres concurrent crash injection: {kills} kills survived, {acked_in_all} acknowledged consumes checked, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked_in_all > 0, "the worker never acknowledged anything");
}
