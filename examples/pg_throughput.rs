//! Engines in separate processes on one PostgreSQL namespace, as replicas
//! of a service would be: each process consumes from `THREADS` threads for
//! `SECS` seconds; prints each process's and the aggregate throughput,
//! for 1 process (the baseline) and then `PROCESSES` at once, in one run.
//! Every consume is durable and counted exactly across all of them.
//!
//! ```sh
//! cargo run --release --features postgres --example pg_throughput [PROCESSES] [THREADS] [SECS]
//! ```
//!
//! Figures: `BENCHMARKS.md`, "Durable writes on PostgreSQL".

use std::process::Command;
use std::time::{Duration, Instant};

use entitle::store::PgStore;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

#[path = "../tests/pg_common/mod.rs"]
mod pg_common;

fn engine(url: &str, namespace: &str) -> Result<Engine, entitle::Error> {
    let vendor = SigningKey::from_seed(&[7; 32]);
    let engine = Engine::builder("bench")
        .trust(vendor.public_key().clone())
        .clock(SystemClock)
        .store(PgStore::open(url, namespace)?)
        .background_refresh(false)
        .build()?;
    let license = json!({"v": 1, "id": "lic", "product": "bench", "issued_at": "2026-01-01T00:00:00Z",
        "features": [{"code": "api", "consumption": {}}]});
    engine.add_license(&sign(&license, &vendor, TokenType::License)?)?;
    Ok(engine)
}

/// One process: consumes from `threads` threads for `secs`, prints how many.
fn worker(url: &str, namespace: &str, threads: usize, secs: u64) -> Result<(), entitle::Error> {
    let engine = engine(url, namespace)?;
    let until = Instant::now() + Duration::from_secs(secs);
    let done: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < until {
                        if engine.consume("api", 1).is_ok() {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    println!("{done}");
    Ok(())
}

/// Runs `processes` workers at once; their counts and the aggregate rate.
fn run(url: &str, namespace: &str, processes: usize, threads: usize, secs: u64) -> (Vec<u64>, f64) {
    let me = std::env::current_exe().expect("this example's path");
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&me)
                .args([
                    "worker",
                    url,
                    namespace,
                    &threads.to_string(),
                    &secs.to_string(),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("a worker process")
        })
        .collect();
    let counts: Vec<u64> = children
        .into_iter()
        .map(|child| {
            child
                .wait_with_output()
                .ok()
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let rate = counts.iter().sum::<u64>() as f64 / secs as f64;
    (counts, rate)
}

fn main() -> Result<(), entitle::Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let number = |i: usize| args.get(i).and_then(|n| n.parse().ok()).unwrap_or(1);
        return worker(&args[2], &args[3], number(4) as usize, number(5));
    }
    let number =
        |i: usize, default: u64| args.get(i).and_then(|n| n.parse().ok()).unwrap_or(default);
    let (processes, threads, secs) = (number(1, 3) as usize, number(2, 4) as usize, number(3, 5));
    let url = pg_common::server_url();
    let namespace = pg_common::namespace("throughput");
    // Made once, here: the workers open it.
    drop(PgStore::create(url, &namespace)?);
    drop(engine(url, &namespace)?);
    let (one, one_rate) = run(url, &namespace, 1, threads, secs);
    let (counts, rate) = run(url, &namespace, processes, threads, secs);
    let all = counts.iter().sum::<u64>();
    let stored = engine(url, &namespace)?.consumption("api")[0].used;
    println!("{threads} threads per process, {secs} s, one namespace");
    println!("1 process:   {one:?} consumes, {one_rate:.0}/s (baseline)");
    println!(
        "{processes} processes: {counts:?} consumes, {rate:.0}/s aggregate ({:.2}x one process)",
        rate / one_rate.max(f64::MIN_POSITIVE),
    );
    let expected = one.iter().sum::<u64>() + all;
    println!("stored: {stored} units, acknowledged: {expected}");
    Ok(())
}
