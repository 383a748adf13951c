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

    // New mutations on the old state, then everything reads back: a user
    // of the old state has no name, a new one may have one.
    assert_eq!(usage["users"][0]["name"], Value::Null, "{usage}");
    ok(
        &state,
        &[
            "user",
            "add",
            "carol",
            "--name",
            "Carol",
            "--email",
            "carol@example.com",
        ],
    );
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
    assert_eq!(usage["users"][1]["name"], "Carol", "{usage}");
    assert_eq!(usage["users"][1]["email"], "carol@example.com");
    assert_eq!(
        ok(&state, &["lease", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(ok(&state, &["license", "status"])["active_user_count"], 2);
}

/// `tests/fixtures/state-0f5f16d/` was written by the CLI built from commit
/// 0f5f16d (format 2, before installs had keys), all at
/// 2026-06-01T00:00:00Z: `keygen --out vendor` (kept beside the states,
/// with the license it issued, `desk.lic`: `lic-desk`, one device counted
/// by the vendor, two transfers, `api` metered at 100 a month); the
/// vendor's books `books` (`init`, `license add desk.lic`); the install
/// `desk` (`init --fingerprint desk-1`, `license add desk.lic`, `request`,
/// answered by `--state books respond`, `apply`, `user add alice`,
/// `consume api --amount 7`).
const FORMAT_2: &str = "tests/fixtures/state-0f5f16d";

/// A copy of the format 2 fixture: its `books` and `desk` states, its
/// vendor key and license.
fn format_2_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["vendor.key", "vendor.pub", "desk.lic"] {
        std::fs::copy(Path::new(FORMAT_2).join(name), dir.path().join(name)).unwrap();
    }
    for state in ["books", "desk"] {
        std::fs::create_dir(dir.path().join(state)).unwrap();
        std::fs::copy(
            Path::new(FORMAT_2).join(state).join("state.sqlite"),
            dir.path().join(state).join("state.sqlite"),
        )
        .unwrap();
    }
    // The desk was made on the fixture's machine; on this one it would be
    // a moved state with no device. Name this machine as its home, as if
    // the test ran where the fixture was made.
    let db = rusqlite::Connection::open(dir.path().join("desk/state.sqlite")).unwrap();
    match entitle::device::machine_fingerprint() {
        Some(here) => db.execute("UPDATE meta SET value = ?1 WHERE key = 'machine'", [here]),
        None => db.execute("DELETE FROM meta WHERE key = 'machine'", []),
    }
    .unwrap();
    dir
}

fn run_in(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .args(["--now", NOW, "--json"])
        .args(args)
        .output()
        .expect("the entitle binary runs");
    (exit_code(&out), json_out(&out))
}

fn ok_in(dir: &Path, args: &[&str]) -> Value {
    let (code, value) = run_in(dir, args);
    assert_eq!(code, 0, "{args:?}: {value}");
    value
}

fn fails_in(dir: &Path, args: &[&str], expected: &str) -> String {
    let (code, value) = run_in(dir, args);
    assert_eq!(value["error"]["code"], expected, "{args:?}: {value}");
    assert_eq!(code, 1);
    value["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn a_format_2_state_gets_an_install_key_and_an_activation_answered_before_is_freed_by_hand() {
    let dir = format_2_copy();
    let dir = dir.path();
    let desk = ["--state", "desk"];
    let books = ["--state", "books"];

    // Everything it held holds but its certificate, and it now has an
    // install key. The certificate names the device `desk-1` that `init
    // --fingerprint` named, and no machine (certificates did not carry one
    // then): a named device holds only on the machine a certificate names
    // (docs/semantics.md#what-stored-state-is-trusted), so it is answered again below.
    let (_, check) = run_in(dir, &at(&desk, &["check", "cad"]));
    assert_eq!(check["reason"], "NOT_ACTIVATED", "{check}");
    let request = ok_in(dir, &at(&desk, &["request", "--out", "desk.request"]));
    let key = request["request"]["install_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = ok_in(dir, &at(&desk, &["request"]));
    assert_eq!(
        again["request"]["install_key"],
        key.as_str(),
        "kept, not made again"
    );
    let db = rusqlite::Connection::open(dir.join("desk/state.sqlite")).unwrap();
    let version: String = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "6", "brought up to this format");

    // The books answered its request before installs had keys: they cannot
    // check its receipts or reports, and say how to free the slot by hand.
    let listed = ok_in(dir, &at(&books, &["activation", "list"]));
    assert_eq!(listed["items"][0]["install_key"], Value::Null);
    ok_in(dir, &at(&desk, &["report", "--out", "desk.report"]));
    fails_in(
        dir,
        &at(&books, &["ingest", "desk.report"]),
        "REPORT_INVALID",
    );
    ok_in(dir, &at(&desk, &["deactivate", "--receipt", "old.receipt"]));
    let message = fails_in(
        dir,
        &at(&books, &["receipt", "old.receipt"]),
        "RECEIPT_INVALID",
    );
    assert!(
        message.contains("entitle --state BOOKS deactivate --fingerprint desk-1"),
        "{message}"
    );
    ok_in(dir, &at(&books, &["deactivate", "--fingerprint", "desk-1"]));

    // Answered again, now with its key, the way back works.
    ok_in(dir, &at(&desk, &["request", "--out", "desk.request"]));
    ok_in(
        dir,
        &at(
            &books,
            &[
                "respond",
                "--key",
                "vendor.key",
                "--request",
                "desk.request",
                "--out",
                "desk.machine",
            ],
        ),
    );
    ok_in(dir, &at(&desk, &["apply", "desk.machine"]));
    assert_eq!(ok_in(dir, &at(&desk, &["check", "cad"]))["reason"], "OK");
    // The units it counted before are still counted.
    assert_eq!(ok_in(dir, &at(&desk, &["consumption", "api"]))["used"], 7);
    ok_in(dir, &at(&desk, &["report", "--out", "desk2.report"]));
    assert_eq!(
        ok_in(dir, &at(&books, &["ingest", "desk2.report"]))["sequence"],
        2
    );
    ok_in(dir, &at(&desk, &["deactivate", "--receipt", "new.receipt"]));
    let accepted = ok_in(dir, &at(&books, &["receipt", "new.receipt"]));
    assert_eq!(
        (
            accepted["transfers"].as_u64(),
            accepted["max_transfers"].as_u64()
        ),
        (Some(2), Some(2))
    );
}

/// `state` (`["--state", DIR]`) then `args`.
fn at<'a>(state: &[&'a str; 2], args: &[&'a str]) -> Vec<&'a str> {
    [&state[..], args].concat()
}
