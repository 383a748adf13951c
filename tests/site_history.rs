//! The site server's history (docs/http.md#history): `entitle serve`
//! records what happens to its pools (checkout, checkin, expiry, deny,
//! queue, dequeue, force release, borrow) and answers series and raw
//! events from them; and the stores' history API underneath, on the file
//! and memory stores.
#![cfg(feature = "server")]

mod history_common;
mod server_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use entitle::server::history::Recorder;
use entitle::store::{EventKind, FileStore, HistoryEvent, MemoryStore, Store};
use entitle::Timestamp;
use history_common::history_contract;
use serde_json::{json, Value};
use server_common::{install, Reply, Server, ADMIN_TOKEN};

fn spec(seats: u32, lease_secs: u32) -> Value {
    json!({
        "product": "acme",
        "id": "lic_1",
        "floating": {"seats": seats, "lease_secs": lease_secs, "borrow_max_secs": 3600},
        "features": [{"code": "cad"}],
    })
}

fn admin_get(server: &Server, path: &str) -> Reply {
    server.admin("GET", path, Some(ADMIN_TOKEN), None)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn at(secs: i64) -> String {
    Timestamp::from_unix(secs).to_string()
}

/// Every event from `from` to now, walking the pages.
fn all_events(server: &Server, from: i64) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/events?from={}&limit=3", at(from));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = admin_get(server, &path);
        assert_eq!(page.status, 200, "{}", page.text);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Waits (up to 15 s: events are written once a second) until the events
/// since `from` satisfy `done`.
fn events_until(server: &Server, from: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let events = all_events(server, from);
        if done(&events) {
            return events;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the events never came: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// GET with the admin token, answering the raw head and body (the
/// shared client keeps no headers).
fn raw_get(server: &Server, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \
         {ADMIN_TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

#[test]
fn a_scripted_day_is_recorded_event_by_event_and_as_exact_series() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &["--admin-token-file", "admin.token"]);
    let start = now() - 1;
    // a takes the only seat; b is refused; c waits in line for it.
    let a = server.post("/v1/leases", &json!({"client": "a"}));
    assert_eq!(a.status, 201, "{}", a.text);
    let b = server.post("/v1/leases", &json!({"client": "b"}));
    assert_eq!((b.status, b.code()), (409, "FLOATING_EXHAUSTED"));
    let addr = server.addr.clone();
    let waiter = std::thread::spawn(move || {
        server_common::request(
            &addr,
            "POST",
            "/v1/leases",
            &[],
            Some(
                json!({"client": "c", "wait_secs": 20})
                    .to_string()
                    .as_bytes(),
            ),
        )
    });
    events_until(&server, start, |e| kinds(e).contains(&"queue"));
    // a checks in: c is served from the line, then borrows the seat.
    let a_id = a.body["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/v1/leases/{a_id}")).status, 200);
    let c = waiter.join().unwrap();
    assert_eq!(c.status, 201, "{}", c.text);
    let c_id = c.body["id"].as_str().unwrap();
    let borrowed = server.post(&format!("/v1/leases/{c_id}/borrow"), &json!({"secs": 600}));
    assert_eq!(borrowed.status, 200, "{}", borrowed.text);
    let again = server.post("/v1/leases", &json!({"client": "b", "feature": "cad"}));
    assert_eq!(again.code(), "FLOATING_EXHAUSTED");

    let events = events_until(&server, start, |e| {
        kinds(e).iter().filter(|k| **k == "deny").count() == 2 && kinds(e).contains(&"borrow")
    });
    let seen: std::collections::BTreeSet<&str> = kinds(&events).into_iter().collect();
    for kind in ["checkout", "deny", "queue", "checkin", "dequeue", "borrow"] {
        assert!(seen.contains(kind), "no {kind} in {events:#?}");
    }
    let find = |kind: &str, client: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind && e["client"] == client)
            .unwrap_or_else(|| panic!("no {kind} of {client}: {events:#?}"))
    };
    let first = find("checkout", "a");
    assert_eq!(first["lease_id"], a.body["id"]);
    assert_eq!(
        (first["in_use"].as_u64(), first["feature"].is_null()),
        (Some(1), true)
    );
    let deny = find("deny", "b");
    assert_eq!(deny["reason"], "FLOATING_EXHAUSTED");
    assert!(deny["lease_id"].is_null());
    assert_eq!(deny["in_use"], 1);
    assert_eq!(find("queue", "c")["queued"], 1);
    assert_eq!(find("checkin", "a")["in_use"], 0);
    assert_eq!(find("dequeue", "c")["queued"], 0);
    assert_eq!(find("borrow", "c")["lease_id"], c.body["id"]);
    // Every event, once each, by time: the pages neither skip nor repeat.
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    let times: Vec<String> = events
        .iter()
        .map(|e| e["at"].as_str().unwrap().to_owned())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // The series: one seat at its peak, two denials, one waiting at most;
    // the borrowed seat is still held at the end.
    let to = now();
    for step in ["minute", "hour", "day"] {
        let path = format!(
            "/admin/history?from={}&to={}&step={step}",
            at(start),
            at(to)
        );
        let series = admin_get(&server, &path);
        assert_eq!(series.status, 200, "{}", series.text);
        let items = series.body["items"].as_array().unwrap();
        assert!(!items.is_empty());
        let sum = |k: &str| items.iter().map(|i| i[k].as_u64().unwrap()).sum::<u64>();
        let max = |k: &str| items.iter().map(|i| i[k].as_u64().unwrap()).max().unwrap();
        assert_eq!(
            (max("in_use_peak"), sum("denials"), max("queued_peak")),
            (1, 2, 1)
        );
        assert_eq!(items.last().unwrap()["in_use_peak"], 1, "{step}");
        for item in items {
            let mut keys: Vec<&String> = item.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["at", "denials", "in_use_peak", "queued_peak"]);
            Timestamp::parse(item["at"].as_str().unwrap()).unwrap();
        }
        // The CSV says the same, line for line.
        let (head, csv) = raw_get(
            &server,
            &path.replace("/admin/history", "/admin/history.csv"),
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("content-type: text/csv"),
            "{head}"
        );
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("at,in_use_peak,denials,queued_peak"));
        let rows: Vec<String> = lines.map(str::to_owned).collect();
        let expected: Vec<String> = items
            .iter()
            .map(|i| {
                format!(
                    "{},{},{},{}",
                    i["at"].as_str().unwrap(),
                    i["in_use_peak"],
                    i["denials"],
                    i["queued_peak"]
                )
            })
            .collect();
        assert_eq!(rows, expected);
    }
    // A feature with no pool of its own draws on the license-level pool,
    // which is where its denial went: the feature's own series is empty.
    let cad = admin_get(
        &server,
        &format!("/admin/history?from={}&step=day&feature=cad", at(start)),
    );
    let items = cad.body["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|i| i["denials"] == 0 && i["in_use_peak"] == 0),
        "{items:?}"
    );
}

#[test]
fn a_lease_that_lapses_is_recorded_as_an_expiry_at_its_end() {
    let dir = install(spec(2, 2));
    let server = Server::start(dir.path(), &["--admin-token-file", "admin.token"]);
    let start = now() - 1;
    let lease = server.post("/v1/leases", &json!({"client": "laptop"}));
    assert_eq!(lease.status, 201, "{}", lease.text);
    let events = events_until(&server, start, |e| kinds(e).contains(&"expiry"));
    let expiry = events.iter().find(|e| e["kind"] == "expiry").unwrap();
    assert_eq!(expiry["lease_id"], lease.body["id"]);
    assert_eq!(expiry["client"], "laptop");
    assert_eq!(expiry["at"], lease.body["expires_at"]);
    assert_eq!(expiry["in_use"], 0);
    // Once only, however many ticks pass.
    std::thread::sleep(Duration::from_millis(2500));
    let events = all_events(&server, start);
    assert_eq!(kinds(&events).iter().filter(|k| **k == "expiry").count(), 1);
}

#[test]
fn bad_history_queries_are_refused_with_what_is_wrong() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &["--admin-token-file", "admin.token"]);
    let refused = |path: &str, says: &str| {
        let reply = admin_get(&server, path);
        assert_eq!(
            (reply.status, reply.code()),
            (400, "INVALID_ARGUMENT"),
            "{path}: {}",
            reply.text
        );
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: {message}");
    };
    let from = "2026-12-02T00:00:00Z";
    let to = "2026-12-01T00:00:00Z";
    for route in ["/admin/history", "/admin/history.csv", "/admin/events"] {
        refused(&format!("{route}?from={from}&to={to}"), "is after `to`");
        refused(&format!("{route}?from=yesterday"), "`from` is not a time");
        refused(
            &format!("{route}?to=2026-13-01T00:00:00Z"),
            "`to` is not a time",
        );
    }
    for route in ["/admin/history", "/admin/history.csv"] {
        refused(&format!("{route}?step=week"), "one of minute, hour, day");
        refused(
            &format!("{route}?from=2016-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&step=minute"),
            "at most 10000",
        );
    }
    refused("/admin/events?limit=1001", "1 to 1000");
    refused("/admin/events?limit=0", "1 to 1000");
    refused("/admin/events?cursor=page-two", "`cursor`");
    // Exactly 10,000 points is answered.
    let widest = admin_get(
        &server,
        "/admin/history?from=2026-01-01T00:00:00Z&to=2026-01-07T22:39:59Z&step=minute",
    );
    assert_eq!(widest.status, 200, "{}", widest.text);
    assert_eq!(widest.body["items"].as_array().unwrap().len(), 10_000);
    // Without the token, nothing.
    for route in ["/admin/history", "/admin/history.csv", "/admin/events"] {
        let reply = server.admin("GET", route, None, None);
        assert_eq!((reply.status, reply.code()), (401, "UNAUTHORIZED"));
    }
}

#[test]
fn history_days_zero_turns_history_off() {
    let dir = install(spec(1, 60));
    let server = Server::start(
        dir.path(),
        &["--admin-token-file", "admin.token", "--history-days", "0"],
    );
    assert_eq!(
        server.post("/v1/leases", &json!({"client": "a"})).status,
        201
    );
    for route in ["/admin/history", "/admin/history.csv", "/admin/events"] {
        let reply = admin_get(&server, route);
        assert_eq!((reply.status, reply.code()), (404, "NOT_FOUND"), "{route}");
        assert!(reply.text.contains("--history-days 0"), "{}", reply.text);
    }
    drop(server);
    assert!(!dir.path().join("state/history.sqlite").exists());
}

#[test]
fn retention_prunes_events_and_buckets_older_than_history_days() {
    let dir = install(spec(1, 60));
    let now = now();
    let old = now - 40 * 86_400;
    let recent = now - 10 * 86_400;
    {
        let store = FileStore::open(dir.path().join("state")).unwrap();
        let history = store.history().unwrap();
        history
            .append(&[
                HistoryEvent::new(old, EventKind::Deny, None, "old").reason("FLOATING_EXHAUSTED"),
                HistoryEvent::new(recent, EventKind::Deny, None, "recent")
                    .reason("FLOATING_EXHAUSTED"),
            ])
            .unwrap();
    }
    let server = Server::start(
        dir.path(),
        &["--admin-token-file", "admin.token", "--history-days", "30"],
    );
    let from = now - 60 * 86_400;
    // Pruned on the first tick, within a second or two of the start.
    let events = events_until(&server, from, |e| e.len() == 1);
    assert_eq!(events[0]["client"], "recent");
    let series = admin_get(
        &server,
        &format!("/admin/history?from={}&step=day", at(from)),
    );
    let items = series.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 61);
    let denials: Vec<(String, u64)> = items
        .iter()
        .filter(|i| i["denials"] != 0)
        .map(|i| {
            (
                i["at"].as_str().unwrap().to_owned(),
                i["denials"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(denials, [(at(recent - recent.rem_euclid(86_400)), 1)]);
}

#[test]
fn a_force_release_is_recorded_with_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let engine = entitle::Engine::builder("acme")
        .store(FileStore::create(dir.path()).unwrap())
        .build()
        .unwrap();
    let recorder = Recorder::new(engine, 90);
    recorder.record(
        EventKind::ForceRelease,
        Some("cad"),
        "desk-9",
        Some("l-1"),
        None,
        2,
    );
    assert_eq!(recorder.flush().unwrap(), 1);
    let store = FileStore::open(dir.path()).unwrap();
    let page = store
        .history()
        .unwrap()
        .events(0, i64::MAX, None, 10)
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let event = &page.items[0].event;
    assert_eq!(event.kind, EventKind::ForceRelease);
    assert_eq!(
        (
            event.feature.as_deref(),
            event.client.as_str(),
            event.lease_id.as_deref()
        ),
        (Some("cad"), "desk-9", Some("l-1"))
    );
    assert_eq!((event.in_use, event.queued), (0, 2));
}

#[test]
fn the_file_store_keeps_history_to_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::create(dir.path()).unwrap();
    history_contract(store.history().unwrap());
    // Kept beside the state, never read with it.
    assert!(dir.path().join("history.sqlite").exists());
    let (_, persisted) = store.load().unwrap();
    assert!(persisted.leases.is_empty());
}

#[test]
fn the_memory_store_keeps_history_to_the_contract() {
    let store = MemoryStore::new();
    history_contract(store.history().unwrap());
}

#[test]
fn a_clean_stop_writes_the_last_second_of_history() {
    let dir = install(spec(1, 60));
    let server = Server::start(dir.path(), &["--admin-token-file", "admin.token"]);
    let lease = server.post("/v1/leases", &json!({"client": "last"}));
    assert_eq!(lease.status, 201, "{}", lease.text);
    // Stopped at once, most likely before the next tick: the stop writes it.
    assert!(server.terminate().success());
    let store = FileStore::open(dir.path().join("state")).unwrap();
    let page = store
        .history()
        .unwrap()
        .events(0, i64::MAX, None, 100)
        .unwrap();
    let checkout = page
        .items
        .iter()
        .find(|e| e.event.kind == EventKind::Checkout)
        .expect("the checkout was written");
    assert_eq!(checkout.event.client, "last");
    assert_eq!(
        checkout.event.lease_id.as_deref(),
        lease.body["id"].as_str()
    );
}
