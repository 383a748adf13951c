//! The ways a determined customer tried to get more than was licensed,
//! with nothing but the documented CLI, `sqlite3` and `cp` (no patched
//! binary, no faked machine id), each reproduced here with the attacker's
//! own tools: `rusqlite` edits of the state file and copied directories.
//! Each attack's test failed on the code before the rules on stored state
//! (docs/semantics.md#what-stored-state-is-trusted) and
//! passes now; `a_program_trusts_only_the_keys_its_builder_was_given`
//! shows a guarantee that already held for programs linking the crate.
//!
//! What an attacker *can* still do by editing unsigned rows is named in
//! the README's threat model; `editing_unsigned_rows_gains_only_what_the_
//! threat_model_names` shows the limits of that list.

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cli_common::{exit_code, json_out};
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use tempfile::TempDir;

const T0: &str = "2026-01-01T00:00:00Z";

/// A vendor (`vendor.key`, `vendor.pub`) and an install (`state/`) of
/// product `acme`, driven through the CLI at a fixed time.
struct World {
    dir: TempDir,
    now: String,
}

impl World {
    fn new() -> Self {
        let world = World {
            dir: tempfile::tempdir().unwrap(),
            now: T0.to_owned(),
        };
        world.ok(&["keygen", "--out", "vendor"]);
        world
    }

    /// A world whose install is made: `init` with `extra` arguments.
    fn installed(extra: &[&str]) -> Self {
        let world = World::new();
        world.ok(&[
            &["init", "--pub", "vendor.pub", "--product", "acme"][..],
            extra,
        ]
        .concat());
        world
    }

    fn at(mut self, now: &str) -> Self {
        now.clone_into(&mut self.now);
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    fn run(&self, state: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(self.dir.path())
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .args(["--json", "--state", state, "--now", &self.now])
            .args(args)
            .output()
            .expect("the entitle binary runs")
    }

    fn ok_in(&self, state: &str, args: &[&str]) -> Value {
        let out = self.run(state, args);
        let value = json_out(&out);
        assert_eq!(exit_code(&out), 0, "entitle {args:?}: {value}");
        value
    }

    fn ok(&self, args: &[&str]) -> Value {
        self.ok_in("state", args)
    }

    /// A failure with `code`; returns the message.
    fn fails(&self, args: &[&str], code: &str) -> String {
        let out = self.run("state", args);
        let value = json_out(&out);
        assert_eq!(value["error"]["code"], code, "entitle {args:?}: {value}");
        assert_eq!(exit_code(&out), 1);
        value["error"]["message"].as_str().unwrap().to_owned()
    }

    /// `check FEATURE` in `state`: its reason.
    fn reason_in(&self, state: &str, feature: &str) -> String {
        let value = json_out(&self.run(state, &["check", feature]));
        value["reason"].as_str().unwrap_or("(error)").to_owned()
    }

    fn reason(&self, feature: &str) -> String {
        self.reason_in("state", feature)
    }

    /// Signs `spec` with `key` into `file`.
    fn issue_with(&self, key: &str, file: &str, spec: Value) {
        let spec_file = format!("{file}.json");
        self.write(&spec_file, &spec.to_string());
        self.ok(&["issue", "--key", key, "--spec", &spec_file, "--out", file]);
    }

    fn issue(&self, file: &str, spec: Value) {
        self.issue_with("vendor.key", file, spec);
    }

    /// The attacker's tool: the state file, opened with SQLite directly.
    fn sqlite(&self, state: &str) -> Connection {
        Connection::open(self.path(state).join("state.sqlite")).unwrap()
    }

    /// `entitle` run as on another machine, whose machine id is `machine_id`:
    /// in a private mount namespace with that id bound over the files the
    /// operating system keeps it in (what the attacker did; needs root,
    /// which CI has).
    fn run_on(&self, machine_id: &str, state: &str, args: &[&str]) -> Output {
        let id_file = self.path(&format!("machine-id.{machine_id}"));
        std::fs::write(&id_file, format!("{machine_id}\n")).unwrap();
        let script = "mount --bind \"$0\" /etc/machine-id && \
            { [ ! -e /var/lib/dbus/machine-id ] || mount --bind \"$0\" /var/lib/dbus/machine-id; } && \
            exec \"$@\"";
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .arg(&id_file)
            .arg(env!("CARGO_BIN_EXE_entitle"))
            .args(["--json", "--state", state, "--now", &self.now])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .output()
            .expect("unshare runs");
        assert!(
            !out.stdout.is_empty(),
            "another machine cannot be simulated here (unshare and mount need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `check FEATURE` in `state` on the machine `machine_id`: its reason.
    fn reason_on(&self, machine_id: &str, state: &str, feature: &str) -> String {
        let value = json_out(&self.run_on(machine_id, state, &["check", feature]));
        value["reason"].as_str().unwrap_or("(error)").to_owned()
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
}

/// The fingerprint of the machine whose id is `machine_id`
/// (docs/semantics.md#devices), computed as any party can.
fn fingerprint_of(machine_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("entitle-device:{}", machine_id.trim()).as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// This machine's fingerprint.
fn this_machine() -> String {
    let id = ["/var/lib/dbus/machine-id", "/etc/machine-id"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .expect("this machine has a machine id");
    fingerprint_of(&id)
}

/// A node-locked license only the vendor activates, answered for device
/// `fingerprint` (the request, the vendor's certificate, `apply`).
fn activate_by_certificate(world: &World, state: &str, expires: Option<&str>) {
    world.ok_in(state, &["request", "--out", "device.req"]);
    let mut respond = vec![
        "respond",
        "--key",
        "vendor.key",
        "--request",
        "device.req",
        "--out",
        "device.machine",
    ];
    if let Some(end) = expires {
        respond.extend(["--expires", end]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(world.dir.path())
        .env_remove("ENTITLE_STATE")
        .args(["--json", "--now", &world.now])
        .args(&respond)
        .output()
        .unwrap();
    assert_eq!(exit_code(&out), 0, "{}", json_out(&out));
    world.ok_in(state, &["apply", "device.machine"]);
}

fn vendor_counted() -> Value {
    json!({"id": "lic_cad", "product": "acme",
           "activations": {"max": 1, "counted_by": "vendor"},
           "features": [{"code": "cad"}]})
}

// ---- 1. the attacker's own signing key ------------------------------------

#[test]
fn own_signing_key_offered_to_init_is_refused_and_its_licenses_grant_nothing() {
    let world = World::installed(&[]);
    world.ok(&["keygen", "--out", "mine"]);
    let message = world.fails(
        &["init", "--pub", "mine.pub", "--product", "acme"],
        "STATE_EXISTS",
    );
    assert!(message.contains("rotate"), "{message}");
    world.issue_with(
        "mine.key",
        "forged.lic",
        json!({"id": "lic_forged", "product": "acme", "seats": {"max": 100000},
               "features": [{"code": "export"}]}),
    );
    world.fails(&["license", "add", "forged.lic"], "UNKNOWN_KEY");
    assert_eq!(world.reason("export"), "NOT_LICENSED");
    // Nor can the attacker's key rotate itself in: a rotation must be
    // signed by a key the install already trusts.
    world.ok(&[
        "rotate",
        "--key",
        "mine.key",
        "--pub",
        "mine.pub",
        "--product",
        "acme",
        "--out",
        "mine.keys",
    ]);
    world.fails(&["apply", "mine.keys"], "UNKNOWN_KEY");
    world.fails(&["license", "add", "forged.lic"], "UNKNOWN_KEY");
}

#[test]
fn an_earlier_release_date_offered_to_init_does_not_lift_maintenance() {
    let world = World::installed(&["--release-date", "2026-06-01T00:00:00Z"]);
    world.issue(
        "maint.lic",
        json!({"id": "lic_m", "product": "acme", "maintenance_until": "2026-03-01T00:00:00Z",
               "features": [{"code": "export"}]}),
    );
    world.ok(&["license", "add", "maint.lic"]);
    assert_eq!(world.reason("export"), "MAINTENANCE_EXPIRED");
    world.fails(
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--release-date",
            "2026-01-01T00:00:00Z",
        ],
        "STATE_EXISTS",
    );
    assert_eq!(world.reason("export"), "MAINTENANCE_EXPIRED");
}

#[test]
fn a_program_trusts_only_the_keys_its_builder_was_given() {
    // A state the CLI made, whose recorded keys an attacker extended.
    let world = World::installed(&[]);
    world.ok(&["keygen", "--out", "mine"]);
    let mine = std::fs::read_to_string(world.path("mine.pub")).unwrap();
    let vendor = std::fs::read_to_string(world.path("vendor.pub")).unwrap();
    world
        .sqlite("state")
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'keys'",
            params![serde_json::to_string(&[&vendor, &mine]).unwrap()],
        )
        .unwrap();
    world.issue_with(
        "mine.key",
        "forged.lic",
        json!({"id": "lic_forged", "product": "acme", "features": [{"code": "export"}]}),
    );
    let engine = entitle::Engine::builder("acme")
        .trust(entitle::token::PublicKey::from_pem(&vendor).unwrap())
        .store(entitle::store::FileStore::open(world.path("state")).unwrap())
        .background_refresh(false)
        .build()
        .unwrap();
    let forged = std::fs::read_to_string(world.path("forged.lic")).unwrap();
    assert_eq!(
        engine.add_license(&forged).unwrap_err().code(),
        "UNKNOWN_KEY"
    );
}

/// A CLI built with the vendor's key compiled in ignores keys written
/// into the state. Builds the binary once more, in its own target
/// directory (about a minute), with `ENTITLE_TRUSTED_KEYS`.
#[test]
fn a_cli_with_compiled_in_keys_ignores_keys_written_into_the_state() {
    let world = World::new();
    world.ok(&["keygen", "--out", "mine"]);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled-keys");
    let build = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ENTITLE_TRUSTED_KEYS", world.path("vendor.pub"))
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--bin", "entitle"])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let vendor_cli = target.join("debug").join("entitle");
    let run = |args: &[&str]| -> (i32, Value) {
        let out = Command::new(&vendor_cli)
            .current_dir(world.dir.path())
            .env_remove("ENTITLE_STATE")
            .args(["--json", "--state", "state", "--now", T0])
            .args(args)
            .output()
            .unwrap();
        (exit_code(&out), json_out(&out))
    };
    // init needs no --pub: the build trusts its own key and records none.
    let (code, init) = run(&["init", "--product", "acme"]);
    assert_eq!(code, 0, "{init}");
    assert_eq!(init["kids"].as_array().unwrap().len(), 1);
    // The attacker writes their key into the state, as the stock CLI
    // would record one...
    let mine = std::fs::read_to_string(world.path("mine.pub")).unwrap();
    world
        .sqlite("state")
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'keys'",
            params![serde_json::to_string(&[&mine]).unwrap()],
        )
        .unwrap();
    world.issue_with(
        "mine.key",
        "forged.lic",
        json!({"id": "lic_forged", "product": "acme", "features": [{"code": "export"}]}),
    );
    let (code, added) = run(&["license", "add", "forged.lic"]);
    assert_eq!((code, &added["error"]["code"]), (1, &json!("UNKNOWN_KEY")));
    // ...while the vendor's own licenses still verify.
    world.issue(
        "real.lic",
        json!({"id": "lic_real", "product": "acme", "features": [{"code": "export"}]}),
    );
    assert_eq!(run(&["license", "add", "real.lic"]).0, 0);
    assert_eq!(run(&["check", "export"]).1["reason"], "OK");
}

// ---- 2. a copied state ----------------------------------------------------

/// The state made and activated on this machine, then copied to machine
/// B (a private mount namespace with another machine id, as the attacker
/// did): there it names no activated device.
#[test]
fn copied_state_grants_nothing_on_another_machine() {
    let world = World::installed(&[]);
    world.issue(
        "site.lic",
        json!({"id": "lic_site", "product": "acme", "activations": {"max": 1},
               "features": [{"code": "cad"}]}),
    );
    world.ok(&["license", "add", "site.lic"]);
    world.ok(&["activate"]);
    assert_eq!(world.reason("cad"), "OK");
    world.copy_state("state", "copied");
    let check = json_out(&world.run_on("machine-b", "copied", &["check", "cad"]));
    assert_eq!(check["reason"], "NOT_ACTIVATED", "{check}");
    assert_eq!(check["state_moved"], true);
    // Until machine B is activated (here: no slot left, as it should).
    let out = world.run_on("machine-b", "copied", &["activate"]);
    assert_eq!(json_out(&out)["error"]["code"], "ACTIVATION_LIMIT");

    // The same with a named device and a certificate for it: it stays
    // this machine's.
    let world = World::installed(&["--fingerprint", "desk-a"]);
    world.issue("cad.lic", vendor_counted());
    world.ok(&["license", "add", "cad.lic"]);
    activate_by_certificate(&world, "state", None);
    assert_eq!(world.reason("cad"), "OK");
    world.copy_state("state", "copied");
    assert_eq!(
        world.reason_on("machine-b", "copied", "cad"),
        "NOT_ACTIVATED"
    );
    assert_eq!(world.reason("cad"), "OK", "the original is untouched");
}

/// Finding 1 of round two: on machine B, the copied state's `machine` row
/// set to B's fingerprint and a `fingerprint` row naming A's device made
/// A's certificate grant on B. No row decides which device this is now.
#[test]
fn editing_the_machine_rows_of_a_copied_state_does_not_move_its_node_lock() {
    let world = World::installed(&["--fingerprint", "desk-a"]);
    world.issue("cad.lic", vendor_counted());
    world.ok(&["license", "add", "cad.lic"]);
    activate_by_certificate(&world, "state", None);
    world.issue(
        "site.lic",
        json!({"id": "lic_site", "product": "acme", "activations": {"max": 1},
               "features": [{"code": "site"}]}),
    );
    world.ok(&["license", "add", "site.lic"]);
    world.ok(&["activate"]);
    assert_eq!(world.reason("cad"), "OK");
    assert_eq!(world.reason("site"), "OK");
    world.copy_state("state", "copied");
    world
        .sqlite("copied")
        .execute_batch(&format!(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('machine', '{b}');
             INSERT OR REPLACE INTO meta (key, value) VALUES ('fingerprint', 'desk-a');",
            b = fingerprint_of("machine-b")
        ))
        .unwrap();
    assert_eq!(
        world.reason_on("machine-b", "copied", "cad"),
        "NOT_ACTIVATED"
    );
    assert_eq!(
        world.reason_on("machine-b", "copied", "site"),
        "NOT_ACTIVATED"
    );
    // Nor with the rows deleted, or naming B's own fingerprint as device.
    world
        .sqlite("copied")
        .execute_batch(&format!(
            "DELETE FROM meta WHERE key IN ('machine', 'fingerprint');
             INSERT INTO meta (key, value) VALUES ('fingerprint', '{b}');",
            b = fingerprint_of("machine-b")
        ))
        .unwrap();
    assert_eq!(
        world.reason_on("machine-b", "copied", "cad"),
        "NOT_ACTIVATED"
    );
    assert_eq!(
        world.reason_on("machine-b", "copied", "site"),
        "NOT_ACTIVATED"
    );
    assert_eq!(world.reason("cad"), "OK", "the original is untouched");
}

// ---- 3. activations nobody signed -----------------------------------------

#[test]
fn an_inserted_activation_does_not_activate_a_vendor_counted_license() {
    let world = World::installed(&["--fingerprint", "desk-1"]);
    world.issue("cad.lic", vendor_counted());
    world.ok(&["license", "add", "cad.lic"]);
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    let db = world.sqlite("state");
    // As the install would count one itself...
    db.execute(
        "INSERT INTO activations (license_id, fingerprint, activated_at, expires_at, certificate, hostname, vm)
         VALUES ('lic_cad', 'desk-1', 0, NULL, 0, 'h', 0)",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    // ...and as a certificate would, without one.
    db.execute(
        "UPDATE activations SET certificate = 1 WHERE license_id = 'lic_cad'",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    // A certificate signed for another device, pasted in.
    world.ok_in(
        "other",
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--fingerprint",
            "desk-2",
        ],
    );
    world.ok_in("other", &["license", "add", "cad.lic"]);
    activate_by_certificate(&world, "other", None);
    assert_eq!(world.reason_in("other", "cad"), "OK");
    let token: String = world
        .sqlite("other")
        .query_row("SELECT token FROM activations", [], |r| r.get(0))
        .unwrap();
    db.execute(
        "UPDATE activations SET token = ?1 WHERE license_id = 'lic_cad'",
        params![token],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
}

#[test]
fn a_certificate_activation_ends_when_its_certificate_says() {
    let world = World::installed(&["--fingerprint", "desk-1"]);
    world.issue("cad.lic", vendor_counted());
    world.ok(&["license", "add", "cad.lic"]);
    activate_by_certificate(&world, "state", Some("2026-01-08T00:00:00Z"));
    assert_eq!(world.reason("cad"), "OK");
    world
        .sqlite("state")
        .execute("UPDATE activations SET expires_at = NULL", [])
        .unwrap();
    let world = world.at("2026-02-01T00:00:00Z");
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    let list = world.ok(&["activation", "list"]);
    assert_eq!(list["items"][0]["expires_at"], "2026-01-08T00:00:00Z");
}

// ---- 4. an old serial written back, a revocation flipped ------------------

#[test]
fn an_older_serial_written_back_over_a_newer_one_grants_nothing() {
    let world = World::installed(&[]);
    world.issue(
        "v1.lic",
        json!({"id": "lic", "product": "acme", "serial": 1, "features": [{"code": "export"}]}),
    );
    world.issue(
        "v2.lic",
        json!({"id": "lic", "product": "acme", "serial": 2, "enabled": false,
               "features": [{"code": "export"}]}),
    );
    world.ok(&["license", "add", "v1.lic"]);
    let serial_1: String = world
        .sqlite("state")
        .query_row("SELECT token FROM licenses WHERE id = 'lic'", [], |r| {
            r.get(0)
        })
        .unwrap();
    world.ok(&["license", "add", "v2.lic"]);
    assert_eq!(world.reason("export"), "SUSPENDED");
    world
        .sqlite("state")
        .execute(
            "UPDATE licenses SET token = ?1 WHERE id = 'lic'",
            params![serial_1],
        )
        .unwrap();
    assert_eq!(world.reason("export"), "NOT_LICENSED");
}

#[test]
fn flipping_the_revoked_flag_or_deleting_the_tombstone_does_not_unrevoke() {
    let world = World::installed(&[]);
    world.issue(
        "lic.lic",
        json!({"id": "lic", "product": "acme", "features": [{"code": "export"}]}),
    );
    world.ok(&["license", "add", "lic.lic"]);
    world.ok(&[
        "revoke",
        "--key",
        "vendor.key",
        "--id",
        "lic",
        "--product",
        "acme",
        "--out",
        "lic.rev",
    ]);
    world.ok(&["apply", "lic.rev"]);
    assert_eq!(world.reason("export"), "REVOKED");
    let db = world.sqlite("state");
    db.execute("UPDATE licenses SET revoked = 0", []).unwrap();
    assert_eq!(world.reason("export"), "REVOKED", "the tombstone revokes");
    db.execute("DELETE FROM tombstones", []).unwrap();
    assert_eq!(world.reason("export"), "REVOKED", "the stored list revokes");
    world.fails(&["license", "add", "lic.lic"], "LICENSE_REVOKED");
}

// ---- the weak spots --------------------------------------------------------

#[test]
fn only_a_token_for_this_install_lowers_the_clock_guard() {
    let world = World::installed(&[]);
    world.issue(
        "sub.lic",
        json!({"id": "lic", "product": "acme", "expires_at": "2027-01-01T00:00:00Z",
               "features": [{"code": "export"}]}),
    );
    world.ok(&["license", "add", "sub.lic"]);
    // The clock was once a year ahead; now it is right, and tampered.
    let world = world.at("2026-12-01T00:00:00Z");
    world.ok(&["license", "status"]);
    // The vendor signs after the license, before today's right time.
    let world = world.at("2026-01-15T00:00:00Z");
    world.ok(&[
        "revoke",
        "--key",
        "vendor.key",
        "--id",
        "lic_other",
        "--out",
        "any.rev",
    ]);
    world.ok(&[
        "revoke",
        "--key",
        "vendor.key",
        "--id",
        "lic_other",
        "--product",
        "zeta",
        "--out",
        "zeta.rev",
    ]);
    world.ok(&[
        "revoke",
        "--key",
        "vendor.key",
        "--id",
        "lic_other",
        "--product",
        "acme",
        "--out",
        "acme.rev",
    ]);
    let world = world.at("2026-02-01T00:00:00Z");
    assert_eq!(world.reason("export"), "CLOCK_TAMPERED");
    // A fresh revocation list for someone else's license, without a
    // product: it revokes that id, and the alarm stays.
    world.ok(&["apply", "any.rev"]);
    assert_eq!(world.reason("export"), "CLOCK_TAMPERED");
    // One for another product is not for this install at all.
    world.fails(&["apply", "zeta.rev"], "PRODUCT_MISMATCH");
    assert_eq!(world.reason("export"), "CLOCK_TAMPERED");
    // One naming this product is the documented way out.
    world.ok(&["apply", "acme.rev"]);
    assert_eq!(world.reason("export"), "OK");
}

#[test]
fn respond_with_a_missing_vendor_state_signs_nothing() {
    let world = World::installed(&["--fingerprint", "desk-1"]);
    world.issue("cad.lic", vendor_counted());
    world.ok(&["license", "add", "cad.lic"]);
    world.ok(&["request", "--out", "device.req"]);
    let out = world.run(
        "vendor-boks",
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "device.req",
            "--out",
            "device.machine",
        ],
    );
    assert_eq!(json_out(&out)["error"]["code"], "STATE_MISSING");
    assert_eq!(exit_code(&out), 1);
    assert!(!world.path("device.machine").exists());
}

#[test]
fn respond_refuses_control_characters_in_a_request() {
    let world = World::installed(&["--fingerprint", "desk-1"]);
    for (field, value) in [
        ("fingerprint", "desk\u{1b}[2J-1"),
        ("license_id", "lic\ncad"),
        ("hostname", "host\u{7}"),
    ] {
        let mut request = json!({"v": 1, "license_id": "lic_cad", "fingerprint": "desk-1",
            "hostname": "h", "nonce": "n", "created_at": T0});
        request[field] = json!(value);
        world.write("bad.req", &request.to_string());
        let out = Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(world.dir.path())
            .env_remove("ENTITLE_STATE")
            .args([
                "--json",
                "respond",
                "--key",
                "vendor.key",
                "--request",
                "bad.req",
            ])
            .output()
            .unwrap();
        assert_eq!(json_out(&out)["error"]["code"], "MALFORMED", "{field}");
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_given_as_an_input_file_is_refused_at_once() {
    let world = World::installed(&[]);
    let fifo = world.path("license.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(world.dir.path())
        .args([
            "--json",
            "--state",
            "state",
            "license",
            "add",
            "license.fifo",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("`license add` of a FIFO blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(json_out(&out)["error"]["code"], "INVALID_ARGUMENT");
}

#[test]
fn a_count_that_would_pass_the_largest_number_is_refused_not_clamped() {
    let world = World::installed(&[]);
    world.issue(
        "meter.lic",
        json!({"id": "lic", "product": "acme",
               "features": [{"code": "api", "consumption": {}}]}),
    );
    world.ok(&["license", "add", "meter.lic"]);
    let max = i64::MAX.to_string();
    assert_eq!(
        world.ok(&["consume", "api", "--amount", &max])["used"],
        json!(i64::MAX)
    );
    world.fails(&["consume", "api"], "CONSUMPTION_LIMIT");
    assert_eq!(world.ok(&["consumption", "api"])["used"], json!(i64::MAX));
}

// ---- random edits of unsigned rows ------------------------------------------

mod edits {
    //! Model-based: a state built by random legitimate steps, then edited
    //! at random the way an attacker with `sqlite3` would, then reopened.
    //! Two properties:
    //! - **soundness**: every right the reopened engine grants is given by
    //!   some token the vendor signed, on that token's own terms (its
    //!   window, its product, a revocation list kept in the state, and for
    //!   a license only the vendor activates, a certificate for this very
    //!   device and license that has not ended);
    //! - **no gain**: edits of activation rows, certificate tokens and
    //!   ends, revoked flags, tombstones and license tokens (serials and
    //!   self-counted activations left alone: the README names them as
    //!   editable) grant nothing the state did not grant before.

    use super::*;
    use entitle::device::Device;
    use entitle::store::FileStore;
    use entitle::token::{sign, SigningKey, TokenType};
    use entitle::{Engine, ManualClock, Timestamp};
    use proptest::prelude::*;

    const DAY: i64 = 86_400;
    const DEVICE: &str = "dev";
    const FEATURES: [&str; 4] = ["fa", "fb", "fc", "fd"];
    /// When rights are compared: the start, within the certificate, past it.
    const LOOKS: [i64; 3] = [0, 5 * DAY, 20 * DAY];

    fn t0() -> Timestamp {
        Timestamp::parse(T0).unwrap()
    }

    /// Every token the attacker holds, all signed by the vendor.
    struct Pool {
        key: SigningKey,
        /// (id, serial, feature, counted_by, token)
        licenses: Vec<(
            &'static str,
            u64,
            &'static str,
            Option<&'static str>,
            String,
        )>,
        /// (license id, fingerprint, end in days, token)
        certificates: Vec<(&'static str, &'static str, Option<i64>, String)>,
        /// (revoked id, token): a revocation list for this product.
        revocations: Vec<(&'static str, String)>,
    }

    impl Pool {
        fn new() -> Self {
            let key = SigningKey::from_seed(&[42; 32]);
            let license = |id: &str, serial: u64, feature: &str, counted: Option<&str>, enabled| {
                let mut doc = json!({"v": 1, "id": id, "product": "acme", "issued_at": T0,
                    "serial": serial, "enabled": enabled, "features": [{"code": feature}]});
                if let Some(by) = counted {
                    doc["activations"] = json!({"max": 1, "counted_by": by});
                }
                sign(&doc, &key, TokenType::License).unwrap()
            };
            let certificate = |id: &str, fingerprint: &str, days: Option<i64>| {
                let mut doc = json!({"v": 1, "license_id": id, "fingerprint": fingerprint,
                    "issued_at": T0});
                if let Some(days) = days {
                    doc["expires_at"] = json!(t0().plus_secs(days * DAY).to_string());
                }
                sign(&doc, &key, TokenType::Machine).unwrap()
            };
            let licenses = vec![
                ("a", 1, "fa", None, license("a", 1, "fa", None, true)),
                ("a", 2, "fa", None, license("a", 2, "fa", None, false)),
                (
                    "b",
                    0,
                    "fb",
                    Some("vendor"),
                    license("b", 0, "fb", Some("vendor"), true),
                ),
                (
                    "c",
                    0,
                    "fc",
                    Some("install"),
                    license("c", 0, "fc", Some("install"), true),
                ),
                ("d", 0, "fd", None, license("d", 0, "fd", None, true)),
            ];
            let certificates = vec![
                ("b", DEVICE, Some(10), certificate("b", DEVICE, Some(10))),
                ("b", "other", None, certificate("b", "other", None)),
                ("c", DEVICE, Some(10), certificate("c", DEVICE, Some(10))),
            ];
            let list = json!({"v": 1, "product": "acme", "issued_at": T0, "ids": ["d"]});
            let revocations = vec![("d", sign(&list, &key, TokenType::Revocations).unwrap())];
            Pool {
                key,
                licenses,
                certificates,
                revocations,
            }
        }

        /// Whether some signed token gives `feature` at `at` (seconds from
        /// T0), on its own terms, given whether the state keeps the
        /// revocation list (`listed`).
        fn backs(&self, feature: &str, at: i64, listed: bool) -> bool {
            self.licenses.iter().any(|(id, serial, code, counted, _)| {
                let enabled = !(*id == "a" && *serial == 2);
                let revoked = listed && self.revocations.iter().any(|(r, _)| r == id);
                let activated = match *counted {
                    None | Some("install") => true,
                    _ => self.certificates.iter().any(|(l, f, end, _)| {
                        l == id && *f == DEVICE && end.is_none_or(|days| at < days * DAY)
                    }),
                };
                *code == feature && enabled && !revoked && activated
            })
        }
    }

    fn pool() -> &'static Pool {
        static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
        POOL.get_or_init(Pool::new)
    }

    /// A legitimate step.
    #[derive(Debug, Clone)]
    enum Step {
        AddLicense(usize),
        ApplyCertificate(usize),
        Revoke,
        Activate,
    }

    /// An attacker's edit of the state file.
    #[derive(Debug, Clone)]
    enum Edit {
        /// An activation row, as counted, as claiming a certificate, or
        /// holding one of the pool's certificates.
        InsertActivation {
            license: usize,
            other_device: bool,
            certificate: Option<usize>,
            claims: bool,
            expires_days: Option<i64>,
        },
        ActivationsNeverEnd,
        /// Paste a certificate token into every certificate activation.
        PasteCertificate(usize),
        UnflagRevoked,
        DeleteTombstones,
        /// Write another token of the same id into a license row.
        ReplaceLicenseToken(usize),
        /// Lower or delete a recorded serial (a documented gain).
        DeleteSerials,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..5usize).prop_map(Step::AddLicense),
            2 => (0..3usize).prop_map(Step::ApplyCertificate),
            1 => Just(Step::Revoke),
            1 => Just(Step::Activate),
        ]
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            6 => (
                0..4usize,
                any::<bool>(),
                proptest::option::of(0..3usize),
                any::<bool>(),
                proptest::option::of(-5..40i64)
            )
                .prop_map(
                    |(license, other_device, certificate, claims, expires_days)| {
                        Edit::InsertActivation {
                            license,
                            other_device,
                            certificate,
                            claims,
                            expires_days,
                        }
                    }
                ),
            1 => Just(Edit::ActivationsNeverEnd),
            1 => (0..3usize).prop_map(Edit::PasteCertificate),
            1 => Just(Edit::UnflagRevoked),
            1 => Just(Edit::DeleteTombstones),
            1 => (0..5usize).prop_map(Edit::ReplaceLicenseToken),
            1 => Just(Edit::DeleteSerials),
        ]
    }

    impl Edit {
        /// Whether the "no gain" property covers it: not a documented gain
        /// (serials, self-counted activations), and no certificate that
        /// would activate this device pasted in (that one is signed).
        fn covered_by_no_gain(&self, pool: &Pool) -> bool {
            let activates_here = |i: usize| {
                let (_, f, _, _) = &pool.certificates[i];
                *f == DEVICE
            };
            match self {
                Edit::DeleteSerials => false,
                Edit::InsertActivation {
                    license,
                    certificate,
                    claims,
                    ..
                } => {
                    let counted_by_install = ["a", "b", "c", "d"][*license] == "c";
                    (!counted_by_install || *claims) && !certificate.is_some_and(activates_here)
                }
                Edit::PasteCertificate(i) => !activates_here(*i),
                _ => true,
            }
        }

        fn apply(&self, db: &Connection, pool: &Pool) {
            let ids = ["a", "b", "c", "d"];
            match self {
                Edit::InsertActivation {
                    license,
                    other_device,
                    certificate,
                    claims,
                    expires_days,
                } => {
                    let token = certificate.map(|i| pool.certificates[i].3.clone());
                    let flag = i64::from(*claims || token.is_some());
                    let expires = expires_days.map(|d| t0().plus_secs(d * DAY).unix());
                    let fingerprint = if *other_device { "other" } else { DEVICE };
                    db.execute(
                        "INSERT OR REPLACE INTO activations (license_id, fingerprint, activated_at,
                         expires_at, certificate, hostname, vm, token)
                         VALUES (?1, ?2, 0, ?3, ?4, 'h', 0, ?5)",
                        params![ids[*license], fingerprint, expires, flag, token],
                    )
                    .unwrap();
                }
                Edit::ActivationsNeverEnd => {
                    db.execute("UPDATE activations SET expires_at = NULL", [])
                        .unwrap();
                }
                Edit::PasteCertificate(i) => {
                    db.execute(
                        "UPDATE activations SET token = ?1 WHERE certificate = 1",
                        params![pool.certificates[*i].3],
                    )
                    .unwrap();
                }
                Edit::UnflagRevoked => {
                    db.execute("UPDATE licenses SET revoked = 0", []).unwrap();
                }
                Edit::DeleteTombstones => {
                    db.execute("DELETE FROM tombstones", []).unwrap();
                }
                Edit::ReplaceLicenseToken(i) => {
                    let (id, _, _, _, token) = &pool.licenses[*i];
                    db.execute(
                        "UPDATE licenses SET token = ?1 WHERE id = ?2",
                        params![token, id],
                    )
                    .unwrap();
                }
                Edit::DeleteSerials => {
                    db.execute("DELETE FROM serials", []).unwrap();
                }
            }
        }
    }

    fn open(dir: &Path, clock: &ManualClock) -> entitle::Result<Engine> {
        Engine::builder("acme")
            .trust(pool().key.public_key().clone())
            .clock(clock.clone())
            .fingerprint(DEVICE)
            .store(FileStore::open(dir)?)
            .background_refresh(false)
            .build()
    }

    /// What is allowed, feature by feature, at each look.
    fn rights(engine: &Engine, clock: &ManualClock) -> Vec<[bool; 4]> {
        LOOKS
            .iter()
            .map(|&at| {
                clock.set(t0().plus_secs(at));
                FEATURES.map(|f| engine.check_feature(f).allowed())
            })
            .collect()
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(128)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn edits_of_unsigned_rows_grant_nothing_no_signed_token_gives(
            steps in proptest::collection::vec(step(), 1..10),
            edits in proptest::collection::vec(edit(), 1..6),
        ) {
            let pool = pool();
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::new(t0());
            let before = {
                let engine = Engine::builder("acme")
                    .trust(pool.key.public_key().clone())
                    .clock(clock.clone())
                    .fingerprint(DEVICE)
                    .store(FileStore::create(dir.path()).unwrap())
                    .background_refresh(false)
                    .build()
                    .unwrap();
                for step in &steps {
                    let _ = match step {
                        Step::AddLicense(i) => engine.add_license(&pool.licenses[*i].4).map(drop),
                        Step::ApplyCertificate(i) => engine.apply(&pool.certificates[*i].3).map(drop),
                        Step::Revoke => engine.apply(&pool.revocations[0].1).map(drop),
                        Step::Activate => engine.activate(&Device::new(DEVICE)).map(drop),
                    };
                }
                rights(&engine, &clock)
            };
            {
                let db = Connection::open(dir.path().join("state.sqlite")).unwrap();
                for edit in &edits {
                    edit.apply(&db, pool);
                }
            }
            clock.set(t0());
            // A state the engine refuses to open grants nothing at all.
            let Ok(engine) = open(dir.path(), &clock) else { return Ok(()) };
            let after = rights(&engine, &clock);
            let no_gain = edits.iter().all(|e| e.covered_by_no_gain(pool));
            let listed = steps.iter().any(|s| matches!(s, Step::Revoke));
            for (look, (now, then)) in after.iter().zip(&before).enumerate() {
                for (i, feature) in FEATURES.iter().enumerate() {
                    if now[i] {
                        prop_assert!(
                            pool.backs(feature, LOOKS[look], listed),
                            "{feature} allowed at day {} with no signed token giving it",
                            LOOKS[look] / DAY
                        );
                        prop_assert!(
                            !no_gain || then[i],
                            "{feature} allowed at day {} after the edits, not before",
                            LOOKS[look] / DAY
                        );
                    }
                }
            }
        }
    }
}

// ---- what the threat model says editing can still gain ----------------------

/// The README's threat model names every table the state holds that no
/// signature covers. Without a secret on the install, nothing can stop an
/// attacker with write access from editing those; this test shows exactly
/// what each edit gains, so that the list stays true: if one of these
/// stops gaining, the README says more than is so, and if a table not
/// named here gains, it says less.
#[test]
fn editing_unsigned_rows_gains_only_what_the_threat_model_names() {
    let world = World::installed(&[
        "--fingerprint",
        "desk-1",
        "--release-date",
        "2026-06-01T00:00:00Z",
    ]);
    world.issue(
        "team.lic",
        json!({"id": "lic_team", "product": "acme", "serial": 1,
               "seats": {"max": 1},
               "floating": {"seats": 1, "lease_secs": 3600},
               "expires_at": "2027-01-01T00:00:00Z",
               "features": [{"code": "export"},
                            {"code": "api", "consumption": {"max": 5}}]}),
    );
    world.issue(
        "site.lic",
        json!({"id": "lic_site", "product": "acme",
               "activations": {"max": 1, "max_transfers": 1},
               "features": [{"code": "cad"}]}),
    );
    world.ok(&["license", "add", "team.lic"]);
    world.ok(&["license", "add", "site.lic"]);
    world.ok(&["activate"]);
    let db = world.sqlite("state");

    // users: deleting one frees its seat.
    world.ok(&["user", "add", "ann"]);
    world.fails(&["user", "add", "bob"], "SEAT_LIMIT");
    db.execute("DELETE FROM users", []).unwrap();
    world.ok(&["user", "add", "bob"]);

    // counters: deleting one gives the period's units back.
    world.ok(&["consume", "api", "--amount", "5"]);
    world.fails(&["consume", "api"], "CONSUMPTION_LIMIT");
    db.execute("DELETE FROM counters", []).unwrap();
    world.ok(&["consume", "api"]);

    // leases: deleting one frees its floating seat.
    world.ok(&["lease", "checkout", "--client", "ws-1"]);
    world.fails(
        &["lease", "checkout", "--client", "ws-2"],
        "FLOATING_EXHAUSTED",
    );
    db.execute("DELETE FROM leases", []).unwrap();
    world.ok(&["lease", "checkout", "--client", "ws-2"]);

    // activations the install counts itself: deleting one frees its slot
    // without a transfer; inserting one activates a device.
    world.fails(&["activate", "--fingerprint", "desk-2"], "ACTIVATION_LIMIT");
    db.execute("DELETE FROM activations", []).unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    world.ok(&["activate", "--fingerprint", "desk-2"]);
    // (A row naming the device alone is not enough for a named device: it
    // must name this machine too, as `activate` here would have.)
    db.execute(
        "INSERT INTO activations (license_id, fingerprint, activated_at, expires_at, certificate, hostname, vm)
         VALUES ('lic_site', 'desk-1', 0, NULL, 0, 'h', 0)",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    db.execute(
        "UPDATE activations SET machine = ?1 WHERE fingerprint = 'desk-1'",
        params![this_machine()],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "OK");

    // transfers: resetting the count allows another deactivation.
    world.ok(&["deactivate", "--fingerprint", "desk-2"]);
    world.fails(&["deactivate", "--fingerprint", "desk-1"], "TRANSFER_LIMIT");
    db.execute("DELETE FROM transfers", []).unwrap();
    world.ok(&["deactivate", "--fingerprint", "desk-1"]);
    world.ok(&["activate"]);

    // latest_seen: lowering it lifts a clock alarm.
    let world = world.at("2026-12-01T00:00:00Z");
    world.ok(&["license", "status"]);
    let world = world.at("2026-02-01T00:00:00Z");
    assert_eq!(world.reason("export"), "CLOCK_TAMPERED");
    db.execute("UPDATE meta SET value = '0' WHERE key = 'latest_seen'", [])
        .unwrap();
    assert_eq!(world.reason("export"), "OK");

    // serials: deleting the record lets an older issue written back grant.
    world.issue(
        "team2.lic",
        json!({"id": "lic_team", "product": "acme", "serial": 2, "enabled": false,
               "features": [{"code": "export"}]}),
    );
    let serial_1: String = db
        .query_row(
            "SELECT token FROM licenses WHERE id = 'lic_team'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    world.ok(&["license", "add", "team2.lic"]);
    assert_eq!(world.reason("export"), "SUSPENDED");
    db.execute(
        "UPDATE licenses SET token = ?1 WHERE id = 'lic_team'",
        params![serial_1],
    )
    .unwrap();
    assert_eq!(world.reason("export"), "NOT_LICENSED");
    db.execute("DELETE FROM serials", []).unwrap();
    assert_eq!(world.reason("export"), "OK");

    // tombstones, with the revoked flag and the kept revocation list all
    // deleted: the license is as if never revoked.
    world.ok(&[
        "revoke",
        "--key",
        "vendor.key",
        "--id",
        "lic_team",
        "--out",
        "team.rev",
    ]);
    world.ok(&["apply", "team.rev"]);
    assert_eq!(world.reason("export"), "REVOKED");
    db.execute_batch(
        "UPDATE licenses SET revoked = 0; DELETE FROM tombstones; DELETE FROM signed;",
    )
    .unwrap();
    assert_eq!(world.reason("export"), "OK");

    // The CLI's settings. release_date: an earlier one lifts maintenance.
    world.issue(
        "maint.lic",
        json!({"id": "lic_m", "product": "acme", "maintenance_until": "2026-03-01T00:00:00Z",
               "features": [{"code": "render"}]}),
    );
    world.ok(&["license", "add", "maint.lic"]);
    assert_eq!(world.reason("render"), "MAINTENANCE_EXPIRED");
    db.execute(
        "UPDATE meta SET value = '2026-01-01T00:00:00Z' WHERE key = 'release_date'",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("render"), "OK");
    // keys: a key written in is trusted by the stock CLI (a CLI with the
    // vendor's keys compiled in ignores them: see
    // a_cli_with_compiled_in_keys_ignores_keys_written_into_the_state).
    world.ok(&["keygen", "--out", "mine"]);
    let mine = std::fs::read_to_string(world.path("mine.pub")).unwrap();
    let vendor = std::fs::read_to_string(world.path("vendor.pub")).unwrap();
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'keys'",
        params![serde_json::to_string(&[vendor, mine]).unwrap()],
    )
    .unwrap();
    world.issue_with(
        "mine.key",
        "mine.lic",
        json!({"id": "lic_mine", "product": "acme", "features": [{"code": "simulate"}]}),
    );
    world.ok(&["license", "add", "mine.lic"]);
    assert_eq!(world.reason("simulate"), "OK");
    // machine: words only (which message NOT_ACTIVATED shows). fingerprint:
    // the name of this machine's device; renamed or deleted, it names a
    // device this machine has no activation of. The engine binds the
    // named device to the machine it computes (finding 1 of round two).
    assert_eq!(world.reason("cad"), "OK");
    db.execute(
        "UPDATE meta SET value = 'elsewhere' WHERE key = 'machine'",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "OK");
    db.execute(
        "UPDATE meta SET value = 'desk-2' WHERE key = 'fingerprint'",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    db.execute(
        "DELETE FROM meta WHERE key IN ('fingerprint', 'machine')",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('fingerprint', 'desk-1')",
        [],
    )
    .unwrap();
    assert_eq!(world.reason("cad"), "OK");

    // first_use: moved later, or deleted, the trial still starts when the
    // license was added (finding 4 of round two: it once had no end).
    world.issue(
        "trial.lic",
        json!({"id": "lic_trial", "product": "acme", "trial": true, "trial_secs": 86400,
               "features": [{"code": "trial_only"}]}),
    );
    world.ok(&["license", "add", "trial.lic"]);
    assert_eq!(world.reason("trial_only"), "OK");
    let world = world.at("2026-02-03T00:00:00Z");
    assert_eq!(world.reason("trial_only"), "EXPIRED");
    // (A connection of its own, closed before the CLI runs again: the
    // CLI holds the file in exclusive locking mode.)
    drop(db);
    let db = world.sqlite("state");
    db.execute("UPDATE first_use SET at = at + 2 * 86400", [])
        .unwrap();
    drop(db);
    assert_eq!(world.reason("trial_only"), "EXPIRED");
}

/// Finding 4 of round two: with the first-use rows deleted, a trial had
/// no end at all. Now it starts when its license was added, and no
/// later than the latest time the install has seen.
#[test]
fn deleting_the_first_use_of_a_trial_does_not_make_it_endless() {
    let world = World::installed(&[]);
    world.issue(
        "trial.lic",
        json!({"id": "lic_trial", "product": "acme", "trial": true, "trial_secs": 86400,
               "features": [{"code": "trial_only"}]}),
    );
    world.ok(&["license", "add", "trial.lic"]);
    world
        .sqlite("state")
        .execute("DELETE FROM first_use", [])
        .unwrap();
    assert_eq!(world.reason("trial_only"), "OK");
    let world = world.at("2026-01-05T00:00:00Z");
    assert_eq!(world.reason("trial_only"), "EXPIRED");
    // With the license row's added_at moved into the future as well (two
    // tables edited, as restoring a backup would), the window starts no
    // later than the latest time the install has seen: the trial runs
    // once more, for its length, and ends (what the threat model says).
    world
        .sqlite("state")
        .execute_batch(
            "DELETE FROM first_use; UPDATE licenses SET added_at = added_at + 100 * 86400;",
        )
        .unwrap();
    assert_eq!(world.reason("trial_only"), "OK");
    let world = world.at("2026-01-06T00:00:01Z");
    assert_eq!(world.reason("trial_only"), "EXPIRED");
    let world = world.at("2026-12-01T00:00:00Z");
    assert_eq!(world.reason("trial_only"), "EXPIRED");
}

// ---- the way back: receipts and reports (docs/formats.md#deactivation-receipt-typ-receipt) -----------------

/// An install (`state`, device `desk-1`) activated through the vendor's
/// books (`books`) for `vendor_counted()` with two transfers.
fn activated_through_the_books() -> World {
    let world = World::installed(&["--fingerprint", "desk-1"]);
    let mut spec = vendor_counted();
    spec["activations"]["max_transfers"] = json!(2);
    world.issue("cad.lic", spec);
    world.ok_in(
        "books",
        &["init", "--pub", "vendor.pub", "--product", "acme"],
    );
    world.ok_in("books", &["license", "add", "cad.lic"]);
    world.ok(&["license", "add", "cad.lic"]);
    world.ok(&["request", "--out", "desk.req"]);
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
    world.ok(&["apply", "desk.machine"]);
    assert_eq!(world.reason("cad"), "OK");
    world
}

fn books_code(world: &World, args: &[&str]) -> String {
    let value = json_out(&world.run("books", args));
    value["error"]["code"].as_str().unwrap_or("OK").to_owned()
}

#[test]
fn an_install_key_written_into_the_state_signs_receipts_the_books_refuse() {
    let world = activated_through_the_books();
    // The attacker puts a key of their own choosing in the state.
    world
        .sqlite("state")
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'install_key'",
            params!["QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI"],
        )
        .unwrap();
    world.ok(&["deactivate", "--receipt", "desk.receipt"]);
    assert_eq!(
        books_code(&world, &["receipt", "desk.receipt"]),
        "RECEIPT_INVALID"
    );
    world.ok(&["report", "--out", "desk.report"]);
    assert_eq!(
        books_code(&world, &["ingest", "desk.report"]),
        "REPORT_INVALID"
    );
    // A key that is not one leaves a state that does not open.
    world
        .sqlite("state")
        .execute("UPDATE meta SET value = 'x' WHERE key = 'install_key'", [])
        .unwrap();
    world.fails(&["report"], "STATE_CORRUPT");
}

/// Finding 3 of round two: `deactivate --receipt`, then `apply` of the
/// same `.machine` file, granted again while the vendor freed the slot
/// for the receipt; repeated per transfer.
#[test]
fn a_certificate_given_up_with_a_receipt_does_not_activate_again() {
    let world = activated_through_the_books();
    let row: (String, Option<String>) = world
        .sqlite("state")
        .query_row("SELECT token, machine FROM activations", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    world.ok(&["deactivate", "--receipt", "desk.receipt"]);
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    world.fails(&["apply", "desk.machine"], "CERTIFICATE_DEACTIVATED");
    // The activations table rolled back (its row written in again): the
    // certificate stays given up.
    world
        .sqlite("state")
        .execute(
            "INSERT INTO activations (license_id, fingerprint, activated_at, expires_at,
             certificate, hostname, vm, token, machine) VALUES ('lic_cad', 'desk-1', 0, NULL, 1, 'h', 0, ?1, ?2)",
            params![row.0, row.1],
        )
        .unwrap();
    assert_eq!(world.reason("cad"), "NOT_ACTIVATED");
    world
        .sqlite("state")
        .execute("DELETE FROM activations", [])
        .unwrap();
    // The vendor frees the slot; a certificate signed since activates.
    assert_eq!(books_code(&world, &["receipt", "desk.receipt"]), "OK");
    let world = world.at("2026-01-02T00:00:00Z");
    world.ok(&["request", "--out", "again.req"]);
    world.ok_in(
        "books",
        &[
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "again.req",
            "--out",
            "again.machine",
        ],
    );
    world.ok(&["apply", "again.machine"]);
    assert_eq!(world.reason("cad"), "OK");
}

/// The same with the clock set back before the certificate was signed
/// when deactivating: the certificate is given up all the same.
#[test]
fn a_certificate_given_up_with_the_clock_set_back_does_not_activate_again() {
    let world = activated_through_the_books().at("2025-12-30T00:00:00Z");
    world.ok(&["deactivate", "--receipt", "desk.receipt"]);
    world.fails(&["apply", "desk.machine"], "CERTIFICATE_DEACTIVATED");
    let world = world.at("2026-01-01T00:00:00Z");
    world.fails(&["apply", "desk.machine"], "CERTIFICATE_DEACTIVATED");
}

/// Finding 2 of round two: a second install made with `init
/// --fingerprint desk-1` sent a request; `respond` re-issued for "the
/// same device", silently re-bound the install key, and both machines
/// ran under `max: 1`. The books count a device by (fingerprint, install
/// key).
#[test]
fn a_second_install_claiming_a_fingerprint_is_another_device_in_the_books() {
    let world = activated_through_the_books();
    world.ok_in(
        "second",
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--fingerprint",
            "desk-1",
        ],
    );
    world.ok_in("second", &["license", "add", "cad.lic"]);
    world.ok_in("second", &["request", "--out", "second.req"]);
    assert_eq!(
        books_code(
            &world,
            &[
                "respond",
                "--key",
                "vendor.key",
                "--request",
                "second.req",
                "--out",
                "second.machine"
            ]
        ),
        "ACTIVATION_LIMIT"
    );
    // The first install's own request again is a re-issue: counted once.
    world.ok(&["request", "--out", "again.req"]);
    assert_eq!(
        books_code(
            &world,
            &[
                "respond",
                "--key",
                "vendor.key",
                "--request",
                "again.req",
                "--out",
                "again.machine"
            ]
        ),
        "OK"
    );
    // With room for two, the books hold both, each with its own key.
    world.issue(
        "cad2.lic",
        json!({"id": "lic_cad", "product": "acme", "serial": 1,
               "activations": {"max": 2, "counted_by": "vendor", "max_transfers": 2},
               "features": [{"code": "cad"}]}),
    );
    world.ok_in("books", &["license", "add", "cad2.lic"]);
    assert_eq!(
        books_code(
            &world,
            &[
                "respond",
                "--key",
                "vendor.key",
                "--request",
                "second.req",
                "--out",
                "second.machine"
            ]
        ),
        "OK"
    );
    let list = world.ok_in("books", &["activation", "list"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(items.iter().all(|i| i["fingerprint"] == "desk-1"), "{list}");
    assert_ne!(items[0]["install_key"], items[1]["install_key"]);
    // The second install's reports verify against its own key.
    world.ok_in("second", &["apply", "second.machine"]);
    world.ok_in("second", &["report", "--out", "second.report"]);
    assert_eq!(books_code(&world, &["ingest", "second.report"]), "OK");
    // Each install's receipt frees its own activation.
    world.ok_in("second", &["deactivate", "--receipt", "second.receipt"]);
    assert_eq!(books_code(&world, &["receipt", "second.receipt"]), "OK");
    let list = world.ok_in("books", &["activation", "list"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(world.reason("cad"), "OK");
}

/// A weaker finding of round two: a row inserted with another install's
/// certificate granted, while `apply` of the same file was refused.
#[test]
fn a_row_holding_another_installs_certificate_grants_nothing() {
    let world = activated_through_the_books();
    let row: (String, Option<String>) = world
        .sqlite("state")
        .query_row("SELECT token, machine FROM activations", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    world.ok_in(
        "second",
        &[
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
            "--fingerprint",
            "desk-1",
        ],
    );
    world.ok_in("second", &["license", "add", "cad.lic"]);
    let out = world.run("second", &["apply", "desk.machine"]);
    assert_eq!(json_out(&out)["error"]["code"], "FINGERPRINT_MISMATCH");
    world
        .sqlite("second")
        .execute(
            "INSERT INTO activations (license_id, fingerprint, activated_at, expires_at,
             certificate, hostname, vm, token, machine) VALUES ('lic_cad', 'desk-1', 0, NULL, 1, 'h', 0, ?1, ?2)",
            params![row.0, row.1],
        )
        .unwrap();
    assert_eq!(world.reason_in("second", "cad"), "NOT_ACTIVATED");
    assert_eq!(world.reason("cad"), "OK", "the first install keeps its own");
}

/// A weaker finding of round two: removing a license and re-adding an
/// older issue of the same serial granted it (while installed, the same
/// serial signed earlier was refused).
#[test]
fn an_older_issue_of_the_same_serial_is_refused_after_a_removal_too() {
    let world = World::installed(&[]);
    let spec = |features: Value| json!({"id": "lic_x", "product": "acme", "serial": 1, "features": features});
    world.issue(
        "broad.lic",
        spec(json!([{"code": "export"}, {"code": "cad"}])),
    );
    let world = world.at("2026-01-02T00:00:00Z");
    world.issue("narrow.lic", spec(json!([{"code": "export"}])));
    world.ok(&["license", "add", "narrow.lic"]);
    world.fails(&["license", "add", "broad.lic"], "LICENSE_REPLAYED");
    world.ok(&["license", "remove", "lic_x"]);
    world.fails(&["license", "add", "broad.lic"], "LICENSE_REPLAYED");
    assert_eq!(world.reason("cad"), "NOT_LICENSED");
    // Written back into the licenses table, it grants nothing either.
    let token = std::fs::read_to_string(world.path("broad.lic")).unwrap();
    let compact: String = token.lines().filter(|l| !l.starts_with("-----")).collect();
    world
        .sqlite("state")
        .execute(
            "INSERT INTO licenses (id, token, added_at, revoked) VALUES ('lic_x', ?1, 0, 0)",
            params![compact],
        )
        .unwrap();
    assert_eq!(world.reason("cad"), "NOT_LICENSED");
    world.ok(&["license", "add", "narrow.lic"]);
    assert_eq!(world.reason("export"), "OK");
}

#[test]
fn a_kept_receipt_edited_in_the_state_is_refused_by_the_books() {
    let world = activated_through_the_books();
    world.ok(&["deactivate", "--receipt", "first.receipt"]);
    // Rewrite the kept receipt with a nonce the books have not seen,
    // signature kept.
    let db = world.sqlite("state");
    let token: String = db
        .query_row("SELECT token FROM issued_receipts", [], |r| r.get(0))
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["nonce"] = json!("fresh-nonce");
    let edited = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    db.execute("UPDATE issued_receipts SET token = ?1", params![edited])
        .unwrap();
    // The install will not hand it out as its own, and the books would
    // not take it: the genuine receipt frees the slot, once.
    world.fails(
        &["deactivate", "--receipt", "again.receipt"],
        "STATE_CORRUPT",
    );
    world.write("edited.receipt", &edited);
    assert_eq!(
        books_code(&world, &["receipt", "edited.receipt"]),
        "RECEIPT_INVALID"
    );
    assert_eq!(books_code(&world, &["receipt", "first.receipt"]), "OK");
    assert_eq!(
        books_code(&world, &["receipt", "first.receipt"]),
        "RECEIPT_REPLAYED"
    );
}

#[test]
fn lowering_the_report_sequence_only_gets_reports_refused_as_replays() {
    let world = activated_through_the_books();
    world.ok(&["report", "--out", "r1.report"]);
    assert_eq!(books_code(&world, &["ingest", "r1.report"]), "OK");
    world
        .sqlite("state")
        .execute(
            "UPDATE meta SET value = '0' WHERE key = 'report_sequence'",
            [],
        )
        .unwrap();
    world.ok(&["report", "--out", "again.report"]);
    assert_eq!(
        books_code(&world, &["ingest", "again.report"]),
        "REPORT_REPLAYED"
    );
}

/// What the README says a receipt cannot prove: a copy of the state,
/// taken with its key, signs as the install. The copy's receipt frees the
/// slot in the books while the original keeps its activation. Kept as a
/// test so that the threat model's words stay true.
#[test]
fn a_state_copied_with_its_key_signs_a_receipt_the_books_accept_as_the_readme_says() {
    let world = activated_through_the_books();
    world.copy_state("state", "copy");
    world.ok_in("copy", &["deactivate", "--receipt", "copy.receipt"]);
    assert_eq!(books_code(&world, &["receipt", "copy.receipt"]), "OK");
    assert_eq!(world.reason("cad"), "OK", "the original is still activated");
}
