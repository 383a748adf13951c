//! What opening a large state costs: an engine built on a state of one
//! license and a million users (`FileStore::open` with SQLite's
//! `integrity_check`, every row read and counted, the license verified,
//! the snapshot built, the time persisted), timed a few times, with its
//! parts timed alone beside it.
//!
//! ```sh
//! cargo build --release --example open_cost
//! target/release/examples/open_cost            # 1,000,000 users, 5 opens
//! target/release/examples/open_cost 100000 9   # users, opens
//! ```
//!
//! The state is written straight through the store's API (one transaction
//! of a million `PutUser`s), not user by user through the engine. Every
//! open reads a file the page cache holds (it was just written): the
//! figures are CPU and system calls, not the disk.

use std::time::{Duration, Instant};

use entitle::store::{Change, FileStore, Store, UserRecord};
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Clock, Engine, SystemClock};
use serde_json::json;

fn engine_on(vendor: &SigningKey, store: FileStore) -> entitle::Result<Engine> {
    Engine::builder("acme")
        .trust(vendor.public_key().clone())
        .store(store)
        .background_refresh(false)
        .clock(SystemClock)
        .build()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let users: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let opens: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(5);
    let vendor = SigningKey::from_seed(&[3; 32]);
    let dir = tempfile::tempdir()?;

    // One license, through an engine, as a program would add it.
    {
        let engine = engine_on(&vendor, FileStore::create(dir.path())?)?;
        let license = json!({"v": 1, "id": "site", "product": "acme", "issued_at": "2026-01-01T00:00:00Z",
            "seats": {"max": users + 10, "active_window_secs": 30 * 24 * 3600},
            "features": [{"code": "export"}, {"code": "api", "consumption": {"reset": "monthly"}}]});
        engine.add_license(&sign(&license, &vendor, TokenType::License)?)?;
    }

    // The users, in one transaction of the store's own.
    let started = Instant::now();
    let now = SystemClock.now().unix();
    let changes: Vec<Change> = (0..users)
        .map(|i| {
            let mut user = UserRecord::default();
            user.id = format!("user-{i:07}");
            user.user_type = ["designer", "reviewer", "admin"][i % 3].to_owned();
            user.added_at = now - 90 * 24 * 3600;
            // Activity spread over the last 60 days, so some are idle.
            user.last_active_at = now - (i as i64 % 60) * 24 * 3600;
            Change::PutUser(user)
        })
        .collect();
    let path = {
        let store = FileStore::create(dir.path())?;
        let mut txn = store.begin()?;
        txn.write(&changes)?;
        let generation = txn.commit()?;
        store.sync(generation)?;
        store.path().to_owned()
    };
    drop(changes);
    let size = std::fs::metadata(&path)?.len()
        + std::fs::metadata(path.with_extension("sqlite-wal")).map_or(0, |m| m.len());
    println!(
        "state:     {users} users written in {:.2?}; {:.1} MB on disk (database and log)",
        started.elapsed(),
        size as f64 / 1e6
    );

    let (mut whole, mut store_open, mut builds, mut loads, mut checks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..opens {
        // The whole open, in two parts: the store (schema and integrity
        // check), then the engine (read, verify, build, persist the time).
        let t0 = Instant::now();
        let store = FileStore::open(dir.path())?;
        let t1 = Instant::now();
        let engine = engine_on(&vendor, store)?;
        let t2 = Instant::now();
        let status = engine.status();
        assert_eq!(status.total_users, users as u64);
        assert_eq!(status.licenses, 1);
        drop(engine);

        // The parts alone: SQLite's structural check on a connection of
        // its own, and the store's read of every row.
        let conn = rusqlite::Connection::open(&path)?;
        let t3 = Instant::now();
        let verdict: String = conn.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))?;
        let check = t3.elapsed();
        assert_eq!(verdict, "ok");
        drop(conn);
        let store = FileStore::open(dir.path())?;
        let t4 = Instant::now();
        let (_, persisted) = store.load()?;
        let load = t4.elapsed();
        assert_eq!(persisted.users.len(), users);
        drop(persisted);
        drop(store);

        println!(
            "open {}:    {} (FileStore::open {}, build {}); alone: integrity_check {}, load {}",
            round + 1,
            ms(t2 - t0),
            ms(t1 - t0),
            ms(t2 - t1),
            ms(check),
            ms(load)
        );
        whole.push(t2 - t0);
        store_open.push(t1 - t0);
        builds.push(t2 - t1);
        checks.push(check);
        loads.push(load);
    }
    let whole = median(whole);
    let check = median(checks);
    println!(
        "median:    {} (FileStore::open {}, build {}); alone: integrity_check {} ({:.0}% of the open), load {}",
        ms(whole),
        ms(median(store_open)),
        ms(median(builds)),
        ms(check),
        100.0 * check.as_secs_f64() / whole.as_secs_f64(),
        ms(median(loads))
    );
    Ok(())
}
