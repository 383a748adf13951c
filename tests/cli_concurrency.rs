//! Many `entitle` processes on one state directory at once: every limit
//! holds exactly, because each mutation works on the latest durable state.

use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};
use tempfile::TempDir;

const NOW: &str = "2026-01-01T00:00:00Z";
const PROCESSES: usize = 16;

fn entitle(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_entitle"));
    command
        .current_dir(dir.path())
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .args(["--json", "--now", NOW])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn ok(dir: &TempDir, args: &[&str]) -> Value {
    let output = entitle(dir, args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", json_out(&output));
    json_out(&output)
}

/// An install holding one license issued from `spec`.
fn install(spec: Value) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&dir, &["keygen", "--out", "vendor"]);
    std::fs::write(dir.path().join("spec.json"), spec.to_string()).unwrap();
    ok(
        &dir,
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
    ok(&dir, &["init", "--pub", "vendor.pub", "--product", "acme"]);
    ok(&dir, &["license", "add", "l.lic"]);
    dir
}

/// Starts every command before waiting for any, and sorts the outcomes
/// into successes and error codes.
fn race(dir: &TempDir, commands: Vec<Vec<String>>) -> (Vec<Value>, Vec<String>) {
    let children: Vec<Child> = commands
        .iter()
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            entitle(dir, &args).spawn().unwrap()
        })
        .collect();
    let mut successes = Vec::new();
    let mut errors = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let value = json_out(&output);
        match output.status.code() {
            Some(0) => successes.push(value),
            Some(1) => errors.push(value["error"]["code"].as_str().unwrap().to_owned()),
            other => panic!("unexpected exit {other:?}: {value}"),
        }
    }
    (successes, errors)
}

#[test]
fn sixteen_consumers_of_a_ten_unit_quota_get_exactly_ten_units() {
    let dir = install(json!({
        "id": "lic_api", "product": "acme",
        "features": [{"code": "api", "consumption": {"max": 10}}]
    }));
    let commands = (0..PROCESSES)
        .map(|_| vec!["consume".to_owned(), "api".to_owned()])
        .collect();
    let (successes, errors) = race(&dir, commands);
    assert_eq!(successes.len(), 10, "errors: {errors:?}");
    assert_eq!(errors, vec!["CONSUMPTION_LIMIT"; PROCESSES - 10]);
    let mut used: Vec<u64> = successes
        .iter()
        .map(|s| s["used"].as_u64().unwrap())
        .collect();
    used.sort_unstable();
    assert_eq!(
        used,
        (1..=10).collect::<Vec<u64>>(),
        "each unit counted once"
    );
    assert_eq!(ok(&dir, &["consumption", "api"])["used"], 10);
}

#[test]
fn concurrent_user_adds_never_exceed_ten_seats() {
    let dir = install(json!({
        "id": "lic_seats", "product": "acme", "seats": {"max": 10},
        "features": [{"code": "export"}]
    }));
    let commands = (0..PROCESSES)
        .map(|i| vec!["user".to_owned(), "add".to_owned(), format!("user{i:02}")])
        .collect();
    let (successes, errors) = race(&dir, commands);
    assert_eq!(successes.len(), 10, "errors: {errors:?}");
    assert_eq!(errors, vec!["SEAT_LIMIT"; PROCESSES - 10]);
    let status = ok(&dir, &["license", "status"]);
    assert_eq!(status["active_user_count"], 10);
    assert_eq!(status["can_add_user"], false);
    let usage = ok(&dir, &["license", "usage"]);
    assert_eq!(usage["users"].as_array().unwrap().len(), 10);
}

#[test]
fn concurrent_checkouts_share_three_floating_seats() {
    let dir = install(json!({
        "id": "lic_float", "product": "acme",
        "floating": {"seats": 3, "lease_secs": 600},
        "features": [{"code": "cad"}]
    }));
    let commands = (0..8)
        .map(|i| {
            vec![
                "lease".to_owned(),
                "checkout".to_owned(),
                "--client".to_owned(),
                format!("ws{i}"),
            ]
        })
        .collect();
    let (successes, errors) = race(&dir, commands);
    assert_eq!(successes.len(), 3, "errors: {errors:?}");
    assert_eq!(errors, vec!["FLOATING_EXHAUSTED"; 5]);
    let leases = ok(&dir, &["lease", "list"]);
    assert_eq!(leases["items"].as_array().unwrap().len(), 3);
}
