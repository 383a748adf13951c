//! Where a durable consume's time goes on PostgreSQL: the commit `PgStore`
//! sends for one mutation alone in its batch (one simple query: the
//! generation's check and move, the counter's upsert, the notification,
//! `COMMIT`), and the same without the notification or without the check,
//! against a bare one-row `BEGIN`/`UPDATE`/`COMMIT` and the bare commit
//! with a notification, taken in turns in one loop: the floor of the
//! store's own SQL, without the engine. Tables of its own, in the test
//! server's database.
//!
//! ```sh
//! cargo run --release --features postgres --example pg_store_sql [ITERATIONS]
//! ```
//!
//! Figures: `BENCHMARKS.md`, "Durable writes on PostgreSQL".

use std::time::{Duration, Instant};

#[path = "../tests/pg_common/mod.rs"]
mod pg_common;

fn main() -> Result<(), postgres::Error> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    let url = pg_common::fresh_database("store_sql");
    let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
    client.batch_execute(
        "CREATE TABLE namespaces (namespace text PRIMARY KEY, generation bigint NOT NULL, \
             licenses_generation bigint NOT NULL); \
         INSERT INTO namespaces VALUES ('default', 0, 0); \
         CREATE TABLE counters (namespace text NOT NULL, license_id text NOT NULL, \
             code text NOT NULL, period_start bigint NOT NULL, used bigint NOT NULL, \
             PRIMARY KEY (namespace, license_id, code)); \
         CREATE TABLE bare (id int PRIMARY KEY, used bigint NOT NULL); \
         INSERT INTO bare VALUES (1, 0); LISTEN entitle_changes; \
         CREATE FUNCTION advance(ns text, planned_on bigint, next bigint, licenses bigint) \
         RETURNS void LANGUAGE plpgsql AS $$ BEGIN \
             UPDATE namespaces SET generation = next, \
             licenses_generation = COALESCE(licenses, licenses_generation) \
             WHERE namespace = ns AND generation = planned_on; \
             IF NOT FOUND THEN RAISE EXCEPTION 'moved' USING ERRCODE = 'serialization_failure'; \
             END IF; END $$",
    )?;
    let bare = client.prepare("UPDATE bare SET used = used + 1 WHERE id = 1")?;
    // The store's commit of one consume, as it sends it: one simple query
    // (see `src/store/postgres/batch.rs`), here without the notification
    // or without the generation's check, to see what each costs.
    let commit = |next: i64, notify: bool, check: bool| {
        let planned_on = next - 1;
        let advance = if check {
            format!("SELECT advance(E'default', {planned_on}, {next}, NULL);")
        } else {
            format!("UPDATE namespaces SET generation = {next} WHERE namespace = E'default';")
        };
        let notify = if notify {
            format!("SELECT pg_notify('entitle_changes', E'{next} default');")
        } else {
            String::new()
        };
        format!(
            "BEGIN; SET LOCAL lock_timeout = 10000; {advance} \
             INSERT INTO counters (namespace, license_id, code, period_start, used) \
             VALUES (E'default', E'lic', E'api', 0, {next}) \
             ON CONFLICT (namespace, license_id, code) \
             DO UPDATE SET period_start = EXCLUDED.period_start, used = EXCLUDED.used; \
             {notify} COMMIT"
        )
    };
    const WAYS: [&str; 5] = [
        "bare BEGIN/UPDATE/COMMIT (baseline)",
        "bare, with NOTIFY",
        "the store's commit, as sent",
        "the store's commit, no NOTIFY",
        "the store's commit, no check",
    ];
    let mut spent = [Duration::ZERO; WAYS.len()];
    let mut next = 0;
    for _ in 0..iterations {
        // Each way in turn, so that all meet the same moments of a shared
        // machine.
        for (way, spent) in spent.iter_mut().enumerate() {
            let start = Instant::now();
            match way {
                0 | 1 => {
                    client.batch_execute("BEGIN")?;
                    client.execute(&bare, &[])?;
                    let end = if way == 1 {
                        "SELECT pg_notify('bench_bare', '1'); COMMIT"
                    } else {
                        "COMMIT"
                    };
                    client.batch_execute(end)?;
                }
                _ => {
                    next += 1;
                    client.batch_execute(&commit(next, way != 3, way != 4))?;
                }
            }
            *spent += start.elapsed();
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(iterations);
    let baseline = us(spent[0]).max(f64::MIN_POSITIVE);
    println!("{iterations} iterations, µs each, and the ratio to the baseline:");
    for (way, spent) in WAYS.iter().zip(spent) {
        println!("{way:<38} {:>6.0}  {:.2}x", us(spent), us(spent) / baseline);
    }
    Ok(())
}
