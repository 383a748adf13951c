//! A load generator against the real `entitle serve --books` on
//! 127.0.0.1 (the bench starts it as a child process, over books made
//! with the CLI): one license issued through the admin route with room
//! for every device, then `BOOKS_BENCH_CLIENTS` clients (default 16),
//! each on its own keep-alive connection, activating new devices by
//! license key (`POST /v1/activations`, each device its own fingerprint
//! and install key) for `BOOKS_BENCH_SECS` seconds (default 10), after a
//! second of the same load left out (SQLite's log grows until its first
//! checkpoint). Every answer must be `201`, and after the service's clean
//! stop the books must hold exactly the devices acknowledged.
//!
//! Beside it, in the same run, the floor: bare durable commits of one new
//! row each, from one thread and from as many threads as clients, each on
//! its own connection (SQLite: WAL, fsync at commit; PostgreSQL:
//! `synchronous_commit = on`). On a state directory always; on
//! PostgreSQL too when built with the `postgres` feature, against
//! `$ENTITLE_TEST_PG` or a throwaway cluster (as the tests start one,
//! `tests/pg_common/`). Loopback only.
//!
//! ```text
//! cargo bench --features server --bench books_load
//! cargo bench --features server,postgres --bench books_load
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "../tests/books_common/mod.rs"]
mod books_common;
#[cfg(feature = "postgres")]
#[path = "../tests/pg_common/mod.rs"]
mod pg_common;

use books_common::{activation_body, BooksState, Conn};

/// Client threads, each on its own connection (`BOOKS_BENCH_CLIENTS`).
fn clients() -> usize {
    std::env::var("BOOKS_BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16)
        .clamp(1, 60)
}

/// Seconds per scenario (`BOOKS_BENCH_SECS`).
fn secs() -> u64 {
    std::env::var("BOOKS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, 120)
}

struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

impl Figures {
    fn of(mut latencies: Vec<Duration>, elapsed: f64) -> Figures {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
        Figures {
            per_sec: latencies.len() as f64 / elapsed,
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// Runs `threads` threads for `secs`, each doing what `start(i)` makes
/// of it over and over, timing each call: operations per second and
/// latency percentiles.
fn load<W: FnMut() + Send>(
    threads: usize,
    secs: u64,
    start: impl Fn(usize) -> W + Sync,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let start = &start;
                scope.spawn(move || {
                    let mut work = start(i);
                    let mut mine = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        work();
                        mine.push(t.elapsed());
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    Figures::of(latencies, started.elapsed().as_secs_f64())
}

/// New devices activated by key against `books`' service, `clients` at
/// once, for `secs` (after one second left out).
fn activations(books: &BooksState, clients: usize, secs: u64) -> Figures {
    let server = books.serve();
    let (_, key) = server.issue(json!({"product": "acme",
        "activations": {"max": 100_000_000, "counted_by": "vendor"},
        "features": [{"code": "export"}]}));
    let next = AtomicU64::new(0);
    let client = |_| {
        let mut conn = Conn::open(&server.addr).unwrap();
        let (key, next) = (&key, &next);
        move || {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let body = activation_body(key, n);
            let (status, answer) = conn.call("POST", "/v1/activations", None, &body).unwrap();
            assert_eq!(status, 201, "{answer}");
        }
    };
    let _warm_up = load(clients, 1, client);
    let figures = load(clients, secs, client);
    server.stop();
    let made = next.load(Ordering::Relaxed) as usize;
    assert_eq!(books.activations().len(), made, "the books lost a device");
    figures
}

/// The size of what an activation keeps of a device: the row each bare
/// commit inserts is as long.
const ROW: usize = 600;

/// Bare durable SQLite commits, `threads` at once, each inserting a new
/// row in its own transaction on its own connection (WAL,
/// `synchronous=FULL`).
fn bare_sqlite(threads: usize, secs: u64) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.sqlite");
    let connect = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn
    };
    connect()
        .execute_batch("CREATE TABLE devices (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    let body = "x".repeat(ROW);
    load(threads, secs, |i| {
        let conn = connect();
        let body = &body;
        let mut n = 0u64;
        move || {
            n += 1;
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.execute(
                "INSERT INTO devices VALUES (?1, ?2)",
                (format!("{i}-{n}"), body),
            )
            .unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
    })
}

/// Bare durable PostgreSQL commits, `threads` at once, each inserting a
/// new row in its own transaction on its own connection (`BEGIN`, the
/// insert from a prepared statement, `COMMIT` waiting for the WAL flush).
#[cfg(feature = "postgres")]
fn bare_postgres(url: &str, threads: usize, secs: u64) -> Figures {
    let table = pg_common::namespace("bare").replace('-', "_");
    let connect = || {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client.batch_execute("SET synchronous_commit = on").unwrap();
        client
    };
    connect()
        .batch_execute(&format!(
            "CREATE TABLE {table} (id text PRIMARY KEY, body text NOT NULL)"
        ))
        .unwrap();
    let body = "x".repeat(ROW);
    load(threads, secs, |i| {
        let mut client = connect();
        let insert = client
            .prepare(&format!("INSERT INTO {table} VALUES ($1, $2)"))
            .unwrap();
        let body = &body;
        let mut n = 0u64;
        move || {
            n += 1;
            client.batch_execute("BEGIN").unwrap();
            client
                .execute(&insert, &[&format!("{i}-{n}"), body])
                .unwrap();
            client.batch_execute("COMMIT").unwrap();
        }
    })
}

fn row(store: &str, name: &str, f: &Figures) {
    println!(
        "| {store} | {name} | {:.0} | {:.2} | {:.2} |",
        f.per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

/// The three rows of one store, and the ratios.
fn report(store: &str, clients: usize, served: &Figures, one: &Figures, many: &Figures) {
    row(
        store,
        &format!("activations, {clients} clients (durable, HTTP)"),
        served,
    );
    row(store, "bare commits, 1 thread (floor)", one);
    row(store, &format!("bare commits, {clients} threads"), many);
    println!(
        "{store}: activations / bare commits of 1 thread: {:.2}; of {clients} threads: {:.2}",
        served.per_sec / one.per_sec,
        served.per_sec / many.per_sec
    );
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: do
    // nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (clients, secs) = (clients(), secs());
    println!("{clients} clients, each on its own keep-alive connection, {secs} s per scenario");

    let dir = tempfile::tempdir().unwrap();
    let books = BooksState::in_dir(dir.path());
    let served = activations(&books, clients, secs);
    let one = bare_sqlite(1, secs);
    let many = bare_sqlite(clients, secs);
    println!("| store | scenario | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    report("SQLite", clients, &served, &one, &many);

    #[cfg(feature = "postgres")]
    {
        let url = pg_common::server_url();
        let dir = tempfile::tempdir().unwrap();
        let books = BooksState::on_postgres(dir.path(), url, &pg_common::namespace("books"));
        let served = activations(&books, clients, secs);
        let one = bare_postgres(url, 1, secs);
        let many = bare_postgres(url, clients, secs);
        println!("| store | scenario | per second | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        report("PostgreSQL", clients, &served, &one, &many);
    }
}
