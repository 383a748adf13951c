//! Durable `consume` throughput at N threads on one file store, for
//! counting what each mutation costs the machine: run it under `perf stat`
//! to see fsyncs, writes and CPU per operation, and how many operations
//! one fsync serves when threads share it (group commit).
//!
//! ```sh
//! cargo build --release --example durable_throughput
//! target/release/examples/durable_throughput 1
//! perf stat -e task-clock,context-switches,syscalls:sys_enter_fdatasync \
//!     target/release/examples/durable_throughput 8
//! ```
//!
//! Figures and what they say: `BENCHMARKS.md`, "Durable writes".

use std::sync::Arc;
use std::time::Instant;

use entitle::store::FileStore;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

/// Operations in all, split between the threads.
const OPERATIONS: usize = 4_000;

/// Consumes made before the timing starts, one thread: SQLite's log grows
/// until its first checkpoint (1,000 pages), and while it grows every
/// fsync also writes the file's new size; a service runs past that in its
/// first seconds, so it is left out of the figure, as criterion's warm-up
/// leaves it out of `benches/state.rs`.
const WARM_UP: usize = 1_000;

fn main() -> Result<(), entitle::Error> {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let vendor = SigningKey::from_seed(&[7; 32]);
    let engine = Engine::builder("bench")
        .trust(vendor.public_key().clone())
        .clock(SystemClock)
        .store(FileStore::create(dir.path())?)
        .background_refresh(false)
        .build()?;
    let license = json!({"v": 1, "id": "lic", "product": "bench",
        "issued_at": "2026-01-01T00:00:00Z",
        "features": [{"code": "api", "consumption": {"reset": "monthly"}}]});
    engine.add_license(&sign(&license, &vendor, TokenType::License)?)?;
    for _ in 0..WARM_UP {
        engine.consume("api", 1)?;
    }
    let engine = Arc::new(engine);
    let per_thread = OPERATIONS / threads;
    let started = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let engine = Arc::clone(&engine);
                s.spawn(move || -> Result<(), entitle::Error> {
                    for _ in 0..per_thread {
                        engine.consume("api", 1)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a worker panicked"))
    })?;
    let elapsed = started.elapsed();
    let done = per_thread * threads;
    println!(
        "{threads} thread(s): {done} durable consumes in {:.3} s, {:.0} per second",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
