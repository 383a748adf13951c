//! The library's client of `entitle serve` (feature `client`) against the
//! real server on 127.0.0.1: the same `LeaseGuard` an engine hands out,
//! holding a seat through heartbeats, an unreachable server and a
//! restart, and a borrowed token that keeps a laptop licensed offline.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::time::{Duration, Instant};

use entitle::client::Client;
use entitle::token::PublicKey;
use entitle::{Engine, LeaseGuard};
use serde_json::json;
use server_common::{entitle, install, Server};

fn spec(seats: u32, lease_secs: i64) -> serde_json::Value {
    json!({
        "product": "acme",
        "id": "lic_1",
        "floating": {"seats": seats, "lease_secs": lease_secs, "borrow_max_secs": 3600},
        "features": [{"code": "cad"}],
    })
}

fn lease_pub(dir: &std::path::Path) -> PublicKey {
    let printed = entitle(dir, &["serve", "--print-lease-pub"]);
    PublicKey::from_pem(printed["public_key"].as_str().unwrap()).unwrap()
}

/// The application's own install, holding the license the server serves
/// (one engine is one program: its client id is the engine's).
fn app(dir: &std::path::Path) -> Engine {
    let vendor = std::fs::read_to_string(dir.join("vendor.pub")).unwrap();
    let engine = Engine::builder("acme")
        .trust(PublicKey::from_pem(&vendor).unwrap())
        .in_memory()
        .background_refresh(false)
        .build()
        .unwrap();
    engine
        .add_license(&std::fs::read_to_string(dir.join("l.lic")).unwrap())
        .unwrap();
    engine
}

fn live_leases(dir: &std::path::Path) -> usize {
    entitle(dir, &["lease", "list"])["items"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_client_guard_holds_a_seat_until_dropped_and_one_per_pool() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &[]);
    let engine = app(dir.path());
    let client = Client::connect(&engine, &server.url(), lease_pub(dir.path())).unwrap();
    let seat = client.lease(Some("cad")).unwrap();
    assert!(seat.check().allowed());
    assert_eq!(seat.lease().unwrap().client, client.client_id());
    assert_eq!(client.client_id(), engine.client_id());
    // The same pool again: the same guard, not a second seat.
    let again = client.lease(Some("cad")).unwrap();
    assert_eq!(again.lease(), seat.lease());
    // Another client finds the pool full.
    let other_app = app(dir.path());
    let other = Client::connect(&other_app, &server.url(), lease_pub(dir.path())).unwrap();
    let err = other.lease(Some("cad")).unwrap_err();
    assert_eq!(err.code(), "FLOATING_EXHAUSTED");
    assert_eq!(live_leases(dir.path()), 1);
    drop(seat);
    assert_eq!(live_leases(dir.path()), 1, "a clone still holds it");
    drop(again);
    assert_eq!(live_leases(dir.path()), 0, "the last clone checked in");
    assert!(other.lease(Some("cad")).unwrap().check().allowed());
}

#[test]
fn leases_signed_by_another_key_are_a_key_mismatch_and_the_seat_is_checked_in() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &[]);
    let engine = app(dir.path());
    let stranger = entitle::token::SigningKey::generate().unwrap();
    // The application retries, as an application does: each time with a
    // client made anew from the same engine.
    for _ in 0..3 {
        let client =
            Client::connect(&engine, &server.url(), stranger.public_key().clone()).unwrap();
        let err = client.lease(Some("cad")).unwrap_err();
        assert_eq!(err.code(), "LEASE_KEY_MISMATCH", "{err}");
        assert!(err.to_string().contains(&server.url()), "{err}");
        assert!(err.to_string().contains("--print-lease-pub"), "{err}");
        assert_eq!(live_leases(dir.path()), 0, "the seat was checked in");
    }
    assert_eq!(
        engine.feature("cad").check().reason().code(),
        "LEASE_REQUIRED"
    );
    // The pool is free for a program that trusts the right key.
    let right = Client::connect(&app(dir.path()), &server.url(), lease_pub(dir.path())).unwrap();
    assert!(right.lease(Some("cad")).unwrap().check().allowed());
}

#[test]
fn an_unreachable_server_is_server_unreachable_naming_its_address() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = install(spec(1, 60));
    let engine = app(dir.path());
    let key = lease_pub(dir.path());
    let client = Client::connect(&engine, &url, key).unwrap();
    let err = client.lease(Some("cad")).unwrap_err();
    assert_eq!(err.code(), "SERVER_UNREACHABLE", "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(
        err.user_message(),
        "The license server cannot be reached. Check the network connection and try again."
    );
}

#[test]
fn the_one_gate_counts_a_seat_held_from_the_server() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &[]);
    let engine = app(dir.path());
    let cad = engine.feature("cad");
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
    let client = Client::connect(&engine, &server.url(), lease_pub(dir.path())).unwrap();
    let seat = client.lease(Some("cad")).unwrap();
    // The gate resolved before the seat was taken, and one resolved after.
    assert!(cad.check().allowed(), "{:?}", cad.check());
    assert!(engine.feature("cad").check().allowed());
    assert_eq!(
        seat.check(),
        cad.check(),
        "the guard says what the gate says"
    );
    assert_eq!(cad.check().until(), seat.lease().map(|l| l.expires_at));
    // Another program (another engine) is not licensed by this seat.
    let other = app(dir.path());
    assert_eq!(
        other.feature("cad").check().reason().code(),
        "LEASE_REQUIRED"
    );
    // A renewal moves the gate's end with the lease.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(seat.renew().allowed());
    assert_eq!(cad.check().until(), seat.lease().map(|l| l.expires_at));
    drop(seat);
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
    assert_eq!(live_leases(dir.path()), 0);
}

#[test]
fn a_client_made_again_from_the_same_engine_asks_for_the_same_seat() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &[]);
    let engine = app(dir.path());
    let first = Client::connect(&engine, &server.url(), lease_pub(dir.path())).unwrap();
    let seat = first.lease(Some("cad")).unwrap();
    // The program makes a client again (after an error, say): same id,
    // so the server renews the seat this program holds, not a second one.
    let again = Client::connect(&engine, &server.url(), lease_pub(dir.path())).unwrap();
    assert_eq!(again.client_id(), first.client_id());
    let renewed = again.lease(Some("cad")).unwrap();
    assert_eq!(live_leases(dir.path()), 1);
    assert_eq!(renewed.lease().unwrap().id, seat.lease().unwrap().id);
    assert!(engine.feature("cad").check().allowed());
}

#[test]
fn lease_waiting_takes_the_seat_freed_while_it_waits_in_line() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &[]);
    let holder = app(dir.path());
    let held = Client::connect(&holder, &server.url(), lease_pub(dir.path()))
        .unwrap()
        .lease(Some("cad"))
        .unwrap();
    let waiter = app(dir.path());
    let client = Client::connect(&waiter, &server.url(), lease_pub(dir.path())).unwrap();
    // Without waiting: refused at once.
    assert_eq!(
        client.lease(Some("cad")).unwrap_err().code(),
        "FLOATING_EXHAUSTED"
    );
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        drop(held);
    });
    let started = Instant::now();
    let seat = client
        .lease_waiting(Some("cad"), Duration::from_secs(20))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(seat.check().allowed());
    assert!(waiter.feature("cad").check().allowed());
    release.join().unwrap();
    // Nobody frees it now: the wait ends refused.
    let third = app(dir.path());
    let err = Client::connect(&third, &server.url(), lease_pub(dir.path()))
        .unwrap()
        .lease_waiting(Some("cad"), Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(err.code(), "FLOATING_EXHAUSTED", "{err}");
}

#[test]
fn a_guard_rides_out_an_unreachable_server_until_its_lease_ends_and_retakes_the_seat_after() {
    let dir = install(spec(1, 6));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();
    let engine = app(dir.path());
    let client = Client::connect(&engine, &server.url(), key).unwrap();
    let seat = client.lease(None).unwrap();
    let first = seat.lease().unwrap();

    // The server goes away: the lease holds until its end, no longer.
    assert!(server.terminate().success());
    assert!(seat.renew().allowed(), "an outage keeps the lease");
    let end = seat.lease().unwrap().expires_at;
    while entitle::Clock::now(&entitle::SystemClock) < end {
        assert!(seat.check().allowed());
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seat.check().reason().code(), "LEASE_EXPIRED");

    // Back on the same port: the guard takes a seat again.
    let server = Server::start_on(dir.path(), &addr, &[]);
    let started = Instant::now();
    while !seat.check().allowed() && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(seat.check().allowed(), "{:?}", seat.lost());
    assert_ne!(seat.lease().unwrap().id, first.id, "a new lease");
    drop(seat);
    drop(server);
}

#[test]
fn a_restart_within_the_lease_keeps_the_same_lease() {
    let dir = install(spec(1, 30));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();
    let engine = app(dir.path());
    let client = Client::connect(&engine, &server.url(), key).unwrap();
    let seat = client.lease(None).unwrap();
    let id = seat.lease().unwrap().id;
    assert!(server.terminate().success());
    let _server = Server::start_on(dir.path(), &addr, &[]);
    assert!(seat.renew().allowed());
    assert_eq!(seat.lease().unwrap().id, id, "re-attached to its lease");
}

#[test]
fn a_borrowed_token_saved_to_disk_keeps_a_laptop_licensed_offline_until_it_ends() {
    // A borrow never shortens a lease: leases of 2 s, a borrow of 4.
    let dir = install(spec(1, 2));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let engine = app(dir.path());
    let client = Client::connect(&engine, &server.url(), key.clone()).unwrap();
    let seat = client.lease(Some("cad")).unwrap();
    // A lease that is not borrowed cannot be carried off.
    let plain = seat.lease().unwrap();
    assert_eq!(plain.borrowed_until, None);

    let token = client.borrow(&seat, 4).unwrap();
    let file = dir.path().join("cad.lease");
    std::fs::write(&file, &token).unwrap();
    drop(seat);
    // The borrow keeps the seat on the server: dropping the guard checked
    // in nothing it could not.
    drop(server);

    let saved = std::fs::read_to_string(&file).unwrap();
    // The laptop's own install judges the time, and its one gate counts
    // the borrowed seat.
    let install = app(dir.path());
    let cad = install.feature("cad");
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
    let laptop = LeaseGuard::borrowed(&install, &saved, &key).unwrap();
    assert!(laptop.check().allowed());
    assert!(cad.check().allowed());
    assert!(
        laptop.renew().allowed(),
        "nothing to reach, and nothing lost"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(laptop.check().reason().code(), "LEASE_EXPIRED");
    assert_eq!(cad.check().reason().code(), "LEASE_EXPIRED");
    drop(laptop);
    assert_eq!(cad.check().reason().code(), "LEASE_REQUIRED");
    assert_eq!(
        LeaseGuard::borrowed(&install, &saved, &key)
            .unwrap_err()
            .code(),
        "LEASE_EXPIRED"
    );
    let stranger = entitle::token::SigningKey::generate().unwrap();
    assert_eq!(
        LeaseGuard::borrowed(&install, &saved, stranger.public_key())
            .unwrap_err()
            .code(),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn a_lease_that_was_not_borrowed_cannot_be_held_offline() {
    let dir = install(spec(1, 60));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let reply = server.post("/v1/leases", &json!({"client": "desk-1"}));
    let token = reply.body["token"].as_str().unwrap();
    let install = Engine::builder("acme").in_memory().build().unwrap();
    assert_eq!(
        LeaseGuard::borrowed(&install, token, &key)
            .unwrap_err()
            .code(),
        "BORROW_NOT_ALLOWED"
    );
}
