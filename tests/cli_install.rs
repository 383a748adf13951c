//! The install half of the `entitle` command line, driven as an
//! administrator drives it: the built binary, a temporary directory,
//! `--json`, and `--now` to move time.

mod cli_common;
use cli_common::{exit_code, json_out};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use tempfile::TempDir;

const T0: &str = "2026-01-01T00:00:00Z";

/// A working directory with a vendor key pair (`vendor.key`, `vendor.pub`),
/// in which every command runs at the time set by [`World::at`].
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

    fn at(&self, now: &str) {
        *self.now.borrow_mut() = now.to_owned();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Runs `entitle ARGS --now NOW`, without `--json`.
    fn run(&self, args: &[&str]) -> Output {
        let now = self.now.borrow().clone();
        Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(self.dir.path())
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .args(args)
            .args(["--now", &now])
            .output()
            .expect("the entitle binary runs")
    }

    /// Runs with `--json`: the exit status and the one JSON object.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        (exit_code(&output), json_out(&output))
    }

    /// A command that must succeed (exit 0).
    fn ok(&self, args: &[&str]) -> Value {
        let (code, value) = self.json(args);
        assert_eq!(code, 0, "entitle {args:?} failed: {value}");
        assert!(value.get("error").is_none(), "{value}");
        value
    }

    /// A command that must fail with `expected` (exit 1); returns the message.
    fn fails(&self, args: &[&str], expected: &str) -> String {
        let (code, value) = self.json(args);
        assert_eq!(
            value["error"]["code"], expected,
            "entitle {args:?}: {value}"
        );
        assert_eq!(code, 1, "entitle {args:?}: {value}");
        value["error"]["message"].as_str().unwrap().to_owned()
    }

    /// A check that must answer "denied": exit 1, an answer, not an error.
    fn denied(&self, args: &[&str]) -> Value {
        let (code, value) = self.json(args);
        assert_eq!(code, 1, "entitle {args:?}: {value}");
        assert!(
            value.get("error").is_none(),
            "a denial, not an error: {value}"
        );
        value
    }

    /// Signs `spec` (a license document) into `file` with `vendor.key`.
    fn issue(&self, file: &str, spec: Value) {
        let spec_file = format!("{file}.json");
        self.write(&spec_file, &spec.to_string());
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
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("an `items` array")
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The team license of these tests: 2 seats (3 with overage), 2 floating
/// seats with borrowing, a quota and a metered feature; it expires on
/// 2026-07-01 with two weeks of grace.
fn team_spec() -> Value {
    json!({
        "id": "lic_team", "product": "acme", "name": "Team",
        "seats": {"max": 2, "hard_max": 3},
        "floating": {"seats": 2, "lease_secs": 600, "borrow_max_secs": 7 * 86400},
        "expires_at": "2026-07-01T00:00:00Z", "grace_secs": 14 * 86400,
        "features": [
            {"code": "export"},
            {"code": "environments", "limit": 50},
            {"code": "api", "consumption": {"max": 10, "overage": 2, "reset": "monthly"}}
        ]
    })
}

/// A world with an install (`./entitle-state`) holding the team license.
fn team_install() -> World {
    let world = World::new();
    world.issue("team.lic", team_spec());
    let init = world.ok(&["init", "--pub", "vendor.pub", "--product", "acme"]);
    assert_eq!(init["created"], true);
    assert_eq!(init["product"], "acme");
    let added = world.ok(&["license", "add", "team.lic"]);
    assert_eq!(added["id"], "lic_team");
    assert_eq!(added["license"]["status"], "active");
    world
}

#[test]
fn seats_fill_into_overage_then_refuse_and_usage_counts_them() {
    let world = team_install();
    assert_eq!(
        world.ok(&["user", "add", "alice", "--type", "admin"])["reason"],
        "OK"
    );
    let bob = world.ok(&["user", "add", "bob"]);
    assert_eq!(bob["reason"], "OK");
    assert_eq!(bob["user_type"], "user", "the default type");

    // The third user is allowed as overage, and `can-add` says so first.
    let can = world.ok(&["user", "can-add"]);
    assert_eq!(can["allowed"], true);
    assert_eq!(can["reason"], "OVERAGE");
    let carol = world.ok(&["user", "add", "carol"]);
    assert_eq!(carol["reason"], "OVERAGE");
    assert_eq!(carol["overage"], true);

    // The fourth is beyond the hard limit.
    let cannot = world.denied(&["user", "can-add"]);
    assert_eq!(cannot["allowed"], false);
    assert_eq!(cannot["reason"], "SEAT_LIMIT");
    let message = world.fails(&["user", "add", "dave"], "SEAT_LIMIT");
    assert!(message.contains("dave"), "{message}");

    let status = world.ok(&["license", "status"]);
    assert_eq!(status["active_user_count"], 3);
    assert_eq!(status["license_seats"], 2);
    assert_eq!(status["hard_seats"], 3);
    assert_eq!(status["can_add_user"], false);

    let usage = world.ok(&["license", "usage"]);
    let users = usage["users"].as_array().unwrap();
    let names: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(users[0]["user_type"], "admin");
    assert_eq!(users[0]["active"], true);
    assert_eq!(users[0]["last_active_at"], T0);
    assert_eq!(
        usage["summary"],
        json!({"admin": {"total": 1, "active": 1, "inactive": 0},
               "user": {"total": 2, "active": 2, "inactive": 0}})
    );
    let page = world.ok(&["license", "usage", "--offset", "1", "--size", "1"]);
    assert_eq!(page["users"].as_array().unwrap().len(), 1);
    assert_eq!(page["users"][0]["id"], "bob");
    assert_eq!(
        page["summary"]["user"]["total"], 2,
        "the summary covers every user"
    );

    // Removing a user frees a seat; activity needs a known user.
    world.ok(&["user", "remove", "carol"]);
    assert_eq!(world.ok(&["user", "can-add"])["reason"], "OVERAGE");
    world.fails(&["user", "remove", "carol"], "USER_NOT_FOUND");
    world.at("2026-01-02T00:00:00Z");
    let activity = world.ok(&["user", "activity", "alice"]);
    assert_eq!(activity["recorded"], true);
    let usage = world.ok(&["license", "usage"]);
    assert_eq!(usage["users"][0]["last_active_at"], "2026-01-02T00:00:00Z");
    world.fails(&["user", "activity", "carol"], "USER_NOT_FOUND");

    assert_eq!(ids(&world.ok(&["user", "licenses", "alice"])), ["lic_team"]);
}

#[test]
fn checks_answer_with_exit_codes_until_grace_and_expiry() {
    let world = team_install();
    let (code, export) = world.json(&["check", "export"]);
    assert_eq!(code, 0);
    assert_eq!(
        export,
        json!({"feature": "export", "allowed": true, "reason": "OK",
               "until": "2026-07-01T00:00:00Z", "warning": null})
    );
    let missing = world.denied(&["check", "simulate"]);
    assert_eq!(
        missing,
        json!({"feature": "simulate", "allowed": false, "reason": "NOT_LICENSED",
               "until": null, "warning": null})
    );
    assert_eq!(
        world.ok(&["limit", "environments"]),
        json!({"code": "environments", "limit": 50})
    );
    assert_eq!(world.ok(&["limit", "export"])["limit"], Value::Null);

    // Within two weeks of the end: allowed, with a notice.
    world.at("2026-06-20T00:00:00Z");
    let ending = world.ok(&["check", "export"]);
    assert_eq!(
        (&ending["allowed"], &ending["warning"]),
        (&json!(true), &json!("ENDING"))
    );
    let listed = world.ok(&["license", "list"]);
    assert_eq!(listed["items"][0]["floating"]["borrow_max_secs"], 7 * 86400);
    assert_eq!(listed["items"][0]["features"][0]["floating"], Value::Null);

    // Past expiry, within the two weeks of grace.
    world.at("2026-07-05T00:00:00Z");
    let grace = world.ok(&["check", "export"]);
    assert_eq!(grace["reason"], "IN_GRACE");
    assert_eq!(grace["allowed"], true);
    assert_eq!(grace["warning"], "IN_GRACE");
    assert_eq!(grace["until"], "2026-07-15T00:00:00Z");

    // Beyond grace: every right ends.
    world.at("2026-07-20T00:00:00Z");
    let expired = world.denied(&["check", "export"]);
    assert_eq!(expired["reason"], "EXPIRED");
    world.fails(&["consume", "api"], "EXPIRED");
    let list = world.ok(&["license", "list"]);
    assert_eq!(list["items"][0]["status"], "expired");

    // Going back in time is a tampered clock, not a way around expiry.
    world.at("2026-03-01T00:00:00Z");
    assert_eq!(
        world.denied(&["check", "export"])["reason"],
        "CLOCK_TAMPERED"
    );
}

#[test]
fn floating_leases_check_out_heartbeat_borrow_and_check_in() {
    let world = team_install();
    let first = world.ok(&["lease", "checkout", "--client", "ws1"]);
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["expires_at"], "2026-01-01T00:10:00Z");
    assert_eq!(first["client"], "ws1");
    let again = world.ok(&["lease", "checkout", "--client", "ws1"]);
    assert_eq!(again["id"], first_id, "the same client renews its lease");
    let second = world.ok(&["lease", "checkout", "--client", "ws2"]);
    let second_id = second["id"].as_str().unwrap().to_owned();
    world.fails(
        &["lease", "checkout", "--client", "ws3"],
        "FLOATING_EXHAUSTED",
    );

    world.at("2026-01-01T00:05:00Z");
    let renewed = world.ok(&["lease", "heartbeat", &first_id]);
    assert_eq!(renewed["expires_at"], "2026-01-01T00:15:00Z");
    let borrowed = world.ok(&["lease", "borrow", &first_id, "--secs", "259200"]);
    assert_eq!(borrowed["borrowed_until"], "2026-01-04T00:05:00Z");
    assert_eq!(borrowed["expires_at"], "2026-01-04T00:05:00Z");
    world.fails(
        &["lease", "borrow", &second_id, "--secs", "2592000"],
        "BORROW_TOO_LONG",
    );
    let list = world.ok(&["lease", "list"]);
    let mut live = ids(&list);
    live.sort();
    let mut expected = vec![first_id.clone(), second_id.clone()];
    expected.sort();
    assert_eq!(live, expected);

    // ws2 stops heartbeating: its lease lapses, and its seat is free again.
    world.at("2026-01-01T00:11:00Z");
    world.fails(&["lease", "heartbeat", &second_id], "LEASE_EXPIRED");
    assert_eq!(ids(&world.ok(&["lease", "list"])), [first_id.as_str()]);
    let third = world.ok(&["lease", "checkout", "--client", "ws3"]);
    let third_id = third["id"].as_str().unwrap().to_owned();

    let checked_in = world.ok(&["lease", "checkin", &third_id]);
    assert_eq!(checked_in["checked_in"], true);
    // ws1's borrow holds its seat until it ends: neither a check-in nor a
    // return frees it before.
    world.fails(&["lease", "return", &first_id], "LEASE_BORROWED");
    world.fails(&["lease", "checkin", &first_id], "LEASE_BORROWED");
    assert_eq!(ids(&world.ok(&["lease", "list"])), [first_id.as_str()]);
    world.at("2026-01-04T00:05:00Z");
    assert_eq!(world.ok(&["lease", "list"])["items"], json!([]));
    let returned = world.ok(&["lease", "return", &first_id]);
    assert_eq!(returned["returned"], true);
    world.fails(&["lease", "checkin", &third_id], "LEASE_NOT_FOUND");
}

#[test]
fn consumption_runs_into_overage_then_is_refused_and_resets_monthly() {
    let world = team_install();
    let first = world.ok(&["consume", "api", "--amount", "8"]);
    assert_eq!(first["allowed"], true);
    assert_eq!(first["used"], 8);
    assert_eq!(first["max"], 10);
    assert_eq!(first["overage"], false);
    assert_eq!(first["period_ends_at"], "2026-02-01T00:00:00Z");
    let over = world.ok(&["consume", "api", "--amount", "3"]);
    assert_eq!(over["used"], 11);
    assert_eq!(over["overage"], true);
    assert_eq!(over["reason"], "OVERAGE");
    let message = world.fails(&["consume", "api", "--amount", "2"], "CONSUMPTION_LIMIT");
    assert!(message.contains("2026-02-01T00:00:00Z"), "{message}");
    assert_eq!(
        world.ok(&["consumption", "api"])["used"],
        11,
        "all or nothing"
    );
    assert_eq!(world.ok(&["consume", "api"])["used"], 12, "one unit fits");

    world.at("2026-02-01T00:00:01Z");
    let reset = world.ok(&["consume", "api"]);
    assert_eq!(reset["used"], 1);
    assert_eq!(reset["period_ends_at"], "2026-03-01T00:00:00Z");
    world.fails(&["consume", "simulate"], "NOT_LICENSED");
}

/// The attack of "Trust, round two": a perpetual license with 100 units a
/// month, and `--now` set a month further each time, spends 25 future
/// months' units in one real month. Back on the real clock the clock is
/// behind the latest time seen, and a count that resets by the calendar
/// is as time-dependent as an expiry: `check` and `consume` hold it
/// (`CLOCK_TAMPERED`), while the same license's features that do not
/// change with time keep working.
#[test]
fn a_monthly_meter_pre_consumed_with_the_clock_set_forward_is_held_on_the_real_clock() {
    let world = World::new();
    world.issue(
        "meter.lic",
        json!({"id": "lic_meter", "product": "acme",
               "features": [{"code": "api", "consumption": {"max": 100, "reset": "monthly"}},
                            {"code": "credits", "consumption": {"max": 1000}},
                            {"code": "export"}]}),
    );
    world.ok(&["init", "--pub", "vendor.pub", "--product", "acme"]);
    world.ok(&["license", "add", "meter.lic"]);
    world.ok(&["consume", "api", "--amount", "100"]);
    world.fails(&["consume", "api"], "CONSUMPTION_LIMIT");
    for month in 1..=25 {
        let (year, month) = (2026 + month / 12, month % 12 + 1);
        world.at(&format!("{year}-{month:02}-01T00:00:00Z"));
        let spent = world.ok(&["consume", "api", "--amount", "100"]);
        assert_eq!(spent["used"], 100, "{spent}");
    }

    // Back on the real clock, in the month the license was installed.
    world.at("2026-01-15T00:00:00Z");
    let held = world.denied(&["check", "api"]);
    assert_eq!(held["reason"], "CLOCK_TAMPERED", "{held}");
    let message = world.fails(&["consume", "api"], "CLOCK_TAMPERED");
    assert!(message.contains("set the clock right"), "{message}");
    // Nothing that does not change with time is held.
    assert_eq!(world.ok(&["check", "export"])["reason"], "OK");
    assert_eq!(world.ok(&["check", "credits"])["reason"], "OK");
    assert_eq!(world.ok(&["consume", "credits"])["used"], 1);
}

#[test]
fn revocations_apply_and_listings_filter_order_and_page() {
    let world = team_install();
    world.issue(
        "a.lic",
        json!({"id": "lic_a", "product": "acme", "expires_at": "2026-03-01T00:00:00Z",
               "features": [{"code": "export"}]}),
    );
    world.issue(
        "b.lic",
        json!({"id": "lic_b", "product": "acme", "expires_at": "2027-01-01T00:00:00Z",
               "features": [{"code": "render"}]}),
    );
    world.issue(
        "c.lic",
        json!({"id": "lic_c", "product": "acme", "features": [{"code": "plot"}]}),
    );
    world.ok(&["license", "add", "a.lic"]);
    world.ok(&["license", "add", "b.lic"]);
    let applied = world.ok(&["apply", "c.lic"]);
    assert_eq!(applied, json!({"applied": "license", "id": "lic_c"}));

    // The vendor revokes lic_b; the install applies the list offline.
    world.ok(&[
        "revoke",
        "--key",
        "vendor.key",
        "--id",
        "lic_b",
        "--out",
        "b.revocations",
    ]);
    let revoked = world.ok(&["apply", "b.revocations"]);
    assert_eq!(revoked, json!({"applied": "revocations", "ids": ["lic_b"]}));
    assert_eq!(world.denied(&["check", "render"])["reason"], "REVOKED");
    world.fails(&["license", "add", "b.lic"], "LICENSE_REVOKED");

    let by_status = world.ok(&["license", "list", "--filter", r#"status eq "revoked""#]);
    assert_eq!(ids(&by_status), ["lic_b"]);
    let soon = world.ok(&[
        "license",
        "list",
        "--filter",
        r#"expires_at lt "2026-06-01T00:00:00Z" or id eq "lic_c""#,
    ]);
    assert_eq!(ids(&soon), ["lic_a", "lic_c"]);
    let latest_first = world.ok(&["license", "list", "--order", "-expires_at"]);
    let dated: Vec<String> = ids(&latest_first)
        .into_iter()
        .filter(|id| id != "lic_c")
        .collect();
    assert_eq!(dated, ["lic_b", "lic_team", "lic_a"], "{latest_first}");

    // A page at a time: the cursor resumes where the last page ended.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut args = vec!["license", "list", "--order", "id", "--limit", "3"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = world.ok(&args);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["lic_a", "lic_b", "lic_c", "lic_team"]);

    // A soft removal can be undone by adding the file again; a hard one
    // cannot.
    world.ok(&["license", "remove", "lic_a"]);
    world.ok(&["license", "add", "a.lic"]);
    let removed = world.ok(&["license", "remove", "lic_c", "--hard"]);
    assert_eq!(removed["hard"], true);
    world.fails(&["license", "add", "c.lic"], "LICENSE_REVOKED");
    world.fails(&["license", "remove", "lic_c"], "LICENSE_NOT_FOUND");
}

#[test]
fn air_gapped_activation_round_trip_counted_by_the_vendor() {
    let world = World::new();
    world.issue(
        "desk.lic",
        json!({"id": "lic_desk", "product": "acme",
               "activations": {"max": 1, "counted_by": "vendor"},
               "features": [{"code": "cad"}]}),
    );
    // The vendor keeps a state of its own to count activations by hand.
    world.ok(&[
        "--state",
        "vendor-state",
        "init",
        "--pub",
        "vendor.pub",
        "--product",
        "acme",
    ]);
    world.ok(&["--state", "vendor-state", "license", "add", "desk.lic"]);

    // The customer's air-gapped machine.
    let desk = ["--state", "desk-1"];
    let init = world.ok(&[
        &desk[..],
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--fingerprint",
            "desk-1",
        ],
    ]
    .concat());
    assert_eq!(init["fingerprint"], "desk-1");
    world.ok(&[&desk[..], &["license", "add", "desk.lic"]].concat());
    assert_eq!(
        world.denied(&[&desk[..], &["check", "cad"]].concat())["reason"],
        "NOT_ACTIVATED"
    );
    world.fails(&[&desk[..], &["activate"]].concat(), "CERTIFICATE_REQUIRED");
    let request = world.ok(&[&desk[..], &["request", "--out", "desk-1.request"]].concat());
    assert_eq!(request["license_id"], "lic_desk");
    assert_eq!(request["fingerprint"], "desk-1");
    let carried: Value = serde_json::from_str(&world.read("desk-1.request")).unwrap();
    assert_eq!(carried["v"], 1);
    assert_eq!(carried["fingerprint"], "desk-1");
    assert!(carried["nonce"].as_str().is_some_and(|n| !n.is_empty()));

    // The vendor answers, counting the device in its state first.
    let response = world.ok(&[
        "--state",
        "vendor-state",
        "respond",
        "--key",
        "vendor.key",
        "--request",
        "desk-1.request",
        "--expires",
        "2027-01-01T00:00:00Z",
        "--out",
        "desk-1.machine",
    ]);
    assert_eq!(response["license_id"], "lic_desk");
    assert_eq!(response["counted_in"], "vendor-state");
    assert!(world
        .read("desk-1.machine")
        .starts_with("-----BEGIN ENTITLE MACHINE-----"));
    let counted = world.ok(&["--state", "vendor-state", "activation", "list"]);
    assert_eq!(counted["items"][0]["fingerprint"], "desk-1");

    // Back on the air-gapped machine.
    let applied = world.ok(&[&desk[..], &["apply", "desk-1.machine"]].concat());
    assert_eq!(
        applied,
        json!({"applied": "machine", "license_id": "lic_desk", "fingerprint": "desk-1",
               "expires_at": "2027-01-01T00:00:00Z"})
    );
    let check = world.ok(&[&desk[..], &["check", "cad"]].concat());
    assert_eq!(check["reason"], "OK");
    assert_eq!(check["until"], "2027-01-01T00:00:00Z");
    let activations = world.ok(&[&desk[..], &["activation", "list"]].concat());
    assert_eq!(activations["items"][0]["certificate"], true);

    // A second machine asks too: the vendor's state refuses, over `max`.
    let desk2 = ["--state", "desk-2"];
    world.ok(&[
        &desk2[..],
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--fingerprint",
            "desk-2",
        ],
    ]
    .concat());
    world.ok(&[&desk2[..], &["license", "add", "desk.lic"]].concat());
    world.ok(&[&desk2[..], &["request", "--out", "desk-2.request"]].concat());
    world.fails(
        &[
            "--state",
            "vendor-state",
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "desk-2.request",
            "--out",
            "desk-2.machine",
        ],
        "ACTIVATION_LIMIT",
    );
    assert!(!world.path("desk-2.machine").exists(), "nothing was signed");

    // $ENTITLE_STATE names the vendor state as well as --state does.
    let by_env = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(world.dir.path())
        .env("ENTITLE_STATE", "vendor-state")
        .env("ENTITLE_NOW", T0)
        .args(["--json", "respond", "--key", "vendor.key"])
        .args(["--request", "desk-2.request"])
        .output()
        .unwrap();
    assert_eq!(json_out(&by_env)["error"]["code"], "ACTIVATION_LIMIT");
    assert_eq!(exit_code(&by_env), 1);

    // Without a named state nothing is counted: the vendor signs blind.
    let blind = world.ok(&[
        "respond",
        "--key",
        "vendor.key",
        "--request",
        "desk-2.request",
    ]);
    assert_eq!(blind["counted_in"], Value::Null);
    assert!(blind["token"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN ENTITLE MACHINE-----"));
    assert_eq!(
        world.ok(&["--state", "vendor-state", "activation", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn install_counted_activations_and_transfers() {
    let world = World::new();
    world.issue(
        "site.lic",
        json!({"id": "lic_site", "product": "acme",
               "activations": {"max": 1, "max_transfers": 1},
               "features": [{"code": "cad"}]}),
    );
    world.ok(&[
        "init",
        "--pub",
        "vendor.pub",
        "--product",
        "acme",
        "--fingerprint",
        "desk-1",
    ]);
    world.ok(&["license", "add", "site.lic"]);
    assert_eq!(world.denied(&["check", "cad"])["reason"], "NOT_ACTIVATED");

    let activated = world.ok(&["activate"]);
    assert_eq!(activated["fingerprint"], "desk-1");
    assert_eq!(activated["license_ids"], json!(["lic_site"]));
    assert_eq!(world.ok(&["check", "cad"])["reason"], "OK");
    world.ok(&["activate"]); // idempotent
    world.fails(&["activate", "--fingerprint", "desk-2"], "ACTIVATION_LIMIT");
    let list = world.ok(&["activation", "list"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["certificate"], false);

    // The one transfer the license allows: desk-1 to desk-2.
    let moved = world.ok(&["deactivate"]);
    assert_eq!(moved["license_ids"], json!(["lic_site"]));
    assert_eq!(world.denied(&["check", "cad"])["reason"], "NOT_ACTIVATED");
    world.ok(&["activate", "--fingerprint", "desk-2"]);
    world.fails(&["deactivate", "--fingerprint", "desk-2"], "TRANSFER_LIMIT");
    world.fails(&["deactivate", "--fingerprint", "desk-9"], "NOT_ACTIVATED");
}

#[test]
fn init_changes_nothing_once_the_state_exists_and_keys_rotate_by_a_signed_token() {
    let world = team_install();
    // The same settings again: nothing to change, so nothing refused.
    let same = world.ok(&["init", "--pub", "vendor.pub", "--product", "acme"]);
    assert_eq!(same["created"], false);
    let message = world.fails(
        &["init", "--pub", "vendor.pub", "--product", "other"],
        "STATE_EXISTS",
    );
    assert!(message.contains("acme"), "{message}");

    // A new key offered to init is refused: keys change only by rotation.
    world.ok(&["keygen", "--out", "vendor2"]);
    let message = world.fails(
        &["init", "--pub", "vendor2.pub", "--product", "acme"],
        "STATE_EXISTS",
    );
    assert!(message.contains("entitle rotate"), "{message}");
    world.fails(
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--release-date",
            "2020-01-01T00:00:00Z",
        ],
        "STATE_EXISTS",
    );
    world.write(
        "new.json",
        &json!({"id": "lic_new", "product": "acme", "features": [{"code": "plot"}]}).to_string(),
    );
    world.ok(&[
        "issue",
        "--key",
        "vendor2.key",
        "--spec",
        "new.json",
        "--out",
        "new.lic",
    ]);
    world.fails(&["license", "add", "new.lic"], "UNKNOWN_KEY");

    // The vendor signs a rotation with the key the install trusts.
    let rotation = world.ok(&[
        "rotate",
        "--key",
        "vendor.key",
        "--pub",
        "vendor2.pub",
        "--product",
        "acme",
        "--out",
        "to-vendor2.keys",
    ]);
    assert!(world
        .read("to-vendor2.keys")
        .starts_with("-----BEGIN ENTITLE KEYS-----"));
    let applied = world.ok(&["apply", "to-vendor2.keys"]);
    assert_eq!(applied["applied"], "keys");
    assert_eq!(applied["trusted"], rotation["trusted"]);
    world.ok(&["license", "add", "new.lic"]);
    assert_eq!(world.ok(&["check", "plot"])["reason"], "OK");
    assert_eq!(world.ok(&["check", "export"])["reason"], "OK");

    // A rotation signed by a key the install never trusted is refused.
    world.ok(&["keygen", "--out", "stranger"]);
    world.ok(&[
        "rotate",
        "--key",
        "stranger.key",
        "--pub",
        "stranger.pub",
        "--out",
        "stranger.keys",
    ]);
    world.fails(&["apply", "stranger.keys"], "UNKNOWN_KEY");
}

#[test]
fn assigned_users_get_rights_only_for_themselves() {
    let world = team_install();
    world.issue(
        "named.lic",
        json!({"id": "lic_named", "product": "acme", "assigned_users": ["ann"],
               "features": [{"code": "render"}]}),
    );
    world.ok(&["license", "add", "named.lic"]);
    let ann = world.ok(&["check", "render", "--user", "ann"]);
    assert_eq!(ann["user"], "ann");
    assert_eq!(ann["allowed"], true);
    assert_eq!(
        world.denied(&["check", "render", "--user", "bo"])["reason"],
        "NOT_LICENSED"
    );
    let mut for_ann = ids(&world.ok(&["user", "licenses", "ann"]));
    for_ann.sort();
    assert_eq!(for_ann, ["lic_named", "lic_team"]);
    assert_eq!(ids(&world.ok(&["user", "licenses", "bo"])), ["lic_team"]);
}

#[test]
fn human_output_reads_well_and_says_what_to_do_next() {
    let world = team_install();
    let text = |output: &Output| {
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let denied = world.run(&["check", "simulate"]);
    assert_eq!(exit_code(&denied), 1);
    let (out, _) = text(&denied);
    assert!(
        out.starts_with("DENIED: `simulate` (NOT_LICENSED)"),
        "{out}"
    );
    assert!(out.contains("entitle license add"), "{out}");

    for user in ["a", "b", "c"] {
        assert_eq!(exit_code(&world.run(&["user", "add", user])), 0);
    }
    let refused = world.run(&["user", "add", "d"]);
    assert_eq!(exit_code(&refused), 1);
    let (out, err) = text(&refused);
    assert!(out.is_empty(), "errors go to stderr: {out}");
    assert!(err.starts_with("error [SEAT_LIMIT]:"), "{err}");

    let status = world.run(&["license", "status"]);
    let (out, _) = text(&status);
    assert!(out.contains("3 active"), "{out}");
    assert!(out.contains("SEAT_LIMIT"), "{out}");

    let missing = world.run(&["--state", "nowhere", "license", "list"]);
    let (_, err) = text(&missing);
    assert!(err.contains("entitle init"), "{err}");

    world.issue(
        "desk.lic",
        json!({"id": "lic_desk", "product": "acme",
               "activations": {"max": 1, "counted_by": "vendor"},
               "features": [{"code": "cad"}]}),
    );
    let added = world.run(&["license", "add", "desk.lic"]);
    let (out, _) = text(&added);
    assert!(out.contains("entitle request"), "{out}");
    let request = world.run(&["request", "--out", "req.json"]);
    let (out, _) = text(&request);
    assert!(out.contains("send req.json to your vendor"), "{out}");
    assert!(out.contains("entitle apply"), "{out}");
    let response = world.run(&[
        "respond",
        "--key",
        "vendor.key",
        "--request",
        "req.json",
        "--out",
        "reply.machine",
    ]);
    assert_eq!(exit_code(&response), 0);
    let (out, _) = text(&response);
    assert!(out.contains("send reply.machine back"), "{out}");
    let applied = world.run(&["apply", "reply.machine"]);
    let (out, _) = text(&applied);
    assert!(out.contains("machine certificate"), "{out}");
    assert!(Path::new(&world.path("reply.machine")).exists());
}

/// `init` fixes settings and records no time: an install made on the real
/// clock can then be driven with an earlier `--now` (a simulation), as it
/// could before `init` went through an engine.
#[test]
fn init_records_no_time_seen() {
    let world = World::new();
    let init = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(world.dir.path())
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .args(["--json", "init", "--pub", "vendor.pub", "--product", "acme"])
        .output()
        .unwrap();
    assert_eq!(exit_code(&init), 0, "{}", json_out(&init));
    world.issue(
        "lic.lic",
        json!({"id": "lic", "product": "acme", "expires_at": "2027-01-01T00:00:00Z",
               "features": [{"code": "export"}]}),
    );
    world.ok(&["license", "add", "lic.lic"]);
    assert_eq!(world.ok(&["check", "export"])["reason"], "OK");
}

/// `activate --fingerprint F` activates another device (a site server
/// activating a client): this machine's virtual-machine detection says
/// nothing about it (the server may itself be a VM); `--vm` declares one.
#[test]
fn activating_another_device_does_not_apply_this_machines_vm_detection() {
    let world = World::new();
    world.issue(
        "site.lic",
        json!({"id": "lic_site", "product": "acme", "prevent_vm": true,
               "activations": {"max": 5}, "features": [{"code": "cad"}]}),
    );
    world.ok(&["init", "--pub", "vendor.pub", "--product", "acme"]);
    world.ok(&["license", "add", "site.lic"]);
    let client = world.ok(&["activate", "--fingerprint", "client-1"]);
    assert_eq!(client["vm"], false);
    assert_eq!(client["license_ids"], json!(["lic_site"]));
    world.fails(
        &["activate", "--fingerprint", "client-2", "--vm"],
        "VM_NOT_ALLOWED",
    );
    // This machine itself: refused if it is a virtual machine.
    if entitle::device::detect_virtual_machine() {
        world.fails(&["activate"], "VM_NOT_ALLOWED");
    } else {
        assert_eq!(world.ok(&["activate"])["vm"], false);
    }
}

/// A spec with everything a feature and a license may say besides its
/// rights: a feature's `name` and `metadata`, the `versions` and
/// `channels` it is for.
fn versioned_spec() -> Value {
    json!({
        "product": "acme", "id": "lic-v2", "versions": ">=2.0, <3", "channels": ["stable", "beta"],
        "seats": {"max": 5},
        "features": [
            {"code": "export", "name": "Export to PDF", "metadata": {"tier": "pro"}},
            {"code": "render"}
        ]
    })
}

#[test]
fn issue_accepts_feature_names_metadata_versions_and_channels_and_installs_enforce_them() {
    let world = World::new();
    world.write("v2.json", &versioned_spec().to_string());
    let issued = world.ok(&[
        "issue",
        "--key",
        "vendor.key",
        "--spec",
        "v2.json",
        "--out",
        "v2.lic",
    ]);
    assert_eq!(issued["versions"], ">=2.0, <3", "{issued}");
    assert_eq!(issued["channels"], json!(["stable", "beta"]));
    assert_eq!(issued["warnings"], json!([]), "no unknown field: {issued}");
    let human = world.run(&[
        "issue",
        "--key",
        "vendor.key",
        "--spec",
        "v2.json",
        "--out",
        "again.lic",
    ]);
    let said = String::from_utf8_lossy(&human.stdout).into_owned()
        + &String::from_utf8_lossy(&human.stderr);
    assert!(
        said.contains("For versions >=2.0, <3 on the channels stable, beta only."),
        "{said}"
    );

    // Each install says its own version and channel when it is made.
    let install = |state: &str, extra: &[&str]| {
        let mut args = vec![
            "--state",
            state,
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
        ];
        args.extend_from_slice(extra);
        world.ok(&args);
        world.ok(&["--state", state, "license", "add", "v2.lic"]);
    };
    install("inside", &["--app-version", "2.3.1", "--channel", "beta"]);
    install("newer", &["--app-version", "3.0.0", "--channel", "beta"]);
    install(
        "nightly",
        &["--app-version", "2.3.1", "--channel", "nightly"],
    );
    install("unsaid", &[]);
    let reason = |state: &str| {
        let (_, value) = world.json(&["--state", state, "check", "export"]);
        value["reason"].as_str().unwrap().to_owned()
    };
    assert_eq!(reason("inside"), "OK");
    for state in ["newer", "nightly", "unsaid"] {
        assert_eq!(reason(state), "VERSION_NOT_LICENSED", "{state}");
    }
    let denied = world.run(&["--state", "newer", "check", "export"]);
    assert_eq!(exit_code(&denied), 1);
    assert!(
        String::from_utf8_lossy(&denied.stdout).contains("--app-version")
            || String::from_utf8_lossy(&denied.stderr).contains("--app-version"),
        "the hint says how an install gives its version"
    );

    // The listing shows them, and the features' names and metadata.
    let list = world.ok(&["--state", "inside", "license", "list"]);
    let license = &list["items"][0];
    assert_eq!(license["versions"], ">=2.0, <3", "{license}");
    assert_eq!(license["channels"], json!(["stable", "beta"]));
    assert_eq!(license["version_licensed"], true);
    assert_eq!(license["features"][0]["name"], "Export to PDF");
    assert_eq!(license["features"][0]["metadata"], json!({"tier": "pro"}));
    assert_eq!(license["features"][1]["name"], Value::Null);
    let human = world.run(&["--state", "newer", "license", "list"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("export (\"Export to PDF\")"), "{text}");
    assert!(
        text.contains("for versions >=2.0, <3 on the channels stable, beta"),
        "{text}"
    );
    assert!(text.contains("VERSION_NOT_LICENSED here"), "{text}");

    // An install's version is fixed once made, as its release date is.
    let message = world.fails(
        &[
            "--state",
            "inside",
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--app-version",
            "2.4.0",
        ],
        "STATE_EXISTS",
    );
    assert!(
        message.contains("records application version 2.3.1"),
        "{message}"
    );
    let (code, refused) = world.json(&[
        "--state",
        "bad",
        "init",
        "--pub",
        "vendor.pub",
        "--product",
        "acme",
        "--app-version",
        "2.4",
    ]);
    assert_eq!(
        (code, refused["error"]["code"].as_str()),
        (2, Some("USAGE")),
        "{refused}"
    );
    assert!(!world.path("bad").exists(), "nothing made");
}

#[test]
fn issue_refuses_a_bad_version_requirement_naming_its_field() {
    let world = World::new();
    let mut spec = versioned_spec();
    spec["versions"] = json!(">=2.0, <3, banana");
    world.write("bad.json", &spec.to_string());
    let message = world.fails(
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "bad.json",
            "--out",
            "bad.lic",
        ],
        "MALFORMED",
    );
    assert!(message.contains("field `versions`"), "{message}");
    assert!(!world.path("bad.lic").exists());
}

#[test]
fn a_users_name_and_email_are_shown_by_license_usage() {
    let world = team_install();
    let added = world.ok(&[
        "user",
        "add",
        "ann",
        "--type",
        "designer",
        "--name",
        "Ann Lee",
        "--email",
        "ann@example.com",
    ]);
    assert_eq!(
        (added["name"].as_str(), added["email"].as_str()),
        (Some("Ann Lee"), Some("ann@example.com"))
    );
    world.ok(&["user", "add", "bob"]);
    let usage = world.ok(&["license", "usage"]);
    assert_eq!(usage["users"][0]["name"], "Ann Lee", "{usage}");
    assert_eq!(usage["users"][0]["email"], "ann@example.com");
    assert_eq!(usage["users"][1]["name"], Value::Null);
    let text = String::from_utf8_lossy(&world.run(&["license", "usage"]).stdout).into_owned();
    assert!(
        text.contains("ann  Ann Lee <ann@example.com>  designer  active"),
        "{text}"
    );
    world.fails(
        &["user", "add", "cy", "--email", "not-an-address"],
        "INVALID_ARGUMENT",
    );
}
