//! One million named users in one engine: how long adding them takes, what
//! a usage report costs, and (measured from outside) how much memory the
//! state needs.
//!
//! ```sh
//! cargo build --release --example million_users
//! /usr/bin/time -v target/release/examples/million_users   # "Maximum resident set size"
//! ```

use std::time::Instant;

use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, ManualClock, Timestamp};
use serde_json::json;

fn main() -> Result<(), entitle::Error> {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let vendor = SigningKey::from_seed(&[3; 32]);
    let clock = ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z")?);
    let engine = Engine::builder("acme")
        .in_memory()
        .trust(vendor.public_key().clone())
        .clock(clock.clone())
        .background_refresh(false)
        .build()?;
    let license = json!({"v": 1, "id": "site", "product": "acme", "issued_at": "2026-01-01T00:00:00Z",
        "seats": {"max": users + 10, "active_window_secs": 30 * 24 * 3600},
        "features": [{"code": "export"}]});
    engine.add_license(&sign(&license, &vendor, TokenType::License)?)?;

    let started = Instant::now();
    for i in 0..users {
        let user_type = ["designer", "reviewer", "admin"][i % 3];
        engine.add_user(&format!("user-{i:07}"), user_type)?;
        if i % 1000 == 999 {
            clock.advance(60); // activity spread over time, so some go idle
        }
    }
    let added = started.elapsed();

    let started = Instant::now();
    let page = engine.usage(users / 2, 100);
    let report = started.elapsed();
    let started = Instant::now();
    let status = engine.status();
    let status_time = started.elapsed();
    println!(
        "users added:        {users} in {added:.2?} ({:.2?} per user)",
        added / users as u32
    );
    println!(
        "usage page + summary: {report:.2?} ({} users on the page)",
        page.users.len()
    );
    println!("status:             {status_time:.2?}");
    println!(
        "active users:       {} of {}; summary {:?}",
        status.active_user_count, page.total, page.summary
    );
    println!("can_add_user:       {:?}", engine.can_add_user().reason());
    Ok(())
}
