//! A service, by task: one engine shared by request handlers, a seat per
//! sign-up, metered API calls, and the gate on every request.
//!
//! ```sh
//! cargo run --example service
//! ```
//!
//! Request handlers are threads here (any executor works the same: the
//! engine is `Clone + Send + Sync`, and its checks never block). The
//! vendor's side is simulated at the top; the state lives in a temporary
//! directory where a real service points at its data directory (or, for
//! several replicas, at PostgreSQL).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use entitle::license::{Consumption, Feature, License, Reset, Seats};
use entitle::store::FileStore;
use entitle::token::SigningKey;
use entitle::{Clock, Engine, Error, Reason, SystemClock};

/// What a handler answers: an HTTP status and a body.
type Response = (u16, String);

/// `POST /signup`: a new user takes a seat, or is told why not.
fn signup(engine: &Engine, user: &str) -> Response {
    match engine.add_user(user, "member") {
        Ok(decision) if decision.reason() == Reason::Overage => (
            201,
            format!("welcome {user} (over the licensed seats: tell sales)"),
        ),
        Ok(_) => (201, format!("welcome {user}")),
        Err(e) => (402, format!("{} [{}]", e.user_message(), e.code())),
    }
}

/// `POST /api/render`: gated by the feature, then charged one unit.
fn render(engine: &Engine, gate: &entitle::FeatureGate) -> Response {
    // The gate first: a few nanoseconds, no lock, no allocation.
    let decision = gate.check();
    if !decision.allowed() {
        return (402, decision.message().to_owned());
    }
    // Then the charge: durable before it returns, exact across threads
    // and processes sharing the state.
    match engine.consume("render", 1) {
        Ok(used) => (200, format!("rendered ({} used this month)", used.used)),
        Err(Error::Denied { reason, .. }) => (429, reason.message().to_owned()),
        Err(e) => (503, e.to_string()),
    }
}

fn main() -> Result<(), Error> {
    // ---- the vendor, elsewhere ------------------------------------------
    let vendor = SigningKey::generate()?;
    let license = License::builder("acme-api")
        .id("lic_tenant_1")
        .issued_at(SystemClock.now())
        .seats(Seats::new(3).with_hard_max(4))
        .feature(
            Feature::new("render")
                .with_consumption(Consumption::up_to(50).with_reset(Reset::Monthly)),
        )
        .sign(&vendor)?;

    // ---- start-up: one engine for the whole process ------------------------
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let engine = Engine::builder("acme-api")
        .trust(vendor.public_key().clone())
        .store(FileStore::create(data_dir.path())?)
        .build()?;
    engine.add_license(&license)?;
    let gate = engine.feature("render"); // resolved once, cloned into handlers
    println!("Engine::builder(..).store(FileStore::create(..)).build(), add_license, feature(\"render\")");

    // ---- sign-ups: seats, 3 licensed and 1 of overage ---------------------
    for user in ["ada", "brian", "chen", "dana", "emil"] {
        let (status, body) = signup(&engine, user);
        println!("add_user({user:?}): {status} {body}");
    }
    println!("can_add_user(): {}", engine.can_add_user().reason());

    // ---- requests: 8 handlers, 10 calls each, 50 units a month ----------------
    let served = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (engine, gate) = (engine.clone(), gate.clone());
            let (served, refused) = (Arc::clone(&served), Arc::clone(&refused));
            s.spawn(move || {
                for _ in 0..10 {
                    let (status, _) = render(&engine, &gate);
                    let counter = if status == 200 { &served } else { &refused };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let served = served.load(Ordering::Relaxed);
    println!(
        "80 render calls from 8 threads: {served} served, {} refused; exactly the quota",
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(served, 50, "the monthly quota is exact under concurrency");
    let (status, body) = render(&engine, &gate);
    println!("feature(\"render\").check() after the quota: {status} {body}");

    // ---- an operator's view ------------------------------------------------------
    let status = engine.status();
    println!(
        "status(): {} active users of {} licensed seats",
        status.active_user_count, status.license_seats
    );
    Ok(())
}
