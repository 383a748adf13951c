//! Trials from first use (docs/semantics.md#trials), driven through the `entitle`
//! command line as an administrator would: the built binary, state
//! directories in a temporary directory, `--json`, and `--now` to move
//! time. A trial runs `trial_secs` from its first use on an install; the
//! record of that first use outlives `license remove`, soft or hard; a
//! higher `serial` with a larger `trial_secs` extends it.

mod cli_common;
use cli_common::{exit_code, json_out};
use std::cell::RefCell;
use std::process::{Command, Output};

use rusqlite::Connection;
use serde_json::{json, Value};
use tempfile::TempDir;

const T0: &str = "2026-01-01T00:00:00Z";
const DAY: i64 = 86_400;

/// A working directory with a vendor key pair (`vendor.key`,
/// `vendor.pub`), in which every command runs at the time set by
/// [`World::at`], on the state directory `./entitle-state` unless a
/// command names another with `--state`.
struct World {
    dir: TempDir,
    now: RefCell<String>,
}

impl World {
    fn new() -> Self {
        let world = World {
            dir: tempfile::tempdir().unwrap(),
            now: RefCell::new(T0.to_owned()),
        };
        world.ok(&["keygen", "--out", "vendor"]);
        world
    }

    /// A world with the install `./entitle-state` of product `acme`.
    fn installed() -> Self {
        let world = World::new();
        world.init(&[]);
        world
    }

    /// `init` of an install trusting `vendor.pub` (`state`: `--state DIR`).
    fn init(&self, state: &[&str]) {
        let init = [state, &["init", "--pub", "vendor.pub", "--product", "acme"]].concat();
        assert_eq!(self.ok(&init)["created"], true);
    }

    fn at(&self, now: &str) {
        *self.now.borrow_mut() = now.to_owned();
    }

    /// Runs `entitle --json ARGS --now NOW`: the exit status and the one
    /// JSON object.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let now = self.now.borrow().clone();
        let output: Output = Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(self.dir.path())
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .arg("--json")
            .args(args)
            .args(["--now", &now])
            .output()
            .expect("the entitle binary runs");
        (exit_code(&output), json_out(&output))
    }

    /// A command that must succeed (exit 0).
    fn ok(&self, args: &[&str]) -> Value {
        let (code, value) = self.json(args);
        assert_eq!(code, 0, "entitle {args:?} failed: {value}");
        assert!(value.get("error").is_none(), "{value}");
        value
    }

    /// A command that must fail with `expected` (exit 1).
    fn fails(&self, args: &[&str], expected: &str) {
        let (code, value) = self.json(args);
        assert_eq!(
            value["error"]["code"], expected,
            "entitle {args:?}: {value}"
        );
        assert_eq!(code, 1, "entitle {args:?}: {value}");
    }

    /// `check FEATURE` on the install `state` (`[]`: the default one):
    /// the reason and until when it holds, with the exit status the
    /// answer promises (0 allowed, 1 denied, never an error).
    fn check(&self, state: &[&str], feature: &str) -> (String, Value) {
        let (code, value) = self.json(&[state, &["check", feature]].concat());
        assert!(value.get("error").is_none(), "an answer: {value}");
        let allowed = value["allowed"].as_bool().expect("`allowed`");
        assert_eq!(code, if allowed { 0 } else { 1 }, "{value}");
        (
            value["reason"].as_str().unwrap().to_owned(),
            value["until"].clone(),
        )
    }

    /// The reason `check FEATURE` gives on the default install.
    fn reason(&self, feature: &str) -> String {
        self.check(&[], feature).0
    }

    /// The one license `license list` shows on the install `state`.
    fn listed(&self, state: &[&str]) -> Value {
        let list = self.ok(&[state, &["license", "list"]].concat());
        let items = list["items"].as_array().expect("an `items` array");
        assert_eq!(items.len(), 1, "one license installed: {list}");
        items[0].clone()
    }

    /// Signs `spec` (a license document) into `file` with `vendor.key`.
    fn issue(&self, file: &str, spec: Value) {
        let spec_file = format!("{file}.json");
        std::fs::write(self.dir.path().join(&spec_file), spec.to_string()).unwrap();
        self.ok(&[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            &spec_file,
            "--out",
            file,
        ]);
    }

    /// The first-use record the default install keeps for `id`, read
    /// with the attacker's (and the auditor's) own tool.
    fn first_use_row(&self, id: &str) -> Option<i64> {
        let db = Connection::open(self.dir.path().join("entitle-state/state.sqlite")).unwrap();
        db.query_row("SELECT at FROM first_use WHERE id = ?1", [id], |r| r.get(0))
            .ok()
    }
}

/// The window shown for a license: its effective `starts_at` and
/// `expires_at`.
fn window(item: &Value) -> (Value, Value) {
    (item["starts_at"].clone(), item["expires_at"].clone())
}

fn unix(text: &str) -> i64 {
    entitle::Timestamp::parse(text).unwrap().unix()
}

/// A 14-day trial of `export`, with no dates of its own: the license a
/// vendor compiles into every copy of the application.
fn trial_spec() -> Value {
    json!({"id": "lic_trial", "product": "acme", "name": "Acme Trial",
           "trial": true, "trial_secs": 14 * DAY,
           "features": [{"code": "export"}]})
}

#[test]
fn a_trial_runs_from_first_use_and_neither_removal_nor_re_adding_restarts_it_but_a_higher_serial_extends_it(
) {
    let world = World::installed();
    world.issue("trial.lic", trial_spec());

    // Installed nine days after the install was made: the clock starts now.
    world.at("2026-01-10T00:00:00Z");
    let added = world.ok(&["license", "add", "trial.lic"]);
    assert_eq!(added["license"]["status"], "active");
    let item = world.listed(&[]);
    assert_eq!(item["trial"], true);
    assert_eq!(item["status"], "active");
    assert_eq!(
        window(&item),
        (json!("2026-01-10T00:00:00Z"), json!("2026-01-24T00:00:00Z")),
        "first use + trial_secs: {item}"
    );

    // During the trial: allowed, until the trial ends.
    world.at("2026-01-20T00:00:00Z");
    assert_eq!(
        world.check(&[], "export"),
        ("OK".to_owned(), json!("2026-01-24T00:00:00Z"))
    );
    world.at("2026-01-23T23:59:59Z");
    assert_eq!(world.reason("export"), "OK");

    // The window is half-open: at its end the trial is over.
    world.at("2026-01-24T00:00:00Z");
    assert_eq!(world.reason("export"), "EXPIRED");
    assert_eq!(world.listed(&[])["status"], "expired");

    // Removed, then added again a week later: the same window, still
    // over. Removing it answers with what it was.
    world.at("2026-01-25T00:00:00Z");
    let removed = world.ok(&["license", "remove", "lic_trial"]);
    assert_eq!(removed["removed"], true);
    assert_eq!(removed["hard"], false);
    assert_eq!(removed["trial"], true);
    assert_eq!(removed["expires_at"], "2026-01-24T00:00:00Z");
    assert_eq!(world.reason("export"), "NOT_LICENSED");
    world.at("2026-02-01T00:00:00Z");
    world.ok(&["license", "add", "trial.lic"]);
    let item = world.listed(&[]);
    assert_eq!(
        window(&item),
        (json!("2026-01-10T00:00:00Z"), json!("2026-01-24T00:00:00Z")),
        "re-adding does not restart the trial: {item}"
    );
    assert_eq!(item["status"], "expired");
    assert_eq!(world.reason("export"), "EXPIRED");

    // The vendor extends it: the same id, a higher serial, 30 days from
    // the same first use.
    world.issue(
        "extended.lic",
        json!({"id": "lic_trial", "product": "acme", "serial": 1,
               "trial": true, "trial_secs": 30 * DAY,
               "features": [{"code": "export"}]}),
    );
    world.ok(&["license", "add", "extended.lic"]);
    let item = world.listed(&[]);
    assert_eq!(item["serial"], 1);
    assert_eq!(
        window(&item),
        (json!("2026-01-10T00:00:00Z"), json!("2026-02-09T00:00:00Z")),
        "extended from the first use, not from now: {item}"
    );
    assert_eq!(
        world.check(&[], "export"),
        ("OK".to_owned(), json!("2026-02-09T00:00:00Z"))
    );
    // The shorter issue cannot come back to shorten (or restart) it.
    world.fails(&["license", "add", "trial.lic"], "LICENSE_REPLAYED");
    world.at("2026-02-09T00:00:00Z");
    assert_eq!(world.reason("export"), "EXPIRED");

    // A hard removal buries the id and keeps the first-use record too.
    world.at("2026-02-10T00:00:00Z");
    let removed = world.ok(&["license", "remove", "lic_trial", "--hard"]);
    assert_eq!(removed["hard"], true);
    assert_eq!(
        world.first_use_row("lic_trial"),
        Some(unix("2026-01-10T00:00:00Z")),
        "the first use outlives a hard removal"
    );
    world.fails(&["license", "add", "extended.lic"], "LICENSE_REVOKED");
    assert_eq!(world.reason("export"), "NOT_LICENSED");
}

#[test]
fn a_soft_removal_keeps_the_first_use_record_in_the_state() {
    let world = World::installed();
    world.issue("trial.lic", trial_spec());
    world.at("2026-01-10T00:00:00Z");
    world.ok(&["license", "add", "trial.lic"]);
    world.at("2026-01-11T00:00:00Z");
    world.ok(&["license", "remove", "lic_trial"]);
    assert_eq!(
        world.first_use_row("lic_trial"),
        Some(unix("2026-01-10T00:00:00Z"))
    );
    // Added again while the first window still runs: it ends when it did.
    world.at("2026-01-12T00:00:00Z");
    world.ok(&["license", "add", "trial.lic"]);
    assert_eq!(
        world.check(&[], "export"),
        ("OK".to_owned(), json!("2026-01-24T00:00:00Z"))
    );
}

#[test]
fn every_install_of_the_same_compiled_in_trial_starts_its_own_clock() {
    let world = World::new();
    world.issue("trial.lic", trial_spec());
    let (early, late) = (["--state", "early"], ["--state", "late"]);
    world.init(&early);
    world.init(&late);

    world.at("2026-01-10T00:00:00Z");
    world.ok(&[&early[..], &["license", "add", "trial.lic"]].concat());
    world.at("2026-03-01T00:00:00Z");
    world.ok(&[&late[..], &["license", "add", "trial.lic"]].concat());

    world.at("2026-03-05T00:00:00Z");
    assert_eq!(
        window(&world.listed(&early)),
        (json!("2026-01-10T00:00:00Z"), json!("2026-01-24T00:00:00Z"))
    );
    assert_eq!(
        window(&world.listed(&late)),
        (json!("2026-03-01T00:00:00Z"), json!("2026-03-15T00:00:00Z"))
    );
    assert_eq!(world.check(&early, "export").0, "EXPIRED");
    assert_eq!(
        world.check(&late, "export"),
        ("OK".to_owned(), json!("2026-03-15T00:00:00Z"))
    );
    world.at("2026-03-15T00:00:00Z");
    assert_eq!(world.check(&late, "export").0, "EXPIRED");
}

#[test]
fn a_trial_with_its_own_dates_takes_the_tighter_bounds() {
    let world = World::new();
    // Signed to run in February only; each install gets 14 days of it.
    world.issue(
        "feb.lic",
        json!({"id": "lic_feb", "product": "acme", "trial": true, "trial_secs": 14 * DAY,
               "starts_at": "2026-02-01T00:00:00Z", "expires_at": "2026-03-01T00:00:00Z",
               "features": [{"code": "export"}]}),
    );
    let (before, late) = (["--state", "before"], ["--state", "late"]);
    world.init(&before);
    world.init(&late);

    // First used before `starts_at`: pending until then, and the trial's
    // end (first use + 14 days) comes before `expires_at`.
    world.at("2026-01-20T00:00:00Z");
    world.ok(&[&before[..], &["license", "add", "feb.lic"]].concat());
    let item = world.listed(&before);
    assert_eq!(item["status"], "pending");
    assert_eq!(
        window(&item),
        (json!("2026-02-01T00:00:00Z"), json!("2026-02-03T00:00:00Z"))
    );
    assert_eq!(world.check(&before, "export").0, "NOT_YET_VALID");
    world.at("2026-02-02T00:00:00Z");
    assert_eq!(
        world.check(&before, "export"),
        ("OK".to_owned(), json!("2026-02-03T00:00:00Z"))
    );
    world.at("2026-02-03T00:00:00Z");
    assert_eq!(world.check(&before, "export").0, "EXPIRED");

    // First used late in February: it starts at first use and ends at
    // `expires_at`, before its 14 days are up.
    world.at("2026-02-20T00:00:00Z");
    world.ok(&[&late[..], &["license", "add", "feb.lic"]].concat());
    assert_eq!(
        window(&world.listed(&late)),
        (json!("2026-02-20T00:00:00Z"), json!("2026-03-01T00:00:00Z"))
    );
    assert_eq!(
        world.check(&late, "export"),
        ("OK".to_owned(), json!("2026-03-01T00:00:00Z"))
    );
    world.at("2026-03-01T00:00:00Z");
    assert_eq!(world.check(&late, "export").0, "EXPIRED");
}

#[test]
fn setting_the_clock_back_during_a_trial_is_clock_tampered_not_a_fresh_trial() {
    let world = World::installed();
    world.issue("trial.lic", trial_spec());
    world.at("2026-01-10T00:00:00Z");
    world.ok(&["license", "add", "trial.lic"]);
    world.at("2026-01-20T00:00:00Z");
    assert_eq!(world.reason("export"), "OK");

    // Back three days, and back before the first use: the trial is held,
    // not restarted, and adding it again there changes nothing.
    for back in ["2026-01-17T00:00:00Z", "2026-01-05T00:00:00Z"] {
        world.at(back);
        assert_eq!(
            world.check(&[], "export"),
            ("CLOCK_TAMPERED".to_owned(), Value::Null)
        );
        world.ok(&["license", "add", "trial.lic"]);
        assert_eq!(world.reason("export"), "CLOCK_TAMPERED");
        assert_eq!(
            window(&world.listed(&[])),
            (json!("2026-01-10T00:00:00Z"), json!("2026-01-24T00:00:00Z"))
        );
    }

    // The clock right again: the same window, ending when it always did.
    world.at("2026-01-21T00:00:00Z");
    assert_eq!(
        world.check(&[], "export"),
        ("OK".to_owned(), json!("2026-01-24T00:00:00Z"))
    );
    world.at("2026-01-24T00:00:00Z");
    assert_eq!(world.reason("export"), "EXPIRED");
}
