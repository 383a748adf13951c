//! Two `entitle serve --books` over one PostgreSQL namespace
//! (docs/http.md#the-vendors-service, docs/semantics.md#durability-and-sharing):
//! every counting decision is taken inside one mutation of the books, on
//! the latest committed state, so two processes sharing the books count
//! exactly. The real binary on loopback, a real PostgreSQL
//! (tests/pg_common), no mock.
//!
//! Each race starts its clients at a barrier and splits them between the
//! two servers; each is repeated a few times, so that a decision taken on
//! a stale view (outside the mutation) would show up as a count that is
//! off.
#![cfg(all(feature = "server", feature = "postgres"))]

mod pg_common;
mod server_common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use server_common::{entitle, request, Reply, Server, ADMIN_TOKEN};

/// Client threads in each race.
const CLIENTS: usize = 32;

/// `entitle --json --store URL --namespace NS ARGS` in `dir`, which must
/// succeed: its JSON object.
fn on_pg(dir: &Path, url: &str, ns: &str, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_STORE")
        .env_remove("ENTITLE_NOW")
        .args(["--json", "--store", url, "--namespace", ns])
        .args(args)
        .output()
        .expect("entitle runs");
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(output.status.success(), "{args:?}: {value}");
    value
}

/// The vendor's books in a namespace of their own, and two `serve
/// --books` over them.
struct Pair {
    _dir: tempfile::TempDir,
    a: Server,
    b: Server,
}

impl Pair {
    fn start(prefix: &str) -> Pair {
        let url = pg_common::server_url();
        let ns = pg_common::namespace(prefix);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        entitle(path, &["keygen", "--out", "vendor"]);
        on_pg(
            path,
            url,
            &ns,
            &["init", "--pub", "vendor.pub", "--product", "acme"],
        );
        std::fs::write(path.join("admin.token"), format!("{ADMIN_TOKEN}\n")).unwrap();
        let trial = json!({"product": "acme", "trial": true, "trial_secs": 1_209_600,
            "features": [{"code": "cad"}]});
        std::fs::write(path.join("trial.json"), trial.to_string()).unwrap();
        let start = || {
            Server::start_over(
                path,
                &["--store", url, "--namespace", &ns],
                "127.0.0.1:0",
                &[
                    "--books",
                    "--vendor-key",
                    "vendor.key",
                    "--admin-token-file",
                    "admin.token",
                    "--trial-spec",
                    "trial.json",
                ],
            )
        };
        let (a, b) = (start(), start());
        Pair { _dir: dir, a, b }
    }

    /// Stops both servers with SIGTERM: each ends cleanly.
    fn stop(self) {
        for server in [self.a, self.b] {
            let stderr = std::sync::Arc::clone(&server.stderr);
            let status = server.terminate();
            let said = stderr.lock().unwrap().clone();
            assert!(status.success(), "{status}: {said}");
        }
    }

    /// Server A, then B, then A...
    fn addr(&self, i: usize) -> String {
        if i % 2 == 0 {
            self.a.addr.clone()
        } else {
            self.b.addr.clone()
        }
    }
}

/// An admin request to `server` with the token.
fn admin(server: &Server, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let body = body.map(Value::to_string);
    server.admin(
        method,
        path,
        Some(ADMIN_TOKEN),
        body.as_deref().map(str::as_bytes),
    )
}

/// Issues a license of at most `max` devices through `server`: its id
/// and key.
fn issue(server: &Server, max: u32) -> (String, String) {
    let spec = json!({"product": "acme", "activations": {"max": max, "counted_by": "vendor"},
        "features": [{"code": "cad"}]});
    let reply = admin(
        server,
        "POST",
        "/admin/licenses",
        Some(&json!({"spec": spec})),
    );
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let field = |name: &str| {
        reply.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {:?}", reply.body))
            .to_owned()
    };
    (field("id"), field("key"))
}

/// A new install key (base64url of an Ed25519 public key), as a device
/// holds one.
fn install_key() -> String {
    entitle::token::SigningKey::generate()
        .expect("a key")
        .public_key()
        .to_base64url()
}

/// The JSON text of an activation request naming no license (the key or
/// the trial names it), as `Engine::activate_online` sends it.
fn activation_request(fingerprint: &str, install_key: &str, nonce: &str) -> String {
    json!({
        "v": 1, "license_id": "", "fingerprint": fingerprint, "hostname": "desk",
        "nonce": nonce, "created_at": "2026-01-01T00:00:00Z", "vm": false,
        "install_key": install_key,
    })
    .to_string()
}

fn post(addr: &str, path: &str, body: &Value) -> Reply {
    request(addr, "POST", path, &[], Some(body.to_string().as_bytes()))
}

/// Runs `clients` threads that wait at one barrier, then each calls
/// `work(thread)`; every answer, in no particular order.
fn race<T: Send + 'static>(
    clients: usize,
    work: impl Fn(usize) -> Vec<T> + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(clients));
    let work = Arc::new(work);
    let threads: Vec<_> = (0..clients)
        .map(|thread| {
            let (barrier, work) = (Arc::clone(&barrier), Arc::clone(&work));
            std::thread::spawn(move || {
                barrier.wait();
                work(thread)
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect()
}

/// What `read` gives once it satisfies `done`, or its last answer after
/// 10 s. A server's reads (the admin listings, `/v1/sync`) come from its
/// view of the books, which another server's commit reaches through a
/// notification within a moment (at most a second, by the listener's
/// poll); every counting decision is made on the latest state instead.
fn eventually<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let since = Instant::now();
    loop {
        let value = read();
        if done(&value) || since.elapsed() > Duration::from_secs(10) {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The devices `GET /admin/licenses/{id}` on `server` lists.
fn activations(server: &Server, id: &str) -> Vec<Value> {
    let reply = admin(server, "GET", &format!("/admin/licenses/{id}"), None);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["activations"]
        .as_array()
        .unwrap_or_else(|| panic!("no activations in {:?}", reply.body))
        .clone()
}

#[test]
fn two_servers_count_a_license_s_activations_exactly() {
    let pair = Pair::start("books-count");
    let addrs = Arc::new([pair.addr(0), pair.addr(1)]);
    const DEVICES: usize = 40;
    const MAX: u32 = 5;
    for round in 0..3 {
        let (id, key) = issue(if round % 2 == 0 { &pair.a } else { &pair.b }, MAX);
        let next = Arc::new(AtomicUsize::new(0));
        let answers = {
            let (addrs, key) = (Arc::clone(&addrs), key.clone());
            race(CLIENTS, move |thread| {
                let mut answers = Vec::new();
                loop {
                    let device = next.fetch_add(1, Ordering::SeqCst);
                    if device >= DEVICES {
                        return answers;
                    }
                    let request =
                        activation_request(&format!("desk-{device}"), &install_key(), "n-1");
                    let reply = post(
                        &addrs[thread % 2],
                        "/v1/activations",
                        &json!({"request": request, "key": key}),
                    );
                    answers.push((device, reply));
                }
            })
        };
        assert_eq!(answers.len(), DEVICES);
        let mut counted: Vec<usize> = Vec::new();
        for (device, reply) in &answers {
            match (reply.status, reply.code()) {
                (201, _) => counted.push(*device),
                (409, "ACTIVATION_LIMIT") => {}
                _ => panic!(
                    "round {round}, desk-{device}: {} {}",
                    reply.status, reply.text
                ),
            }
        }
        assert_eq!(
            counted.len(),
            MAX as usize,
            "round {round}: {} devices were activated on a license of {MAX}",
            counted.len()
        );
        counted.sort_unstable();
        // Both servers list the same five devices: the ones answered 201.
        for server in [&pair.a, &pair.b] {
            let devices = || {
                let mut listed: Vec<usize> = activations(server, &id)
                    .iter()
                    .map(|a| {
                        let fingerprint = a["fingerprint"].as_str().expect("a fingerprint");
                        fingerprint
                            .strip_prefix("desk-")
                            .and_then(|n| n.parse().ok())
                            .unwrap_or_else(|| panic!("an unknown device {fingerprint}"))
                    })
                    .collect();
                listed.sort_unstable();
                listed
            };
            let listed = eventually(devices, |listed| *listed == counted);
            assert_eq!(listed, counted, "round {round}");
        }
    }
    pair.stop();
}

#[test]
fn one_device_activating_through_both_servers_is_counted_once() {
    let pair = Pair::start("books-same");
    let addrs = Arc::new([pair.addr(0), pair.addr(1)]);
    for round in 0..3 {
        // A limit of two: a device counted twice would fill the second
        // slot, and the other device below would be refused.
        let (id, key) = issue(&pair.a, 2);
        let install = install_key();
        let answers = {
            let (addrs, key) = (Arc::clone(&addrs), key.clone());
            race(CLIENTS / 2, move |thread| {
                // Each attempt its own nonce: the same device asking again.
                let request = activation_request("desk-1", &install, &format!("n-{thread}"));
                vec![post(
                    &addrs[thread % 2],
                    "/v1/activations",
                    &json!({"request": request, "key": key}),
                )]
            })
        };
        let created = answers.iter().filter(|r| r.status == 201).count();
        let again = answers.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            (created, again),
            (1, CLIENTS / 2 - 1),
            "round {round}: {:?}",
            answers
                .iter()
                .map(|r| (r.status, r.code()))
                .collect::<Vec<_>>()
        );
        for server in [&pair.a, &pair.b] {
            let listed = eventually(|| activations(server, &id), |l| !l.is_empty());
            assert_eq!(listed.len(), 1, "round {round}: {listed:?}");
            assert_eq!(listed[0]["fingerprint"], "desk-1");
        }
        // The second slot is still free for another device.
        let other = activation_request("desk-2", &install_key(), "n-x");
        let reply = post(
            &pair.b.addr,
            "/v1/activations",
            &json!({"request": other, "key": key}),
        );
        assert_eq!(reply.status, 201, "round {round}: {}", reply.text);
    }
    pair.stop();
}

#[test]
fn one_trial_per_device_through_both_servers() {
    let pair = Pair::start("books-trial");
    let addrs = Arc::new([pair.addr(0), pair.addr(1)]);
    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        let fingerprint = format!("trial-desk-{round}");
        let answers = {
            let addrs = Arc::clone(&addrs);
            race(CLIENTS / 2, move |thread| {
                let request = activation_request(&fingerprint, &install_key(), "n-1");
                vec![post(
                    &addrs[thread % 2],
                    "/v1/trials",
                    &json!({"request": request}),
                )]
            })
        };
        let given = answers.iter().filter(|r| r.status == 201).count();
        let used = answers
            .iter()
            .filter(|r| (r.status, r.code()) == (409, "TRIAL_USED"))
            .count();
        assert_eq!(
            (given, used),
            (1, CLIENTS / 2 - 1),
            "round {round}: {:?}",
            answers
                .iter()
                .map(|r| (r.status, r.code()))
                .collect::<Vec<_>>()
        );
    }
    // One trial license in the books per device, on either server.
    for server in [&pair.a, &pair.b] {
        let listed = || {
            let reply = admin(server, "GET", "/admin/licenses?limit=100", None);
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            reply.body["items"].as_array().expect("items").clone()
        };
        let items = eventually(listed, |items| items.len() >= ROUNDS);
        assert_eq!(items.len(), ROUNDS, "{items:?}");
    }
    pair.stop();
}

/// The ids a revocation list (compact token) names.
fn revoked_ids(list: &str) -> Vec<String> {
    let payload = list.split('.').nth(1).expect("a compact token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let value: Value = serde_json::from_slice(&bytes).expect("JSON");
    value["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect()
}

/// What `POST /v1/sync` on `addr` answers the device.
fn sync(addr: &str, ids: &[&str], fingerprint: &str, install_key: &str) -> Value {
    let reply = post(
        addr,
        "/v1/sync",
        &json!({"license_ids": ids, "fingerprint": fingerprint, "install_key": install_key}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

#[test]
fn a_license_revoked_through_one_server_is_in_the_other_s_sync() {
    let pair = Pair::start("books-revoke");
    let (id, key) = issue(&pair.a, 2);
    let install = install_key();
    let request = activation_request("desk-1", &install, "n-1");
    let reply = post(
        &pair.b.addr,
        "/v1/activations",
        &json!({"request": request, "key": key}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let before = sync(&pair.b.addr, &[&id], "desk-1", &install);
    assert!(before.get("revocations").is_none(), "{before}");

    let reply = admin(
        &pair.a,
        "POST",
        &format!("/admin/licenses/{id}/revoke"),
        None,
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // B's sync reads its view, which A's commit reaches within a moment.
    let after = eventually(
        || sync(&pair.b.addr, &[&id], "desk-1", &install),
        |after| after.get("revocations").is_some(),
    );
    let list = after["revocations"]
        .as_str()
        .unwrap_or_else(|| panic!("B's sync has no revocations: {after}"));
    assert_eq!(revoked_ids(list), vec![id.clone()]);
    // B refuses the license now, as A does.
    let again = activation_request("desk-2", &install_key(), "n-2");
    let reply = post(
        &pair.b.addr,
        "/v1/activations",
        &json!({"request": again, "key": key}),
    );
    assert_eq!(reply.code(), "LICENSE_REVOKED", "{}", reply.text);
    pair.stop();
}

#[test]
fn licenses_revoked_through_both_servers_at_once_are_all_in_the_list() {
    let pair = Pair::start("books-revoke2");
    let addrs = Arc::new([pair.addr(0), pair.addr(1)]);
    let mut revoked: Vec<String> = Vec::new();
    for round in 0..4 {
        let ids: Vec<String> = (0..4).map(|_| issue(&pair.a, 1).0).collect();
        let answers = {
            let (addrs, ids) = (Arc::clone(&addrs), ids.clone());
            race(ids.len(), move |thread| {
                let path = format!("/admin/licenses/{}/revoke", ids[thread]);
                let header = format!("Authorization: Bearer {ADMIN_TOKEN}");
                vec![request(&addrs[thread % 2], "POST", &path, &[&header], None)]
            })
        };
        for reply in &answers {
            assert_eq!(reply.status, 200, "round {round}: {}", reply.text);
        }
        revoked.extend(ids);
        // The list an install gets names every license revoked so far,
        // whichever server revoked it and whichever answers the sync.
        let names: Vec<&str> = revoked.iter().map(String::as_str).collect();
        let mut expected = revoked.clone();
        expected.sort();
        for addr in addrs.iter() {
            let listed = || {
                let synced = sync(addr, &names, "desk-1", &install_key());
                let mut listed = synced["revocations"]
                    .as_str()
                    .map_or_else(Vec::new, revoked_ids);
                listed.sort();
                listed
            };
            let listed = eventually(listed, |listed| *listed == expected);
            assert_eq!(listed, expected, "round {round}");
        }
    }
    pair.stop();
}

/// A refusal stands only on the latest committed state: over PostgreSQL
/// an engine plans on the generation it knows, which another process may
/// have moved past a moment ago (its notification not yet in). A grant
/// planned so fails its commit and is planned again; a refusal is checked
/// against the namespace under its lock before it is returned. Here
/// another process (psql, which tells no listener) frees the only slot:
/// the next device is counted, not refused on the view from before.
#[test]
fn a_refusal_is_never_decided_on_a_view_another_process_moved_past() {
    use entitle::books::online::{Credential, Service};
    use entitle::books::Books;
    use entitle::store::PgStore;

    let url = pg_common::server_url();
    let ns = pg_common::created_namespace("books-stale");
    let vendor = entitle::token::SigningKey::generate().unwrap();
    let books = Books::builder("acme")
        .store(PgStore::open(url, &ns).unwrap())
        .trust(vendor.public_key().clone())
        .background_refresh(false)
        .build()
        .unwrap();
    let service = Service::new(books, vendor).unwrap();
    let issued = service
        .issue(
            r#"{"product": "acme", "activations": {"max": 1, "counted_by": "vendor"},
                "features": [{"code": "cad"}]}"#,
            &[],
        )
        .unwrap();
    let key = Credential::Key(issued.key.clone());
    let activate = |device: &str| {
        service.activate(
            &activation_request(device, &install_key(), "n-1"),
            &key,
            None,
        )
    };
    assert!(activate("desk-1").unwrap().created);
    assert_eq!(
        activate("desk-2").unwrap_err().code(),
        "ACTIVATION_LIMIT",
        "the books are full"
    );
    pg_common::psql(
        url,
        &format!(
            "BEGIN; DELETE FROM entitle_activations WHERE namespace = '{ns}'; \
             UPDATE entitle_namespaces SET generation = generation + 1 \
             WHERE namespace = '{ns}'; COMMIT"
        ),
    );
    let counted = activate("desk-2").expect("the slot freed elsewhere is taken");
    assert!(counted.created);
    assert_eq!(
        activate("desk-3").unwrap_err().code(),
        "ACTIVATION_LIMIT",
        "one slot, one device"
    );
    let devices: Vec<String> = service
        .license_detail(&issued.id)
        .unwrap()
        .activations
        .into_iter()
        .map(|a| a.fingerprint)
        .collect();
    assert_eq!(devices, ["desk-2"]);
}

/// The books over PostgreSQL may be dropped on a thread that runs an
/// async runtime's tasks, as `serve --books` drops its service when it
/// stops: the store's last statements (announcing a commit not yet
/// announced) run on a thread of their own, where the synchronous client
/// may block. Two commits within 100 ms leave the second to announce.
#[test]
fn the_books_may_be_dropped_inside_an_async_runtime() {
    use entitle::books::online::Service;
    use entitle::books::Books;
    use entitle::store::PgStore;

    let url = pg_common::server_url();
    let ns = pg_common::created_namespace("books-drop");
    let vendor = entitle::token::SigningKey::generate().unwrap();
    let public = vendor.public_key().clone();
    let open = || {
        Books::builder("acme")
            .store(PgStore::open(url, &ns).unwrap())
            .trust(public.clone())
            .background_refresh(false)
            .build()
            .unwrap()
    };
    let service = Service::new(open(), vendor).unwrap();
    let spec = r#"{"product": "acme", "features": [{"code": "cad"}]}"#;
    let first = service.issue(spec, &[]).unwrap();
    let second = service.issue(spec, &[]).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move { drop(service) });
    let ids: Vec<String> = open().licenses().into_iter().map(|l| l.id).collect();
    assert!(
        ids.contains(&first.id) && ids.contains(&second.id),
        "{ids:?}"
    );
}
