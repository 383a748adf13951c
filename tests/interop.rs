//! Interoperability: entitle's tokens and keys against other implementations
//! of the same standards (PyJWT and `cryptography` for JWS/EdDSA and RFC 7638,
//! OpenSSL for PEM keys).
//!
//! These tests need `python3` with PyJWT and cryptography, and `openssl`.
//! When one is missing they fail, saying what to install: a skipped
//! interoperability test would pass exactly when it proves nothing.
//! `.ci/run` installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use entitle::license::VerifiedLicense;
use entitle::token::Keyring;
use serde_json::{json, Value};

const NOW: &str = "2026-01-01T00:00:00Z";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/jose.py")
}

fn run(program: &str, args: &[&str], dir: &Path, install_hint: &str) -> Output {
    match Command::new(program).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run `{program}` ({e}): {install_hint}"),
    }
}

const PYTHON_HINT: &str = "these tests need python3 with PyJWT and cryptography: \
                           install python3, then `pip install pyjwt cryptography`";
const OPENSSL_HINT: &str =
    "these tests need the openssl command: `apt-get install openssl` (or your system's package)";

/// Runs `tests/interop/jose.py` and returns its stdout, trimmed.
fn python(dir: &Path, args: &[&str]) -> String {
    let check = run(
        "python3",
        &["-c", "import jwt, cryptography"],
        dir,
        PYTHON_HINT,
    );
    assert!(
        check.status.success(),
        "{PYTHON_HINT}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let script = script();
    let script = script.to_str().expect("a UTF-8 checkout path");
    let all: Vec<&str> = std::iter::once(script)
        .chain(args.iter().copied())
        .collect();
    let output = run("python3", &all, dir, PYTHON_HINT);
    assert!(
        output.status.success(),
        "jose.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = run("openssl", args, dir, OPENSSL_HINT);
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn entitle(dir: &Path, args: &[&str]) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .env_remove("ENTITLE_NOW")
        .env_remove("ENTITLE_STATE")
        .arg("--json")
        .args(args)
        .output()
        .expect("the entitle binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("entitle {args:?} printed no JSON ({e}):\n{stdout}"));
    (output.status.code().expect("entitle exited"), value)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn a_license_signed_by_pyjwt_verifies_in_the_library_and_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kid = python(dir, &["keygen", "py"]);
    let claims = json!({
        "v": 1, "id": "lic_py", "product": "acme", "issued_at": NOW,
        "expires_at": "2027-01-01T00:00:00Z",
        "seats": {"max": 3}, "features": [{"code": "export", "limit": 50}],
    });
    let token = python(
        dir,
        &["sign", "py.key", &kid, "license", &claims.to_string()],
    );
    std::fs::write(dir.join("py.lic"), &token).unwrap();

    // The library: Python's RFC 7638 kid is the one the keyring uses.
    let keyring = Keyring::from_pems([read(dir, "py.pub").as_str()]).unwrap();
    assert!(keyring.get(&kid).is_some(), "the kids agree: {kid}");
    let license = VerifiedLicense::verify(&token, &keyring).unwrap();
    assert_eq!(license.id, "lic_py");
    assert_eq!(license.kid(), kid);
    assert_eq!(license.seats.unwrap().max, 3);
    assert_eq!(license.feature("export").unwrap().limit, Some(50));

    // The tool, bare and armored.
    let (code, verified) = entitle(dir, &["verify", "--pub", "py.pub", "py.lic"]);
    assert_eq!(code, 0, "{verified}");
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["kid"], kid.as_str());
    assert_eq!(verified["typ"], "license");
    assert_eq!(verified["payload"], claims);
    let armored = entitle::token::armor(&token, entitle::token::TokenType::License);
    std::fs::write(dir.join("py-armored.lic"), armored).unwrap();
    let (code, _) = entitle(dir, &["verify", "--pub", "py.pub", "py-armored.lic"]);
    assert_eq!(code, 0);

    // PyJWT's default `typ` is "JWT": not a license, so refused.
    let jwt_typ = python(dir, &["sign", "py.key", &kid, "JWT", &claims.to_string()]);
    std::fs::write(dir.join("jwt.lic"), jwt_typ).unwrap();
    let (code, refused) = entitle(dir, &["verify", "--pub", "py.pub", "jwt.lic"]);
    assert_eq!(code, 1);
    assert_eq!(refused["error"]["code"], "WRONG_TYPE", "{refused}");

    // A PyJWT-signed document that is not a valid license is refused after
    // the signature checks out.
    let bad = json!({"v": 1, "id": "lic_bad", "issued_at": NOW});
    let bad = python(dir, &["sign", "py.key", &kid, "license", &bad.to_string()]);
    std::fs::write(dir.join("bad.lic"), bad).unwrap();
    let (code, refused) = entitle(dir, &["verify", "--pub", "py.pub", "bad.lic"]);
    assert_eq!(code, 1);
    assert_eq!(refused["error"]["code"], "MALFORMED", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("product"),
        "{refused}"
    );
}

#[test]
fn a_license_issued_by_the_tool_decodes_in_pyjwt() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (code, keys) = entitle(dir, &["keygen", "--out", "vendor"]);
    assert_eq!(code, 0, "{keys}");
    let spec = json!({"product": "acme", "customer": {"name": "Ünïcode GmbH"},
                      "features": [{"code": "export"}]});
    std::fs::write(dir.join("spec.json"), spec.to_string()).unwrap();
    let (code, issued) = entitle(
        dir,
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
        ],
    );
    assert_eq!(code, 0, "{issued}");

    let decoded: Value =
        serde_json::from_str(&python(dir, &["decode", "acme.lic", "vendor.pub"])).unwrap();
    assert_eq!(
        decoded["header"],
        json!({"alg": "EdDSA", "kid": keys["kid"], "typ": "license"})
    );
    let payload = &decoded["payload"];
    assert_eq!(payload["v"], 1);
    assert_eq!(payload["id"], issued["id"]);
    assert_eq!(payload["issued_at"], NOW);
    assert_eq!(payload["product"], "acme");
    assert_eq!(payload["customer"]["name"], "Ünïcode GmbH");

    // The kid the tool printed is the RFC 7638 thumbprint Python computes.
    assert_eq!(python(dir, &["thumbprint", "vendor.pub"]), keys["kid"]);
}

#[test]
fn keys_made_by_openssl_issue_and_verify_and_their_kid_is_rfc7638() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    openssl(
        dir,
        &["genpkey", "-algorithm", "ed25519", "-out", "ossl.key"],
    );
    openssl(
        dir,
        &["pkey", "-in", "ossl.key", "-pubout", "-out", "ossl.pub"],
    );
    let python_kid = python(dir, &["thumbprint", "ossl.pub"]);

    std::fs::write(
        dir.join("spec.json"),
        json!({"id": "lic_ossl", "product": "acme"}).to_string(),
    )
    .unwrap();
    let (code, issued) = entitle(
        dir,
        &[
            "issue",
            "--key",
            "ossl.key",
            "--spec",
            "spec.json",
            "--out",
            "ossl.lic",
        ],
    );
    assert_eq!(code, 0, "{issued}");
    assert_eq!(issued["kid"], python_kid.as_str());

    let (code, verified) = entitle(dir, &["verify", "--pub", "ossl.pub", "ossl.lic"]);
    assert_eq!(code, 0, "{verified}");
    assert_eq!(verified["kid"], python_kid.as_str());
    assert_eq!(verified["payload"]["id"], "lic_ossl");

    // And the other way round: entitle's keys are ordinary keys to openssl.
    let (code, _) = entitle(dir, &["keygen", "--out", "ent"]);
    assert_eq!(code, 0);
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            "ent.key",
            "-pubout",
            "-out",
            "ent-derived.pub",
        ],
    );
    assert_eq!(read(dir, "ent-derived.pub"), read(dir, "ent.pub"));

    // PyJWT verifies what the openssl key signed through entitle.
    let decoded: Value =
        serde_json::from_str(&python(dir, &["decode", "ossl.lic", "ossl.pub"])).unwrap();
    assert_eq!(decoded["payload"]["id"], "lic_ossl");
}

#[test]
fn a_revocation_list_from_the_tool_decodes_in_pyjwt() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (code, _) = entitle(dir, &["keygen", "--out", "vendor"]);
    assert_eq!(code, 0);
    let (code, revoked) = entitle(
        dir,
        &[
            "revoke",
            "--key",
            "vendor.key",
            "--id",
            "lic_1",
            "--out",
            "rev.txt",
            "--now",
            NOW,
        ],
    );
    assert_eq!(code, 0, "{revoked}");
    let decoded: Value =
        serde_json::from_str(&python(dir, &["decode", "rev.txt", "vendor.pub"])).unwrap();
    assert_eq!(decoded["header"]["typ"], "revocations");
    assert_eq!(
        decoded["payload"],
        json!({"v": 1, "issued_at": NOW, "ids": ["lic_1"]})
    );
}

#[test]
fn a_license_signed_by_the_builder_decodes_in_pyjwt() {
    use entitle::license::{Feature, Kind, License, Seats};
    use entitle::token::{armor, SigningKey, TokenType};
    use entitle::Timestamp;

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let key = SigningKey::generate().unwrap();
    std::fs::write(dir.join("vendor.pub"), key.public_key().to_pem()).unwrap();
    let token = License::builder("acme")
        .id("lic_rust")
        .issued_at(Timestamp::parse(NOW).unwrap())
        .kind(Kind::TimeLimited)
        .expires_at(Timestamp::parse("2027-01-01T00:00:00Z").unwrap())
        .customer("Ünïcode GmbH")
        .seats(Seats::new(3))
        .feature(Feature::new("export").with_limit(50))
        .sign(&key)
        .unwrap();
    std::fs::write(dir.join("rust.lic"), armor(&token, TokenType::License)).unwrap();

    let decoded: Value =
        serde_json::from_str(&python(dir, &["decode", "rust.lic", "vendor.pub"])).unwrap();
    assert_eq!(
        decoded["header"],
        json!({"alg": "EdDSA", "kid": key.kid(), "typ": "license"})
    );
    let payload = &decoded["payload"];
    assert_eq!(payload["v"], 1);
    assert_eq!(payload["id"], "lic_rust");
    assert_eq!(payload["product"], "acme");
    assert_eq!(payload["issued_at"], NOW);
    assert_eq!(payload["expires_at"], "2027-01-01T00:00:00Z");
    assert_eq!(payload["kind"], "time_limited");
    assert_eq!(payload["customer"], "Ünïcode GmbH");
    assert_eq!(payload["seats"], json!({"max": 3}));
    assert_eq!(
        payload["features"],
        json!([{"code": "export", "limit": 50}])
    );
}

/// Runs `jose.py` expecting it to fail (a token PyJWT must refuse).
fn python_refuses(dir: &Path, args: &[&str]) -> String {
    let script = script();
    let script = script.to_str().expect("a UTF-8 checkout path");
    let all: Vec<&str> = std::iter::once(script)
        .chain(args.iter().copied())
        .collect();
    let output = run("python3", &all, dir, PYTHON_HINT);
    assert!(!output.status.success(), "jose.py {args:?} accepted it");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn pyjwt_answers_a_request_and_verifies_receipts_and_reports_with_the_install_key() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The vendor is all Python: its key, its license, its answers.
    let kid = python(dir, &["keygen", "py"]);
    let claims = json!({"v": 1, "id": "lic_py", "product": "acme", "issued_at": NOW,
        "activations": {"max": 1, "counted_by": "vendor"},
        "features": [{"code": "cad"}, {"code": "api", "consumption": {"reset": "monthly"}}]});
    let license = python(
        dir,
        &["sign", "py.key", &kid, "license", &claims.to_string()],
    );
    std::fs::write(dir.join("py.lic"), license).unwrap();

    let desk = |args: &[&str]| {
        let all: Vec<&str> = ["--state", "desk", "--now", NOW]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let (code, value) = entitle(dir, &all);
        assert_eq!(code, 0, "entitle {args:?}: {value}");
        value
    };
    let init = desk(&[
        "init",
        "--pub",
        "py.pub",
        "--product",
        "acme",
        "--fingerprint",
        "desk-1",
    ]);
    let x = init["install_key"].as_str().unwrap().to_owned();
    desk(&["license", "add", "py.lic"]);
    desk(&["request", "--out", "desk.request"]);
    let certificate = python(dir, &["respond", "py.key", &kid, "desk.request", NOW]);
    std::fs::write(dir.join("desk.machine"), certificate).unwrap();
    assert_eq!(desk(&["apply", "desk.machine"])["applied"], "machine");
    assert_eq!(desk(&["check", "cad"])["reason"], "OK");
    desk(&["consume", "api", "--amount", "3"]);

    // What the install signs, PyJWT verifies with its public key alone,
    // and Python's RFC 7638 thumbprint of that key is the header's kid.
    desk(&["report", "--out", "desk.report"]);
    let report: Value =
        serde_json::from_str(&python(dir, &["decode-raw", "desk.report", &x])).unwrap();
    assert_eq!(
        report["header"],
        json!({"alg": "EdDSA", "kid": report["thumbprint"], "typ": "report"})
    );
    assert_eq!(report["thumbprint"], init["install_kid"]);
    assert_eq!(
        report["payload"],
        json!({"v": 1, "fingerprint": "desk-1", "created_at": NOW, "sequence": 1,
               "clock": {"latest_seen": NOW, "tampered": false},
               "licenses": [{"id": "lic_py", "active_users": 0, "activations": 1,
                             "features": [{"code": "api", "used": 3,
                                           "period_starts_at": NOW, "periods": []}]}]})
    );
    desk(&["deactivate", "--receipt", "desk.receipt"]);
    let receipt: Value =
        serde_json::from_str(&python(dir, &["decode-raw", "desk.receipt", &x])).unwrap();
    assert_eq!(receipt["header"]["typ"], "receipt");
    assert_eq!(receipt["header"]["kid"], report["thumbprint"]);
    let payload = &receipt["payload"];
    assert_eq!(
        (
            &payload["v"],
            &payload["license_id"],
            &payload["fingerprint"],
            &payload["deactivated_at"]
        ),
        (&json!(1), &json!("lic_py"), &json!("desk-1"), &json!(NOW))
    );
    assert!(payload["nonce"].as_str().is_some_and(|n| !n.is_empty()));
    // Another key does not verify them.
    let stranger = entitle::token::SigningKey::from_seed(&[5; 32])
        .public_key()
        .to_base64url();
    let refused = python_refuses(dir, &["decode-raw", "desk.receipt", &stranger]);
    assert!(
        refused.contains("Signature verification failed"),
        "{refused}"
    );
}
