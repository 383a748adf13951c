//! Crash injection on the vendor's service: `entitle serve --books` on a
//! state directory takes an activation storm from several client
//! threads, each activating new devices over its own keep-alive
//! connection, and is killed with SIGKILL mid-storm; then started again
//! over the same books, and again killed. After every kill, every
//! activation a client was answered `201` for is in the books, at most
//! one more per client and kill (in flight when the process died), and a license
//! with a small limit never holds more devices than its `max`, though
//! clients keep asking past it (docs/http.md#the-vendors-service).
//!
//! On PostgreSQL too with the `postgres` feature (a throwaway cluster, or
//! `$ENTITLE_TEST_PG`, as `tests/pg_common/` starts one).
//!
//! The short run is part of `cargo test --features server`. The long one:
//! `ENTITLE_CRASH_KILLS=200 cargo test --release --features server --test books_crash -- --nocapture`
#![cfg(feature = "server")]

mod books_common;
#[cfg(feature = "postgres")]
mod pg_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use books_common::{activation_body, fingerprint, BooksState, Conn};
use serde_json::json;

/// Client threads in the storm, each on its own connection.
const CLIENTS: u64 = 4;

/// The limit of the small license, which the storm runs into.
const SMALL_MAX: usize = 8;

/// How many kills (`ENTITLE_CRASH_KILLS`, default 10).
fn kills() -> u32 {
    std::env::var("ENTITLE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// What one client was told: the devices acknowledged, per license, and
/// how many times the small license was refused for its limit.
#[derive(Default)]
struct Told {
    acknowledged: Vec<(String, String)>,
    refused_at_limit: u64,
}

/// One client of the storm: activates new devices (every fourth on the
/// small license) until the connection breaks, the service being gone.
/// Any answer but `201` and, on the small license, `409
/// ACTIVATION_LIMIT` fails the test.
fn storm_client(addr: &str, licenses: &[(String, String); 2], next: &AtomicU64) -> Told {
    let mut told = Told::default();
    let Ok(mut conn) = Conn::open(addr) else {
        return told;
    };
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let (id, key) = &licenses[usize::from(n % 4 == 0)];
        let body = activation_body(key, n);
        let Ok((status, answer)) = conn.call("POST", "/v1/activations", None, &body) else {
            return told;
        };
        match status {
            201 => told.acknowledged.push((id.clone(), fingerprint(n))),
            409 if n % 4 == 0 && answer.contains("ACTIVATION_LIMIT") => told.refused_at_limit += 1,
            _ => panic!("device {n} on `{id}`: {status} {answer}"),
        }
    }
}

#[test]
fn kills_never_lose_an_acknowledged_activation_or_pass_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    storm_kill_and_check(&BooksState::in_dir(tmp.path()), "books");
}

/// The same on a PostgreSQL namespace; its last step, a clean stop,
/// must end with success too (it panicked, closing the store on the
/// server's runtime).
#[cfg(feature = "postgres")]
#[test]
fn kills_never_lose_an_acknowledged_activation_or_pass_the_limit_on_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let url = pg_common::server_url();
    let books = BooksState::on_postgres(tmp.path(), url, &pg_common::namespace("books-crash"));
    storm_kill_and_check(&books, "postgres books");
}

/// Starts the service over `books`, issues a large and a small license,
/// and runs `kills()` rounds of storm, `kill -9`, check; then a last
/// round stopped cleanly.
fn storm_kill_and_check(books: &BooksState, what: &str) {
    let kills = kills();
    let server = books.serve();
    let spec = |max: usize| {
        json!({"product": "acme", "activations": {"max": max, "counted_by": "vendor"},
               "features": [{"code": "export"}]})
    };
    let licenses = [server.issue(spec(1_000_000)), server.issue(spec(SMALL_MAX))];
    let mut server = Some(server);
    let next = AtomicU64::new(0);
    let mut acknowledged: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut refused_at_limit = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    for kill in 0..kills {
        let running = server.take().unwrap_or_else(|| books.serve());
        let before = next.load(Ordering::Relaxed);
        let addr = running.addr.clone();
        let told: Vec<Told> = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|_| scope.spawn(|| storm_client(&addr, &licenses, &next)))
                .collect();
            // Mid-storm: once the clients are being answered, after a
            // random 0..200 ms more (xorshift).
            let waiting = Instant::now();
            while next.load(Ordering::Relaxed) < before + 2 * CLIENTS
                && waiting.elapsed() < Duration::from_secs(20)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(seed % 200));
            running.kill();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        for client in told {
            refused_at_limit += client.refused_at_limit;
            for (license, device) in client.acknowledged {
                acknowledged.entry(license).or_default().insert(device);
            }
        }
        // The books open, and hold what was acknowledged.
        let mut stored: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (license, device) in books.activations() {
            stored.entry(license).or_default().insert(device);
        }
        for (license, devices) in &acknowledged {
            let held = stored.get(license).cloned().unwrap_or_default();
            let lost: Vec<&String> = devices.difference(&held).collect();
            assert!(lost.is_empty(), "kill {kill}: `{license}` lost {lost:?}");
        }
        let in_books: usize = stored.values().map(BTreeSet::len).sum();
        let told_in_all: usize = acknowledged.values().map(BTreeSet::len).sum();
        // Unacknowledged: at most the one request each client had in
        // flight at each kill.
        let in_flight = CLIENTS as usize * (kill as usize + 1);
        assert!(
            in_books <= told_in_all + in_flight,
            "kill {kill}: {in_books} devices in the books, {told_in_all} acknowledged"
        );
        let small = stored.get(&licenses[1].0).map_or(0, BTreeSet::len);
        assert!(
            small <= SMALL_MAX,
            "kill {kill}: {small} devices on a license of {SMALL_MAX}"
        );
    }
    // Once more, stopped cleanly: an acknowledged device asking again is
    // counted once (`200`, a fresh certificate), and the limit still holds
    // for a new one.
    let running = books.serve();
    let mut conn = Conn::open(&running.addr).unwrap();
    let counted = books.activations().len();
    let again = acknowledged
        .get(&licenses[0].0)
        .and_then(BTreeSet::first)
        .and_then(|device| device.strip_prefix("device-")?.parse::<u64>().ok())
        .expect("a device acknowledged on the large license");
    let (status, answer) = conn
        .call(
            "POST",
            "/v1/activations",
            None,
            &activation_body(&licenses[0].1, again),
        )
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(books.activations().len(), counted);
    let n = next.fetch_add(1, Ordering::Relaxed);
    let (status, answer) = conn
        .call(
            "POST",
            "/v1/activations",
            None,
            &activation_body(&licenses[1].1, n),
        )
        .unwrap();
    let small = books
        .activations()
        .iter()
        .filter(|(license, _)| *license == licenses[1].0)
        .count();
    assert!(
        status == 201 && small <= SMALL_MAX || status == 409 && small == SMALL_MAX,
        "{status} {answer} with {small} devices"
    );
    // A burst just before the stop: on PostgreSQL its last commits are
    // still to be announced when the store is closed.
    let burst: Vec<u64> = (0..10)
        .map(|_| next.fetch_add(1, Ordering::Relaxed))
        .collect();
    for &n in &burst {
        let body = activation_body(&licenses[0].1, n);
        let (status, answer) = conn.call("POST", "/v1/activations", None, &body).unwrap();
        assert_eq!(status, 201, "{answer}");
    }
    running.stop();
    let stored: BTreeSet<String> = books.activations().into_iter().map(|(_, d)| d).collect();
    for &n in &burst {
        assert!(
            stored.contains(&fingerprint(n)),
            "device {n} lost at a clean stop"
        );
    }
    let told_in_all: usize = acknowledged.values().map(BTreeSet::len).sum();
    println!(
        "{what} crash injection: {kills} kills survived, {told_in_all} acknowledged activations \
         checked, {refused_at_limit} refused at the limit, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
