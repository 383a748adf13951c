//! Usage reports that hide nothing and chain (docs/formats.md#usage-report-typ-report), each
//! attack on them tried the way a customer would: the documented CLI,
//! `--now`, `cp -r` of the state directory and `rusqlite` edits of the
//! state file. Each test failed on the code before reports chained.

mod cli_common;

use std::path::PathBuf;
use std::process::{Command, Output};

use cli_common::{exit_code, json_out};
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use tempfile::TempDir;

const T0: &str = "2026-01-01T00:00:00Z";

/// A vendor (`vendor.key`), their books (`books`) holding `desk.lic`, and
/// an install (`state`, device `desk-1`) activated through the books;
/// every command runs at the time set by [`World::at`].
struct World {
    dir: TempDir,
    now: std::cell::RefCell<String>,
}

impl World {
    fn new() -> Self {
        let world = World {
            dir: tempfile::tempdir().unwrap(),
            now: std::cell::RefCell::new(T0.to_owned()),
        };
        world.ok_in("books", &["keygen", "--out", "vendor"]);
        let spec = json!({"id": "lic_desk", "product": "acme",
            "activations": {"max": 2, "counted_by": "vendor"},
            "features": [{"code": "cad"},
                         {"code": "api", "consumption": {"max": 200, "reset": "monthly"}}]});
        std::fs::write(world.path("desk.json"), spec.to_string()).unwrap();
        world.ok_in(
            "books",
            &[
                "issue",
                "--key",
                "vendor.key",
                "--spec",
                "desk.json",
                "--out",
                "desk.lic",
            ],
        );
        let init = ["init", "--pub", "vendor.pub", "--product", "acme"];
        world.ok_in("books", &init);
        world.ok_in("books", &["license", "add", "desk.lic"]);
        world.ok_in("state", &[&init[..], &["--fingerprint", "desk-1"]].concat());
        world.ok_in("state", &["license", "add", "desk.lic"]);
        world.ok_in("state", &["request", "--out", "desk.req"]);
        world.ok_in(
            "books",
            &[
                "respond",
                "--key",
                "vendor.key",
                "--request",
                "desk.req",
                "--out",
                "desk.machine",
            ],
        );
        world.ok_in("state", &["apply", "desk.machine"]);
        world
    }

    fn at(&self, now: &str) {
        *self.now.borrow_mut() = now.to_owned();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, state: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(self.dir.path())
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .args(["--json", "--state", state, "--now", &self.now.borrow()])
            .args(args)
            .output()
            .expect("the entitle binary runs")
    }

    fn ok_in(&self, state: &str, args: &[&str]) -> Value {
        let out = self.run(state, args);
        let value = json_out(&out);
        assert_eq!(exit_code(&out), 0, "entitle {args:?} in {state}: {value}");
        value
    }

    /// A failure with `code`; returns the message.
    fn fails_in(&self, state: &str, args: &[&str], code: &str) -> String {
        let out = self.run(state, args);
        let value = json_out(&out);
        assert_eq!(
            value["error"]["code"], code,
            "entitle {args:?} in {state}: {value}"
        );
        assert_eq!(exit_code(&out), 1);
        value["error"]["message"].as_str().unwrap().to_owned()
    }

    /// `entitle report --out FILE` in `state`: the report it signed.
    fn report(&self, state: &str, file: &str) -> Value {
        self.ok_in(state, &["report", "--out", file])["report"].clone()
    }

    fn ingest(&self, file: &str) -> Value {
        self.ok_in("books", &["ingest", file])
    }

    /// The attacker's tool: a state file, opened with SQLite directly.
    fn sqlite(&self, state: &str) -> Connection {
        Connection::open(self.path(state).join("state.sqlite")).unwrap()
    }

    /// `cp -r`.
    fn copy_state(&self, from: &str, to: &str) {
        let target = self.path(to);
        std::fs::create_dir(&target).unwrap();
        for entry in std::fs::read_dir(self.path(from)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }

    /// The token the books keep for the device's report `sequence`.
    fn stored_report(&self, sequence: i64) -> String {
        self.sqlite("books")
            .query_row(
                "SELECT token FROM reports WHERE fingerprint = 'desk-1' AND sequence = ?1",
                params![sequence],
                |r| r.get(0),
            )
            .unwrap()
    }
}

/// The compact token a report file holds.
fn compact(world: &World, file: &str) -> String {
    let text = std::fs::read_to_string(world.path(file)).unwrap();
    entitle::token::dearmor(&text).unwrap().0
}

/// The `api` feature of a report's (or an ingest's) only license.
fn api(licenses: &Value) -> Value {
    let features = licenses[0]["features"].as_array().unwrap();
    features
        .iter()
        .find(|f| f["code"] == "api")
        .expect("the metered feature is reported")
        .clone()
}

/// 110 units used in January and a report made just after the month
/// closed: the old report showed only February (`used: 0`), and the 110
/// never reached the books. Closed periods are kept until a report has
/// carried them, whether a consume closed them or nothing has happened
/// since; the next report does not carry them again.
#[test]
fn a_period_that_closed_before_the_report_still_reaches_the_books() {
    let world = World::new();
    world.at("2026-01-20T00:00:00Z");
    world.ok_in("state", &["consume", "api", "--amount", "110"]);
    world.at("2026-02-01T00:05:00Z");
    world.report("state", "r1.report");
    let ingested = world.ingest("r1.report");
    assert_eq!(
        api(&ingested["licenses"]),
        json!({"code": "api", "used": 0, "period_starts_at": "2026-02-01T00:00:00Z",
               "periods": [{"starts_at": "2026-01-01T00:00:00Z",
                            "ends_at": "2026-02-01T00:00:00Z", "used": 110}]}),
        "{ingested}"
    );

    // A period a consume closed (February's 30, then one unit in March)
    // waits in the state for the next report, and goes once.
    world.at("2026-02-10T00:00:00Z");
    world.ok_in("state", &["consume", "api", "--amount", "30"]);
    world.at("2026-03-02T00:00:00Z");
    world.ok_in("state", &["consume", "api"]);
    let kept: i64 = world
        .sqlite("state")
        .query_row("SELECT used FROM closed_periods", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 30);
    world.report("state", "r2.report");
    let ingested = world.ingest("r2.report");
    assert_eq!(
        api(&ingested["licenses"]),
        json!({"code": "api", "used": 1, "period_starts_at": "2026-03-01T00:00:00Z",
               "periods": [{"starts_at": "2026-02-01T00:00:00Z",
                            "ends_at": "2026-03-01T00:00:00Z", "used": 30}]})
    );
    world.report("state", "r3.report");
    let ingested = world.ingest("r3.report");
    assert_eq!(api(&ingested["licenses"])["periods"], json!([]));
    assert_eq!(api(&ingested["licenses"])["used"], 1);
}

/// With `report_sequence` edited to the largest integer, the old code
/// clamped: every report carried the same sequence, and the books took
/// each over the last. Now the install refuses to sign one it cannot
/// number, and the books refuse a sequence they could not store.
#[test]
fn a_report_sequence_that_would_overflow_is_refused_not_clamped() {
    let world = World::new();
    let set_sequence = |n: i64| {
        world
            .sqlite("state")
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'report_sequence'",
                params![n.to_string()],
            )
            .unwrap()
    };
    world.report("state", "r1.report");
    set_sequence(i64::MAX - 1);
    let last = world.report("state", "last.report");
    assert_eq!(last["sequence"], json!(i64::MAX));
    world.ingest("last.report");

    let message = world.fails_in(
        "state",
        &["report", "--out", "over.report"],
        "STATE_CORRUPT",
    );
    assert!(message.contains(&i64::MAX.to_string()), "{message}");
    assert!(!world.path("over.report").exists());
    set_sequence(i64::MAX);
    world.fails_in("state", &["report"], "STATE_CORRUPT");

    // The books: a report numbered past what they store, signed with the
    // install's own key (read from its state), is refused, and what they
    // hold stays as it was.
    let seed: String = world
        .sqlite("state")
        .query_row(
            "SELECT value FROM meta WHERE key = 'install_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let seed: [u8; 32] = URL_SAFE_NO_PAD.decode(seed).unwrap().try_into().unwrap();
    let install = entitle::token::SigningKey::from_seed(&seed);
    let mut payload = Value::Object(
        entitle::token::decode_unverified(&compact(&world, "last.report"))
            .unwrap()
            .payload,
    );
    payload["sequence"] = json!(i64::MAX as u64 + 1);
    let forged =
        entitle::token::sign(&payload, &install, entitle::token::TokenType::Report).unwrap();
    std::fs::write(world.path("forged.report"), forged).unwrap();
    let message = world.fails_in("books", &["ingest", "forged.report"], "MALFORMED");
    assert!(message.contains("sequence"), "{message}");
    assert_eq!(
        world.stored_report(i64::MAX),
        compact(&world, "last.report")
    );
}

/// A report at or below the last one the books took is refused, late or
/// repeated, and the report the books hold is never replaced: not by a
/// late one, not by another report of the same sequence (the state's
/// sequence lowered by hand).
#[test]
fn a_repeated_or_lower_sequence_is_refused_and_the_stored_report_kept() {
    let world = World::new();
    world.report("state", "r1.report");
    world.report("state", "r2.report");
    world.ingest("r2.report");
    let message = world.fails_in("books", &["ingest", "r1.report"], "REPORT_REPLAYED");
    assert!(message.contains("only later ones"), "{message}");

    world
        .sqlite("state")
        .execute(
            "UPDATE meta SET value = '1' WHERE key = 'report_sequence'",
            [],
        )
        .unwrap();
    world.at("2026-01-02T00:00:00Z");
    world.ok_in("state", &["consume", "api", "--amount", "7"]);
    let again = world.report("state", "again.report");
    assert_eq!(again["sequence"], 2);
    let message = world.fails_in("books", &["ingest", "again.report"], "REPORT_REPLAYED");
    assert!(message.contains("another report 2"), "{message}");
    assert_eq!(world.stored_report(2), compact(&world, "r2.report"));
    world.fails_in("books", &["ingest", "r2.report"], "REPORT_REPLAYED");
}

/// `cp -r` of the state directory: two states report as one install. The
/// copy's report of a sequence the books hold is refused, and the
/// refusal says another report of that number came (the vendor sees
/// it); the copy's next report is taken and flagged `fork`, since it does
/// not chain to the report the books hold. The original then finds its
/// own next report refused.
#[test]
fn a_copied_state_reporting_as_the_same_install_is_flagged_fork() {
    let world = World::new();
    world.copy_state("state", "copy");
    world.at("2026-01-02T00:00:00Z");
    world.ok_in("state", &["consume", "api", "--amount", "5"]);
    world.ok_in("copy", &["consume", "api", "--amount", "9"]);
    world.report("state", "original-1.report");
    let first = world.ingest("original-1.report");
    assert_eq!(
        (&first["fork"], &first["sequence"]),
        (&json!(false), &json!(1))
    );
    assert_eq!(first["previous"], Value::Null);

    world.report("copy", "copy-1.report");
    let message = world.fails_in("books", &["ingest", "copy-1.report"], "REPORT_REPLAYED");
    assert!(
        message.contains("restored from a backup or copied"),
        "{message}"
    );

    let copy_2 = world.report("copy", "copy-2.report");
    // `previous`: base64url (no padding) of the SHA-256 of the previous
    // report's compact token.
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(compact(&world, "copy-1.report")));
    assert_eq!(copy_2["previous"], hash);
    let forked = world.ingest("copy-2.report");
    assert_eq!(
        (&forked["fork"], &forked["sequence"]),
        (&json!(true), &json!(2))
    );
    assert_eq!(api(&forked["licenses"])["used"], 9);
    world.fails_in("books", &["ingest", "copy-2.report"], "REPORT_REPLAYED");

    // The original's own report 2 is now below what the books hold.
    world.report("state", "original-2.report");
    world.fails_in("books", &["ingest", "original-2.report"], "REPORT_REPLAYED");
    // A report that does follow the one the books hold is no fork.
    world.report("copy", "copy-3.report");
    assert_eq!(world.ingest("copy-3.report")["fork"], false);
}

/// A report made with the clock set back says so: the install's clock in
/// the report is behind the latest time it had seen.
#[test]
fn a_report_made_with_the_clock_set_back_says_tampered() {
    let world = World::new();
    world.at("2026-03-01T00:00:00Z");
    world.ok_in("state", &["check", "cad"]);
    world.at("2026-02-01T00:00:00Z");
    let report = world.report("state", "back.report");
    assert_eq!(
        report["clock"],
        json!({"latest_seen": "2026-03-01T00:00:00Z", "tampered": true})
    );
    world.at("2026-03-02T00:00:00Z");
    let ingested = world.ingest("back.report");
    assert_eq!(ingested["clock"]["tampered"], true);
    // On a right clock, the report says nothing of the kind.
    let fine = world.report("state", "fine.report");
    assert_eq!(
        fine["clock"],
        json!({"latest_seen": "2026-03-02T00:00:00Z", "tampered": false})
    );
}

/// A report dated more than a day after the books' clock (the install's
/// clock set forward, as for spending future periods) is taken and
/// flagged `clock_ahead`; one within a day is not.
#[test]
fn a_report_dated_ahead_of_the_books_is_flagged_clock_ahead() {
    let world = World::new();
    world.at("2026-01-01T12:00:00Z");
    world.report("state", "near.report");
    world.at("2026-01-05T00:00:00Z");
    world.report("state", "ahead.report");
    world.at(T0);
    assert_eq!(world.ingest("near.report")["clock_ahead"], false);
    let ahead = world.ingest("ahead.report");
    assert_eq!(ahead["clock_ahead"], true, "{ahead}");
    assert_eq!(ahead["fork"], false);
}

/// The README's threat model: `meta.last_report` edited (or deleted)
/// gains nothing, the next report no longer chains to what the books
/// hold, and they flag it.
#[test]
fn editing_the_kept_last_report_only_gets_the_next_report_flagged_fork() {
    let world = World::new();
    world.report("state", "r1.report");
    world.ingest("r1.report");
    world
        .sqlite("state")
        .execute("DELETE FROM meta WHERE key = 'last_report'", [])
        .unwrap();
    let next = world.report("state", "r2.report");
    assert_eq!(next["previous"], Value::Null);
    assert_eq!(world.ingest("r2.report")["fork"], true);
}
