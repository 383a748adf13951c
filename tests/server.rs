//! `entitle serve` driven over HTTP (docs/http.md): the real binary on
//! 127.0.0.1, port 0, over a state the CLI made. Every route, each error
//! status, admin token on, off and wrong, leases as signed tokens,
//! queuing, shutdown and restart with leases kept, and a race for a pool.
#![cfg(feature = "server")]

mod server_common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use entitle::token::{LeaseToken, PublicKey};
use entitle::Timestamp;
use serde_json::{json, Value};
use server_common::{entitle, install, read_reply, request, Reply, Server, ADMIN_TOKEN};

fn spec(seats: u32) -> Value {
    json!({
        "product": "acme",
        "id": "lic_1",
        "seats": {"max": 2},
        "floating": {"seats": seats, "lease_secs": 60, "borrow_max_secs": 3600},
        "features": [{"code": "cad"}, {"code": "meter", "consumption": {"max": 5}}],
    })
}

fn lease_pub(dir: &std::path::Path) -> PublicKey {
    let printed = entitle(dir, &["serve", "--print-lease-pub"]);
    PublicKey::from_pem(printed["public_key"].as_str().unwrap()).unwrap()
}

/// Waits (up to 20 s) until `n` checkouts wait in the license pool's
/// line, as `/metrics` says: the order of a test's waiters is then known.
fn wait_for_line(server: &Server, n: usize) {
    let wanted = format!(r#"entitle_lease_queue_length{{pool="license"}} {n}"#);
    let started = Instant::now();
    while !server.get("/metrics").text.contains(&wanted) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{n} never waited in line"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn admin_args() -> [&'static str; 2] {
    ["--admin-token-file", "admin.token"]
}

#[test]
fn every_client_route_answers_as_the_cli_does() {
    let dir = install(spec(2));
    let server = Server::start(dir.path(), &admin_args());

    let health = server.get("/healthz");
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );

    let check = server.get("/v1/features/cad");
    assert_eq!(check.status, 200);
    assert_eq!(check.body["allowed"], json!(true), "{:?}", check.body);
    assert_eq!(check.body["feature"], json!("cad"));
    // A denial is an answer, not an error.
    let denied = server.get("/v1/features/nothing?user=ann");
    assert_eq!(denied.status, 200);
    assert_eq!(denied.body["allowed"], json!(false));
    assert_eq!(denied.body["reason"], json!("NOT_LICENSED"));
    assert_eq!(denied.body["user"], json!("ann"));

    let user = server.post("/v1/users", &json!({"id": "ann", "user_type": "designer"}));
    assert_eq!(user.status, 201, "{:?}", user.body);
    assert_eq!(user.body["allowed"], json!(true));
    assert_eq!(user.body["active_user_count"], json!(1));
    let removed = server.delete("/v1/users/ann");
    assert_eq!(
        (removed.status, &removed.body["removed"]),
        (200, &json!(true))
    );
    let again = server.delete("/v1/users/ann");
    assert_eq!((again.status, again.code()), (404, "USER_NOT_FOUND"));

    let used = server.post("/v1/consume", &json!({"feature": "meter", "amount": 3}));
    assert_eq!(used.status, 200, "{:?}", used.body);
    assert_eq!(
        (used.body["used"].as_u64(), used.body["amount"].as_u64()),
        (Some(3), Some(3))
    );
    let over = server.post("/v1/consume", &json!({"feature": "meter", "amount": 3}));
    assert_eq!((over.status, over.code()), (409, "CONSUMPTION_LIMIT"));

    let lease = server.post("/v1/leases", &json!({"client": "desk-1", "feature": "cad"}));
    assert_eq!(lease.status, 201, "{:?}", lease.body);
    let id = lease.body["id"].as_str().unwrap().to_owned();
    assert!(lease.body["expires_at"].is_string() && lease.body["token"].is_string());
    let beat = server.post(&format!("/v1/leases/{id}/heartbeat"), &json!({}));
    assert_eq!(
        (beat.status, beat.body["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let borrowed = server.post(&format!("/v1/leases/{id}/borrow"), &json!({"secs": 600}));
    assert_eq!(borrowed.status, 200, "{:?}", borrowed.body);
    assert_eq!(borrowed.body["borrowed"], json!(true));
    let too_long = server.post(&format!("/v1/leases/{id}/borrow"), &json!({"secs": 7200}));
    assert_eq!((too_long.status, too_long.code()), (409, "BORROW_TOO_LONG"));
    // A borrowed seat is held until the borrow ends: no early check-in.
    let early = server.delete(&format!("/v1/leases/{id}"));
    assert_eq!((early.status, early.code()), (409, "LEASE_BORROWED"));
    let plain = server.post("/v1/leases", &json!({"client": "desk-2", "feature": "cad"}));
    assert_eq!(plain.status, 201, "{:?}", plain.body);
    let id = plain.body["id"].as_str().unwrap().to_owned();
    let back = server.delete(&format!("/v1/leases/{id}"));
    assert_eq!((back.status, &back.body["checked_in"]), (200, &json!(true)));
    let gone = server.delete(&format!("/v1/leases/{id}"));
    assert_eq!((gone.status, gone.code()), (404, "LEASE_NOT_FOUND"));
    let beat_gone = server.post(&format!("/v1/leases/{id}/heartbeat"), &json!({}));
    assert_eq!(
        (beat_gone.status, beat_gone.code()),
        (404, "LEASE_NOT_FOUND")
    );

    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    for name in [
        "entitle_http_requests_total",
        "entitle_leases_in_use",
        "entitle_lease_queue_length",
    ] {
        assert!(
            metrics.text.contains(name),
            "{name} missing:\n{}",
            metrics.text
        );
    }
    assert!(metrics.text.contains(r#"route="/v1/leases",status="201""#));
    // A made-up method is refused, and counted under one label whatever
    // its name: no client can grow the metrics without bound.
    for method in ["FOO", "BAR1"] {
        let reply = request(&server.addr, method, "/healthz", &[], None);
        assert_eq!((reply.status, reply.code()), (405, "METHOD_NOT_ALLOWED"));
    }
    let metrics = server.get("/metrics").text;
    assert!(
        !metrics.contains("FOO") && !metrics.contains("BAR1"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"method="OTHER",route="/healthz",status="405"} 2"#));
}

#[test]
fn admin_routes_take_the_token_refuse_a_wrong_one_and_are_off_without_it() {
    let dir = install(spec(2));
    let server = Server::start(dir.path(), &admin_args());
    let license = std::fs::read(dir.path().join("l.lic")).unwrap();

    for token in [None, Some("wrong"), Some("admin-token-for-tests-012345678")] {
        let refused = server.admin("GET", "/admin/license/status", token, None);
        assert_eq!(
            (refused.status, refused.code()),
            (401, "UNAUTHORIZED"),
            "{token:?}"
        );
    }
    let token = Some(ADMIN_TOKEN);
    let status = server.admin("GET", "/admin/license/status", token, None);
    assert_eq!(status.status, 200);
    assert_eq!(status.body["licenses"], json!(1));
    assert_eq!(status.body["license_seats"], json!(2));

    let listed = server.admin("GET", "/admin/license?limit=10", token, None);
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["items"][0]["id"], json!("lic_1"));
    assert!(listed.body.get("next_cursor").is_some());
    let bad_filter = server.admin(
        "GET",
        "/admin/license?filter=nonsense%20%3D%3D",
        token,
        None,
    );
    assert_eq!(bad_filter.status, 400, "{:?}", bad_filter.body);

    let bob = server.post(
        "/v1/users",
        &json!({"id": "bob", "name": "Bob Ray", "email": "bob@example.com"}),
    );
    assert_eq!(bob.status, 201, "{:?}", bob.body);
    let usage = server.admin("GET", "/admin/license/usage?offset=0", token, None);
    assert_eq!(usage.status, 200);
    assert_eq!(usage.body["users"][0]["id"], json!("bob"));
    assert_eq!(usage.body["users"][0]["name"], json!("Bob Ray"));
    assert_eq!(usage.body["users"][0]["email"], json!("bob@example.com"));
    let bad = server.post("/v1/users", &json!({"id": "cy", "email": "cy"}));
    assert_eq!((bad.status, bad.code()), (400, "INVALID_ARGUMENT"));

    let removed = server.admin("DELETE", "/admin/license/lic_1?hard=false", token, None);
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(
        (removed.body["id"].as_str(), &removed.body["hard"]),
        (Some("lic_1"), &json!(false))
    );
    let missing = server.admin("DELETE", "/admin/license/lic_1", token, None);
    assert_eq!((missing.status, missing.code()), (404, "LICENSE_NOT_FOUND"));

    let added = server.admin("POST", "/admin/license", token, Some(&license));
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(added.body["id"], json!("lic_1"));
    let applied = server.admin("POST", "/admin/apply", token, Some(&license));
    assert_eq!(applied.status, 200, "{:?}", applied.body);
    assert_eq!(applied.body["applied"], json!("license"));
    let garbage = server.admin("POST", "/admin/apply", token, Some(b"not a token"));
    assert_eq!((garbage.status, garbage.code()), (400, "MALFORMED"));
    let removed = server.admin("DELETE", "/admin/license/lic_1?hard=true", token, None);
    assert_eq!(removed.status, 200);
    let revoked = server.admin("POST", "/admin/license", token, Some(&license));
    assert_eq!((revoked.status, revoked.code()), (409, "LICENSE_REVOKED"));
    drop(server);

    // Without --admin-token-file the admin routes are off, whatever is sent.
    let server = Server::start(dir.path(), &[]);
    let off = server.admin("GET", "/admin/license/status", Some(ADMIN_TOKEN), None);
    assert_eq!((off.status, off.code()), (404, "NOT_FOUND"));
}

#[test]
fn bad_requests_get_json_errors_with_their_status() {
    let dir = install(spec(1));
    let server = Server::start(dir.path(), &["--request-timeout-secs", "1"]);
    let cases: Vec<(Reply, u16, &str)> = vec![
        (
            request(&server.addr, "POST", "/v1/leases", &[], Some(b"{not json")),
            400,
            "MALFORMED",
        ),
        (
            server.post("/v1/leases", &json!({"client": "a", "colour": "red"})),
            400,
            "MALFORMED",
        ),
        (
            server.post("/v1/leases", &json!({"client": ""})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            server.post("/v1/leases", &json!({"client": "a", "wait_secs": 3600})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            server.post("/v1/consume", &json!({"feature": "meter", "amount": -1})),
            400,
            "MALFORMED",
        ),
        (server.get("/admin/license/usage?size=0"), 404, "NOT_FOUND"),
        (server.get("/no/such/route"), 404, "NOT_FOUND"),
        (server.delete("/healthz"), 405, "METHOD_NOT_ALLOWED"),
        (server.get("/v1/features/cad?colour=red"), 400, "MALFORMED"),
    ];
    for (reply, status, code) in &cases {
        assert_eq!((reply.status, reply.code()), (*status, *code), "{reply:?}");
        assert!(reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    // Over 64 KiB: 413, whether the length is announced or streamed.
    let big = vec![b'a'; 64 * 1024 + 1];
    let announced = request(&server.addr, "POST", "/v1/users", &[], Some(&big));
    assert_eq!((announced.status, announced.code()), (413, "TOO_LARGE"));
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", big.len(), String::from_utf8_lossy(&big));
    let head = "POST /admin/license HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(chunk.as_bytes());
    let _ = stream.write_all(b"0\r\n\r\n");
    let streamed = read_reply(&mut stream);
    // Admin routes are off on this server: refused before the body is read.
    assert_eq!(streamed.status, 404);

    // A slow client: headers announce a body that never comes.
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\"")
        .unwrap();
    let started = Instant::now();
    let timed_out = read_reply(&mut slow);
    assert_eq!((timed_out.status, timed_out.code()), (408, "TIMEOUT"));
    assert!(started.elapsed() < Duration::from_secs(30));

    // A truncated request: the connection closes mid-body; the server
    // carries on.
    let mut cut = TcpStream::connect(&server.addr).unwrap();
    cut.write_all(b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\"")
        .unwrap();
    drop(cut);
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_streamed_body_over_the_limit_is_refused_with_413() {
    let dir = install(spec(1));
    let server = Server::start(dir.path(), &admin_args());
    let big = "a".repeat(64 * 1024 + 10);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /admin/license HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \
         {ADMIN_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    for piece in big.as_bytes().chunks(4096) {
        let chunk = format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            String::from_utf8_lossy(piece)
        );
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let reply = read_reply(&mut stream);
    assert_eq!(
        (reply.status, reply.code()),
        (413, "TOO_LARGE"),
        "{reply:?}"
    );
}

#[test]
fn lease_tokens_verify_with_the_printed_key_and_a_borrow_says_borrowed() {
    let dir = install(spec(2));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let lease = server.post("/v1/leases", &json!({"client": "desk-1", "feature": "cad"}));
    assert_eq!(lease.status, 201);
    let token = LeaseToken::verify(lease.body["token"].as_str().unwrap(), &key).unwrap();
    assert_eq!(token.lease_id, lease.body["id"].as_str().unwrap());
    assert_eq!(token.client, "desk-1");
    assert_eq!(token.license_ids, vec!["lic_1".to_owned()]);
    assert!(!token.borrowed);
    assert_eq!(json!(token.expires_at), lease.body["expires_at"]);
    let now = Timestamp::from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    assert!(token.live_at(now));

    let borrowed = server.post(
        &format!("/v1/leases/{}/borrow", token.lease_id),
        &json!({"secs": 1800}),
    );
    let carried = LeaseToken::verify(borrowed.body["token"].as_str().unwrap(), &key).unwrap();
    assert!(carried.borrowed);
    assert!(carried.expires_at.unix() >= now.unix() + 1790);

    // Another key (another server, or a forger) does not verify it.
    let stranger = entitle::token::SigningKey::generate().unwrap();
    let err = LeaseToken::verify(
        borrowed.body["token"].as_str().unwrap(),
        stranger.public_key(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "SIGNATURE_INVALID");
}

#[test]
fn a_borrowed_lease_checked_in_early_does_not_free_its_seat_for_another_borrow() {
    // The attack: borrow the one seat, check it in, and borrow it again
    // from another client: a second token valid offline from one seat.
    let dir = install(spec(1));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let lease = server.post("/v1/leases", &json!({"client": "laptop-1"}));
    assert_eq!(lease.status, 201, "{:?}", lease.body);
    let id = lease.body["id"].as_str().unwrap().to_owned();
    let borrowed = server.post(&format!("/v1/leases/{id}/borrow"), &json!({"secs": 3600}));
    assert_eq!(borrowed.status, 200, "{:?}", borrowed.body);
    let token = LeaseToken::verify(borrowed.body["token"].as_str().unwrap(), &key).unwrap();
    assert!(token.borrowed);

    let early = server.delete(&format!("/v1/leases/{id}"));
    assert_eq!((early.status, early.code()), (409, "LEASE_BORROWED"));
    // The seat is still taken, until the borrow ends.
    assert_eq!(early.body["error"]["retry_at"], json!(token.expires_at));
    assert!(early.body.get("retry_at").is_none(), "once, in `error`");
    let second = server.post("/v1/leases", &json!({"client": "laptop-2"}));
    assert_eq!(
        (second.status, second.code()),
        (409, "FLOATING_EXHAUSTED"),
        "{:?}",
        second.body
    );
    let leases = entitle(dir.path(), &["lease", "list"]);
    assert_eq!(leases["items"].as_array().unwrap().len(), 1);
}

#[test]
fn a_lease_key_file_signs_the_leases_and_is_what_print_lease_pub_prints() {
    let dir = install(spec(1));
    let key = entitle::token::SigningKey::generate().unwrap();
    std::fs::write(dir.path().join("lease.key"), key.to_pem().as_bytes()).unwrap();
    let printed = entitle(
        dir.path(),
        &["serve", "--print-lease-pub", "--lease-key", "lease.key"],
    );
    assert_eq!(printed["kid"].as_str(), Some(key.kid()));
    let server = Server::start(dir.path(), &["--lease-key", "lease.key"]);
    let lease = server.post("/v1/leases", &json!({"client": "desk-1"}));
    LeaseToken::verify(lease.body["token"].as_str().unwrap(), key.public_key()).unwrap();
    // Not the install key's.
    let install_key = lease_pub(dir.path());
    assert!(LeaseToken::verify(lease.body["token"].as_str().unwrap(), &install_key).is_err());
}

#[test]
fn sixty_four_clients_racing_for_five_seats_get_exactly_five_leases() {
    const CLIENTS: usize = 64;
    const SEATS: u32 = 5;
    let dir = install(spec(SEATS));
    let server = Server::start(dir.path(), &[]);
    let barrier = std::sync::Barrier::new(CLIENTS);
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (barrier, addr) = (&barrier, &server.addr);
                scope.spawn(move || {
                    barrier.wait();
                    let body = json!({"client": format!("desk-{i}")}).to_string();
                    request(addr, "POST", "/v1/leases", &[], Some(body.as_bytes()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    let refused = replies
        .iter()
        .filter(|r| r.status == 409 && r.code() == "FLOATING_EXHAUSTED")
        .count();
    assert_eq!(granted.len(), SEATS as usize, "{replies:?}");
    assert_eq!(refused, CLIENTS - SEATS as usize);
    let ids: BTreeSet<&str> = granted
        .iter()
        .map(|r| r.body["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), SEATS as usize, "no lease given twice");
    let live = entitle(dir.path(), &["lease", "list"]);
    assert_eq!(live["items"].as_array().unwrap().len(), SEATS as usize);
}

#[test]
fn sigterm_stops_the_server_and_a_restart_still_has_its_leases() {
    let dir = install(spec(2));
    let key = lease_pub(dir.path());
    let server = Server::start(dir.path(), &[]);
    let lease = server.post("/v1/leases", &json!({"client": "desk-1"}));
    assert_eq!(lease.status, 201);
    let id = lease.body["id"].as_str().unwrap().to_owned();
    // A checkout waiting in line hears 503 when the server stops.
    server.post("/v1/leases", &json!({"client": "desk-2"}));
    let addr = server.addr.clone();
    let waiter = std::thread::spawn(move || {
        let body = json!({"client": "desk-3", "wait_secs": 30}).to_string();
        request(&addr, "POST", "/v1/leases", &[], Some(body.as_bytes()))
    });
    wait_for_line(&server, 1);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let waited = waiter.join().unwrap();
    assert_eq!((waited.status, waited.code()), (503, "SHUTTING_DOWN"));

    let server = Server::start(dir.path(), &[]);
    let beat = server.post(&format!("/v1/leases/{id}/heartbeat"), &json!({}));
    assert_eq!(beat.status, 200, "{:?}", beat.body);
    LeaseToken::verify(beat.body["token"].as_str().unwrap(), &key).unwrap();
    let full = server.post("/v1/leases", &json!({"client": "desk-9"}));
    assert_eq!((full.status, full.code()), (409, "FLOATING_EXHAUSTED"));
    assert!(full.body["error"]["retry_at"].is_string());
}

#[test]
fn waiting_checkouts_are_served_first_come_first_served_and_the_line_is_bounded() {
    let dir = install(spec(1));
    let server = Server::start(dir.path(), &["--max-queue", "2"]);
    let first = server.post("/v1/leases", &json!({"client": "a"}));
    assert_eq!(first.status, 201);
    let first_id = first.body["id"].as_str().unwrap().to_owned();

    let wait = |client: &'static str| {
        let addr = server.addr.clone();
        let body = json!({"client": client, "wait_secs": 20}).to_string();
        std::thread::spawn(move || request(&addr, "POST", "/v1/leases", &[], Some(body.as_bytes())))
    };
    let b = wait("b");
    wait_for_line(&server, 1);
    let c = wait("c");
    wait_for_line(&server, 2);
    // The line holds two: a third waiter is refused, and a newcomer that
    // does not wait does not jump it.
    let d = server.post("/v1/leases", &json!({"client": "d", "wait_secs": 5}));
    assert_eq!((d.status, d.code()), (429, "QUEUE_FULL"));
    let e = server.post("/v1/leases", &json!({"client": "e"}));
    assert_eq!((e.status, e.code()), (409, "FLOATING_EXHAUSTED"));
    let metrics = server.get("/metrics");
    assert!(
        metrics
            .text
            .contains(r#"entitle_lease_queue_length{pool="license"} 2"#),
        "{}",
        metrics.text
    );

    assert_eq!(server.delete(&format!("/v1/leases/{first_id}")).status, 200);
    let b = b.join().unwrap();
    assert_eq!(
        (b.status, b.body["client"].as_str()),
        (201, Some("b")),
        "{b:?}"
    );
    assert!(!c.is_finished(), "c waits behind b");
    let b_id = b.body["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/v1/leases/{b_id}")).status, 200);
    let c = c.join().unwrap();
    assert_eq!((c.status, c.body["client"].as_str()), (201, Some("c")));

    // A wait that runs out is a 409 like any other, after the wait.
    let started = Instant::now();
    let late = server.post("/v1/leases", &json!({"client": "f", "wait_secs": 1}));
    assert_eq!((late.status, late.code()), (409, "FLOATING_EXHAUSTED"));
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn the_openapi_document_describes_every_route_and_no_other() {
    let dir = install(spec(1));
    let server = Server::start(dir.path(), &[]);
    let doc = server.get("/openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = entitle::server::routes().into_iter().collect();
    assert_eq!(documented, served);
    // And the router answers each (no 404 NOT_FOUND from the fallback).
    for (method, path) in &served {
        let concrete = path.replace("{id}", "x").replace("{code}", "cad");
        let reply = request(&server.addr, method, &concrete, &[], Some(b"{}"));
        assert_ne!(reply.code(), "METHOD_NOT_ALLOWED", "{method} {path}");
        assert!(
            !(reply.status == 404
                && reply.body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no such route")),
            "{method} {path} is not routed"
        );
    }
}

#[test]
fn allow_lists_refuse_clients_outside_them_with_403() {
    let dir = install(spec(1));
    let server = Server::start(dir.path(), &["--allow", "10.0.0.0/8"]);
    // 127.0.0.1 is not in 10/8: answered 403 and closed, nothing served.
    let refused = server.get("/healthz");
    assert_eq!((refused.status, refused.code()), (403, "FORBIDDEN"));
    let checkout = server.post("/v1/leases", &json!({"client": "a"}));
    assert_eq!((checkout.status, checkout.code()), (403, "FORBIDDEN"));
    drop(server);
    assert_eq!(entitle(dir.path(), &["lease", "list"])["items"], json!([]));
    let server = Server::start(dir.path(), &["--allow", "127.0.0.0/8"]);
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_lingering_seat_returns_to_its_client_and_to_no_one_else_until_it_ends() {
    let dir = install(json!({
        "product": "acme",
        "id": "lic_1",
        "floating": {"seats": 1, "lease_secs": 60, "linger_secs": 2},
    }));
    let server = Server::start(dir.path(), &[]);
    let a = server.post("/v1/leases", &json!({"client": "a"}));
    let a_id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(server.delete(&format!("/v1/leases/{a_id}")).status, 200);
    let b = server.post("/v1/leases", &json!({"client": "b"}));
    assert_eq!((b.status, b.code()), (409, "FLOATING_EXHAUSTED"));
    let back = server.post("/v1/leases", &json!({"client": "a"}));
    assert_eq!(back.status, 201, "{:?}", back.body);
    let back_id = back.body["id"].as_str().unwrap().to_owned();
    assert_eq!(server.delete(&format!("/v1/leases/{back_id}")).status, 200);
    // A waiting checkout gets the seat once the linger ends.
    let started = Instant::now();
    let b = server.post("/v1/leases", &json!({"client": "b", "wait_secs": 10}));
    assert_eq!(b.status, 201, "{:?}", b.body);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

mod bad_input {
    //! Every route of the OpenAPI document with random paths, queries and
    //! bodies (a schema-driven fuzz at a bounded count): never a 5xx,
    //! never a dropped connection, always a JSON error for a refusal.
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("lic_1".to_owned()),
            Just("cad".to_owned()),
            "[a-zA-Z0-9_.~-]{1,40}",
            // Percent-encoded bytes: controls, slashes, invalid UTF-8.
            prop::collection::vec(any::<u8>(), 1..20)
                .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("user"),
            Just("hard"),
            Just("filter"),
            Just("order"),
            Just("limit"),
            Just("cursor"),
            Just("offset"),
            Just("size"),
            Just("x"),
        ];
        prop::collection::vec((key, segment()), 0..4).prop_map(|pairs| {
            if pairs.is_empty() {
                return String::new();
            }
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("?{}", joined.join("&"))
        })
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0u64..100).prop_map(Value::from),
            "\\PC{0,30}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("client".to_owned()),
                        Just("feature".to_owned()),
                        Just("wait_secs".to_owned()),
                        Just("secs".to_owned()),
                        Just("amount".to_owned()),
                        Just("id".to_owned()),
                        Just("user_type".to_owned()),
                        "[a-z]{1,8}",
                    ],
                    inner,
                    0..4,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            json_value().prop_map(|v| Some(v.to_string().into_bytes())),
            prop::collection::vec(any::<u8>(), 0..200).prop_map(Some),
        ]
    }

    #[test]
    fn random_requests_to_every_route_get_an_answer_and_never_a_5xx() {
        // Seats enough that no checkout ever waits in line.
        let dir = install(json!({
            "product": "acme", "id": "lic_1", "seats": {"max": 5},
            "floating": {"seats": 10000, "lease_secs": 60, "borrow_max_secs": 3600},
            "features": [{"code": "cad"}, {"code": "meter", "consumption": {"max": 50}}],
        }));
        let server = Server::start(dir.path(), &admin_args());
        let routes = entitle::server::routes();
        let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
        let cases = std::env::var("SERVER_FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(300);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let strategy = (0..routes.len(), segment(), query(), body(), any::<bool>());
        runner
            .run(&strategy, |(route, seg, q, body, admin)| {
                let (method, template) = &routes[route];
                let path = template.replace("{id}", &seg).replace("{code}", &seg);
                let headers: Vec<&str> = if admin { vec![auth.as_str()] } else { vec![] };
                let reply = request(
                    &server.addr,
                    method,
                    &format!("{path}{q}"),
                    &headers,
                    body.as_deref(),
                );
                prop_assert!(reply.status < 500, "{method} {path}{q}: {reply:?}");
                if reply.status >= 400 {
                    prop_assert!(!reply.code().is_empty(), "{method} {path}{q}: {reply:?}");
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(server.get("/healthz").status, 200);
    }
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let dir = install(spec(1));
    let server = Server::start(dir.path(), &["--max-connections", "2"]);
    // Two idle connections take both slots (the second is accepted once
    // the first is: a request on each proves it).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 12];
        std::io::Read::read_exact(&mut stream, &mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(stream);
    }
    // A third waits unanswered...
    let mut third = TcpStream::connect(&server.addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 12];
    assert!(std::io::Read::read_exact(&mut third, &mut buf).is_err());
    // ...until one of the two closes.
    drop(held.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reply = read_reply(&mut third);
    assert_eq!(reply.status, 200);
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_once_its_patience_runs_out() {
    let dir = install(spec(1));
    // Patience: 1 s of request + 1 s of wait + 1 s.
    let server = Server::start(
        dir.path(),
        &["--request-timeout-secs", "1", "--max-wait-secs", "1"],
    );
    let stream = TcpStream::connect(&server.addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        // 60 bytes, one every 200 ms: 12 s if the server waited for all.
        for byte in "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaa".bytes() {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut reader = stream;
    reader
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut reader, &mut raw);
    let waited = started.elapsed();
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
    trickle.join().unwrap();
    // Others are still served.
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_feature_without_a_pool_of_its_own_waits_in_the_license_pools_line() {
    let dir = install(spec(1));
    let server = Server::start(dir.path(), &[]);
    let a = server.post("/v1/leases", &json!({"client": "a"}));
    let a_id = a.body["id"].as_str().unwrap().to_owned();
    let addr = server.addr.clone();
    let b = std::thread::spawn(move || {
        let body = json!({"client": "b", "feature": "cad", "wait_secs": 20}).to_string();
        request(&addr, "POST", "/v1/leases", &[], Some(body.as_bytes()))
    });
    wait_for_line(&server, 1);
    let addr = server.addr.clone();
    let c = std::thread::spawn(move || {
        let body = json!({"client": "c", "wait_secs": 20}).to_string();
        request(&addr, "POST", "/v1/leases", &[], Some(body.as_bytes()))
    });
    wait_for_line(&server, 2);
    let metrics = server.get("/metrics");
    assert!(
        metrics
            .text
            .contains(r#"entitle_lease_queue_length{pool="license"} 2"#),
        "{}",
        metrics.text
    );
    assert_eq!(server.delete(&format!("/v1/leases/{a_id}")).status, 200);
    let b = b.join().unwrap();
    assert_eq!((b.status, b.body["client"].as_str()), (201, Some("b")));
    assert!(!c.is_finished(), "c came after b");
    let b_id = b.body["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/v1/leases/{b_id}")).status, 200);
    assert_eq!(c.join().unwrap().status, 201);
}

#[test]
fn serve_with_json_prints_exactly_one_object_saying_where_it_listens() {
    use std::io::{BufRead, BufReader, Read};
    let dir = install(spec(1));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir.path())
        .env_remove("ENTITLE_STATE")
        .args([
            "--json",
            "--state",
            "state",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let said: Value = serde_json::from_str(&line).unwrap();
    let url = said["listening"].as_str().unwrap();
    let addr = url.strip_prefix("http://").unwrap();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{url}"
    );
    assert_eq!(request(addr, "GET", "/healthz", &[], None).status, 200);
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "nothing after the one object");
}
