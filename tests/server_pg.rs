//! `entitle serve` over PostgreSQL (docs/semantics.md#durability-and-sharing and docs/http.md): the server
//! opens `--store URL --namespace NAME` as every install-side command
//! does, and its leases and the CLI's count against one pool.
#![cfg(all(feature = "server", feature = "postgres"))]

mod pg_common;
mod server_common;

use std::process::Command;

use serde_json::{json, Value};
use server_common::{entitle, Server};

/// `entitle --json --store URL --namespace NS ARGS` in `dir`: the exit
/// status and the one JSON object.
fn on_pg(dir: &std::path::Path, url: &str, ns: &str, args: &[&str]) -> (i32, Value) {
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
    (output.status.code().unwrap_or(-1), value)
}

#[test]
fn serve_over_postgresql_shares_its_pool_with_the_cli() {
    let url = pg_common::server_url();
    let ns = pg_common::namespace("serve");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    entitle(path, &["keygen", "--out", "vendor"]);
    let spec = json!({"product": "acme", "id": "lic_pg",
        "floating": {"seats": 2, "lease_secs": 60}, "features": [{"code": "cad"}]});
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
    let ok = |args: &[&str]| {
        let (code, value) = on_pg(path, url, &ns, args);
        assert_eq!(code, 0, "{args:?}: {value}");
        value
    };
    ok(&["init", "--pub", "vendor.pub", "--product", "acme"]);
    ok(&["license", "add", "l.lic"]);

    let server = Server::start_over(
        path,
        &["--store", url, "--namespace", &ns],
        "127.0.0.1:0",
        &[],
    );
    assert_eq!(server.get("/v1/features/cad").body["allowed"], true);
    let first = server.post("/v1/leases", &json!({"client": "ws-1"}));
    assert_eq!(first.status, 201, "{:?}", first.body);
    // The CLI takes the second seat, in the same namespace.
    ok(&["lease", "checkout", "--client", "ws-2"]);
    let third = server.post("/v1/leases", &json!({"client": "ws-3"}));
    assert_eq!(
        (third.status, third.code()),
        (409, "FLOATING_EXHAUSTED"),
        "{:?}",
        third.body
    );
    let listed = ok(&["lease", "list"]);
    let clients: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| l["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients.len(), 2, "{listed}");
    assert!(
        clients.contains(&"ws-1") && clients.contains(&"ws-2"),
        "{listed}"
    );
    let (code, refused) = on_pg(path, url, &ns, &["lease", "checkout", "--client", "ws-4"]);
    assert_eq!(
        (code, &refused["error"]["code"]),
        (1, &json!("FLOATING_EXHAUSTED"))
    );
    assert!(server.terminate().success());
}
