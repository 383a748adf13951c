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
    let client = Client::connect(&server.url(), lease_pub(dir.path())).unwrap();
    let seat = client.lease(Some("cad")).unwrap();
    assert!(seat.check().allowed());
    assert_eq!(seat.lease().unwrap().client, client.client_id());
    // The same pool again: the same guard, not a second seat.
    let again = client.lease(Some("cad")).unwrap();
    assert_eq!(again.lease(), seat.lease());
    // Another client finds the pool full.
    let other = Client::connect(&server.url(), lease_pub(dir.path())).unwrap();
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
fn leases_signed_by_another_key_are_refused() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &[]);
    let stranger = entitle::token::SigningKey::generate().unwrap();
    let client = Client::connect(&server.url(), stranger.public_key().clone()).unwrap();
    assert_eq!(client.lease(None).unwrap_err().code(), "SIGNATURE_INVALID");
}

#[test]
fn a_guard_rides_out_an_unreachable_server_until_its_lease_ends_and_retakes_the_seat_after() {
    let dir = install(spec(1, 6));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();
    let client = Client::connect(&server.url(), key).unwrap();
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
    let client = Client::connect(&server.url(), key).unwrap();
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
    let client = Client::connect(&server.url(), key.clone()).unwrap();
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
    // The laptop's own install judges the time.
    let install = Engine::builder("acme").in_memory().build().unwrap();
    let laptop = LeaseGuard::borrowed(&install, &saved, &key).unwrap();
    assert!(laptop.check().allowed());
    assert!(
        laptop.renew().allowed(),
        "nothing to reach, and nothing lost"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(laptop.check().reason().code(), "LEASE_EXPIRED");
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
