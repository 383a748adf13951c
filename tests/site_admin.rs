//! The site server's admin view (docs/http.md#seeing-and-steering-the-server):
//! leases listed and freed by force, pools, one license, the metrics of
//! pools, refusals and expiry, and node-locked licenses bound to the
//! server's machine. Against the real `entitle serve` on 127.0.0.1.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use entitle::Timestamp;
use serde_json::{json, Value};
use server_common::{entitle, install, request, Reply, Server, ADMIN_TOKEN};

/// A license-level pool of 3 (borrowable, lingering 30 s), and `cad`'s
/// own pool of 2; `view` draws on the license-level pool.
fn spec() -> Value {
    json!({
        "product": "acme",
        "id": "lic_1",
        "kind": "subscription",
        "expires_at": "2099-01-01T00:00:00Z",
        "floating": {"seats": 3, "lease_secs": 60, "borrow_max_secs": 3600, "linger_secs": 30},
        "features": [
            {"code": "cad", "floating": {"seats": 2, "lease_secs": 60, "borrow_max_secs": 3600}},
            {"code": "view"},
        ],
    })
}

fn start(dir: &std::path::Path) -> Server {
    Server::start(dir, &["--admin-token-file", "admin.token"])
}

fn admin(server: &Server, method: &str, path: &str) -> Reply {
    server.admin(method, path, Some(ADMIN_TOKEN), None)
}

fn checkout(server: &Server, client: &str, feature: Option<&str>) -> String {
    let mut body = json!({"client": client});
    if let Some(feature) = feature {
        body["feature"] = json!(feature);
    }
    let reply = server.post("/v1/leases", &body);
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// The pool of `feature` (`None`: the license-level pool) in `items`.
fn pool<'a>(items: &'a Value, feature: Option<&str>) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["feature"].as_str() == feature)
        .unwrap_or_else(|| panic!("no pool {feature:?} in {items}"))
}

/// (seats, in_use, borrowed, lingering, queued) of a pool item.
fn numbers(pool: &Value) -> [u64; 5] {
    ["seats", "in_use", "borrowed", "lingering", "queued"].map(|name| {
        pool[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {pool}"))
    })
}

#[test]
fn leases_are_listed_with_who_holds_them_filtered_and_paged() {
    let dir = install(spec());
    let server = start(dir.path());
    let a = checkout(&server, "desk-a", None);
    let b = checkout(&server, "desk-b", Some("cad"));
    let c = checkout(&server, "desk-c", Some("view"));

    let all = admin(&server, "GET", "/admin/leases");
    assert_eq!(all.status, 200, "{:?}", all.body);
    let items = all.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{}", all.body);
    assert_eq!(all.body["next_cursor"], Value::Null);
    let item = items.iter().find(|l| l["id"] == a.as_str()).unwrap();
    let mut fields: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut expected = vec![
        "address",
        "borrowed_until",
        "checked_out_at",
        "client",
        "expires_at",
        "feature",
        "id",
        "last_heartbeat_at",
        "license_ids",
        "lingering_until",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected);
    assert_eq!(item["client"], "desk-a");
    assert_eq!(item["feature"], Value::Null);
    assert_eq!(item["license_ids"], json!(["lic_1"]));
    assert_eq!(item["address"], "127.0.0.1");
    let at = |value: &Value| Timestamp::parse(value.as_str().unwrap()).unwrap();
    let checked_out_at = at(&item["checked_out_at"]);
    assert!(at(&item["expires_at"]) > checked_out_at);
    // The checkout is the first beat.
    assert!(at(&item["last_heartbeat_at"]) >= checked_out_at, "{item}");
    assert_eq!(item["borrowed_until"], Value::Null);
    assert_eq!(item["lingering_until"], Value::Null);

    // A heartbeat moves last_heartbeat_at on (to the second).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let beat = server.post(&format!("/v1/leases/{a}/heartbeat"), &json!({}));
    assert_eq!(beat.status, 200, "{:?}", beat.body);
    let after = admin(&server, "GET", "/admin/leases?client=desk-a");
    let item = &after.body["items"][0];
    assert!(at(&item["last_heartbeat_at"]) > checked_out_at, "{item}");

    // Filters: `view` has no pool of its own, so its lease is the
    // license-level pool's.
    let cad = admin(&server, "GET", "/admin/leases?feature=cad");
    let ids: Vec<&str> = cad.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str()]);
    let by_client = admin(&server, "GET", "/admin/leases?client=desk-c");
    assert_eq!(by_client.body["items"][0]["id"], c.as_str());
    assert_eq!(by_client.body["items"][0]["feature"], Value::Null);
    let nobody = admin(&server, "GET", "/admin/leases?client=nobody");
    assert_eq!(nobody.body["items"], json!([]));

    // Pages of one, in order, each lease once.
    let mut seen = Vec::new();
    let mut path = "/admin/leases?limit=1".to_owned();
    loop {
        let page = admin(&server, "GET", &path);
        assert_eq!(page.status, 200, "{:?}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 1);
        seen.extend(items.iter().map(|l| l["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/leases?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    let mut wanted = vec![a, b, c];
    wanted.sort();
    assert_eq!(sorted, wanted);
}

#[test]
fn bad_limits_and_cursors_are_invalid_arguments() {
    let dir = install(spec());
    let server = start(dir.path());
    for query in [
        "limit=0",
        "limit=1001",
        "limit=99999999999999999999999",
        "limit=-1",
        "limit=ten",
        "cursor=not-a-cursor!",
        "cursor=bm8tZG90",
    ] {
        let reply = admin(&server, "GET", &format!("/admin/leases?{query}"));
        assert_eq!(
            (reply.status, reply.code()),
            (400, "INVALID_ARGUMENT"),
            "{query}: {:?}",
            reply.body
        );
    }
    let unknown = admin(&server, "GET", "/admin/leases?colour=red");
    assert_eq!(unknown.status, 400, "{:?}", unknown.body);
    assert_eq!(
        admin(&server, "GET", "/admin/leases?limit=1000").status,
        200
    );
    // The token is needed, as on every admin route.
    for (method, path) in [
        ("GET", "/admin/leases"),
        ("DELETE", "/admin/leases/lease_x"),
        ("GET", "/admin/pools"),
        ("GET", "/admin/license/lic_1"),
    ] {
        let reply = server.admin(method, path, None, None);
        assert_eq!(reply.status, 401, "{method} {path}");
        let wrong = server.admin(method, path, Some("wrong-token-0123456789"), None);
        assert_eq!(wrong.status, 401, "{method} {path}");
    }
}

#[test]
fn a_seat_freed_by_force_goes_to_the_next_and_its_client_hears_lease_expired() {
    let dir = install(spec());
    let server = start(dir.path());
    let a = checkout(&server, "desk-a", Some("cad"));
    let _b = checkout(&server, "desk-b", Some("cad"));
    let full = server.post("/v1/leases", &json!({"client": "desk-c", "feature": "cad"}));
    assert_eq!((full.status, full.code()), (409, "FLOATING_EXHAUSTED"));
    // Once, inside `error`.
    assert!(full.body["error"]["retry_at"].is_string(), "{}", full.body);
    assert!(full.body.get("retry_at").is_none(), "{}", full.body);

    // desk-c waits in line; the release hands it the seat.
    let addr = server.addr.clone();
    let waiting = std::thread::spawn(move || {
        let body = json!({"client": "desk-c", "feature": "cad", "wait_secs": 30}).to_string();
        request(&addr, "POST", "/v1/leases", &[], Some(body.as_bytes()))
    });
    let started = std::time::Instant::now();
    loop {
        let pools = admin(&server, "GET", "/admin/pools");
        if pool(&pools.body["items"], Some("cad"))["queued"] == 1 {
            break;
        }
        assert!(started.elapsed().as_secs() < 20, "desk-c never queued");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let released = admin(&server, "DELETE", &format!("/admin/leases/{a}"));
    assert_eq!(released.status, 200, "{:?}", released.body);
    assert_eq!(released.body["id"], a.as_str());
    assert_eq!(released.body["released"], true);
    let got = waiting.join().unwrap();
    assert_eq!(got.status, 201, "{:?}", got.body);
    assert!(
        started.elapsed().as_secs() < 10,
        "the queue was woken, not left to its timer"
    );

    let told = server.post(&format!("/v1/leases/{a}/heartbeat"), &json!({}));
    assert_eq!(
        (told.status, told.code()),
        (409, "LEASE_EXPIRED"),
        "{:?}",
        told.body
    );
    let listed = admin(&server, "GET", "/admin/leases?feature=cad");
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&a.as_str()), "{ids:?}");
    assert_eq!(ids.len(), 2);

    // The history names the release (written within a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = admin(&server, "GET", "/admin/events?limit=1000");
        assert_eq!(events.status, 200, "{:?}", events.body);
        let released = events.body["items"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "force_release" && e["lease_id"] == a.as_str() && e["feature"] == "cad"
        });
        if released {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no force_release event: {}",
            events.body
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Released again, or never there.
    let again = admin(&server, "DELETE", &format!("/admin/leases/{a}"));
    assert_eq!((again.status, again.code()), (409, "LEASE_EXPIRED"));
    let unknown = admin(&server, "DELETE", "/admin/leases/lease_nobody");
    assert_eq!((unknown.status, unknown.code()), (404, "LEASE_NOT_FOUND"));
}

#[test]
fn a_borrowed_lease_is_not_freed_by_force() {
    let dir = install(spec());
    let server = start(dir.path());
    let a = checkout(&server, "laptop", None);
    let borrowed = server.post(&format!("/v1/leases/{a}/borrow"), &json!({"secs": 600}));
    assert_eq!(borrowed.status, 200, "{:?}", borrowed.body);
    let refused = admin(&server, "DELETE", &format!("/admin/leases/{a}"));
    assert_eq!(
        (refused.status, refused.code()),
        (409, "LEASE_BORROWED"),
        "{:?}",
        refused.body
    );
    assert_eq!(
        refused.body["error"]["retry_at"],
        borrowed.body["expires_at"]
    );
    let listed = admin(&server, "GET", "/admin/leases");
    assert_eq!(
        listed.body["items"][0]["borrowed_until"],
        borrowed.body["expires_at"]
    );
    let pools = admin(&server, "GET", "/admin/pools");
    assert_eq!(numbers(pool(&pools.body["items"], None)), [3, 1, 1, 0, 0]);
}

#[test]
fn pools_count_seats_in_use_borrowed_and_lingering_exactly() {
    let dir = install(spec());
    let server = start(dir.path());
    let empty = admin(&server, "GET", "/admin/pools");
    assert_eq!(empty.status, 200, "{:?}", empty.body);
    assert_eq!(
        empty.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        empty.body
    );
    assert_eq!(numbers(pool(&empty.body["items"], None)), [3, 0, 0, 0, 0]);
    assert_eq!(
        numbers(pool(&empty.body["items"], Some("cad"))),
        [2, 0, 0, 0, 0]
    );

    let a = checkout(&server, "desk-a", None);
    let b = checkout(&server, "desk-b", Some("view"));
    let _c = checkout(&server, "desk-c", Some("cad"));
    let borrowed = server.post(&format!("/v1/leases/{a}/borrow"), &json!({"secs": 600}));
    assert_eq!(borrowed.status, 200);
    // Checked in: the seat lingers with desk-b for 30 s.
    assert_eq!(server.delete(&format!("/v1/leases/{b}")).status, 200);

    let pools = admin(&server, "GET", "/admin/pools");
    assert_eq!(numbers(pool(&pools.body["items"], None)), [3, 2, 1, 1, 0]);
    assert_eq!(
        numbers(pool(&pools.body["items"], Some("cad"))),
        [2, 1, 0, 0, 0]
    );
    let lingering = admin(&server, "GET", "/admin/leases?client=desk-b");
    let item = &lingering.body["items"][0];
    assert!(item["lingering_until"].is_string(), "{item}");
    assert_eq!(item["lingering_until"], item["expires_at"]);
    assert_eq!(
        item["address"], "127.0.0.1",
        "a lingering seat keeps its lease's address"
    );

    // The status carries the same pools under `floating`.
    let status = admin(&server, "GET", "/admin/license/status");
    assert_eq!(status.status, 200);
    assert_eq!(status.body["floating"], pools.body["items"]);

    // A lingering seat freed by force is gone at once.
    let id = item["id"].as_str().unwrap();
    assert_eq!(
        admin(&server, "DELETE", &format!("/admin/leases/{id}")).status,
        200
    );
    let pools = admin(&server, "GET", "/admin/pools");
    assert_eq!(numbers(pool(&pools.body["items"], None)), [3, 1, 1, 0, 0]);
}

#[test]
fn one_license_shows_its_fields_and_its_pools() {
    let dir = install(spec());
    let server = start(dir.path());
    checkout(&server, "desk-a", Some("cad"));
    let one = admin(&server, "GET", "/admin/license/lic_1");
    assert_eq!(one.status, 200, "{:?}", one.body);
    let listed = admin(&server, "GET", "/admin/license");
    let mut expected = listed.body["items"][0].clone();
    let pools = one.body["pools"].clone();
    let mut shown = one.body.clone();
    shown.as_object_mut().unwrap().remove("pools");
    // Fields that tell the time it is may move between the two requests.
    for value in [&mut shown, &mut expected] {
        value.as_object_mut().unwrap().remove("status");
    }
    assert_eq!(shown, expected);
    assert_eq!(pools.as_array().unwrap().len(), 2, "{pools}");
    let cad = pool(&pools, Some("cad"));
    assert_eq!(numbers(cad), [2, 1, 0, 0, 0]);
    assert_eq!(cad["license_seats"], 2);
    assert_eq!(pool(&pools, None)["license_seats"], 3);

    // The routes beside it still answer as before.
    assert_eq!(admin(&server, "GET", "/admin/license/status").status, 200);
    let usage = admin(&server, "GET", "/admin/license/usage");
    assert_eq!(usage.status, 200);
    assert!(usage.body["users"].is_array(), "{}", usage.body);
    let unknown = admin(&server, "GET", "/admin/license/lic_nobody");
    assert_eq!((unknown.status, unknown.code()), (404, "LICENSE_NOT_FOUND"));
}

#[test]
fn metrics_give_each_pools_seats_refusals_by_reason_and_expiry() {
    let dir = install(spec());
    let server = start(dir.path());
    checkout(&server, "desk-a", Some("cad"));
    checkout(&server, "desk-b", Some("cad"));
    let full = server.post("/v1/leases", &json!({"client": "desk-c", "feature": "cad"}));
    assert_eq!(full.code(), "FLOATING_EXHAUSTED");
    let denied = server.get("/v1/features/nothing");
    assert_eq!(denied.body["allowed"], false);

    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = &metrics.text;
    for line in [
        "# TYPE entitle_pool_seats gauge",
        "# HELP entitle_pool_seats ",
        r#"entitle_pool_seats{feature="cad"} 2"#,
        r#"entitle_pool_seats{feature=""} 3"#,
        "# TYPE entitle_pool_in_use gauge",
        r#"entitle_pool_in_use{feature="cad"} 2"#,
        r#"entitle_pool_in_use{feature=""} 0"#,
        "# TYPE entitle_pool_queued gauge",
        r#"entitle_pool_queued{feature="cad"} 0"#,
        "# TYPE entitle_denials counter",
        r#"entitle_denials_total{reason="FLOATING_EXHAUSTED"} 1"#,
        r#"entitle_denials_total{reason="NOT_LICENSED"} 1"#,
        "# TYPE entitle_license_expires_at_seconds gauge",
        r#"entitle_license_expires_at_seconds{license="lic_1"} 4070908800"#,
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no line `{line}` in\n{text}"
        );
    }
    // Every line is a comment or `name{labels} value`, and it ends as
    // OpenMetrics says.
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (_, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert_eq!(text.lines().last(), Some("# EOF"));
}

#[test]
fn a_node_locked_license_on_the_server_takes_the_servers_activation_not_each_clients() {
    let dir = install(json!({
        "product": "acme",
        "id": "lic_nl",
        "activations": {"max": 1},
        "floating": {"seats": 2, "lease_secs": 60},
        "features": [{"code": "cad"}],
    }));
    let server = start(dir.path());
    // The server's machine is not activated: nobody takes a seat.
    let refused = server.post("/v1/leases", &json!({"client": "desk-1"}));
    assert_eq!((refused.status, refused.code()), (409, "NOT_ACTIVATED"));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entitle activate"),
        "{}",
        refused.body
    );
    let pools = admin(&server, "GET", "/admin/pools");
    assert_eq!(numbers(pool(&pools.body["items"], None)), [0, 0, 0, 0, 0]);
    server.terminate();

    // One activation, the server's own, and every desktop takes a seat,
    // none of them activated.
    let activated = entitle(dir.path(), &["activate"]);
    assert_eq!(activated["license_ids"], json!(["lic_nl"]));
    let server = start(dir.path());
    checkout(&server, "desk-1", None);
    checkout(&server, "desk-2", Some("cad"));
    let third = server.post("/v1/leases", &json!({"client": "desk-3"}));
    assert_eq!(third.code(), "FLOATING_EXHAUSTED", "{:?}", third.body);
    let pools = admin(&server, "GET", "/admin/pools");
    assert_eq!(numbers(pool(&pools.body["items"], None)), [2, 2, 0, 0, 0]);
    let listed = entitle(dir.path(), &["activation", "list"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn an_empty_license_body_is_said_to_be_empty() {
    let dir = install(spec());
    let server = start(dir.path());
    for body in [&b""[..], b"  \n"] {
        for route in ["/admin/license", "/admin/apply"] {
            let reply = server.admin("POST", route, Some(ADMIN_TOKEN), Some(body));
            assert_eq!(reply.status, 400, "{route}: {:?}", reply.body);
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("body is empty"), "{route}: {message}");
        }
    }
}

#[test]
fn a_client_guard_whose_seat_was_freed_by_force_takes_a_new_one() {
    use entitle::client::Client;
    use entitle::token::PublicKey;

    let dir = install(spec());
    let server = start(dir.path());
    let vendor = std::fs::read_to_string(dir.path().join("vendor.pub")).unwrap();
    let app = entitle::Engine::builder("acme")
        .trust(PublicKey::from_pem(&vendor).unwrap())
        .in_memory()
        .background_refresh(false)
        .build()
        .unwrap();
    app.add_license(&std::fs::read_to_string(dir.path().join("l.lic")).unwrap())
        .unwrap();
    let printed = entitle(dir.path(), &["serve", "--print-lease-pub"]);
    let key = PublicKey::from_pem(printed["public_key"].as_str().unwrap()).unwrap();
    let client = Client::connect(&app, &server.url(), key).unwrap();
    let seat = client.lease(Some("cad")).unwrap();
    let first = seat.lease().unwrap().id;

    let released = admin(&server, "DELETE", &format!("/admin/leases/{first}"));
    assert_eq!(released.status, 200, "{:?}", released.body);
    // Its heartbeat hears LEASE_EXPIRED; a seat is free, so it checks out
    // again at once.
    assert!(seat.renew().allowed());
    let second = seat.lease().unwrap().id;
    assert_ne!(second, first);
    let listed = admin(&server, "GET", "/admin/leases?feature=cad");
    assert_eq!(listed.body["items"][0]["id"], second.as_str());
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}
