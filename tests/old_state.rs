//! A state directory written by an older entitle opens, whole, and takes
//! new mutations.
//!
//! `tests/fixtures/state-389e010/` was written by the CLI built from commit
//! 389e010, before the store kept row counts and ran its structural check
//! on open: `init --product acme --fingerprint fixture-host`, `license add`
//! of `lic-old` (5 seats, 2 floating, `api` metered at 100 a month),
//! `user add alice --type admin`, `user add bob`, `consume api --amount 7`,
//! `lease checkout --client ws-1`, all at 2026-06-01T00:00:00Z. Its
//! vendor key is in the state (`init --pub`); the private key is not kept.

mod cli_common;

use std::path::Path;
use std::process::{Command, Output};

use cli_common::{exit_code, json_out};
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/state-389e010/state.sqlite";
const NOW: &str = "2026-06-01T00:10:00Z";

fn entitle(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entitle"))
        .arg("--state")
        .arg(state)
        .args(["--now", NOW, "--json"])
        .args(args)
        .output()
        .expect("the entitle binary runs")
}

fn ok(state: &Path, args: &[&str]) -> Value {
    let out = entitle(state, args);
    assert_eq!(
        exit_code(&out),
        0,
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    json_out(&out)
}

#[test]
fn a_state_written_by_an_older_entitle_opens_whole_and_takes_changes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::copy(FIXTURE, state.join("state.sqlite")).unwrap();

    let list = ok(&state, &["license", "list"]);
    assert_eq!(list["items"][0]["id"], "lic-old", "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let usage = ok(&state, &["license", "usage"]);
    assert_eq!(usage["total"], 2, "{usage}");
    assert_eq!(usage["summary"]["admin"]["total"], 1);
    assert_eq!(ok(&state, &["consumption", "api"])["used"], 7);
    assert_eq!(ok(&state, &["lease", "list"])["items"][0]["client"], "ws-1");
    assert_eq!(ok(&state, &["check", "export"])["allowed"], true);

    // New mutations on the old state, then everything reads back.
    ok(&state, &["user", "add", "carol"]);
    ok(&state, &["user", "remove", "bob"]);
    assert_eq!(ok(&state, &["consume", "api", "--amount", "3"])["used"], 10);
    ok(&state, &["lease", "checkout", "--client", "ws-2"]);
    let usage = ok(&state, &["license", "usage"]);
    assert_eq!(usage["total"], 2, "{usage}");
    let ids: Vec<&str> = usage["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "carol"]);
    assert_eq!(
        ok(&state, &["lease", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(ok(&state, &["license", "status"])["active_user_count"], 2);
}
