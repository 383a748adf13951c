//! The request log of `entitle serve` (docs/http.md#logs): the real
//! binary on 127.0.0.1, one line per request on its stderr with method,
//! route, status, duration and client address, a refusal's or a denial's
//! reason, text or JSON, and never the admin token nor a query string.
#![cfg(feature = "server")]

mod server_common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server_common::{entitle, install, read_reply, Server, ADMIN_TOKEN};
use socket2::{Domain, Socket, Type};

/// One floating seat of `cad`.
fn spec() -> Value {
    json!({"product": "acme", "id": "lic_logs",
           "floating": {"seats": 1, "lease_secs": 60},
           "features": [{"code": "cad"}]})
}

/// The lines of `said` that are request lines in text format.
fn request_lines(said: &str) -> Vec<&str> {
    said.lines()
        .filter(|line| line.contains("entitle::request"))
        .collect()
}

#[test]
fn every_request_is_one_text_line_with_method_route_status_time_and_client() {
    let dir = install(spec());
    let server = Server::start(dir.path(), &["--admin-token-file", "admin.token"]);
    assert_eq!(server.get("/healthz").status, 200);
    let status = server.admin("GET", "/admin/license/status", Some(ADMIN_TOKEN), None);
    assert_eq!(status.status, 200, "{:?}", status.body);
    let lease = server.post("/v1/leases", &json!({"client": "ws-1"}));
    assert_eq!(lease.status, 201, "{:?}", lease.body);
    let id = lease.body["id"].as_str().unwrap();
    assert_eq!(
        server
            .post(&format!("/v1/leases/{id}/heartbeat"), &json!({}))
            .status,
        200
    );
    assert_eq!(server.get("/no/such/route").status, 404);

    // The last request's line: stderr is read by a thread of the test,
    // so the lines before it are in by then.
    server.stderr_line(|l| l.contains("/no/such/route"));
    let heartbeat = server.stderr_line(|l| l.contains("/v1/leases/{id}/heartbeat"));
    let said = server.stderr();
    let lines = request_lines(&said);
    assert_eq!(lines.len(), 5, "one line per request:\n{said}");
    let health = lines[0];
    for field in [
        "method=\"GET\"",
        "path=\"/healthz\"",
        "status=200",
        "client=127.0.0.1",
        "duration_ms=",
    ] {
        assert!(health.contains(field), "{field} in {health}");
    }
    assert!(lines[1].contains("path=\"/admin/license/status\"") && lines[1].contains("status=200"));
    assert!(lines[2].contains("method=\"POST\"") && lines[2].contains("status=201"));
    // The route, not the lease id: lines group by route.
    assert!(!heartbeat.contains(id), "{heartbeat}");
    assert!(lines[4].contains("path=\"/no/such/route\"") && lines[4].contains("status=404"));
    assert!(
        lines[4].contains("reason=\"NOT_FOUND\""),
        "an error's code: {}",
        lines[4]
    );
    assert!(server.terminate().success());
}

#[test]
fn neither_the_admin_token_nor_a_query_string_reaches_the_log() {
    let dir = install(spec());
    let server = Server::start(dir.path(), &["--admin-token-file", "admin.token"]);
    let wrong = "a-wrong-token-that-must-not-be-logged-42";
    let listed = server.admin(
        "GET",
        "/admin/license?filter=id%20eq%20%22query-secret-1234%22&limit=5",
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let refused = server.admin("GET", "/admin/license/status", Some(wrong), None);
    assert_eq!(refused.status, 401);
    let checked = server.get("/v1/features/cad?user=query-secret-5678");
    assert_eq!(checked.status, 200);

    let unauthorized = server.stderr_line(|l| l.contains("status=401"));
    assert!(
        unauthorized.contains("reason=\"UNAUTHORIZED\""),
        "{unauthorized}"
    );
    server.stderr_line(|l| l.contains("path=\"/v1/features/{code}\""));
    let said = server.stderr();
    assert_eq!(request_lines(&said).len(), 3, "{said}");
    for secret in [ADMIN_TOKEN, wrong, "query-secret", "Bearer", "filter="] {
        assert!(!said.contains(secret), "`{secret}` in the log:\n{said}");
    }
    assert!(server.terminate().success());
}

#[test]
fn json_lines_parse_one_by_one_with_their_fields() {
    let dir = install(spec());
    let server = Server::start(
        dir.path(),
        &["--admin-token-file", "admin.token", "--log-format", "json"],
    );
    assert_eq!(server.get("/healthz").status, 200);
    let status = server.admin("GET", "/admin/license/status", Some(ADMIN_TOKEN), None);
    assert_eq!(status.status, 200);
    assert_eq!(server.get("/v1/features/nope").status, 200);
    server.stderr_line(|l| l.contains("/v1/features/"));

    let said = server.stderr();
    let lines: Vec<Value> = said
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert_eq!(lines.len(), 3, "{said}");
    let health = &lines[0];
    assert_eq!(health["method"], "GET");
    assert_eq!(health["path"], "/healthz");
    assert_eq!(health["status"], 200);
    assert_eq!(health["client"], "127.0.0.1");
    assert_eq!(health["target"], "entitle::request");
    assert!(health["duration_ms"].as_f64().is_some(), "{health}");
    assert!(health["timestamp"].as_str().is_some(), "{health}");
    assert!(
        health.get("reason").is_none(),
        "no reason when served: {health}"
    );
    assert_eq!(lines[1]["path"], "/admin/license/status");
    // A check's denial is an answer (200), and the log says why.
    assert_eq!(lines[2]["status"], 200);
    assert_eq!(lines[2]["reason"], "NOT_LICENSED", "{}", lines[2]);
    assert!(!said.contains(ADMIN_TOKEN));
    assert!(server.terminate().success());
}

#[test]
fn a_denied_checkout_logs_its_reason() {
    let dir = install(spec());
    let server = Server::start(dir.path(), &["--log-format", "json"]);
    assert_eq!(
        server.post("/v1/leases", &json!({"client": "ws-1"})).status,
        201
    );
    let second = server.post("/v1/leases", &json!({"client": "ws-2"}));
    assert_eq!((second.status, second.code()), (409, "FLOATING_EXHAUSTED"));
    let line = server.stderr_line(|l| l.contains("\"status\":409"));
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["reason"], "FLOATING_EXHAUSTED", "{line}");
    assert_eq!(line["path"], "/v1/leases");
    assert_eq!(line["method"], "POST");
    assert!(server.terminate().success());
}

#[test]
fn a_client_outside_allow_is_answered_403_and_logged() {
    let dir = install(spec());
    // No traffic goes to 10.x: the server merely refuses loopback.
    let server = Server::start(dir.path(), &["--allow", "10.0.0.0/8"]);
    let refused = server.get("/healthz");
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.code(), "FORBIDDEN", "{:?}", refused.body);
    assert!(refused.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("--allow")));
    let posted = server.post("/v1/leases?x=query-secret", &json!({"client": "ws-1"}));
    assert_eq!((posted.status, posted.code()), (403, "FORBIDDEN"));

    let get = server.stderr_line(|l| l.contains("path=\"/healthz\""));
    for field in ["status=403", "reason=\"FORBIDDEN\"", "client=127.0.0.1"] {
        assert!(get.contains(field), "{field} in {get}");
    }
    let post = server.stderr_line(|l| l.contains("method=\"POST\""));
    assert!(
        post.contains("path=\"/v1/leases\"") && post.contains("status=403"),
        "{post}"
    );
    assert!(!server.stderr().contains("query-secret"));
    // Nothing was served: the seat is still free for the allowed.
    assert!(server.terminate().success());
    let listed = entitle(dir.path(), &["lease", "list"]);
    assert_eq!(listed["items"], json!([]), "{listed}");
}

/// A connection to `server` from the loopback address `from` (every
/// 127.0.0.0/8 address is this machine).
fn connect_from(from: Ipv4Addr, server: &Server) -> TcpStream {
    let to: SocketAddr = server.addr.parse().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("binding to {from}: {e}"));
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

#[test]
fn refused_clients_do_not_take_the_connections_of_the_allowed() {
    let dir = install(spec());
    let server = Server::start(
        dir.path(),
        &["--allow", "127.0.0.1/32", "--max-connections", "2"],
    );
    // An outsider holding more silent connections open than the server
    // serves at once.
    let held: Vec<TcpStream> = (0..8)
        .map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 2), &server))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(server.get("/healthz").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Another outsider is still answered: one address holds a few of the
    // refusals at once, not all.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 3), &server);
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let reply = read_reply(&mut other);
    assert_eq!((reply.status, reply.code()), (403, "FORBIDDEN"));
    drop(held);
    let line = server.stderr_line(|l| l.contains("client=127.0.0.3"));
    assert!(line.contains("status=403"), "{line}");
    assert!(server.terminate().success());
}

#[test]
fn the_books_server_logs_its_requests_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    entitle(path, &["keygen", "--out", "vendor"]);
    entitle(path, &["init", "--pub", "vendor.pub", "--product", "acme"]);
    std::fs::write(path.join("admin.token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    let server = Server::start(
        path,
        &[
            "--books",
            "--vendor-key",
            "vendor.key",
            "--admin-token-file",
            "admin.token",
            "--log-format",
            "json",
        ],
    );
    let listed = server.admin("GET", "/admin/licenses", Some(ADMIN_TOKEN), None);
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let line = server.stderr_line(|l| l.contains("/admin/licenses"));
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (line["method"].as_str(), line["status"].as_u64()),
        (Some("GET"), Some(200))
    );
    assert!(!server.stderr().contains(ADMIN_TOKEN));
    assert!(server.terminate().success());
}
