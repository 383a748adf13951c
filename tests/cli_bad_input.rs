//! Bad input to every install command: a clear error with its code, exit
//! status 1 (2 for a command line clap refuses), and a state left exactly
//! as it was.

mod cli_common;
use cli_common::{exit_code, json_out};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tempfile::TempDir;

const T0: &str = "2026-01-01T00:00:00Z";
/// Every command runs at this time, a minute after the setup.
const NOW: &str = "2026-01-01T00:01:00Z";

struct World {
    dir: TempDir,
}

impl World {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Runs `entitle --json ARGS --now NOW` (unless ARGS set `--now`).
    fn run_at(&self, now: &str, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_entitle"));
        command
            .current_dir(self.dir.path())
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .arg("--json")
            .args(args);
        if !args.contains(&"--now") {
            command.args(["--now", now]);
        }
        command.output().expect("the entitle binary runs")
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let output = self.run_at(NOW, args);
        (exit_code(&output), json_out(&output))
    }

    fn ok(&self, args: &[&str]) -> Value {
        let (code, value) = self.json(args);
        assert_eq!(code, 0, "entitle {args:?} failed: {value}");
        value
    }

    /// Everything the state holds, as the listings show it.
    fn snapshot(&self) -> Value {
        json!({
            "licenses": self.ok(&["license", "list"]),
            "usage": self.ok(&["license", "usage"]),
            "status": self.ok(&["license", "status"]),
            "activations": self.ok(&["activation", "list"]),
            "leases": self.ok(&["lease", "list"]),
            "api": self.ok(&["consumption", "api"]),
        })
    }

    /// Runs a bad command: it must fail with `expected` and exit status
    /// `status`, print one JSON error, and leave the state unchanged.
    fn refused(&self, args: &[&str], expected: &str, status: i32) -> String {
        let before = self.snapshot();
        let message = self.fails(args, expected, status);
        assert_eq!(
            self.snapshot(),
            before,
            "entitle {args:?} changed the state"
        );
        message
    }

    /// Like [`refused`](World::refused), without looking at the state.
    fn fails(&self, args: &[&str], expected: &str, status: i32) -> String {
        let (code, value) = self.json(args);
        assert_eq!(
            value["error"]["code"], expected,
            "entitle {args:?}: {value}"
        );
        assert_eq!(code, status, "entitle {args:?}: {value}");
        let message = value["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.len() > 10,
            "a message that says something: {message}"
        );
        message
    }
}

/// The compact token inside an armored file.
fn compact_of(armored: &str) -> String {
    armored
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

fn issue(world: &World, key: &str, file: &str, spec: Value) {
    let spec_file = format!("{file}.json");
    world.write(&spec_file, spec.to_string());
    let out = world.run_at(
        T0,
        &["issue", "--key", key, "--spec", &spec_file, "--out", file],
    );
    assert_eq!(
        exit_code(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// An install (fingerprint `desk-1`) with a license that has a seat user,
/// a lease and some consumption, so that "unchanged" means something.
fn world() -> World {
    let world = World {
        dir: tempfile::tempdir().unwrap(),
    };
    let setup = |args: &[&str]| {
        let out = world.run_at(T0, args);
        assert_eq!(
            exit_code(&out),
            0,
            "setup {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    setup(&["keygen", "--out", "vendor"]);
    setup(&["keygen", "--out", "stranger"]);
    issue(
        &world,
        "vendor.key",
        "team.lic",
        json!({"id": "lic_team", "product": "acme", "seats": {"max": 2},
               "floating": {"seats": 1, "lease_secs": 600},
               "features": [{"code": "export"},
                            {"code": "api", "consumption": {"max": 5}}]}),
    );
    setup(&[
        "init",
        "--pub",
        "vendor.pub",
        "--product",
        "acme",
        "--fingerprint",
        "desk-1",
    ]);
    setup(&["license", "add", "team.lic"]);
    setup(&["user", "add", "alice"]);
    setup(&["lease", "checkout", "--client", "ws1"]);
    setup(&["consume", "api", "--amount", "2"]);
    world
}

#[test]
fn a_missing_state_is_state_missing_for_every_install_command() {
    let world = world();
    let commands: &[&[&str]] = &[
        &["license", "add", "team.lic"],
        &["license", "list"],
        &["license", "remove", "lic_team"],
        &["license", "status"],
        &["license", "usage"],
        &["check", "export"],
        &["limit", "export"],
        &["user", "add", "bob"],
        &["user", "activity", "alice"],
        &["user", "remove", "alice"],
        &["user", "can-add"],
        &["user", "licenses", "alice"],
        &["activate"],
        &["deactivate"],
        &["activation", "list"],
        &["request"],
        &["apply", "team.lic"],
        &["lease", "checkout", "--client", "ws1"],
        &["lease", "heartbeat", "x"],
        &["lease", "checkin", "x"],
        &["lease", "borrow", "x", "--secs", "60"],
        &["lease", "return", "x"],
        &["lease", "list"],
        &["consume", "api"],
        &["consumption", "api"],
        &["deactivate", "--receipt", "nowhere.receipt"],
        &["report", "--out", "nowhere.report"],
        &["receipt", "team.lic"],
        &["ingest", "team.lic"],
    ];
    let before = world.snapshot();
    for command in commands {
        let args = [&["--state", "nowhere"][..], command].concat();
        let message = world.fails(&args, "STATE_MISSING", 1);
        assert!(message.contains("initialised first"), "{message}");
        assert!(!world.path("nowhere").exists(), "{command:?} made a state");
    }
    assert!(!world.path("nowhere.receipt").exists());
    assert!(!world.path("nowhere.report").exists());
    assert_eq!(world.snapshot(), before);
}

#[test]
fn bad_license_files_are_refused_with_their_code() {
    let world = world();
    world.write("garbage.lic", "this is not a license at all");
    world.refused(&["license", "add", "garbage.lic"], "MALFORMED", 1);
    world.write("empty.lic", "");
    world.refused(&["license", "add", "empty.lic"], "MALFORMED", 1);
    world.write("binary.lic", [0xff, 0xfe, 0x00, 0x01]);
    world.refused(&["license", "add", "binary.lic"], "MALFORMED", 1);
    world.write("huge.lic", "A".repeat(2 * 1024 * 1024));
    world.refused(&["license", "add", "huge.lic"], "TOO_LARGE", 1);
    let message = world.refused(&["license", "add", "absent.lic"], "IO_ERROR", 1);
    assert!(message.contains("absent.lic"), "{message}");

    // One character of the payload changed: the signature no longer holds.
    issue(
        &world,
        "vendor.key",
        "more.lic",
        json!({"id": "lic_more", "product": "acme", "seats": {"max": 100},
               "features": [{"code": "export"}]}),
    );
    let compact = compact_of(&world.read("more.lic"));
    let parts: Vec<&str> = compact.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let greedy = payload.replace("\"max\":100", "\"max\":100000");
    assert_ne!(greedy, payload);
    world.write(
        "tampered.lic",
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(greedy),
            parts[2]
        ),
    );
    world.refused(&["license", "add", "tampered.lic"], "SIGNATURE_INVALID", 1);
    world.refused(&["apply", "tampered.lic"], "SIGNATURE_INVALID", 1);
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    world.write(
        "forged.lic",
        format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(signature)
        ),
    );
    world.refused(&["license", "add", "forged.lic"], "SIGNATURE_INVALID", 1);
    // A valid token whose payload was swapped for another signed document.
    issue(
        &world,
        "vendor.key",
        "other.lic",
        json!({"id": "lic_other", "product": "acme", "features": [{"code": "x"}]}),
    );
    let other = compact_of(&world.read("other.lic"));
    let other_parts: Vec<&str> = other.split('.').collect();
    world.write(
        "spliced.lic",
        format!("{}.{}.{}", parts[0], parts[1], other_parts[2]),
    );
    world.refused(&["license", "add", "spliced.lic"], "SIGNATURE_INVALID", 1);

    issue(
        &world,
        "stranger.key",
        "stranger.lic",
        json!({"id": "lic_x", "product": "acme", "features": [{"code": "export"}]}),
    );
    world.refused(&["license", "add", "stranger.lic"], "UNKNOWN_KEY", 1);

    issue(
        &world,
        "vendor.key",
        "other-product.lic",
        json!({"id": "lic_y", "product": "zeta", "features": [{"code": "export"}]}),
    );
    world.refused(
        &["license", "add", "other-product.lic"],
        "PRODUCT_MISMATCH",
        1,
    );
    world.refused(&["apply", "other-product.lic"], "PRODUCT_MISMATCH", 1);

    let out = world.run_at(
        T0,
        &[
            "revoke",
            "--key",
            "vendor.key",
            "--id",
            "lic_zzz",
            "--out",
            "r.revocations",
        ],
    );
    assert_eq!(exit_code(&out), 0);
    world.refused(&["license", "add", "r.revocations"], "WRONG_TYPE", 1);
    world.refused(&["apply", "garbage.lic"], "MALFORMED", 1);
}

#[test]
fn bad_listing_queries_are_malformed_or_usage_errors() {
    let world = world();
    world.refused(
        &["license", "list", "--filter", "colour eq \"red\""],
        "MALFORMED",
        1,
    );
    world.refused(
        &["license", "list", "--filter", "status eq"],
        "MALFORMED",
        1,
    );
    world.refused(
        &["license", "list", "--filter", "expires_at lt \"soon\""],
        "MALFORMED",
        1,
    );
    world.refused(&["license", "list", "--order", "-colour"], "MALFORMED", 1);
    world.refused(
        &["license", "list", "--cursor", "not-a-cursor"],
        "MALFORMED",
        1,
    );
    world.refused(&["license", "list", "--limit", "0"], "USAGE", 2);
    world.refused(&["license", "list", "--limit", "many"], "USAGE", 2);
    world.refused(&["license", "usage", "--size", "0"], "USAGE", 2);
    world.refused(&["license", "usage", "--offset", "-1"], "USAGE", 2);
}

#[test]
fn bad_command_lines_are_usage_errors_with_exit_status_2() {
    let world = world();
    let message = world.refused(&["check", "export", "--now", "yesterday"], "USAGE", 2);
    assert!(message.contains("RFC 3339"), "{message}");
    world.refused(&["check"], "USAGE", 2);
    world.refused(&["frobnicate"], "USAGE", 2);
    world.refused(&["license", "frobnicate"], "USAGE", 2);
    world.refused(&["lease", "checkout"], "USAGE", 2);
    world.refused(&["lease", "checkout", "--client", ""], "USAGE", 2);
    world.refused(&["lease", "borrow", "x", "--secs", "0"], "USAGE", 2);
    world.refused(&["consume", "api", "--amount", "0"], "USAGE", 2);
    world.refused(&["consume", "api", "--amount", "-3"], "USAGE", 2);
    world.refused(&["user", "add"], "USAGE", 2);
    world.refused(&["user", "add", "bob", "--type", ""], "USAGE", 2);
    world.refused(&["init", "--product", "acme"], "USAGE", 2);
    world.refused(
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--release-date",
            "soon",
        ],
        "USAGE",
        2,
    );
}

#[test]
fn unknown_users_leases_licenses_and_devices_are_not_found() {
    let world = world();
    world.refused(&["user", "activity", "zed"], "USER_NOT_FOUND", 1);
    world.refused(&["user", "remove", "zed"], "USER_NOT_FOUND", 1);
    world.refused(&["user", "add", ""], "INVALID_ARGUMENT", 1);
    world.refused(&["lease", "heartbeat", "lease_nope"], "LEASE_NOT_FOUND", 1);
    world.refused(&["lease", "checkin", "lease_nope"], "LEASE_NOT_FOUND", 1);
    world.refused(
        &["lease", "borrow", "lease_nope", "--secs", "60"],
        "LEASE_NOT_FOUND",
        1,
    );
    world.refused(&["lease", "return", "lease_nope"], "LEASE_NOT_FOUND", 1);
    world.refused(&["license", "remove", "lic_nope"], "LICENSE_NOT_FOUND", 1);
    world.refused(
        &["deactivate", "--fingerprint", "desk-9"],
        "NOT_ACTIVATED",
        1,
    );
}

#[test]
fn refused_mutations_carry_their_code_and_change_nothing() {
    let world = world();
    world.refused(&["consume", "render"], "NOT_LICENSED", 1);
    world.refused(&["consume", "api", "--amount", "4"], "CONSUMPTION_LIMIT", 1);
    world.refused(
        &["lease", "checkout", "--client", "ws2"],
        "FLOATING_EXHAUSTED",
        1,
    );
    world.refused(
        &[
            "lease",
            "checkout",
            "--client",
            "ws2",
            "--feature",
            "render",
        ],
        "NOT_LICENSED",
        1,
    );
    world.ok(&["user", "add", "bob"]);
    world.refused(&["user", "add", "carol"], "SEAT_LIMIT", 1);
    // No node-locked license here: nothing to activate or request.
    world.refused(&["activate"], "NOT_LICENSED", 1);
    world.refused(&["request"], "INVALID_ARGUMENT", 1);
    // A lease cannot be borrowed when the license does not allow it.
    let leases = world.ok(&["lease", "list"]);
    let lease = leases["items"][0]["id"].as_str().unwrap().to_owned();
    world.refused(
        &["lease", "borrow", &lease, "--secs", "60"],
        "BORROW_NOT_ALLOWED",
        1,
    );
}

#[test]
fn machine_certificates_for_another_device_or_license_are_refused() {
    let world = world();
    issue(
        &world,
        "vendor.key",
        "desk.lic",
        json!({"id": "lic_desk", "product": "acme",
               "activations": {"max": 1, "counted_by": "vendor"},
               "features": [{"code": "cad"}]}),
    );
    world.ok(&["license", "add", "desk.lic"]);
    world.refused(&["activate"], "CERTIFICATE_REQUIRED", 1);
    world.refused(&["activate", "--vm"], "CERTIFICATE_REQUIRED", 1);
    world.ok(&["request", "--license", "lic_desk", "--out", "desk.request"]);

    // The same request, edited to name another device.
    let mut request: Value = serde_json::from_str(&world.read("desk.request")).unwrap();
    request["fingerprint"] = json!("desk-9");
    world.write("other.request", request.to_string());
    let out = world.run_at(
        NOW,
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "other.request",
            "--out",
            "other.machine",
        ],
    );
    assert_eq!(exit_code(&out), 0);
    let message = world.refused(&["apply", "other.machine"], "FINGERPRINT_MISMATCH", 1);
    assert!(message.contains("desk-9"), "{message}");

    // A certificate for a license this install does not hold.
    request["fingerprint"] = json!("desk-1");
    request["license_id"] = json!("lic_elsewhere");
    world.write("elsewhere.request", request.to_string());
    let out = world.run_at(
        NOW,
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "elsewhere.request",
            "--out",
            "elsewhere.machine",
        ],
    );
    assert_eq!(exit_code(&out), 0);
    world.refused(&["apply", "elsewhere.machine"], "LICENSE_NOT_FOUND", 1);

    // A certificate already past its end.
    let out = world.run_at(
        T0,
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "desk.request",
            "--expires",
            "2026-01-01T00:00:30Z",
            "--out",
            "short.machine",
        ],
    );
    assert_eq!(exit_code(&out), 0);
    world.refused(&["apply", "short.machine"], "EXPIRED", 1);

    // Signed by a key this install does not trust.
    let out = world.run_at(
        NOW,
        &[
            "respond",
            "--key",
            "stranger.key",
            "--request",
            "desk.request",
            "--out",
            "stranger.machine",
        ],
    );
    assert_eq!(exit_code(&out), 0);
    world.refused(&["apply", "stranger.machine"], "UNKNOWN_KEY", 1);
}

#[test]
fn respond_refuses_bad_requests_and_never_signs_them() {
    let world = world();
    let respond = |request: &str| {
        world.run_at(
            NOW,
            &[
                "respond",
                "--key",
                "vendor.key",
                "--request",
                request,
                "--out",
                "reply.machine",
            ],
        )
    };
    for (name, contents) in [
        ("garbage.request", "not json"),
        ("array.request", "[1, 2]"),
        (
            "empty-id.request",
            r#"{"v": 1, "license_id": "", "fingerprint": "f", "hostname": "h", "nonce": "n", "created_at": "2026-01-01T00:00:00Z"}"#,
        ),
        (
            "v2.request",
            r#"{"v": 2, "license_id": "l", "fingerprint": "f", "hostname": "h", "nonce": "n", "created_at": "2026-01-01T00:00:00Z"}"#,
        ),
        (
            "dup.request",
            r#"{"v": 1, "license_id": "l", "license_id": "m", "fingerprint": "f", "hostname": "h", "nonce": "n", "created_at": "2026-01-01T00:00:00Z"}"#,
        ),
    ] {
        world.write(name, contents);
        let out = respond(name);
        let value = json_out(&out);
        assert_eq!(value["error"]["code"], "MALFORMED", "{name}: {value}");
        assert_eq!(exit_code(&out), 1);
        assert!(!world.path("reply.machine").exists(), "{name} was signed");
    }
    world.write(
        "good.request",
        r#"{"v": 1, "license_id": "l", "fingerprint": "f", "hostname": "h", "nonce": "n", "created_at": "2026-01-01T00:00:00Z"}"#,
    );
    let out = world.run_at(
        NOW,
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "good.request",
            "--expires",
            "2025-01-01T00:00:00Z",
        ],
    );
    assert_eq!(json_out(&out)["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(exit_code(&out), 1);

    // A named vendor state that does not hold the license: nothing signed.
    let out = world.run_at(
        NOW,
        &[
            "--state",
            "entitle-state",
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "good.request",
            "--out",
            "reply.machine",
        ],
    );
    assert_eq!(json_out(&out)["error"]["code"], "LICENSE_NOT_FOUND");
    assert!(!world.path("reply.machine").exists());
}

#[test]
fn init_refusals_leave_no_state_or_the_old_one() {
    let world = world();
    world.write(
        "bad.pub",
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
    );
    let (code, value) = world.json(&[
        "--state",
        "fresh",
        "init",
        "--pub",
        "bad.pub",
        "--product",
        "acme",
    ]);
    assert_eq!(value["error"]["code"], "MALFORMED", "{value}");
    assert_eq!(code, 1);
    assert!(
        !world.path("fresh").exists(),
        "a failed init leaves nothing"
    );
    let (code, value) = world.json(&[
        "--state",
        "fresh",
        "init",
        "--pub",
        "absent.pub",
        "--product",
        "acme",
    ]);
    assert_eq!(value["error"]["code"], "IO_ERROR", "{value}");
    assert_eq!(code, 1);
    assert!(!world.path("fresh").exists());

    world.refused(
        &["init", "--pub", "vendor.pub", "--product", "zeta"],
        "STATE_EXISTS",
        1,
    );
    world.refused(
        &["init", "--pub", "vendor.pub", "--product", "bad\u{7}name"],
        "INVALID_ARGUMENT",
        1,
    );
}

#[test]
fn a_corrupt_state_is_state_corrupt_not_a_panic() {
    let world = world();
    let state = Path::new("broken");
    std::fs::create_dir(world.path("broken")).unwrap();
    world.write(
        &state.join("state.sqlite").display().to_string(),
        "this is not a database, just bytes that are long enough to look like a header",
    );
    for command in [
        &["license", "list"][..],
        &["check", "export"],
        &["user", "add", "x"],
    ] {
        let (code, value) = world.json(&[&["--state", "broken"][..], command].concat());
        assert_eq!(
            value["error"]["code"], "STATE_CORRUPT",
            "{command:?}: {value}"
        );
        assert_eq!(code, 1);
    }
}
