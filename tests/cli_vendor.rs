//! The vendor half of the `entitle` command line, driven as a user drives
//! it: the built binary, in a temporary directory.

mod cli_common;
use cli_common::{exit_code as code, json_out};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use tempfile::TempDir;

const NOW: &str = "2026-01-01T00:00:00Z";

/// Runs `entitle` in `dir` with a clean environment for its own variables.
fn entitle(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .args(args)
        .output()
        .expect("the entitle binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a `--json` failure with this code and exit status 1; returns the message.
fn json_error(output: &Output, expected_code: &str) -> String {
    let value = json_out(output);
    assert_eq!(value["error"]["code"], expected_code, "{value}");
    assert_eq!(code(output), 1, "{value}");
    value["error"]["message"]
        .as_str()
        .expect("the message is a string")
        .to_owned()
}

/// A temporary directory holding a vendor key pair `vendor.key`/`vendor.pub`.
fn vendor_dir() -> (TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = entitle(dir.path(), &["--json", "keygen", "--out", "vendor"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let kid = json_out(&out)["kid"].as_str().unwrap().to_owned();
    (dir, kid)
}

fn write(dir: &TempDir, name: &str, contents: &str) {
    std::fs::write(dir.path().join(name), contents).unwrap();
}

fn spec(dir: &TempDir, value: Value) {
    write(dir, "spec.json", &value.to_string());
}

#[test]
fn keygen_issue_verify_round_trip() {
    let (dir, kid) = vendor_dir();
    assert_eq!(kid.len(), 43, "a base64url SHA-256: {kid}");
    let private = std::fs::read_to_string(dir.path().join("vendor.key")).unwrap();
    let public = std::fs::read_to_string(dir.path().join("vendor.pub")).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("vendor.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is private");
    }

    spec(
        &dir,
        json!({"product": "acme", "seats": {"max": 5}, "features": [{"code": "export"}]}),
    );
    let issued = entitle(
        dir.path(),
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
            "--out",
            "acme.lic",
            "--now",
            NOW,
            "--json",
        ],
    );
    assert_eq!(code(&issued), 0, "{}", stderr(&issued));
    let issued = json_out(&issued);
    let id = issued["id"].as_str().unwrap();
    assert!(
        id.len() == 20 && id.starts_with("lic_"),
        "a random id: {id}"
    );
    assert_eq!(issued["kid"], kid.as_str());
    assert_eq!(issued["out"], "acme.lic");
    let file = std::fs::read_to_string(dir.path().join("acme.lic")).unwrap();
    assert!(file.starts_with("-----BEGIN ENTITLE LICENSE-----\n"));
    assert_eq!(issued["token"], file.as_str());

    let verified = entitle(
        dir.path(),
        &["verify", "--pub", "vendor.pub", "acme.lic", "--json"],
    );
    assert_eq!(code(&verified), 0, "{}", stdout(&verified));
    let verified = json_out(&verified);
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["kid"], kid.as_str());
    assert_eq!(verified["typ"], "license");
    let payload = &verified["payload"];
    assert_eq!(payload["v"], 1);
    assert_eq!(payload["id"], id);
    assert_eq!(payload["issued_at"], NOW, "issued_at is the --now time");
    assert_eq!(payload["product"], "acme");
    assert_eq!(payload["seats"], json!({"max": 5}));

    // The library reads what the tool wrote.
    let keyring = entitle::token::Keyring::from_pems([std::fs::read_to_string(
        dir.path().join("vendor.pub"),
    )
    .unwrap()
    .as_str()])
    .unwrap();
    let license = entitle::license::VerifiedLicense::verify(&file, &keyring).unwrap();
    assert_eq!(license.id, id);
}

#[test]
fn issue_keeps_given_fields_and_prints_the_token_without_out() {
    let (dir, _) = vendor_dir();
    spec(
        &dir,
        json!({"id": "lic_fixed", "issued_at": "2025-06-01T00:00:00Z", "product": "acme",
               "x_vendor_note": "kept"}),
    );
    let out = entitle(
        dir.path(),
        &["issue", "--key", "vendor.key", "--spec", "spec.json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = stdout(&out);
    assert!(
        token.starts_with("-----BEGIN ENTITLE LICENSE-----\n"),
        "{token}"
    );
    assert!(token.trim_end().ends_with("-----END ENTITLE LICENSE-----"));
    assert!(
        stderr(&out).contains("entitle license add"),
        "a person is told what to do next: {}",
        stderr(&out)
    );
    write(&dir, "piped.lic", &token);
    let verified = json_out(&entitle(
        dir.path(),
        &["--json", "verify", "--pub", "vendor.pub", "piped.lic"],
    ));
    assert_eq!(verified["payload"]["id"], "lic_fixed");
    assert_eq!(verified["payload"]["issued_at"], "2025-06-01T00:00:00Z");
    assert_eq!(verified["payload"]["x_vendor_note"], "kept");
}

#[test]
fn global_flags_go_before_or_after_the_command_and_now_comes_from_the_environment() {
    let (dir, _) = vendor_dir();
    spec(&dir, json!({"product": "acme"}));
    let before = entitle(
        dir.path(),
        &[
            "--json",
            "--now",
            NOW,
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
        ],
    );
    let compact = json_out(&before)["compact"].as_str().unwrap().to_owned();
    write(&dir, "bare.lic", &compact);
    let verified = json_out(&entitle(
        dir.path(),
        &["verify", "--pub", "vendor.pub", "bare.lic", "--json"],
    ));
    assert_eq!(
        verified["payload"]["issued_at"], NOW,
        "a bare token is read too"
    );

    let from_env = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir.path())
        .env("ENTITLE_NOW", "2030-05-05T05:05:05Z")
        .args([
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
            "--json",
        ])
        .output()
        .unwrap();
    let token = json_out(&from_env)["token"].as_str().unwrap().to_owned();
    write(&dir, "env.lic", &token);
    let inspected = json_out(&entitle(dir.path(), &["inspect", "env.lic", "--json"]));
    assert_eq!(inspected["payload"]["issued_at"], "2030-05-05T05:05:05Z");
}

#[test]
fn exit_codes_are_0_1_and_2() {
    let (dir, _) = vendor_dir();
    spec(&dir, json!({"product": "acme"}));
    let ok = entitle(
        dir.path(),
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
            "--out",
            "a.lic",
        ],
    );
    assert_eq!(code(&ok), 0);

    // Failure: a tampered token.
    let text = std::fs::read_to_string(dir.path().join("a.lic")).unwrap();
    let (compact, _) = entitle::token::dearmor(&text).unwrap();
    let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
    let forged = serde_json::json!({"v": 1, "id": "lic_forged", "product": "acme",
                                    "issued_at": NOW});
    parts[1] = base64_url(forged.to_string().as_bytes());
    write(&dir, "forged.lic", &parts.join("."));
    let failed = entitle(dir.path(), &["verify", "--pub", "vendor.pub", "forged.lic"]);
    assert_eq!(code(&failed), 1);
    assert!(
        stderr(&failed).contains("SIGNATURE_INVALID"),
        "{}",
        stderr(&failed)
    );
    json_error(
        &entitle(
            dir.path(),
            &["--json", "verify", "--pub", "vendor.pub", "forged.lic"],
        ),
        "SIGNATURE_INVALID",
    );

    // Usage errors: clap's own, with and without --json, and ours.
    for args in [
        &["frobnicate"][..],
        &["issue", "--key", "vendor.key"],
        &["verify", "--pub", "vendor.pub"],
        &["--now", "yesterday", "keygen", "--out", "x"],
        &["revoke", "--key", "vendor.key"],
        &[],
    ] {
        let plain = entitle(dir.path(), args);
        assert_eq!(code(&plain), 2, "{args:?}: {}", stderr(&plain));
        assert!(plain.stdout.is_empty(), "{args:?}");
        let with_json: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let json = entitle(dir.path(), &with_json);
        assert_eq!(code(&json), 2, "{args:?}");
        let value = json_out(&json);
        assert_eq!(value["error"]["code"], "USAGE", "{args:?}: {value}");
        assert!(!value["error"]["message"].as_str().unwrap().is_empty());
    }

    let help = entitle(dir.path(), &["--help"]);
    assert_eq!(code(&help), 0);
    assert!(stdout(&help).contains("keygen"));
}

#[test]
fn a_bad_spec_is_malformed_and_names_the_field() {
    let (dir, _) = vendor_dir();
    let cases = [
        (
            json!({"product": "acme", "seats": {"max": "five"}}),
            "seats.max",
        ),
        (json!({"id": "lic_1"}), "product"),
        (
            json!({"product": "acme", "features": [{"code": "a"}, {"code": "a"}]}),
            "features[1].code",
        ),
        (
            json!({"product": "acme", "expires_at": "next year"}),
            "expires_at",
        ),
        (json!({"product": "acme", "v": 2}), "v"),
    ];
    for (bad, field) in cases {
        spec(&dir, bad.clone());
        let out = entitle(
            dir.path(),
            &[
                "--json",
                "issue",
                "--key",
                "vendor.key",
                "--spec",
                "spec.json",
                "--out",
                "x.lic",
            ],
        );
        let message = json_error(&out, "MALFORMED");
        assert!(message.contains(&format!("`{field}`")), "{bad}: {message}");
        assert!(!dir.path().join("x.lic").exists(), "nothing is written");
    }

    for (text, hint) in [
        ("[1, 2]", "JSON object"),
        ("{\"product\": \"acme\"", "not valid JSON"),
        (
            "{\"product\": \"acme\", \"product\": \"other\"}",
            "duplicate key `product`",
        ),
    ] {
        write(&dir, "spec.json", text);
        let out = entitle(
            dir.path(),
            &[
                "--json",
                "issue",
                "--key",
                "vendor.key",
                "--spec",
                "spec.json",
            ],
        );
        let message = json_error(&out, "MALFORMED");
        assert!(message.contains(hint), "{text}: {message}");
        assert!(message.contains("spec.json"), "names the file: {message}");
    }
}

#[test]
fn a_key_the_verifier_does_not_trust_is_an_unknown_key() {
    let (dir, kid) = vendor_dir();
    let other = entitle(dir.path(), &["--json", "keygen", "--out", "other"]);
    assert_ne!(json_out(&other)["kid"], kid.as_str());
    spec(&dir, json!({"product": "acme"}));
    entitle(
        dir.path(),
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
            "--out",
            "a.lic",
        ],
    );
    let message = json_error(
        &entitle(
            dir.path(),
            &["--json", "verify", "--pub", "other.pub", "a.lic"],
        ),
        "UNKNOWN_KEY",
    );
    assert!(message.contains(&kid), "{message}");

    // Several keys, as after a rotation, in both spellings of --pub.
    for args in [
        &[
            "verify",
            "--pub",
            "other.pub",
            "vendor.pub",
            "a.lic",
            "--json",
        ][..],
        &[
            "verify",
            "--pub",
            "other.pub",
            "--pub",
            "vendor.pub",
            "a.lic",
            "--json",
        ],
    ] {
        let out = entitle(dir.path(), args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stdout(&out));
        assert_eq!(json_out(&out)["kid"], kid.as_str());
    }

    // A --kid that is not the key's thumbprint is signed as asked, with a
    // warning, and installs do not find the key.
    let out = entitle(
        dir.path(),
        &[
            "issue",
            "--key",
            "vendor.key",
            "--kid",
            "k2026",
            "--spec",
            "spec.json",
            "--out",
            "b.lic",
        ],
    );
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("warning"), "{}", stderr(&out));
    let with_json = entitle(
        dir.path(),
        &[
            "--json",
            "issue",
            "--key",
            "vendor.key",
            "--kid",
            "k2026",
            "--spec",
            "spec.json",
        ],
    );
    assert_eq!(json_out(&with_json)["kid"], "k2026");
    assert!(
        stderr(&with_json).contains("UNKNOWN_KEY"),
        "the warning is not lost in JSON mode: {}",
        stderr(&with_json)
    );
    json_error(
        &entitle(
            dir.path(),
            &["--json", "verify", "--pub", "vendor.pub", "b.lic"],
        ),
        "UNKNOWN_KEY",
    );
}

#[test]
fn inspect_marks_the_token_unverified() {
    let (dir, kid) = vendor_dir();
    spec(&dir, json!({"id": "lic_9", "product": "acme"}));
    entitle(
        dir.path(),
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
            "--out",
            "a.lic",
        ],
    );
    let inspected = entitle(dir.path(), &["--json", "inspect", "a.lic"]);
    assert_eq!(code(&inspected), 0);
    let inspected = json_out(&inspected);
    assert_eq!(inspected["verified"], false);
    assert_eq!(inspected["header"]["kid"], kid.as_str());
    assert_eq!(inspected["header"]["typ"], "license");
    assert_eq!(inspected["header"]["alg"], "EdDSA");
    assert_eq!(inspected["payload"]["id"], "lic_9");

    let human = entitle(dir.path(), &["inspect", "a.lic"]);
    assert_eq!(code(&human), 0);
    assert!(stdout(&human).contains("UNVERIFIED"), "{}", stdout(&human));
    assert!(stdout(&human).contains("lic_9"));

    write(&dir, "junk.lic", "not a token");
    json_error(
        &entitle(dir.path(), &["--json", "inspect", "junk.lic"]),
        "MALFORMED",
    );
}

#[test]
fn keygen_refuses_to_overwrite_keys_unless_forced() {
    let (dir, kid) = vendor_dir();
    let before = std::fs::read(dir.path().join("vendor.key")).unwrap();
    let refused = entitle(dir.path(), &["--json", "keygen", "--out", "vendor"]);
    let message = json_error(&refused, "IO_ERROR");
    assert!(
        message.contains("vendor.key") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("vendor.key")).unwrap(),
        before
    );

    // Only the public half there is refused as well, and nothing is written.
    std::fs::remove_file(dir.path().join("vendor.key")).unwrap();
    let refused = entitle(dir.path(), &["keygen", "--out", "vendor"]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("vendor.pub"),
        "{}",
        stderr(&refused)
    );
    assert!(!dir.path().join("vendor.key").exists());

    let forced = entitle(
        dir.path(),
        &["--json", "keygen", "--out", "vendor", "--force"],
    );
    assert_eq!(code(&forced), 0, "{}", stdout(&forced));
    let new_kid = json_out(&forced)["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, kid);
    let public = std::fs::read_to_string(dir.path().join("vendor.pub")).unwrap();
    let public = entitle::token::PublicKey::from_pem(&public).unwrap();
    assert_eq!(public.kid(), new_kid, "both halves were replaced together");
}

#[test]
fn unreadable_files_are_io_errors_naming_the_path() {
    let (dir, _) = vendor_dir();
    spec(&dir, json!({"product": "acme"}));
    let cases: [&[&str]; 4] = [
        &["issue", "--key", "missing.key", "--spec", "spec.json"],
        &["issue", "--key", "vendor.key", "--spec", "missing.json"],
        &["verify", "--pub", "missing.pub", "spec.json"],
        &["inspect", "missing.lic"],
    ];
    for args in cases {
        let with_json: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let message = json_error(&entitle(dir.path(), &with_json), "IO_ERROR");
        assert!(message.contains("missing."), "{args:?}: {message}");
    }
    // A file that is there but is not a key says which file it was.
    let message = json_error(
        &entitle(
            dir.path(),
            &[
                "--json",
                "issue",
                "--key",
                "vendor.pub",
                "--spec",
                "spec.json",
            ],
        ),
        "MALFORMED",
    );
    assert!(message.contains("vendor.pub"), "{message}");
}

#[test]
fn revoke_signs_a_revocation_list() {
    let (dir, kid) = vendor_dir();
    let out = entitle(
        dir.path(),
        &[
            "revoke",
            "--key",
            "vendor.key",
            "--id",
            "lic_1",
            "lic_2",
            "--id",
            "lic_1",
            "--out",
            "revoked.txt",
            "--now",
            NOW,
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = json_out(&out);
    assert_eq!(out["ids"], json!(["lic_1", "lic_2"]));
    assert_eq!(out["out"], "revoked.txt");
    let file = std::fs::read_to_string(dir.path().join("revoked.txt")).unwrap();
    assert!(
        file.starts_with("-----BEGIN ENTITLE REVOCATIONS-----\n"),
        "{file}"
    );

    let verified = json_out(&entitle(
        dir.path(),
        &["--json", "verify", "--pub", "vendor.pub", "revoked.txt"],
    ));
    assert_eq!(verified["typ"], "revocations");
    assert_eq!(verified["kid"], kid.as_str());
    assert_eq!(
        verified["payload"],
        json!({"v": 1, "issued_at": NOW, "ids": ["lic_1", "lic_2"]})
    );

    let human = entitle(
        dir.path(),
        &["revoke", "--key", "vendor.key", "--id", "lic_3"],
    );
    assert_eq!(code(&human), 0);
    assert!(stdout(&human).starts_with("-----BEGIN ENTITLE REVOCATIONS-----"));
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
