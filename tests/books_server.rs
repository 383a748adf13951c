//! The vendor's service, `entitle serve --books`
//! (docs/http.md#the-vendors-service), driven over HTTP: the real binary
//! on 127.0.0.1, port 0, over books the CLI made. Every route's answer
//! and refusals; the admin token; the limit on failed logins; the
//! OpenAPI document against the routes served; random input never
//! answered with a 5xx nor changing a count; and the install's side end
//! to end, through the CLI and through the library as
//! `examples/online_desktop.rs` uses it.
#![cfg(all(feature = "server", feature = "client"))]

mod cli_common;
mod server_common;

#[allow(dead_code)]
#[path = "../examples/online_desktop.rs"]
mod online_desktop;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use cli_common::{exit_code, json_out};
use entitle::client::VendorClient;
use entitle::license::certificate_id;
use entitle::token::{dearmor, PublicKey};
use entitle::Engine;
use serde_json::{json, Value};
use server_common::{entitle, request, Reply, Server, ADMIN_TOKEN};
use socket2::{Domain, Socket, Type};
use tempfile::TempDir;

// ---- the vendor's side --------------------------------------------------------

/// The trial every device of these tests may take once.
fn trial_spec() -> Value {
    json!({"product": "acme", "trial": true, "trial_secs": 1_209_600,
           "features": [{"code": "cad"}]})
}

/// A vendor key, books trusting it (in `state`), the admin token and the
/// trial spec, in a new directory.
fn books() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    entitle(path, &["keygen", "--out", "vendor"]);
    entitle(path, &["init", "--pub", "vendor.pub", "--product", "acme"]);
    std::fs::write(path.join("admin.token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    std::fs::write(path.join("trial.json"), trial_spec().to_string()).unwrap();
    dir
}

/// `entitle serve --books` over `dir`'s books, with the admin token and,
/// if `trials`, the trial spec.
fn serve(dir: &Path, trials: bool) -> Server {
    let mut args = vec![
        "--books",
        "--vendor-key",
        "vendor.key",
        "--admin-token-file",
        "admin.token",
    ];
    if trials {
        args.extend(["--trial-spec", "trial.json"]);
    }
    Server::start(dir, &args)
}

fn admin(server: &Server, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let text = body.map(Value::to_string);
    server.admin(
        method,
        path,
        Some(ADMIN_TOKEN),
        text.as_deref().map(str::as_bytes),
    )
}

/// A license issued by the admin route: (id, key).
fn issue(server: &Server, spec: Value, users: &[&str]) -> (String, String) {
    let issued = admin(
        server,
        "POST",
        "/admin/licenses",
        Some(&json!({"spec": spec, "users": users})),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    for field in ["id", "key", "token", "warnings"] {
        assert!(
            issued.body.get(field).is_some(),
            "{field}: {:?}",
            issued.body
        );
    }
    (
        issued.body["id"].as_str().unwrap().to_owned(),
        issued.body["key"].as_str().unwrap().to_owned(),
    )
}

/// A license for vendor-counted activations on up to `max` devices.
fn counted(max: u32) -> Value {
    json!({"product": "acme", "activations": {"max": max, "counted_by": "vendor"},
           "features": [{"code": "cad"}]})
}

fn add_user(server: &Server, email: &str, password: &str) {
    add_user_up_to(server, email, password, 5);
}

/// An account that may have `max` devices activated at once.
fn add_user_up_to(server: &Server, email: &str, password: &str, max: u32) {
    let added = admin(
        server,
        "POST",
        "/admin/users",
        Some(
            &json!({"email": email, "password": password, "first_name": "Ada",
                     "max_activations": max}),
        ),
    );
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(added.body["can_log_in"], true);
}

/// A key of the right shape that no license has.
const UNKNOWN_KEY: &str = "ABCDE-FGHJK-MNPQR-STVWX-YZ012";

// ---- the install's side -------------------------------------------------------

/// An install of `acme` on device `fingerprint`, trusting the vendor key
/// in `dir`, in memory.
fn device(dir: &Path, fingerprint: &str, vm: bool) -> Engine {
    let pem = std::fs::read_to_string(dir.join("vendor.pub")).unwrap();
    Engine::builder("acme")
        .in_memory()
        .background_refresh(false)
        .trust(PublicKey::from_pem(&pem).unwrap())
        .fingerprint(fingerprint)
        .virtual_machine(vm)
        .build()
        .unwrap()
}

/// The device's activation request naming no license, as the client
/// sends it: valid, whatever credential goes with it.
fn request_text(engine: &Engine) -> String {
    serde_json::to_string(&engine.activation_request(Some("")).unwrap()).unwrap()
}

/// Installs an activation's answer, as the client does.
fn install_answer(engine: &Engine, answer: &Reply) {
    engine
        .add_license(answer.body["license"].as_str().unwrap())
        .unwrap();
    engine
        .apply(answer.body["certificate"].as_str().unwrap())
        .unwrap();
}

fn sync_body(engine: &Engine, license_ids: &[&str]) -> Value {
    json!({
        "license_ids": license_ids,
        "fingerprint": engine.fingerprint().unwrap(),
        "install_key": engine.install_key().unwrap().to_base64url(),
    })
}

fn basic(email: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    format!("Authorization: Basic {encoded}")
}

/// An answer with its head, for the headers.
struct Raw {
    status: u16,
    head: String,
    body: Value,
}

impl Raw {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One request on its own connection from the loopback address `from`
/// (each has its own count of failed logins at the server).
fn send_from(
    from: Ipv4Addr,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&[u8]>,
) -> Raw {
    let to: SocketAddr = addr.parse().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("binding to {from}: {e}"));
    socket.connect(&to.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        // The server may answer (413) and close before reading it all.
        let _ = stream.write_all(body);
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    Raw {
        status,
        head: head.to_owned(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn send(addr: &str, method: &str, path: &str, headers: &[&str], body: Option<&[u8]>) -> Raw {
    send_from(Ipv4Addr::LOCALHOST, addr, method, path, headers, body)
}

// ---- the client routes ----------------------------------------------------------

#[test]
fn activations_count_each_device_once_and_refuse_as_the_service_says() {
    let dir = books();
    let server = serve(dir.path(), false);
    let health = server.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.body["books"], true);
    assert_eq!(health.body["product"], "acme");

    let (id, key) = issue(&server, counted(1), &[]);
    let desk = device(dir.path(), "desk-1", false);
    // The key as a person types it: lower case.
    let body = json!({"request": request_text(&desk), "key": key.to_lowercase()});
    let first = server.post("/v1/activations", &body);
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["license_id"], id.as_str());
    assert!(first.body["license"].as_str().unwrap().starts_with("ey"));
    assert!(first.body["certificate"]
        .as_str()
        .unwrap()
        .starts_with("ey"));
    install_answer(&desk, &first);
    assert!(desk.check_feature("cad").allowed());

    // The same device again: counted once, a fresh certificate.
    let again = server.post(
        "/v1/activations",
        &json!({"request": request_text(&desk), "key": key}),
    );
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["license"], first.body["license"]);
    install_answer(&desk, &again);

    // Another device: over the limit, with how many are used of how many.
    let laptop = device(dir.path(), "laptop-1", false);
    let over = server.post(
        "/v1/activations",
        &json!({"request": request_text(&laptop), "key": key}),
    );
    assert_eq!((over.status, over.code()), (409, "ACTIVATION_LIMIT"));
    assert_eq!(over.body["error"]["used"], 1, "{:?}", over.body);
    assert_eq!(over.body["error"]["max"], 1, "{:?}", over.body);

    // A license refusing virtual machines, asked from one.
    let (_, vm_key) = issue(
        &server,
        json!({"product": "acme", "prevent_vm": true,
               "activations": {"max": 5, "counted_by": "vendor"}}),
        &[],
    );
    let vm = device(dir.path(), "vm-1", true);
    let refused = server.post(
        "/v1/activations",
        &json!({"request": request_text(&vm), "key": vm_key}),
    );
    assert_eq!((refused.status, refused.code()), (403, "VM_NOT_ALLOWED"));

    // A license the books do not hold, named by the request.
    let nowhere =
        serde_json::to_string(&laptop.activation_request(Some("lic_nowhere")).unwrap()).unwrap();
    let missing = server.post("/v1/activations", &json!({"request": nowhere}));
    assert_eq!((missing.status, missing.code()), (404, "LICENSE_NOT_FOUND"));

    // A valid request with a key no license has, well formed or not.
    for wrong in [UNKNOWN_KEY, "not a key"] {
        let refused = server.post(
            "/v1/activations",
            &json!({"request": request_text(&laptop), "key": wrong}),
        );
        assert_eq!((refused.status, refused.code()), (401, "UNAUTHORIZED"));
    }
    // Nothing refused was counted.
    let shown = admin(&server, "GET", &format!("/admin/licenses/{id}"), None);
    let devices: Vec<&str> = shown.body["activations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["desk-1"]);
}

#[test]
fn logins_list_and_activate_a_users_licenses() {
    let dir = books();
    let server = serve(dir.path(), false);
    add_user(&server, "Ada@Example.com", "correct horse battery");
    let (id, _) = issue(&server, counted(2), &["ada@example.com"]);

    let auth = basic("ada@example.com", "correct horse battery");
    let listed = send(
        &server.addr,
        "GET",
        "/v1/user/licenses?product=acme",
        &[&auth],
        None,
    );
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let items = listed.body.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(items[0]["token"].as_str().unwrap().starts_with("ey"));
    let user = &items[0]["user"];
    for field in [
        "id",
        "email",
        "first_name",
        "last_name",
        "max_activations",
        "total_activations",
    ] {
        assert!(user.get(field).is_some(), "{field}: {user}");
    }
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["total_activations"], 0);
    // Another product: none.
    let other = send(
        &server.addr,
        "GET",
        "/v1/user/licenses?product=other",
        &[&auth],
        None,
    );
    assert_eq!((other.status, other.body.clone()), (200, json!([])));

    let desk = device(dir.path(), "desk-1", false);
    let login = json!({"request": request_text(&desk),
                       "user": {"email": "ADA@example.com", "password": "correct horse battery"}});
    let done = server.post("/v1/activations", &login);
    assert_eq!(done.status, 201, "{:?}", done.body);
    assert_eq!(done.body["license_id"], id.as_str());
    install_answer(&desk, &done);
    assert!(desk.check_feature("cad").allowed());
    let listed = send(&server.addr, "GET", "/v1/user/licenses", &[&auth], None);
    assert_eq!(listed.body[0]["user"]["total_activations"], 1);

    // A wrong password with a valid request; a list without a login, or
    // with a wrong one.
    let wrong = json!({"request": request_text(&desk),
                       "user": {"email": "ada@example.com", "password": "wrong horse battery"}});
    let refused = server.post("/v1/activations", &wrong);
    assert_eq!((refused.status, refused.code()), (401, "UNAUTHORIZED"));
    let anonymous = send(&server.addr, "GET", "/v1/user/licenses", &[], None);
    assert_eq!((anonymous.status, anonymous.code()), (401, "UNAUTHORIZED"));
    let bad = basic("ada@example.com", "nope nope nope");
    let refused = send(&server.addr, "GET", "/v1/user/licenses", &[&bad], None);
    assert_eq!((refused.status, refused.code()), (401, "UNAUTHORIZED"));
    // An account over its own limit, on a license with room: the
    // account's numbers.
    add_user_up_to(&server, "cy@example.com", "another long one", 1);
    let (_, _) = issue(&server, counted(5), &["cy@example.com"]);
    let cy = |fingerprint: &str| {
        let engine = device(dir.path(), fingerprint, false);
        json!({"request": request_text(&engine),
               "user": {"email": "cy@example.com", "password": "another long one"}})
    };
    assert_eq!(server.post("/v1/activations", &cy("cy-1")).status, 201);
    let over = server.post("/v1/activations", &cy("cy-2"));
    assert_eq!((over.status, over.code()), (409, "ACTIVATION_LIMIT"));
    assert_eq!(
        (&over.body["error"]["used"], &over.body["error"]["max"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(over.body["error"]["max"], 1);
    // Both a key and a login: which one counts is not guessed.
    let both = json!({"request": request_text(&desk), "key": UNKNOWN_KEY,
                      "user": {"email": "ada@example.com", "password": "correct horse battery"}});
    let refused = server.post("/v1/activations", &both);
    assert_eq!((refused.status, refused.code()), (400, "INVALID_ARGUMENT"));
}

#[test]
fn deactivations_reports_sync_and_trials_answer_in_their_shapes() {
    let dir = books();
    let server = serve(dir.path(), true);
    let (id, key) = issue(&server, counted(1), &[]);
    let desk = device(dir.path(), "desk-1", false);
    let first = server.post(
        "/v1/activations",
        &json!({"request": request_text(&desk), "key": key}),
    );
    assert_eq!(first.status, 201, "{:?}", first.body);
    install_answer(&desk, &first);

    // A usage report, then the same again.
    let report = desk.usage_report().unwrap();
    let (report, _) = dearmor(&report.token).unwrap();
    let ingested = server.post("/v1/reports", &json!({"report": report}));
    assert_eq!(ingested.status, 200, "{:?}", ingested.body);
    assert_eq!(ingested.body["report"]["fingerprint"], "desk-1");
    assert_eq!(ingested.body["fork"], false);
    for _ in 0..2 {
        let replayed = server.post("/v1/reports", &json!({"report": report}));
        assert_eq!((replayed.status, replayed.code()), (409, "REPORT_REPLAYED"));
    }
    let shown = admin(&server, "GET", &format!("/admin/licenses/{id}"), None);
    assert_eq!(
        shown.body["usage"][0]["fingerprint"], "desk-1",
        "{:?}",
        shown.body
    );

    // Sync: the license, no revocations yet, nothing withdrawn.
    let synced = server.post("/v1/sync", &sync_body(&desk, &[&id]));
    assert_eq!(synced.status, 200, "{:?}", synced.body);
    assert_eq!(synced.body["licenses"], json!([first.body["license"]]));
    assert_eq!(synced.body["withdrawn"], json!([]));
    assert!(synced.body.get("revocations").is_none());
    // Another install claiming the device gets no keyed license.
    let impostor = device(dir.path(), "desk-1", false);
    let synced = server.post("/v1/sync", &sync_body(&impostor, &[&id]));
    assert_eq!(synced.body["licenses"], json!([]));

    // Deactivation frees the slot; the same receipt again is refused the
    // same way each time.
    let receipt = desk.deactivate_with_receipt("desk-1", None).unwrap();
    let (receipt, _) = dearmor(&receipt.token).unwrap();
    let freed = server.post("/v1/deactivations", &json!({"receipt": receipt}));
    assert_eq!(freed.status, 200, "{:?}", freed.body);
    assert_eq!(freed.body["freed"], true);
    assert_eq!(freed.body["receipt"]["license_id"], id.as_str());
    for _ in 0..2 {
        let replayed = server.post("/v1/deactivations", &json!({"receipt": receipt}));
        assert_eq!(
            (replayed.status, replayed.code()),
            (409, "RECEIPT_REPLAYED")
        );
    }
    let laptop = device(dir.path(), "laptop-1", false);
    let moved = server.post(
        "/v1/activations",
        &json!({"request": request_text(&laptop), "key": key}),
    );
    assert_eq!(moved.status, 201, "{:?}", moved.body);

    // A trial: node-locked to the device, once per device.
    let trial_device = device(dir.path(), "trial-1", false);
    let trial = server.post(
        "/v1/trials",
        &json!({"request": request_text(&trial_device)}),
    );
    assert_eq!(trial.status, 201, "{:?}", trial.body);
    install_answer(&trial_device, &trial);
    assert!(trial_device.check_feature("cad").allowed());
    assert!(trial_device.license_infos()[0].trial);
    let other_install = device(dir.path(), "trial-1", false);
    let again = server.post(
        "/v1/trials",
        &json!({"request": request_text(&other_install)}),
    );
    assert_eq!((again.status, again.code()), (409, "TRIAL_USED"));
}

#[test]
fn a_trial_refusing_virtual_machines_is_refused_to_one_without_using_up_the_device() {
    let dir = books();
    let mut spec = trial_spec();
    spec["prevent_vm"] = json!(true);
    std::fs::write(dir.path().join("trial.json"), spec.to_string()).unwrap();
    let server = serve(dir.path(), true);
    let vm = device(dir.path(), "box-1", true);
    let refused = server.post("/v1/trials", &json!({"request": request_text(&vm)}));
    assert_eq!(
        (refused.status, refused.code()),
        (403, "VM_NOT_ALLOWED"),
        "{:?}",
        refused.body
    );
    let listed = admin(&server, "GET", "/admin/licenses", None);
    assert_eq!(listed.body["items"], json!([]));
    // Nothing was used up: the device declared a physical one gets its
    // trial, which grants there.
    let physical = device(dir.path(), "box-1", false);
    let trial = server.post("/v1/trials", &json!({"request": request_text(&physical)}));
    assert_eq!(trial.status, 201, "{:?}", trial.body);
    install_answer(&physical, &trial);
    assert!(physical.check_feature("cad").allowed());
}

// ---- the admin routes -------------------------------------------------------------

#[test]
fn admin_routes_take_the_bearer_token_and_show_devices_revocations_and_freed_slots() {
    let dir = books();
    let server = serve(dir.path(), false);
    // Without the token, or with a wrong one: 401 on every admin route.
    let admin_routes: Vec<(String, String)> = entitle::server::books_routes()
        .into_iter()
        .filter(|(_, path)| path.starts_with("/admin/"))
        .collect();
    assert_eq!(admin_routes.len(), 8);
    for (i, (method, template)) in admin_routes.iter().enumerate() {
        let path = template
            .replace("{id}", "lic_x")
            .replace("{license_id}", "lic_x")
            .replace("{fingerprint}", "desk-1");
        let token = (i % 2 == 1).then_some("a-wrong-token-of-some-length");
        let refused = server.admin(method, &path, token, Some(b"{}"));
        assert_eq!(
            (refused.status, refused.code()),
            (401, "UNAUTHORIZED"),
            "{method} {path}"
        );
    }

    let (id, key) = issue(&server, counted(2), &[]);
    let listed = admin(&server, "GET", "/admin/licenses?limit=10", None);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert!(listed.body.get("next_cursor").is_some());

    let desk = device(dir.path(), "desk-1", false);
    let first = server.post(
        "/v1/activations",
        &json!({"request": request_text(&desk), "key": key}),
    );
    install_answer(&desk, &first);
    let certificate = first.body["certificate"].as_str().unwrap();

    let shown = admin(&server, "GET", &format!("/admin/licenses/{id}"), None);
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["id"], id.as_str());
    assert_eq!(shown.body["activations"][0]["fingerprint"], "desk-1");
    assert_eq!(
        shown.body["activations"][0]["install_key"],
        desk.install_key().unwrap().to_base64url().as_str()
    );
    assert_eq!(shown.body["usage"], json!([]));
    let missing = admin(&server, "GET", "/admin/licenses/lic_nowhere", None);
    assert_eq!((missing.status, missing.code()), (404, "LICENSE_NOT_FOUND"));

    // Users: add, list, assign.
    add_user(&server, "bob@example.com", "a long password");
    let users = admin(&server, "GET", "/admin/users", None);
    assert_eq!(users.body["items"][0]["email"], "bob@example.com");
    let assigned = admin(
        &server,
        "POST",
        &format!("/admin/licenses/{id}/users"),
        Some(&json!({"email": "BOB@example.com"})),
    );
    assert_eq!(assigned.status, 200, "{:?}", assigned.body);
    assert_eq!(assigned.body["email"], "bob@example.com");
    let nobody = admin(
        &server,
        "POST",
        &format!("/admin/licenses/{id}/users"),
        Some(&json!({"email": "eve@example.com"})),
    );
    assert_eq!((nobody.status, nobody.code()), (404, "USER_NOT_FOUND"));

    // The vendor frees the machine: a transfer, and the install learns at
    // its sync that its certificate is withdrawn.
    let freed = admin(
        &server,
        "DELETE",
        &format!("/admin/activations/{id}/desk-1"),
        None,
    );
    assert_eq!(freed.status, 200, "{:?}", freed.body);
    assert_eq!(
        freed.body["withdrawn"],
        json!([certificate_id(certificate)])
    );
    let again = admin(
        &server,
        "DELETE",
        &format!("/admin/activations/{id}/desk-1"),
        None,
    );
    assert_eq!((again.status, again.code()), (409, "NOT_ACTIVATED"));
    let synced = server.post("/v1/sync", &sync_body(&desk, &[&id]));
    assert_eq!(synced.status, 200, "{:?}", synced.body);
    assert_eq!(
        synced.body["withdrawn"],
        json!([certificate_id(certificate)])
    );
    let shown = admin(&server, "GET", &format!("/admin/licenses/{id}"), None);
    assert_eq!(shown.body["activations"], json!([]));
    let vendor = VendorClient::new(&server.url()).unwrap();
    let outcome = desk.sync_online(&vendor).unwrap();
    assert_eq!(outcome.withdrawn.len(), 1);
    assert!(!desk.check_feature("cad").allowed());

    // The machine activated again at once (here, most often within the
    // second its first certificate was signed, so the same certificate
    // again): counted anew, and its new activation is not one the vendor
    // withdrew.
    let back = server.post(
        "/v1/activations",
        &json!({"request": request_text(&desk), "key": key}),
    );
    assert_eq!(back.status, 201, "{:?}", back.body);
    install_answer(&desk, &back);
    let outcome = desk.sync_online(&vendor).unwrap();
    assert!(outcome.withdrawn.is_empty(), "{outcome:?}");
    assert!(desk.check_feature("cad").allowed());

    // Revocation: the list comes with the next sync.
    let revoked = admin(
        &server,
        "POST",
        &format!("/admin/licenses/{id}/revoke"),
        None,
    );
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(revoked.body["revoked"], true);
    let synced = server.post("/v1/sync", &sync_body(&desk, &[&id]));
    assert_eq!(synced.body["revocations"], revoked.body["revocations"]);
    let refused = server.post(
        "/v1/activations",
        &json!({"request": request_text(&desk), "key": key}),
    );
    assert_eq!((refused.status, refused.code()), (409, "LICENSE_REVOKED"));
}

// ---- failed logins ------------------------------------------------------------------

#[test]
fn ten_failed_logins_a_minute_then_429_with_retry_after_even_for_the_right_key() {
    let dir = books();
    let server = serve(dir.path(), false);
    let (_, key) = issue(&server, counted(5), &[]);
    let desk = device(dir.path(), "desk-1", false);
    let request = request_text(&desk);
    let guess = |key: &str| {
        send(
            &server.addr,
            "POST",
            "/v1/activations",
            &["Content-Type: application/json"],
            Some(
                json!({"request": request, "key": key})
                    .to_string()
                    .as_bytes(),
            ),
        )
    };
    for i in 0..10 {
        let refused = guess(&format!("ABCDE-FGHJK-MNPQR-STVWX-YZ{i:03}"));
        assert_eq!(
            (refused.status, refused.code()),
            (401, "UNAUTHORIZED"),
            "{i}"
        );
    }
    let limited = guess("ABCDE-FGHJK-MNPQR-STVWX-YZ999");
    assert_eq!((limited.status, limited.code()), (429, "RATE_LIMITED"));
    let wait: u64 = limited
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // The right key is refused too while the address is limited ...
    let right = guess(&key);
    assert_eq!((right.status, right.code()), (429, "RATE_LIMITED"));
    // ... and only that address: another is served.
    let elsewhere = send_from(
        Ipv4Addr::new(127, 0, 0, 2),
        &server.addr,
        "POST",
        "/v1/activations",
        &[],
        Some(
            json!({"request": request, "key": key})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(elsewhere.status, 201, "{:?}", elsewhere.body);
}

// ---- the OpenAPI document -------------------------------------------------------------

#[test]
fn the_openapi_document_describes_every_books_route_and_no_other() {
    let dir = books();
    let server = serve(dir.path(), false);
    let doc = server.get("/openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = entitle::server::books_routes().into_iter().collect();
    assert_eq!(documented, served);
    // The license server's routes are not the service's.
    assert!(!served.iter().any(|(_, p)| p.starts_with("/v1/leases")));
    // And the router answers each (no 404 from the fallback).
    for (method, path) in &served {
        let concrete = path
            .replace("{id}", "x")
            .replace("{license_id}", "x")
            .replace("{fingerprint}", "y");
        let reply = request(&server.addr, method, &concrete, &[], Some(b"{}"));
        assert_ne!(reply.code(), "METHOD_NOT_ALLOWED", "{method} {path}");
        assert!(
            !(reply.status == 404
                && reply.body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no such route")),
            "{method} {path} is not routed: {:?}",
            reply.body
        );
    }
    let unknown = server.get("/v1/leases");
    assert_eq!(unknown.status, 404);
}

// ---- bad input ------------------------------------------------------------------------

#[test]
fn bad_bodies_get_json_errors_and_oversized_ones_413() {
    let dir = books();
    let server = serve(dir.path(), false);
    let desk = device(dir.path(), "desk-1", false);
    let request = request_text(&desk);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/activations", b"{not json".to_vec(), 400, "MALFORMED"),
        (
            "/v1/activations",
            json!({"request": request, "keys": "x"})
                .to_string()
                .into_bytes(),
            400,
            "MALFORMED",
        ),
        (
            "/v1/activations",
            json!({"request": "{\"v\": 1}", "key": UNKNOWN_KEY})
                .to_string()
                .into_bytes(),
            400,
            "MALFORMED",
        ),
        ("/v1/sync", b"[]".to_vec(), 400, "MALFORMED"),
        (
            "/v1/deactivations",
            json!({"receipt": "ey.ey.sig"}).to_string().into_bytes(),
            400,
            "",
        ),
        (
            "/v1/reports",
            json!({"report": 5}).to_string().into_bytes(),
            400,
            "MALFORMED",
        ),
        (
            "/v1/trials",
            json!({"request": request}).to_string().into_bytes(),
            400,
            "INVALID_ARGUMENT",
        ),
    ];
    for (path, body, status, code) in cases {
        let reply = request_body(&server, path, &body);
        assert_eq!(reply.status, status, "{path}: {:?}", reply.body);
        assert!(!reply.code().is_empty(), "{path}: {:?}", reply.body);
        if !code.is_empty() {
            assert_eq!(reply.code(), code, "{path}: {:?}", reply.body);
        }
    }
    // Over 64 KiB, on every route that takes a body (a revocation takes
    // none).
    let huge = json!({"request": "x".repeat(70 * 1024)}).to_string();
    for (method, path) in entitle::server::books_routes() {
        if method != "POST" || path.ends_with("/revoke") {
            continue;
        }
        let path = path.replace("{id}", "x");
        let reply = server.admin(&method, &path, Some(ADMIN_TOKEN), Some(huge.as_bytes()));
        assert_eq!((reply.status, reply.code()), (413, "TOO_LARGE"), "{path}");
    }
    // A request over the service's own limit, inside the body's.
    let big_request = json!({"request": " ".repeat(20 * 1024), "key": UNKNOWN_KEY});
    let reply = server.post("/v1/activations", &big_request);
    assert_eq!((reply.status, reply.code()), (413, "TOO_LARGE"));
}

fn request_body(server: &Server, path: &str, body: &[u8]) -> Reply {
    request(&server.addr, "POST", path, &[], Some(body))
}

mod random_input {
    //! Every route with random paths, queries and bodies, some of them
    //! nearly right (a valid request with a wrong key, a replayed
    //! receipt): never a 5xx, always a JSON error for a refusal, and no
    //! count changes. Each request comes from a loopback address of its
    //! own, so that the limit on failed logins does not answer them all.
    use super::*;
    use proptest::prelude::*;

    /// What the random requests may name.
    struct Known {
        license_id: String,
        key: String,
        request: String,
        receipt: String,
        report: String,
        install_key: String,
    }

    fn segment(known: &Known) -> BoxedStrategy<String> {
        prop_oneof![
            // A license the vendor may revoke or free: not the counted one.
            Just("lic_decoy".to_owned()),
            Just("desk-2".to_owned()),
            "[a-zA-Z0-9_.~-]{1,40}",
            prop::collection::vec(any::<u8>(), 1..20)
                .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
            Just(format!("{}%2F..", known.license_id)),
        ]
        .boxed()
    }

    fn query() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("product"),
            Just("filter"),
            Just("order"),
            Just("limit"),
            Just("cursor"),
            Just("x"),
        ];
        let value = prop_oneof![
            Just("acme".to_owned()),
            Just("10".to_owned()),
            "[a-zA-Z0-9_.~-]{0,20}",
            prop::collection::vec(any::<u8>(), 1..10)
                .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
        ];
        prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
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
            "\\PC{0,30}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("request".to_owned()),
                        Just("key".to_owned()),
                        Just("user".to_owned()),
                        Just("email".to_owned()),
                        Just("password".to_owned()),
                        Just("spec".to_owned()),
                        Just("users".to_owned()),
                        Just("license_ids".to_owned()),
                        Just("fingerprint".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..4,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Bodies that get past the JSON: the service's own checks decide.
    fn nearly_right(known: &Known) -> BoxedStrategy<Value> {
        let request = known.request.clone();
        let key = known.key.clone();
        let receipt = known.receipt.clone();
        let report = known.report.clone();
        let license_id = known.license_id.clone();
        let install_key = known.install_key.clone();
        prop_oneof![
            "[A-Z0-9-]{0,30}".prop_map({
                let request = request.clone();
                move |k| json!({"request": request, "key": k})
            }),
            // The counted device with its own key: counted once already.
            Just(json!({"request": request.clone(), "key": key.to_lowercase()})),
            ("[a-z@.]{0,20}", "\\PC{0,20}").prop_map({
                let request = request.clone();
                move |(e, p)| json!({"request": request, "user": {"email": e, "password": p}})
            }),
            Just(json!({"request": request.clone()})),
            "\\PC{0,40}".prop_map(|r| json!({"request": r})),
            Just(json!({"receipt": receipt})),
            Just(json!({"report": report})),
            "[a-zA-Z0-9_-]{0,20}".prop_map(move |f| json!({
                "license_ids": [license_id.clone()], "fingerprint": f,
                "install_key": install_key.clone(),
            })),
            "\\PC{0,20}".prop_map(|e| json!({"email": e})),
            json_value().prop_map(|v| json!({"spec": v})),
        ]
        .boxed()
    }

    fn body(known: &Known) -> BoxedStrategy<Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            json_value().prop_map(|v| Some(v.to_string().into_bytes())),
            nearly_right(known).prop_map(|v| Some(v.to_string().into_bytes())),
            nearly_right(known).prop_map(|v| {
                // A nearly right body, cut short.
                let text = v.to_string();
                Some(text.as_bytes()[..text.len() / 2].to_vec())
            }),
            prop::collection::vec(any::<u8>(), 0..200).prop_map(Some),
        ]
        .boxed()
    }

    /// What must not change: the licenses, the counted one's devices and
    /// its standing, the accounts.
    fn counts(server: &Server, license_id: &str) -> Value {
        let listed = admin(server, "GET", "/admin/licenses?limit=100", None);
        let shown = admin(
            server,
            "GET",
            &format!("/admin/licenses/{license_id}"),
            None,
        );
        let users = admin(server, "GET", "/admin/users", None);
        let devices: Vec<&Value> = shown.body["activations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["fingerprint"])
            .collect();
        json!({
            "licenses": listed.body["items"].as_array().unwrap().len(),
            "devices": devices,
            "status": shown.body["status"],
            "users": users.body["items"],
        })
    }

    #[test]
    fn random_requests_to_every_route_never_get_a_5xx_nor_change_a_count() {
        let dir = books();
        let server = serve(dir.path(), false);
        let (license_id, key) = issue(&server, counted(2), &[]);
        // The decoy the random admin requests may revoke or free.
        let decoy = json!({"product": "acme", "id": "lic_decoy",
                           "activations": {"max": 3, "counted_by": "vendor"}});
        issue(&server, decoy, &[]);
        let desk = device(dir.path(), "desk-1", false);
        let asked = json!({"request": request_text(&desk), "key": key});
        install_answer(&desk, &server.post("/v1/activations", &asked));
        // A receipt and a report the books took already, to replay.
        let gone = device(dir.path(), "desk-2", false);
        let asked = json!({"request": request_text(&gone), "key": key});
        install_answer(&gone, &server.post("/v1/activations", &asked));
        let report = dearmor(&gone.usage_report().unwrap().token).unwrap().0;
        assert_eq!(
            server
                .post("/v1/reports", &json!({"report": report}))
                .status,
            200
        );
        let receipt = gone.deactivate_with_receipt("desk-2", None).unwrap();
        let receipt = dearmor(&receipt.token).unwrap().0;
        let freed = server.post("/v1/deactivations", &json!({"receipt": receipt}));
        assert_eq!(freed.status, 200, "{:?}", freed.body);
        let known = Known {
            license_id: license_id.clone(),
            key,
            request: request_text(&desk),
            receipt: receipt.clone(),
            report: report.clone(),
            install_key: desk.install_key().unwrap().to_base64url(),
        };
        let before = counts(&server, &license_id);
        assert_eq!(before["devices"], json!(["desk-1"]));

        let routes = entitle::server::books_routes();
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
        let sent = std::sync::atomic::AtomicU32::new(0);
        let strategy = (
            0..routes.len(),
            segment(&known),
            segment(&known),
            query(),
            body(&known),
            any::<bool>(),
        );
        runner
            .run(&strategy, |(route, first, second, q, body, admin)| {
                let (method, template) = &routes[route];
                let path = template
                    .replace("{id}", &first)
                    .replace("{license_id}", &first)
                    .replace("{fingerprint}", &second);
                let headers: Vec<&str> = if admin { vec![auth.as_str()] } else { vec![] };
                // A loopback address of its own: 127.0.1.1, 127.0.1.2, ...
                let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let from = Ipv4Addr::new(127, 0, 1 + (n / 250) as u8, 1 + (n % 250) as u8);
                let reply = send_from(
                    from,
                    &server.addr,
                    method,
                    &format!("{path}{q}"),
                    &headers,
                    body.as_deref(),
                );
                let what = format!(
                    "{method} {path}{q} {:?}",
                    body.as_deref().map(String::from_utf8_lossy)
                );
                prop_assert!(
                    reply.status < 500,
                    "{what}: {} {}",
                    reply.status,
                    reply.body
                );
                if reply.status >= 400 {
                    prop_assert!(!reply.code().is_empty(), "{what}: {}", reply.body);
                }
                // Replays are refused the same way every time.
                if body.as_deref() == Some(json!({"receipt": receipt}).to_string().as_bytes())
                    && path == "/v1/deactivations"
                {
                    prop_assert_eq!(reply.code(), "RECEIPT_REPLAYED");
                }
                if body.as_deref() == Some(json!({"report": report}).to_string().as_bytes())
                    && path == "/v1/reports"
                {
                    prop_assert_eq!(reply.code(), "REPORT_REPLAYED");
                }
                // The counted device again is never counted again.
                if path == "/v1/activations" {
                    prop_assert_ne!(reply.status, 201, "{}: {}", what, reply.body);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(server.get("/healthz").status, 200);
        assert_eq!(counts(&server, &license_id), before);
    }
}

// ---- the install's side, end to end ---------------------------------------------------

/// `entitle --json --state STATE ARGS` in `dir`, with `env` set.
fn cli(dir: &Path, state: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_entitle"));
    command
        .current_dir(dir)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .env_remove("ENTITLE_PASSWORD")
        .args(["--json", "--state", state])
        .args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("entitle runs")
}

/// A run that must succeed: its JSON.
fn cli_ok(dir: &Path, state: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = cli(dir, state, args, env);
    assert_eq!(
        exit_code(&output),
        0,
        "{args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    json_out(&output)
}

fn cli_install(dir: &Path, state: &str, fingerprint: &str) {
    cli_ok(
        dir,
        state,
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--fingerprint",
            fingerprint,
        ],
        &[],
    );
}

#[test]
fn the_cli_activates_deactivates_syncs_revocations_and_freed_machines_and_takes_one_trial() {
    let dir = books();
    let path = dir.path();
    let server = serve(path, true);
    let url = server.url();
    let (by_key, key) = issue(&server, counted(1), &[]);
    add_user(&server, "ada@example.com", "correct horse battery");
    let (by_login, _) = issue(&server, counted(2), &["ada@example.com"]);

    // A key, typed in lower case.
    cli_install(path, "inst1", "desk-1");
    let done = cli_ok(
        path,
        "inst1",
        &["activate", "--online", &url, "--key", &key.to_lowercase()],
        &[],
    );
    assert_eq!(done["license_id"], by_key.as_str());
    assert_eq!(done["newly_counted"], true);
    cli_ok(path, "inst1", &["check", "cad"], &[]);

    // A login, its password from the environment.
    cli_install(path, "inst2", "desk-2");
    let done = cli_ok(
        path,
        "inst2",
        &["activate", "--online", &url, "--email", "ada@example.com"],
        &[("ENTITLE_PASSWORD", "correct horse battery")],
    );
    assert_eq!(done["license_id"], by_login.as_str());
    cli_ok(path, "inst2", &["check", "cad"], &[]);

    // Nothing new yet.
    let synced = cli_ok(path, "inst1", &["sync", "--online", &url], &[]);
    assert_eq!(synced["applied"], 0);

    // The vendor revokes the first license: its install learns at sync.
    let revoked = admin(
        &server,
        "POST",
        &format!("/admin/licenses/{by_key}/revoke"),
        None,
    );
    assert_eq!(revoked.status, 200);
    let synced = cli_ok(path, "inst1", &["sync", "--online", &url], &[]);
    assert_eq!(synced["revoked"], json!([by_key]), "{synced}");
    let denied = cli(path, "inst1", &["check", "cad"], &[]);
    assert_ne!(exit_code(&denied), 0);
    assert_eq!(json_out(&denied)["allowed"], false);

    // The vendor frees the second machine: its activation is withdrawn.
    let freed = admin(
        &server,
        "DELETE",
        &format!("/admin/activations/{by_login}/desk-2"),
        None,
    );
    assert_eq!(freed.status, 200, "{:?}", freed.body);
    let synced = cli_ok(path, "inst2", &["sync", "--online", &url], &[]);
    assert_eq!(
        synced["withdrawn"],
        json!([{"license_id": by_login, "fingerprint": "desk-2"}]),
        "{synced}"
    );
    let denied = cli(path, "inst2", &["check", "cad"], &[]);
    assert_ne!(exit_code(&denied), 0);

    // A machine given up: `deactivate --online` frees its slot, which
    // another machine then takes with the same key.
    let (_, moving) = issue(&server, counted(1), &[]);
    cli_install(path, "old", "old-pc");
    cli_ok(
        path,
        "old",
        &["activate", "--online", &url, "--key", &moving],
        &[],
    );
    cli_install(path, "new", "new-pc");
    let full = cli(
        path,
        "new",
        &["activate", "--online", &url, "--key", &moving],
        &[],
    );
    assert_eq!(json_out(&full)["error"]["code"], "ACTIVATION_LIMIT");
    let left = cli_ok(path, "old", &["deactivate", "--online", &url], &[]);
    assert_eq!(left["fingerprint"], "old-pc");
    assert_ne!(exit_code(&cli(path, "old", &["check", "cad"], &[])), 0);
    let done = cli_ok(
        path,
        "new",
        &["activate", "--online", &url, "--key", &moving],
        &[],
    );
    assert_eq!(done["newly_counted"], true);
    cli_ok(path, "new", &["check", "cad"], &[]);

    // One trial per device.
    cli_install(path, "inst3", "desk-3");
    let trial = cli_ok(path, "inst3", &["trial", "--online", &url], &[]);
    assert_eq!(trial["fingerprint"], "desk-3");
    cli_ok(path, "inst3", &["check", "cad"], &[]);
    let again = cli(path, "inst3", &["trial", "--online", &url], &[]);
    assert_ne!(exit_code(&again), 0);
    assert_eq!(json_out(&again)["error"]["code"], "TRIAL_USED");
}

#[test]
fn the_online_desktop_example_activates_then_syncs_and_learns_of_a_revocation() {
    let dir = books();
    let server = serve(dir.path(), false);
    let (id, key) = issue(&server, counted(2), &[]);
    let vendor = VendorClient::new(&server.url()).unwrap();
    let pem = std::fs::read_to_string(dir.path().join("vendor.pub")).unwrap();
    let state = tempfile::tempdir().unwrap();
    // The example's own engine, its state in a directory, where this
    // machine has an id; else the same flow on a named device.
    let machine = entitle::device::machine_fingerprint().is_some();
    let open = || {
        if machine {
            online_desktop::open_install(state.path(), &pem).unwrap()
        } else {
            device(dir.path(), "desk-1", false)
        }
    };

    let engine = open();
    let first = online_desktop::start_up(&engine, &vendor, &key.to_lowercase()).unwrap();
    let activated = first.activated.expect("the first start activates");
    assert_eq!(activated.license_id, id);
    assert!(activated.newly_counted);
    assert_eq!(first.synced.unwrap().applied(), 0);
    assert!(first.allowed, "{}", first.message);

    // The next start finds the activation in its state, and asks for no
    // key.
    let engine = if machine {
        drop(engine);
        open()
    } else {
        engine
    };
    let second = online_desktop::start_up(&engine, &vendor, "a key never asked for").unwrap();
    assert!(second.activated.is_none());
    assert!(second.allowed, "{}", second.message);

    let revoked = admin(
        &server,
        "POST",
        &format!("/admin/licenses/{id}/revoke"),
        None,
    );
    assert_eq!(revoked.status, 200);
    let third = online_desktop::start_up(&engine, &vendor, &key).unwrap();
    assert_eq!(third.synced.unwrap().revoked, vec![id]);
    assert!(!third.allowed);
    let shown = admin(&server, "GET", "/admin/licenses?limit=10", None);
    assert_eq!(shown.body["items"].as_array().unwrap().len(), 1);
}
