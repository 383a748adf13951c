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
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
            "--allow-unknown",
        ],
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

/// `entitle --json issue --key vendor.key --spec spec.json --out x.lic`, plus `extra`.
fn issue_json(dir: &TempDir, extra: &[&str]) -> Output {
    let mut args = vec![
        "--json",
        "issue",
        "--key",
        "vendor.key",
        "--spec",
        "spec.json",
        "--out",
        "x.lic",
        "--now",
        NOW,
    ];
    args.extend_from_slice(extra);
    entitle(dir.path(), &args)
}

#[test]
fn a_misspelt_top_level_field_is_refused_with_the_name_it_meant() {
    let (dir, _) = vendor_dir();
    // Without the check, this would be a perpetual license.
    spec(
        &dir,
        json!({"product": "acme", "kind": "time_limited", "expire_at": "2027-01-01T00:00:00Z"}),
    );
    let message = json_error(&issue_json(&dir, &[]), "MALFORMED");
    assert!(
        message.contains("unknown field `expire_at` (did you mean `expires_at`?)"),
        "{message}"
    );
    assert!(message.contains("spec.json"), "names the file: {message}");
    assert!(message.contains("--allow-unknown"), "{message}");
    assert!(!dir.path().join("x.lic").exists(), "nothing is signed");

    let human = entitle(
        dir.path(),
        &["issue", "--key", "vendor.key", "--spec", "spec.json"],
    );
    assert_eq!(code(&human), 1);
    assert!(human.stdout.is_empty(), "no token on stdout");
    assert!(
        stderr(&human).contains("error [MALFORMED]")
            && stderr(&human).contains("did you mean `expires_at`?"),
        "{}",
        stderr(&human)
    );

    // A field that is near no known name is named all the same.
    spec(&dir, json!({"product": "acme", "colour": "blue"}));
    let message = json_error(&issue_json(&dir, &[]), "MALFORMED");
    assert!(message.contains("unknown field `colour`"), "{message}");
    assert!(!message.contains("did you mean"), "{message}");
}

#[test]
fn misspelt_nested_fields_are_each_refused_by_their_path() {
    let (dir, _) = vendor_dir();
    spec(
        &dir,
        json!({
            "product": "acme",
            "seats": {"max": 5, "hardmax": 7},
            "activations": {"max": 2, "max_transfer": 1},
            "floating": {"seats": 2, "lease_secs": 60, "borrow_max": 600},
            "features": [
                {"code": "export", "limt": 3},
                {"code": "api", "consumption": {"max": 10, "rest": "monthly"},
                 "floating": {"seats": 1, "lease_secs": 60, "linger": 5}}
            ]
        }),
    );
    let message = json_error(&issue_json(&dir, &[]), "MALFORMED");
    for expected in [
        "unknown field `seats.hardmax` (did you mean `seats.hard_max`?)",
        "unknown field `activations.max_transfer` (did you mean `activations.max_transfers`?)",
        "unknown field `floating.borrow_max`",
        "unknown field `features[0].limt` (did you mean `features[0].limit`?)",
        "unknown field `features[1].consumption.rest` (did you mean `features[1].consumption.reset`?)",
        "unknown field `features[1].floating.linger`",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert!(!dir.path().join("x.lic").exists());
}

#[test]
fn a_misspelt_required_field_says_which_name_it_meant() {
    let (dir, _) = vendor_dir();
    spec(&dir, json!({"prodcut": "acme"}));
    let message = json_error(&issue_json(&dir, &[]), "MALFORMED");
    assert!(message.contains("`product`"), "{message}");
    assert!(
        message.contains("unknown field `prodcut` (did you mean `product`?)"),
        "{message}"
    );
}

#[test]
fn free_form_fields_take_any_keys() {
    let (dir, _) = vendor_dir();
    spec(
        &dir,
        json!({
            "product": "acme",
            "customer": {"name": "Example Ltd", "address": {"city": "Leeds"}},
            "metadata": {"order": 1234, "lines": [{"sku": "A-1", "qty": null}]},
            "custom_fields": {"region": "eu", "expire_at": "not ours to check"},
            "features": [{"code": "export"}]
        }),
    );
    let out = issue_json(&dir, &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert_eq!(json_out(&out)["warnings"], json!([]));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn allow_unknown_signs_the_fields_and_an_install_keeps_them() {
    let (dir, _) = vendor_dir();
    spec(
        &dir,
        json!({"id": "lic_next", "product": "acme", "x_future_field": {"level": 2},
               "features": [{"code": "export", "x_future_limit": 9}]}),
    );
    let out = issue_json(&dir, &["--allow-unknown"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let issued = json_out(&out);
    let codes: Vec<&Value> = issued["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["code"])
        .collect();
    assert_eq!(codes, [&json!("UNKNOWN_FIELD"), &json!("UNKNOWN_FIELD")]);
    assert!(
        stderr(&out).contains("warning: unknown field `x_future_field`")
            && stderr(&out).contains("`features[0].x_future_limit`"),
        "{}",
        stderr(&out)
    );

    // The install accepts the license, grants what it knows of it, and
    // keeps the signed document whole, unknown fields included.
    let state = ["--state", "st"];
    let init = entitle(
        dir.path(),
        &[
            &state[..],
            &["init", "--pub", "vendor.pub", "--product", "acme"],
        ]
        .concat(),
    );
    assert_eq!(code(&init), 0, "{}", stderr(&init));
    let added = entitle(
        dir.path(),
        &[&state[..], &["--json", "license", "add", "x.lic"]].concat(),
    );
    assert_eq!(code(&added), 0, "{}", stdout(&added));
    let check = entitle(
        dir.path(),
        &[&state[..], &["--json", "check", "export"]].concat(),
    );
    assert_eq!(json_out(&check)["allowed"], true);

    let db = rusqlite::Connection::open(dir.path().join("st/state.sqlite")).unwrap();
    let token: String = db
        .query_row(
            "SELECT token FROM licenses WHERE id = 'lic_next'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let keyring = entitle::token::Keyring::from_pems([std::fs::read_to_string(
        dir.path().join("vendor.pub"),
    )
    .unwrap()
    .as_str()])
    .unwrap();
    let stored = entitle::license::VerifiedLicense::verify(&token, &keyring).unwrap();
    assert_eq!(stored.extra["x_future_field"], json!({"level": 2}));
    assert_eq!(stored.features[0].extra["x_future_limit"], 9);
}

#[test]
fn a_device_limit_each_install_counts_is_issued_with_a_warning() {
    let (dir, _) = vendor_dir();
    spec(
        &dir,
        json!({"product": "acme", "activations": {"max": 2}, "features": [{"code": "cad"}]}),
    );
    let human = entitle(
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
    assert_eq!(code(&human), 0, "still issued: {}", stderr(&human));
    assert!(dir.path().join("a.lic").exists());
    let warned = stderr(&human);
    assert!(
        warned.contains("warning: `activations.max` is 2")
            && warned.contains("binds only what one state or one site server sees"),
        "{warned}"
    );

    let out = issue_json(&dir, &[]);
    assert_eq!(code(&out), 0);
    let warnings = &json_out(&out)["warnings"];
    assert_eq!(warnings.as_array().unwrap().len(), 1, "{warnings}");
    assert_eq!(warnings[0]["code"], "ACTIVATIONS_COUNTED_BY_INSTALL");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("`activations.counted_by` to `vendor`"),
        "says what to do: {warnings}"
    );

    // Counted by the vendor's books, or without a limit: nothing to say.
    for good in [
        json!({"product": "acme", "activations": {"max": 2, "counted_by": "vendor"}}),
        json!({"product": "acme", "activations": {"max_transfers": 1}}),
    ] {
        spec(&dir, good.clone());
        let out = issue_json(&dir, &[]);
        assert_eq!(code(&out), 0, "{good}");
        assert_eq!(json_out(&out)["warnings"], json!([]), "{good}");
        assert!(stderr(&out).is_empty(), "{good}: {}", stderr(&out));
    }
}

#[test]
fn a_perpetual_license_with_an_expiry_is_issued_with_a_warning() {
    let (dir, _) = vendor_dir();
    spec(
        &dir,
        json!({"product": "acme", "expires_at": "2027-01-01T00:00:00Z"}),
    );
    let human = entitle(
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
    assert_eq!(code(&human), 0, "still issued: {}", stderr(&human));
    assert!(dir.path().join("a.lic").exists());
    let warned = stderr(&human);
    assert!(
        warned.contains("warning: `kind` is `perpetual`")
            && warned.contains("2027-01-01T00:00:00Z"),
        "{warned}"
    );

    let out = issue_json(&dir, &[]);
    assert_eq!(code(&out), 0);
    let warnings = &json_out(&out)["warnings"];
    assert_eq!(warnings.as_array().unwrap().len(), 1, "{warnings}");
    assert_eq!(warnings[0]["code"], "PERPETUAL_WITH_EXPIRY");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("time_limited"),
        "says what to do: {warnings}"
    );
    assert!(
        stderr(&out).contains("warning: `kind` is `perpetual`"),
        "on stderr in JSON mode too: {}",
        stderr(&out)
    );

    // Other kinds at odds with their end, and the kinds that fit.
    for (bad, warning) in [
        (json!({"kind": "subscription"}), "KIND_WITHOUT_END"),
        (json!({"kind": "time_limited"}), "KIND_WITHOUT_END"),
        (json!({"trial": true}), "TRIAL_WITHOUT_END"),
        (
            json!({"kind": "consumption", "features": [{"code": "api"}]}),
            "CONSUMPTION_WITHOUT_METER",
        ),
    ] {
        let mut document = bad.clone();
        document["product"] = json!("acme");
        spec(&dir, document);
        let out = issue_json(&dir, &[]);
        assert_eq!(code(&out), 0, "{bad}");
        assert_eq!(
            json_out(&out)["warnings"][0]["code"],
            warning,
            "{bad}: {}",
            stdout(&out)
        );
    }
    for good in [
        json!({"product": "acme", "kind": "time_limited", "expires_at": "2027-01-01T00:00:00Z"}),
        json!({"product": "acme", "kind": "subscription", "expires_at": "2027-01-01T00:00:00Z"}),
        json!({"product": "acme", "trial": true, "trial_secs": 3600}),
        json!({"product": "acme"}),
    ] {
        spec(&dir, good.clone());
        let out = issue_json(&dir, &[]);
        assert_eq!(code(&out), 0, "{good}");
        assert_eq!(json_out(&out)["warnings"], json!([]), "{good}");
        assert!(stderr(&out).is_empty(), "{good}: {}", stderr(&out));
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
