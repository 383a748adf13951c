//! Processes sharing PostgreSQL through the command-line tool
//! (docs/semantics.md#durability-and-sharing): `init` on a namespace works
//! like `init` on a directory,
//! and sixteen processes racing for a limit of ten, in two namespaces at
//! once, get exactly ten in each.
#![cfg(feature = "postgres")]

mod common;
mod pg_common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use pg_common::{namespace, server_url};
use serde_json::{json, Value};

fn entitle(namespace: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entitle"))
        .args(["--json", "--store", server_url(), "--namespace", namespace])
        .args(args)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_STORE")
        .env_remove("ENTITLE_NAMESPACE")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(namespace: &str, args: &[&str]) -> Value {
    let out = entitle(namespace, args);
    assert!(out.status.success(), "{args:?}: {}", json_of(&out));
    json_of(&out)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// An install in `namespace` holding `license`, made with the CLI.
fn install(dir: &Path, namespace: &str, license: &str) {
    let vendor = Vendor::new();
    let public = write(dir, "vendor.pub", &vendor.key.public_key().to_pem());
    let made = ok(namespace, &["init", "--pub", &public, "--product", "acme"]);
    assert_eq!(made["created"], json!(true));
    assert!(made["state"].as_str().unwrap().contains(namespace));
    let file = write(dir, &format!("{namespace}.lic"), license);
    ok(namespace, &["license", "add", &file]);
}

#[test]
fn init_on_a_namespace_works_like_init_on_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    let ns = namespace("cli");
    // Before init: no state there, whatever the tables hold.
    let missing = entitle(&ns, &["license", "status"]);
    assert_eq!(json_of(&missing)["error"]["code"], json!("STATE_MISSING"));
    install(
        dir.path(),
        &ns,
        &vendor.license(json!({"id": "lic", "seats": {"max": 2},
            "features": [{"code": "export"}]})),
    );
    // init again, changing nothing: fine; changing the product: refused.
    let public = dir.path().join("vendor.pub");
    let public = public.to_str().unwrap();
    let again = ok(&ns, &["init", "--pub", public, "--product", "acme"]);
    assert_eq!(again["created"], json!(false));
    let other = entitle(&ns, &["init", "--pub", public, "--product", "other"]);
    assert_eq!(json_of(&other)["error"]["code"], json!("STATE_EXISTS"));
    assert_eq!(ok(&ns, &["check", "export"])["allowed"], json!(true));
    ok(&ns, &["user", "add", "ann"]);
    assert_eq!(
        ok(&ns, &["license", "status"])["active_user_count"],
        json!(1)
    );
    // A namespace is only for PostgreSQL.
    let state = dir.path().join("state");
    let dir_with_namespace = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .args(["--json", "--store"])
        .arg(&state)
        .args(["--namespace", "other", "license", "status"])
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_STORE")
        .output()
        .unwrap();
    assert_eq!(
        json_of(&dir_with_namespace)["error"]["code"],
        json!("INVALID_ARGUMENT")
    );
}

/// Sixteen processes, eight per namespace, each adding three users and
/// consuming three units, against a limit of ten seats and ten units in
/// each namespace: exactly ten get through in each, the others are
/// refused with the limit's code, and the state says ten.
#[test]
fn sixteen_processes_racing_a_limit_of_ten_in_two_namespaces_get_exactly_ten_each() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    let namespaces = [namespace("race-a"), namespace("race-b")];
    for ns in &namespaces {
        install(
            dir.path(),
            ns,
            &vendor.license(json!({"id": "lic", "seats": {"max": 10},
                "features": [{"code": "api", "consumption": {"max": 10}}]})),
        );
    }
    let outcomes: Vec<(usize, &'static str, Result<(), String>)> = std::thread::scope(|s| {
        let processes: Vec<_> = (0..16)
            .map(|p| {
                let ns = &namespaces[p % 2];
                s.spawn(move || {
                    let mut seen = Vec::new();
                    for k in 0..3 {
                        let user = format!("p{p}-u{k}");
                        let calls: [(&'static str, Vec<&str>); 2] = [
                            ("user", vec!["user", "add", &user]),
                            ("unit", vec!["consume", "api"]),
                        ];
                        for (what, args) in calls {
                            let out = entitle(ns, &args);
                            let result = if out.status.success() {
                                Ok(())
                            } else {
                                Err(json_of(&out)["error"]["code"]
                                    .as_str()
                                    .unwrap_or("?")
                                    .to_owned())
                            };
                            seen.push((p % 2, what, result));
                        }
                    }
                    seen
                })
            })
            .collect();
        processes
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect()
    });
    for (n, ns) in namespaces.iter().enumerate() {
        let count = |what: &str| {
            outcomes
                .iter()
                .filter(|(m, w, r)| *m == n && *w == what && r.is_ok())
                .count()
        };
        assert_eq!(count("user"), 10, "users admitted in {ns}");
        assert_eq!(count("unit"), 10, "units consumed in {ns}");
        for (_, what, result) in outcomes.iter().filter(|(m, _, _)| *m == n) {
            if let Err(code) = result {
                let expected = if *what == "user" {
                    "SEAT_LIMIT"
                } else {
                    "CONSUMPTION_LIMIT"
                };
                assert_eq!(code, expected, "a {what} refused in {ns}");
            }
        }
        assert_eq!(
            ok(ns, &["license", "status"])["active_user_count"],
            json!(10)
        );
        assert_eq!(ok(ns, &["consumption", "api"])["used"], json!(10));
    }
}
