//! Air-gapped both ways on the command line (docs/cli.md): an
//! install and the vendor's books, each a state directory, with files
//! carried between them by hand; `--json` and `--now` as in
//! `cli_install.rs`.

mod cli_common;
use cli_common::{exit_code, json_out};

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};
use tempfile::TempDir;

const T0: &str = "2026-01-01T00:00:00Z";

/// A working directory with a vendor key pair, the vendor's books
/// (`books`) holding `desk.lic`, and commands run at the time set by
/// [`World::at`].
struct World {
    dir: TempDir,
    now: RefCell<String>,
    /// Every stdout and stderr seen, to search for secrets.
    printed: RefCell<String>,
}

impl World {
    /// The vendor, their books and the license `desk.lic` (one device,
    /// `transfers` transfers, counted by the vendor).
    fn new(transfers: u32) -> Self {
        let world = World {
            dir: tempfile::tempdir().unwrap(),
            now: RefCell::new(T0.to_owned()),
            printed: RefCell::default(),
        };
        world.ok(&["keygen", "--out", "vendor"]);
        let spec = json!({"id": "lic_desk", "product": "acme", "seats": {"max": 5},
            "activations": {"max": 1, "max_transfers": transfers, "counted_by": "vendor"},
            "features": [{"code": "cad"},
                         {"code": "api", "consumption": {"max": 100, "reset": "monthly"}}]});
        std::fs::write(world.path("desk.json"), spec.to_string()).unwrap();
        world.ok(&[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "desk.json",
            "--out",
            "desk.lic",
        ]);
        world.ok(&[
            "--state",
            "books",
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
        ]);
        world.ok(&["--state", "books", "license", "add", "desk.lic"]);
        world
    }

    fn at(&self, now: &str) {
        *self.now.borrow_mut() = now.to_owned();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        let now = self.now.borrow().clone();
        let output = Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(self.dir.path())
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .args(args)
            .args(["--now", &now])
            .output()
            .expect("the entitle binary runs");
        let mut printed = self.printed.borrow_mut();
        printed.push_str(&String::from_utf8_lossy(&output.stdout));
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
        output
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        (exit_code(&output), json_out(&output))
    }

    fn ok(&self, args: &[&str]) -> Value {
        let (code, value) = self.json(args);
        assert_eq!(code, 0, "entitle {args:?} failed: {value}");
        value
    }

    fn fails(&self, args: &[&str], expected: &str) -> String {
        let (code, value) = self.json(args);
        assert_eq!(
            value["error"]["code"], expected,
            "entitle {args:?}: {value}"
        );
        assert_eq!(code, 1, "entitle {args:?}: {value}");
        value["error"]["message"].as_str().unwrap().to_owned()
    }

    /// In the state directory `state`.
    fn ok_in(&self, state: &str, args: &[&str]) -> Value {
        self.ok(&[&["--state", state][..], args].concat())
    }

    fn fails_in(&self, state: &str, args: &[&str], expected: &str) -> String {
        self.fails(&[&["--state", state][..], args].concat(), expected)
    }

    /// An install `state` on device `fingerprint`, holding `desk.lic`.
    fn install(&self, state: &str, fingerprint: &str) -> Value {
        let init = self.ok_in(
            state,
            &[
                "init",
                "--pub",
                "vendor.pub",
                "--product",
                "acme",
                "--fingerprint",
                fingerprint,
            ],
        );
        self.ok_in(state, &["license", "add", "desk.lic"]);
        init
    }

    /// The install `state` asks, the books answer, the install applies.
    fn activate(&self, state: &str) -> Value {
        let request = format!("{state}.request");
        let machine = format!("{state}.machine");
        self.ok_in(state, &["request", "--out", &request]);
        let response = self.ok_in(
            "books",
            &[
                "respond",
                "--key",
                "vendor.key",
                "--request",
                &request,
                "--out",
                &machine,
            ],
        );
        self.ok_in(state, &["apply", &machine]);
        assert_eq!(self.ok_in(state, &["check", "cad"])["reason"], "OK");
        response
    }

    /// The install key's secret, as the state file holds it.
    fn secret(&self, state: &str) -> String {
        let db = rusqlite::Connection::open(self.path(state).join("state.sqlite")).unwrap();
        db.query_row(
            "SELECT value FROM meta WHERE key = 'install_key'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }
}

fn count(list: &Value) -> usize {
    list["items"].as_array().expect("an `items` array").len()
}

#[test]
fn air_gapped_both_ways_activation_report_receipt_and_a_new_device() {
    let world = World::new(1);
    let init = world.install("desk-1", "desk-1");
    let install_key = init["install_key"]
        .as_str()
        .expect("init shows the public key");
    assert_eq!(install_key.len(), 43, "base64url of 32 bytes: {init}");
    let kid = init["install_kid"].as_str().unwrap().to_owned();

    // The request carries the install key; the certificate repeats it; the
    // books record it.
    let response = world.activate("desk-1");
    let request: Value = serde_json::from_str(&world.read("desk-1.request")).unwrap();
    assert_eq!(request["install_key"], install_key);
    assert_eq!(response["install_key"], install_key);
    let certificate = world.ok(&["inspect", "desk-1.machine"]);
    assert_eq!(certificate["payload"]["install_key"], install_key);
    let books = world.ok_in("books", &["activation", "list"]);
    assert_eq!(books["items"][0]["install_key"], install_key);

    // A usage report goes to the vendor.
    world.ok_in("desk-1", &["user", "add", "ann"]);
    world.ok_in("desk-1", &["consume", "api", "--amount", "7"]);
    let report = world.ok_in("desk-1", &["report", "--out", "r1.report"]);
    assert_eq!(
        (report["sequence"].as_u64(), report["kid"].as_str()),
        (Some(1), Some(&*kid))
    );
    assert!(world
        .read("r1.report")
        .starts_with("-----BEGIN ENTITLE REPORT-----\n"));
    let ingested = world.ok_in("books", &["ingest", "r1.report"]);
    assert_eq!(ingested["ingested"], true);
    assert_eq!(ingested["fingerprint"], "desk-1");
    assert_eq!(ingested["sequence"], 1);
    assert_eq!(ingested["kid"], kid.as_str());
    assert_eq!(ingested["missing"], json!([]));
    assert_eq!(
        ingested["licenses"],
        json!([{"id": "lic_desk", "active_users": 1, "activations": 1,
                "features": [{"code": "api", "used": 7,
                              "period_starts_at": "2026-01-01T00:00:00Z", "periods": []}]}])
    );

    // desk-1 is retired offline: its receipt frees the slot in the books.
    world.at("2026-02-01T00:00:00Z");
    let deactivated = world.ok_in("desk-1", &["deactivate", "--receipt", "desk-1.receipt"]);
    assert_eq!(deactivated["license_ids"], json!(["lic_desk"]));
    assert_eq!(deactivated["again"], false);
    assert_eq!(deactivated["kid"], kid.as_str());
    assert_eq!(
        deactivated["receipt"]["deactivated_at"],
        "2026-02-01T00:00:00Z"
    );
    assert!(world
        .read("desk-1.receipt")
        .starts_with("-----BEGIN ENTITLE RECEIPT-----\n"));
    assert_eq!(count(&world.ok_in("desk-1", &["activation", "list"])), 0);

    world.install("desk-2", "desk-2");
    world.ok_in("desk-2", &["request", "--out", "desk-2.request"]);
    world.fails_in(
        "books",
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "desk-2.request",
        ],
        "ACTIVATION_LIMIT",
    );
    let accepted = world.ok_in("books", &["receipt", "desk-1.receipt"]);
    assert_eq!(
        accepted,
        json!({"accepted": true, "license_id": "lic_desk", "fingerprint": "desk-1",
               "deactivated_at": "2026-02-01T00:00:00Z",
               "nonce": deactivated["receipt"]["nonce"], "kid": kid,
               "transfers": 1, "max_transfers": 1})
    );
    assert_eq!(count(&world.ok_in("books", &["activation", "list"])), 0);
    world.activate("desk-2");

    // A receipt counts once.
    let message = world.fails_in("books", &["receipt", "desk-1.receipt"], "RECEIPT_REPLAYED");
    assert!(message.contains("desk-1"), "{message}");
    // The last transfer is used: desk-2's receipt is refused by the books.
    world.ok_in("desk-2", &["deactivate", "--receipt", "desk-2.receipt"]);
    world.fails_in("books", &["receipt", "desk-2.receipt"], "TRANSFER_LIMIT");

    // The secret behind all those signatures was never printed.
    for state in ["desk-1", "desk-2", "books"] {
        let secret = world.secret(state);
        assert!(
            !world.printed.borrow().contains(&secret),
            "{state}'s secret was printed"
        );
    }
}

#[test]
fn deactivate_receipt_run_again_writes_the_same_receipt() {
    let world = World::new(3);
    world.install("desk-1", "desk-1");
    world.activate("desk-1");
    // A receipt that cannot be written: the deactivation stands, and says
    // how to get its receipt.
    let message = world.fails_in(
        "desk-1",
        &["deactivate", "--receipt", "no-such-dir/first.receipt"],
        "IO_ERROR",
    );
    assert!(
        message.contains("run `entitle deactivate --receipt FILE` again"),
        "{message}"
    );
    world.ok_in("desk-1", &["deactivate", "--receipt", "first.receipt"]);
    // The file is lost (or a crash came before it was written): again.
    world.at("2026-01-02T00:00:00Z");
    let again = world.ok_in("desk-1", &["deactivate", "--receipt", "again.receipt"]);
    assert_eq!(again["again"], true);
    assert_eq!(world.read("again.receipt"), world.read("first.receipt"));
    let human = world.run(&[
        "--state",
        "desk-1",
        "deactivate",
        "--receipt",
        "third.receipt",
    ]);
    assert_eq!(exit_code(&human), 0);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("already"), "{text}");
    assert!(
        text.contains("entitle --state BOOKS receipt third.receipt"),
        "{text}"
    );
    // One receipt, one transfer, whichever copy arrives.
    assert_eq!(
        world.ok_in("books", &["receipt", "again.receipt"])["transfers"],
        1
    );
    world.fails_in("books", &["receipt", "first.receipt"], "RECEIPT_REPLAYED");
    // A device neither activated nor deactivated with a receipt here.
    world.fails_in(
        "desk-1",
        &[
            "deactivate",
            "--fingerprint",
            "desk-9",
            "--receipt",
            "x.receipt",
        ],
        "NOT_ACTIVATED",
    );
    assert!(!world.path("x.receipt").exists());
    // --license means nothing without --receipt.
    let (code, usage) = world.json(&["--state", "desk-1", "deactivate", "--license", "lic_desk"]);
    assert_eq!((code, usage["error"]["code"].as_str()), (2, Some("USAGE")));
}

#[test]
fn receipts_the_books_cannot_check_are_refused() {
    let world = World::new(3);
    world.install("desk-1", "desk-1");
    world.activate("desk-1");
    world.ok_in("desk-1", &["deactivate", "--receipt", "good.receipt"]);

    // Forged: the payload edited (another nonce), the signature kept.
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let (compact, _) = entitle::token::dearmor(&world.read("good.receipt")).unwrap();
    let parts: Vec<&str> = compact.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["nonce"] = json!("0000000000000000");
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    std::fs::write(world.path("forged.receipt"), forged).unwrap();
    let message = world.fails_in("books", &["receipt", "forged.receipt"], "RECEIPT_INVALID");
    assert!(message.contains("does not verify"), "{message}");

    // Foreign: a state made again on the same device signs its own.
    world.install("desk-1-again", "desk-1");
    world.ok_in("desk-1-again", &["request", "--out", "again.request"]);
    world.ok(&[
        "respond",
        "--key",
        "vendor.key",
        "--request",
        "again.request",
        "--out",
        "again.machine",
    ]);
    world.ok_in("desk-1-again", &["apply", "again.machine"]);
    world.ok_in(
        "desk-1-again",
        &["deactivate", "--receipt", "foreign.receipt"],
    );
    world.fails_in("books", &["receipt", "foreign.receipt"], "RECEIPT_INVALID");

    // Unknown: a device these books never activated (counted elsewhere).
    world.install("desk-9", "desk-9");
    world.ok_in("desk-9", &["request", "--out", "desk-9.request"]);
    world.ok(&[
        "respond",
        "--key",
        "vendor.key",
        "--request",
        "desk-9.request",
        "--out",
        "desk-9.machine",
    ]);
    world.ok_in("desk-9", &["apply", "desk-9.machine"]);
    world.ok_in("desk-9", &["deactivate", "--receipt", "desk-9.receipt"]);
    let message = world.fails_in("books", &["receipt", "desk-9.receipt"], "RECEIPT_INVALID");
    assert!(message.contains("never activated"), "{message}");

    // Not a receipt at all.
    world.fails_in("books", &["receipt", "desk.lic"], "WRONG_TYPE");
    world.fails_in("books", &["receipt", "desk-1.request"], "MALFORMED");
    // And a receipt is nothing an install applies.
    world.fails_in("desk-1", &["apply", "good.receipt"], "WRONG_TYPE");

    // None of that freed a slot: the good receipt still does.
    assert_eq!(count(&world.ok_in("books", &["activation", "list"])), 1);
    world.ok_in("books", &["receipt", "good.receipt"]);
    assert_eq!(count(&world.ok_in("books", &["activation", "list"])), 0);
}

#[test]
fn reports_replayed_are_refused_and_gaps_reported_for_a_person() {
    let world = World::new(1);
    world.install("desk-1", "desk-1");
    world.activate("desk-1");
    for n in 1..=3 {
        let report = world.ok_in("desk-1", &["report", "--out", &format!("r{n}.report")]);
        assert_eq!(report["sequence"], n);
    }
    // Without --out the report goes to stdout, pipeable.
    let bare = world.run(&["--state", "desk-1", "report"]);
    assert!(String::from_utf8_lossy(&bare.stdout).starts_with("-----BEGIN ENTITLE REPORT-----"));

    world.ok_in("books", &["ingest", "r1.report"]);
    let jumped = world.ok_in("books", &["ingest", "r3.report"]);
    assert_eq!(jumped["previous_sequence"], 1);
    assert_eq!(jumped["expected_sequence"], 2);
    assert_eq!(jumped["missing"], json!([{"from": 2, "to": 2}]));
    assert_eq!(jumped["fork"], false);
    world.fails_in("books", &["ingest", "r3.report"], "REPORT_REPLAYED");
    // Late is refused too: the books take only later reports.
    let message = world.fails_in("books", &["ingest", "r2.report"], "REPORT_REPLAYED");
    assert!(message.contains("only later ones"), "{message}");

    // For a person: what it learned, and what is missing.
    world.ok_in("desk-1", &["report", "--out", "r5.report"]);
    let human = world.run(&["--state", "books", "ingest", "r5.report"]);
    assert_eq!(exit_code(&human), 0);
    let text = String::from_utf8_lossy(&human.stdout);
    for says in [
        "Recorded report 5 from device `desk-1`",
        "license lic_desk: 0 active user(s), 1 device(s) activated",
        "api: 0 used in the period since 2026-01-01T00:00:00Z",
        "Expected report 4 next, got 5",
        "Missing from this device: report 2, report 4",
    ] {
        assert!(text.contains(says), "{says:?} in:\n{text}");
    }
    // A report from a device the books never recorded a key for.
    world.install("desk-9", "desk-9");
    world.ok_in("desk-9", &["report", "--out", "desk-9.report"]);
    world.fails_in("books", &["ingest", "desk-9.report"], "REPORT_INVALID");
    world.fails_in("books", &["ingest", "desk.lic"], "WRONG_TYPE");
}

#[test]
fn activation_list_says_when_a_certificate_has_lapsed() {
    let world = World::new(1);
    world.install("desk", "desk-1");
    world.ok_in("desk", &["request", "--out", "desk.request"]);
    world.ok_in(
        "books",
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "desk.request",
            "--expires",
            "2026-01-08T00:00:00Z",
            "--out",
            "desk.machine",
        ],
    );
    world.ok_in("desk", &["apply", "desk.machine"]);
    let listed = world.ok_in("desk", &["activation", "list"]);
    assert_eq!(count(&listed), 1, "{listed}");
    assert_eq!(listed["items"][0]["lapsed"], false, "{listed}");
    assert_eq!(listed["items"][0]["expires_at"], "2026-01-08T00:00:00Z");

    world.at("2026-01-09T00:00:00Z");
    let listed = world.ok_in("desk", &["activation", "list"]);
    assert_eq!(
        count(&listed),
        1,
        "a lapsed activation is still listed: {listed}"
    );
    assert_eq!(listed["items"][0]["lapsed"], true, "{listed}");
    let (code, check) = world.json(&["--state", "desk", "check", "cad"]);
    assert_eq!((code, &check["reason"]), (1, &json!("NOT_ACTIVATED")));
}
