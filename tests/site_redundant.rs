//! Redundant servers (docs/http.md#redundant-servers): two real `entitle
//! serve` on 127.0.0.1 over one PostgreSQL namespace (a throwaway
//! cluster, `tests/pg_common/`) share every pool exactly, sign leases
//! with the one key kept in the shared state, and a client given both
//! carries its lease over to the second when the first stops.
#![cfg(all(feature = "server", feature = "postgres", feature = "client"))]

mod pg_common;
mod server_common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};

use entitle::client::Client;
use entitle::token::{LeaseToken, PublicKey};
use entitle::Engine;
use serde_json::{json, Value};
use server_common::{entitle, request, Server};
use tempfile::TempDir;

/// `entitle --json --store URL --namespace NS ARGS` in `dir`: the one
/// JSON object, the command having succeeded.
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
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(output.status.success(), "{args:?}: {value}");
    value
}

/// A site: a license of `seats` floating seats in a fresh namespace, and
/// two servers over it.
struct Site {
    dir: TempDir,
    ns: String,
    a: Server,
    b: Server,
}

impl Site {
    fn new(seats: u32, lease_secs: i64) -> Site {
        let url = pg_common::server_url();
        let ns = pg_common::namespace("redundant");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        entitle(path, &["keygen", "--out", "vendor"]);
        let spec = json!({"product": "acme", "id": "lic_site",
            "floating": {"seats": seats, "lease_secs": lease_secs, "borrow_max_secs": 3600},
            "features": [{"code": "cad"}]});
        std::fs::write(path.join("spec.json"), spec.to_string()).unwrap();
        entitle(
            path,
            &[
                "issue",
                "--key",
                "vendor.key",
                "--spec",
                "spec.json",
                "--out",
                "l.lic",
            ],
        );
        on_pg(
            path,
            url,
            &ns,
            &["init", "--pub", "vendor.pub", "--product", "acme"],
        );
        on_pg(path, url, &ns, &["license", "add", "l.lic"]);
        let start = || {
            Server::start_over(
                path,
                &["--store", url, "--namespace", &ns],
                "127.0.0.1:0",
                &[],
            )
        };
        let (a, b) = (start(), start());
        Site { dir, ns, a, b }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cli(&self, args: &[&str]) -> Value {
        on_pg(self.path(), pg_common::server_url(), &self.ns, args)
    }

    /// The key leases verify with: what the shared state's install key
    /// is, printed by the CLI over the same namespace.
    fn lease_pub(&self) -> PublicKey {
        let printed = self.cli(&["serve", "--print-lease-pub"]);
        PublicKey::from_pem(printed["public_key"].as_str().unwrap()).unwrap()
    }

    fn live_leases(&self) -> usize {
        self.cli(&["lease", "list"])["items"]
            .as_array()
            .unwrap()
            .len()
    }

    /// The application's own install, holding the license the servers
    /// serve.
    fn app(&self) -> Engine {
        let vendor = std::fs::read_to_string(self.path().join("vendor.pub")).unwrap();
        let engine = Engine::builder("acme")
            .trust(PublicKey::from_pem(&vendor).unwrap())
            .in_memory()
            .background_refresh(false)
            .build()
            .unwrap();
        engine
            .add_license(&std::fs::read_to_string(self.path().join("l.lic")).unwrap())
            .unwrap();
        engine
    }
}

#[test]
fn two_servers_share_one_pool_exactly() {
    const SEATS: usize = 3;
    const CLIENTS: usize = 16;
    let site = Site::new(SEATS as u32, 60);
    let key = site.lease_pub();
    let addrs = [site.a.addr.clone(), site.b.addr.clone()];
    // Every client at once, half of them on each server.
    let start = Arc::new(Barrier::new(CLIENTS));
    let storm: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = addrs[i % 2].clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let body = json!({"client": format!("ws-{i}")}).to_string();
                start.wait();
                let reply = request(&addr, "POST", "/v1/leases", &[], Some(body.as_bytes()));
                (i % 2, reply)
            })
        })
        .collect();
    let mut granted = Vec::new();
    for thread in storm {
        let (server, reply) = thread.join().unwrap();
        match reply.status {
            201 => granted.push((server, reply.body)),
            409 => assert_eq!(reply.code(), "FLOATING_EXHAUSTED", "{:?}", reply.body),
            other => panic!("{other}: {:?}", reply.body),
        }
    }
    assert_eq!(granted.len(), SEATS, "exactly the seats: {granted:?}");
    assert_eq!(site.live_leases(), SEATS);
    // Either server's tokens verify with the one key of the shared state.
    for (_, lease) in &granted {
        let token = LeaseToken::verify(lease["token"].as_str().unwrap(), &key).unwrap();
        assert_eq!(token.lease_id, lease["id"].as_str().unwrap());
    }
    // Full on both servers.
    for server in [&site.a, &site.b] {
        let late = server.post("/v1/leases", &json!({"client": "late"}));
        assert_eq!((late.status, late.code()), (409, "FLOATING_EXHAUSTED"));
    }
    // A seat taken through one server and checked in through the other
    // is free on both: each time, the server that did not grant it.
    for (server, lease) in &granted {
        let (grantor, other) = if *server == 0 {
            (&site.a, &site.b)
        } else {
            (&site.b, &site.a)
        };
        let id = lease["id"].as_str().unwrap();
        let checked_in = other.delete(&format!("/v1/leases/{id}"));
        assert_eq!(checked_in.status, 200, "{:?}", checked_in.body);
        let taken = grantor.post("/v1/leases", &json!({"client": format!("next-{id}")}));
        assert_eq!(taken.status, 201, "the freed seat: {:?}", taken.body);
        let over = other.post("/v1/leases", &json!({"client": "over"}));
        assert_eq!(
            (over.status, over.code()),
            (409, "FLOATING_EXHAUSTED"),
            "still exactly {SEATS}"
        );
    }
    assert_eq!(site.live_leases(), SEATS);
}

#[test]
fn a_lease_is_renewed_on_the_second_server_when_the_first_stops() {
    let site = Site::new(2, 60);
    let key = site.lease_pub();
    let engine = site.app();
    let client = Client::connect_any(&engine, &[site.a.url(), site.b.url()], key.clone()).unwrap();
    let seat = client.lease(Some("cad")).unwrap();
    let before = seat.lease().unwrap();
    assert_eq!(client.current_url(), site.a.url());
    let a_url = site.a.url();
    let b_url = site.b.url();
    let Site {
        dir: _dir, a, b, ..
    } = site;
    assert!(a.terminate().success());

    // The next renewal finds the second server: the same lease, renewed.
    assert!(seat.renew().allowed(), "{:?}", seat.lost());
    let after = seat.lease().expect("still held");
    assert_eq!(after.id, before.id);
    assert!(after.expires_at >= before.expires_at);
    assert_eq!(client.current_url(), b_url);
    assert_ne!(client.current_url(), a_url);
    let heartbeat = b.stderr_line(|l| l.contains("path=\"/v1/leases/{id}/heartbeat\""));
    assert!(heartbeat.contains("status=200"), "{heartbeat}");
    // Its token, from the second server, verifies with the same key.
    let token = client.borrow(&seat, 60).unwrap();
    let token = LeaseToken::verify(&token, &key).unwrap();
    assert_eq!(token.lease_id, before.id);
    assert!(token.borrowed);
    assert!(b.terminate().success());
}

#[test]
fn a_refusal_is_final_and_an_unreachable_first_server_is_passed_over() {
    let site = Site::new(1, 60);
    let key = site.lease_pub();
    // Nothing listens there any more: connections are refused.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let first_app = site.app();
    let first = Client::connect_any(&first_app, &[&dead, &site.a.url()], key.clone()).unwrap();
    let seat = first.lease(Some("cad")).unwrap();
    assert!(seat.check().allowed());
    assert_eq!(first.current_url(), site.a.url());

    // The pool is full: the first server's refusal is the answer, and
    // the second is not asked.
    let second_app = site.app();
    let second =
        Client::connect_any(&second_app, &[site.a.url(), site.b.url()], key.clone()).unwrap();
    let refused = second.lease(Some("cad")).unwrap_err();
    assert_eq!(refused.code(), "FLOATING_EXHAUSTED", "{refused}");
    assert_eq!(second.current_url(), site.a.url());
    site.a
        .stderr_line(|l| l.contains("reason=\"FLOATING_EXHAUSTED\""));
    assert!(
        !site.b.stderr().contains("/v1/leases"),
        "the second server was asked: {}",
        site.b.stderr()
    );

    // None reachable: SERVER_UNREACHABLE naming each.
    let nowhere = Client::connect_any(&second_app, &[&dead, &dead], key).unwrap();
    let unreachable = nowhere.lease(None).unwrap_err();
    assert_eq!(unreachable.code(), "SERVER_UNREACHABLE");
    assert!(unreachable.to_string().contains(&dead), "{unreachable}");
    drop(seat);
    assert_eq!(
        site.live_leases(),
        0,
        "checked in through the server that answered"
    );
}
