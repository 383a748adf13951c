//! Where a durable consume's time goes on PostgreSQL: the statements
//! `PgStore` sends for one mutation alone in its batch (the begin with the
//! namespace's row lock, the counter's upsert, the commit with the new
//! generation and its notification), timed one by one, against a bare
//! one-row `BEGIN`/`UPDATE`/`COMMIT` in the same loop: the floor of the
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
         INSERT INTO bare VALUES (1, 0); LISTEN entitle_changes",
    )?;
    let bare = client.prepare("UPDATE bare SET used = used + 1 WHERE id = 1")?;
    let upsert = client.prepare(
        "INSERT INTO counters (namespace, license_id, code, period_start, used) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, license_id, code) \
         DO UPDATE SET period_start = EXCLUDED.period_start, used = EXCLUDED.used",
    )?;
    let mut spent = [Duration::ZERO; 4];
    for used in 0..i64::from(iterations) {
        let start = Instant::now();
        client.batch_execute("BEGIN")?;
        client.execute(&bare, &[])?;
        client.batch_execute("COMMIT")?;
        let begin = Instant::now();
        let locked = client.simple_query(
            "BEGIN; SET LOCAL lock_timeout = 10000; SELECT generation, licenses_generation \
             FROM namespaces WHERE namespace = E'default' FOR UPDATE",
        )?;
        let generation: i64 = locked
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
                _ => None,
            })
            .unwrap_or(0);
        let write = Instant::now();
        client.execute(&upsert, &[&"default", &"lic", &"api", &0i64, &used])?;
        let commit = Instant::now();
        let next = generation + 1;
        client.batch_execute(&format!(
            "WITH moved AS (UPDATE namespaces SET generation = {next}, \
             licenses_generation = licenses_generation WHERE namespace = E'default' \
             RETURNING namespace) SELECT pg_notify('entitle_changes', E'{next} default') \
             FROM moved; COMMIT"
        ))?;
        let end = Instant::now();
        spent[0] += begin - start;
        spent[1] += write - begin;
        spent[2] += commit - write;
        spent[3] += end - commit;
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(iterations);
    let store = us(spent[1] + spent[2] + spent[3]);
    println!("{iterations} iterations, µs each:");
    println!(
        "bare BEGIN/UPDATE/COMMIT:          {:.0} (baseline)",
        us(spent[0])
    );
    println!(
        "store's SQL for one consume:       {store:.0} ({:.2}x): begin and row lock {:.0}, \
         upsert {:.0}, generation + NOTIFY + COMMIT {:.0}",
        store / us(spent[0]).max(f64::MIN_POSITIVE),
        us(spent[1]),
        us(spent[2]),
        us(spent[3]),
    );
    Ok(())
}
