//! The install's side of the vendor's online service (feature `client`,
//! docs/http.md#the-vendors-service), against a scripted fake service on
//! 127.0.0.1: a `TcpListener` in a thread answering canned HTTP/1.1, its
//! tokens signed with `entitle::token::sign`. What it shows: what the
//! service signs with the trusted key installs and grants; what it signs
//! with any other key, or for another device, grants nothing; its
//! refusals keep their codes; a sync applies newer licenses and
//! revocations and withdraws certificates; and a service out of reach
//! takes away nothing.

mod cli_common;
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cli_common::{exit_code, json_out};
use common::*;
use entitle::client::VendorClient;
use entitle::engine::ActivationRequest;
use entitle::license::{certificate_id, DeactivationReceipt};
use entitle::token::{sign, PublicKey, SigningKey, TokenType};
use entitle::{Engine, Error, ManualClock, Reason};
use serde_json::{json, Value};

// ---- the fake service -------------------------------------------------

/// One request as the fake service read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// What the fake service answers: a status, extra headers, a JSON body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body,
    }
}

fn refusal(status: u16, code: &str, message: &str) -> Reply {
    reply(status, json!({"error": {"code": code, "message": message}}))
}

type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A fake vendor's service on 127.0.0.1 (port 0), answering each request
/// with what its script says, and keeping every request it read.
struct FakeService {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeService {
    fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let thread = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve_one(stream, &*script, &seen);
                    }
                }
            })
        };
        FakeService {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self) -> VendorClient {
        VendorClient::new(&self.url()).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops listening: the port refuses connections from now on.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_one(stream: TcpStream, script: &Script, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut length = 0;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let request = Seen {
        method,
        path,
        authorization,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let answer = script(&request);
    seen.lock().unwrap().push(request);
    let text = answer.body.to_string();
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        text.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
}

// ---- what the vendor signs ------------------------------------------------

fn other_key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

/// The node-locked license `id` (serial `serial`), counted by the vendor,
/// with the features `codes`.
fn license(key: &SigningKey, id: &str, serial: u64, codes: &[&str]) -> String {
    let features: Vec<Value> = codes.iter().map(|c| json!({"code": c})).collect();
    let doc = json!({"v": 1, "id": id, "serial": serial, "product": "acme", "issued_at": T0,
        "activations": {"max": 3, "counted_by": "vendor"}, "features": features});
    sign(&doc, key, TokenType::License).unwrap()
}

/// A license that is not node-locked.
fn floating_free_license(key: &SigningKey, id: &str, codes: &[&str]) -> String {
    let features: Vec<Value> = codes.iter().map(|c| json!({"code": c})).collect();
    let doc = json!({"v": 1, "id": id, "product": "acme", "issued_at": T0, "features": features});
    sign(&doc, key, TokenType::License).unwrap()
}

/// The request the install sent in an activation or trial body.
fn request_of(seen: &Seen) -> ActivationRequest {
    serde_json::from_str(seen.body["request"].as_str().unwrap()).unwrap()
}

/// A certificate for what `request` says, as the service signs it.
fn certificate_for(key: &SigningKey, license_id: &str, request: &ActivationRequest) -> String {
    let mut doc = json!({"v": 1, "license_id": license_id, "fingerprint": request.fingerprint,
        "issued_at": T0, "expires_at": "2026-02-01T00:00:00Z"});
    if let Some(install_key) = &request.install_key {
        doc["install_key"] = json!(install_key);
    }
    if let Some(machine) = &request.machine {
        doc["machine"] = json!(machine);
    }
    sign(&doc, key, TokenType::Machine).unwrap()
}

/// A service that activates whoever asks for `lic_1` (features `cad`),
/// signing with `key`; the first activation of a device answers 201, the
/// next ones 200.
fn activating_service(key: SigningKey) -> FakeService {
    let counted = AtomicUsize::new(0);
    FakeService::start(move |seen| {
        let request = request_of(seen);
        let status = if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            201
        } else {
            200
        };
        reply(
            status,
            json!({"license": license(&key, "lic_1", 1, &["cad"]),
                   "certificate": certificate_for(&key, "lic_1", &request)}),
        )
    })
}

fn install(clock: &ManualClock) -> Engine {
    Vendor::new()
        .builder(clock)
        .fingerprint("desk-1")
        .build()
        .unwrap()
}

// ---- activation -------------------------------------------------------------

#[test]
fn activation_by_key_installs_the_license_and_certificate_and_the_gate_allows() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let service = activating_service(Vendor::new().key);
    assert!(!engine.check_feature("cad").allowed());

    let done = engine
        .activate_online(&service.client(), " ABCDE-FGHJK-MNPQR-STVWX-YZ012 ")
        .unwrap();
    assert_eq!(done.license_id, "lic_1");
    assert_eq!(done.fingerprint, "desk-1");
    assert!(done.newly_counted);
    assert_eq!(done.expires_at, Some(t("2026-02-01T00:00:00Z")));
    assert!(engine.check_feature("cad").allowed());
    assert!(engine.is_activated("lic_1"));

    // What went out: the key as typed (trimmed), and a request naming no
    // license, from this device and this install.
    let seen = service.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/activations");
    assert_eq!(seen[0].body["key"], "ABCDE-FGHJK-MNPQR-STVWX-YZ012");
    let request = request_of(&seen[0]);
    assert_eq!(request.license_id, "");
    assert_eq!(request.fingerprint, "desk-1");
    assert_eq!(
        request.install_key,
        Some(engine.install_key().unwrap().to_base64url())
    );

    // The same device again: counted before, a fresh certificate.
    let again = engine
        .activate_online(&service.client(), "ABCDE-FGHJK-MNPQR-STVWX-YZ012")
        .unwrap();
    assert!(!again.newly_counted);
    assert!(engine.check_feature("cad").allowed());
}

#[test]
fn activation_by_login_sends_the_user_and_installs_what_verifies() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let service = activating_service(Vendor::new().key);
    let done = engine
        .activate_online_user(&service.client(), "ada@example.com", "pa ss")
        .unwrap();
    assert_eq!(done.license_id, "lic_1");
    assert!(engine.check_feature("cad").allowed());
    let seen = service.seen();
    assert_eq!(
        seen[0].body["user"],
        json!({"email": "ada@example.com", "password": "pa ss"})
    );
    assert!(seen[0].body.get("key").is_none());
}

#[test]
fn a_fake_service_signing_with_another_key_grants_nothing() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let service = activating_service(other_key());
    let err = engine
        .activate_online(&service.client(), "ABCDE-FGHJK-MNPQR-STVWX-YZ012")
        .unwrap_err();
    assert!(
        matches!(err.code(), "UNKNOWN_KEY" | "SIGNATURE_INVALID"),
        "{err}"
    );
    assert!(!engine.check_feature("cad").allowed());
    assert!(engine.license_infos().is_empty());
    assert!(engine.activations().is_empty());

    // The trial route of the same fake: nothing either.
    let err = engine.start_trial_online(&service.client()).unwrap_err();
    assert!(matches!(err.code(), "UNKNOWN_KEY" | "SIGNATURE_INVALID"));
    assert!(engine.license_infos().is_empty());
}

#[test]
fn a_genuine_license_with_a_forged_certificate_installs_nothing() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let service = FakeService::start(|seen| {
        let request = request_of(seen);
        reply(
            201,
            json!({"license": license(&Vendor::new().key, "lic_1", 1, &["cad"]),
                   "certificate": certificate_for(&other_key(), "lic_1", &request)}),
        )
    });
    let err = engine.activate_online(&service.client(), "K").unwrap_err();
    assert!(matches!(err.code(), "UNKNOWN_KEY" | "SIGNATURE_INVALID"));
    // Both are checked before either is installed.
    assert!(engine.license_infos().is_empty());
    assert!(!engine.check_feature("cad").allowed());
}

/// A named change to the request a certificate is made for.
type Tamper = (&'static str, fn(&mut ActivationRequest));

#[test]
fn a_certificate_for_another_device_or_install_is_refused() {
    let cases: [Tamper; 3] = [
        ("another fingerprint", |r| r.fingerprint = "desk-2".into()),
        ("another install key", |r| {
            r.install_key = Some(SigningKey::from_seed(&[3; 32]).public_key().to_base64url())
        }),
        ("no install key", |r| r.install_key = None),
    ];
    for (case, edit) in cases {
        let clock = clock_at(T0);
        let engine = install(&clock);
        let key = Vendor::new().key;
        let service = FakeService::start(move |seen| {
            let mut request = request_of(seen);
            edit(&mut request);
            reply(
                201,
                json!({"license": license(&key, "lic_1", 1, &["cad"]),
                       "certificate": certificate_for(&key, "lic_1", &request)}),
            )
        });
        let err = engine.activate_online(&service.client(), "K").unwrap_err();
        assert_eq!(err.code(), "FINGERPRINT_MISMATCH", "{case}: {err}");
        assert!(!engine.check_feature("cad").allowed(), "{case}");
        assert!(engine.license_infos().is_empty(), "{case}");
    }
}

#[test]
fn a_trial_installs_a_license_locked_to_this_device() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let key = Vendor::new().key;
    let service = FakeService::start(move |seen| {
        assert_eq!(seen.path, "/v1/trials");
        let request = request_of(seen);
        let doc = json!({"v": 1, "id": "trial_desk-1", "product": "acme", "issued_at": T0,
            "trial": true, "trial_secs": 14 * DAY,
            "activations": {"max": 1, "counted_by": "vendor"}, "features": [{"code": "cad"}]});
        reply(
            201,
            json!({"license": sign(&doc, &key, TokenType::License).unwrap(),
                   "certificate": certificate_for(&key, "trial_desk-1", &request)}),
        )
    });
    let trial = engine.start_trial_online(&service.client()).unwrap();
    assert_eq!(trial.license_id, "trial_desk-1");
    assert!(trial.newly_counted);
    assert!(engine.check_feature("cad").allowed());
    clock.advance(15 * DAY);
    assert!(!engine.check_feature("cad").allowed());
}

// ---- refusals -----------------------------------------------------------------

#[test]
fn the_services_refusals_keep_their_codes() {
    let service = FakeService::start(|seen| {
        if seen.path == "/v1/trials" {
            return refusal(409, "TRIAL_USED", "this device had its trial");
        }
        match seen.body["key"].as_str().unwrap_or_default() {
            "full" => reply(
                409,
                json!({"error": {"code": "ACTIVATION_LIMIT", "message": "3 of 3 devices",
                    "used": 3, "max": 3}}),
            ),
            "wrong" => refusal(401, "UNAUTHORIZED", "no license has this key"),
            "vm" => refusal(403, "VM_NOT_ALLOWED", "not on a virtual machine"),
            "slow" => Reply {
                status: 429,
                headers: vec![("Retry-After", "42".into())],
                body: json!({"error": {"code": "RATE_LIMITED", "message": "too many"}}),
            },
            "down" => reply(503, json!({"error": {"code": "STORE_UNAVAILABLE"}})),
            "proxy" => reply(502, Value::Null),
            _ => refusal(404, "LICENSE_NOT_FOUND", "no such license"),
        }
    });
    let clock = clock_at(T0);
    let engine = install(&clock);
    let vendor = service.client();
    let code = |key: &str| engine.activate_online(&vendor, key).unwrap_err();

    let full = code("full");
    assert_eq!(full.code(), "ACTIVATION_LIMIT");
    assert_eq!(full.reason(), Some(Reason::ActivationLimit));
    assert!(full.to_string().contains("3 of 3 devices"), "{full}");
    assert_eq!(code("wrong").code(), "UNAUTHORIZED");
    assert_eq!(code("vm").code(), "VM_NOT_ALLOWED");
    match code("slow") {
        Error::RateLimited { retry_after_secs } => assert_eq!(retry_after_secs, 42),
        other => panic!("{other:?}"),
    }
    assert_eq!(code("down").code(), "SERVER_UNREACHABLE");
    assert_eq!(code("proxy").code(), "SERVER_UNREACHABLE");
    let trial = engine.start_trial_online(&vendor).unwrap_err();
    assert_eq!(trial.code(), "TRIAL_USED");
    assert!(trial.to_string().contains("desk-1"), "{trial}");
    assert!(engine.license_infos().is_empty());
}

#[test]
fn a_malformed_answer_installs_nothing() {
    let service = FakeService::start(|_| reply(201, json!({"license": 42})));
    let clock = clock_at(T0);
    let engine = install(&clock);
    let err = engine.activate_online(&service.client(), "K").unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(engine.license_infos().is_empty());
}

// ---- deactivation ---------------------------------------------------------------

#[test]
fn deactivation_posts_a_receipt_and_keeps_it_when_the_post_fails() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let vendor_key = Vendor::new().key;
    let deactivations = Arc::new(AtomicUsize::new(0));
    let service = {
        let deactivations = Arc::clone(&deactivations);
        FakeService::start(move |seen| match seen.path.as_str() {
            "/v1/activations" => {
                let request = request_of(seen);
                reply(
                    201,
                    json!({"license": license(&vendor_key, "lic_1", 1, &["cad"]),
                           "certificate": certificate_for(&vendor_key, "lic_1", &request)}),
                )
            }
            // The first post is lost to an outage; the second is taken;
            // a third is a receipt taken before.
            _ => match deactivations.fetch_add(1, Ordering::SeqCst) {
                0 => reply(503, Value::Null),
                1 => reply(200, json!({"freed": true})),
                _ => refusal(409, "RECEIPT_REPLAYED", "accepted before"),
            },
        })
    };
    engine.activate_online(&service.client(), "K").unwrap();
    assert!(engine.check_feature("cad").allowed());

    let err = engine.deactivate_online(&service.client()).unwrap_err();
    assert_eq!(err.code(), "SERVER_UNREACHABLE");
    assert!(err.to_string().contains("receipt is kept"), "{err}");
    // Deactivated here all the same: the receipt stands for it.
    assert!(!engine.check_feature("cad").allowed());

    let done = engine.deactivate_online(&service.client()).unwrap();
    assert_eq!(done.license_ids, ["lic_1"]);
    assert!(done.again);
    let again = engine.deactivate_online(&service.client()).unwrap();
    assert_eq!(again.license_ids, ["lic_1"]);

    // The same receipt each time, signed by this install's key.
    let receipts: Vec<String> = service
        .seen()
        .iter()
        .filter(|s| s.path == "/v1/deactivations")
        .map(|s| s.body["receipt"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(receipts.len(), 3);
    assert!(receipts.iter().all(|r| *r == receipts[0]));
    let key: PublicKey = engine.install_key().unwrap();
    let receipt = DeactivationReceipt::verify(&receipts[0], &key).unwrap();
    assert_eq!(
        (receipt.license_id.as_str(), receipt.fingerprint.as_str()),
        ("lic_1", "desk-1")
    );
}

// ---- sync -----------------------------------------------------------------------

/// A service that activates `lic_1` and answers each sync with the next
/// of `syncs`, keeping the certificate it issued in `issued`.
fn syncing_service(syncs: Vec<Value>, issued: Arc<Mutex<String>>) -> FakeService {
    let key = Vendor::new().key;
    let next = AtomicUsize::new(0);
    FakeService::start(move |seen| match seen.path.as_str() {
        "/v1/activations" => {
            let certificate = certificate_for(&key, "lic_1", &request_of(seen));
            *issued.lock().unwrap() = certificate.clone();
            reply(
                201,
                json!({"license": license(&key, "lic_1", 1, &["cad"]),
                       "certificate": certificate}),
            )
        }
        "/v1/sync" => {
            let n = next.fetch_add(1, Ordering::SeqCst);
            let mut answer = syncs[n.min(syncs.len() - 1)].clone();
            // A placeholder for the certificate id the service knows.
            if answer["withdrawn"] == json!(["ISSUED"]) {
                answer["withdrawn"] = json!([certificate_id(&issued.lock().unwrap())]);
            }
            reply(200, answer)
        }
        "/v1/deactivations" => reply(200, json!({"freed": true})),
        _ => refusal(404, "NOT_FOUND", "no such route"),
    })
}

#[test]
fn sync_applies_a_newer_license_and_a_revocation_and_withdraws_a_certificate() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let vendor = Vendor::new();
    engine
        .add_license(&floating_free_license(&vendor.key, "lic_2", &["export"]))
        .unwrap();
    let first = json!({
        "licenses": [license(&vendor.key, "lic_1", 2, &["cad", "plot"]),
                     floating_free_license(&other_key(), "lic_3", &["forged"])],
        "revocations": vendor.revocations_for(Some("acme"), &["lic_2"], T0),
        "withdrawn": [],
    });
    let second = json!({"licenses": [], "withdrawn": ["ISSUED"]});
    let issued = Arc::new(Mutex::new(String::new()));
    let service = syncing_service(vec![first, second], Arc::clone(&issued));
    engine.activate_online(&service.client(), "K").unwrap();
    assert!(engine.check_feature("export").allowed());
    assert!(!engine.check_feature("plot").allowed());

    let outcome = engine.sync_online(&service.client()).unwrap();
    assert_eq!(outcome.licenses, ["lic_1"]);
    assert_eq!(outcome.revoked, ["lic_2"]);
    assert!(outcome.withdrawn.is_empty());
    assert_eq!(outcome.applied(), 2);
    // The forged license is refused on its own, and grants nothing.
    assert_eq!(outcome.refused.len(), 1);
    assert!(matches!(
        outcome.refused[0].code,
        "UNKNOWN_KEY" | "SIGNATURE_INVALID"
    ));
    assert!(!engine.check_feature("forged").allowed());
    assert!(engine.check_feature("plot").allowed());
    assert!(engine.check_feature("cad").allowed());
    assert!(!engine.check_feature("export").allowed());

    // What went out: the installed ids, this device, this install.
    let seen = service.seen();
    let sync = seen.iter().find(|s| s.path == "/v1/sync").unwrap();
    let mut ids: Vec<&str> = sync.body["license_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["lic_1", "lic_2"]);
    assert_eq!(sync.body["fingerprint"], "desk-1");
    assert_eq!(
        sync.body["install_key"],
        engine.install_key().unwrap().to_base64url()
    );

    // The vendor freed this device's slot: its certificate stops granting.
    let outcome = engine.sync_online(&service.client()).unwrap();
    assert_eq!(outcome.withdrawn.len(), 1);
    assert_eq!(outcome.withdrawn[0].license_id, "lic_1");
    assert_eq!(outcome.withdrawn[0].fingerprint, "desk-1");
    assert_eq!(engine.check_feature("cad").reason(), Reason::NotActivated);
    assert!(!engine.is_activated("lic_1"));
}

#[test]
fn a_sync_with_the_service_gone_keeps_every_right() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let issued = Arc::new(Mutex::new(String::new()));
    let mut service = syncing_service(vec![json!({"withdrawn": ["ISSUED"]})], issued);
    let vendor = service.client();
    engine.activate_online(&vendor, "K").unwrap();
    let before = engine.activations();
    service.stop();

    let err = engine.sync_online(&vendor).unwrap_err();
    assert_eq!(err.code(), "SERVER_UNREACHABLE");
    assert!(err.to_string().contains(&service.url()), "{err}");
    assert!(engine.check_feature("cad").allowed());
    assert_eq!(engine.activations(), before);
}

#[test]
fn a_garbled_sync_answer_applies_nothing() {
    let clock = clock_at(T0);
    let engine = install(&clock);
    let vendor = Vendor::new();
    let garbled = json!({
        "licenses": [license(&vendor.key, "lic_1", 2, &["cad", "plot"])],
        "withdrawn": "ISSUED",
    });
    let issued = Arc::new(Mutex::new(String::new()));
    let service = syncing_service(vec![garbled], issued);
    engine.activate_online(&service.client(), "K").unwrap();
    let err = engine.sync_online(&service.client()).unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    assert!(!engine.check_feature("plot").allowed());
    assert!(engine.check_feature("cad").allowed());
}

// ---- the user's licenses ------------------------------------------------------------

#[test]
fn a_users_licenses_are_listed_with_http_basic_and_verified() {
    let key = Vendor::new().key;
    let service = FakeService::start(move |seen| {
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.path, "/v1/user/licenses?product=acme");
        // base64("ada@example.com:s3cret")
        if seen.authorization.as_deref() != Some("Basic YWRhQGV4YW1wbGUuY29tOnMzY3JldA==") {
            return refusal(401, "UNAUTHORIZED", "wrong email or password");
        }
        reply(
            200,
            json!([{"id": "lic_1", "token": license(&key, "lic_1", 1, &["cad"]),
                "user": {"id": "usr_1", "email": "ada@example.com", "first_name": "Ada",
                    "last_name": null, "max_activations": 2, "total_activations": 1}}]),
        )
    });
    let clock = clock_at(T0);
    let engine = install(&clock);
    let vendor = service.client();
    let listed = vendor
        .user_licenses(&engine, "ada@example.com", "s3cret")
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].license.id, "lic_1");
    assert_eq!(listed[0].user.total_activations, 1);
    assert_eq!(listed[0].user.first_name.as_deref(), Some("Ada"));
    let wrong = vendor
        .user_licenses(&engine, "ada@example.com", "nope")
        .unwrap_err();
    assert_eq!(wrong.code(), "UNAUTHORIZED");
    // Listing installs nothing.
    assert!(engine.license_infos().is_empty());
}

// ---- the address -----------------------------------------------------------------------

#[test]
fn plain_http_is_accepted_only_to_this_machine() {
    let refused = VendorClient::new("http://example.com").unwrap_err();
    assert_eq!(refused.code(), "INVALID_ARGUMENT");
    assert!(refused.to_string().contains("https://"), "{refused}");
    assert!(VendorClient::new("http://127.0.0.1:1").is_ok());
    assert!(VendorClient::new("https://example.com").is_ok());
    // Accepted, and nothing listens there: out of reach, nothing taken.
    let clock = clock_at(T0);
    let engine = install(&clock);
    let vendor = VendorClient::new("http://127.0.0.1:1").unwrap();
    assert_eq!(
        engine.activate_online(&vendor, "K").unwrap_err().code(),
        "SERVER_UNREACHABLE"
    );
}

// ---- the command line ----------------------------------------------------------------------

fn entitle(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_entitle"));
    command
        .current_dir(dir)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .env_remove("ENTITLE_PASSWORD")
        .args(["--state", "install", "--now", T0])
        .args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the entitle binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = entitle(dir, &all, &[]);
    let value = json_out(&output);
    assert_eq!(exit_code(&output), 0, "entitle {args:?}: {value}");
    value
}

fn cli_install(dir: &Path) {
    std::fs::write(
        dir.join("vendor.pub"),
        Vendor::new().key.public_key().to_pem(),
    )
    .unwrap();
    ok(
        dir,
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
}

#[test]
fn cli_activates_syncs_and_deactivates_online() {
    let dir = tempfile::tempdir().unwrap();
    cli_install(dir.path());
    let issued = Arc::new(Mutex::new(String::new()));
    let service = syncing_service(vec![json!({"withdrawn": []})], issued);
    let url = service.url();

    let done = ok(dir.path(), &["activate", "--online", &url, "--key", "K"]);
    assert_eq!(done["license_id"], "lic_1");
    assert_eq!(done["fingerprint"], "desk-1");
    assert_eq!(done["newly_counted"], true);
    ok(dir.path(), &["check", "cad"]);

    let synced = ok(dir.path(), &["sync", "--online", &url]);
    assert_eq!(synced["applied"], 0);

    // Human output says what happened and what comes next.
    let human = entitle(dir.path(), &["deactivate", "--online", &url], &[]);
    assert_eq!(
        exit_code(&human),
        0,
        "{}",
        String::from_utf8_lossy(&human.stderr)
    );
    let said = String::from_utf8_lossy(&human.stdout);
    assert!(said.contains("lic_1") && said.contains("Next"), "{said}");
    let denied = entitle(dir.path(), &["--json", "check", "cad"], &[]);
    assert_eq!(exit_code(&denied), 1);
}

#[test]
fn cli_logs_in_with_a_password_from_a_file_or_the_environment_never_argv() {
    let dir = tempfile::tempdir().unwrap();
    cli_install(dir.path());
    let key = Vendor::new().key;
    let service = FakeService::start(move |seen| {
        if seen.path == "/v1/trials" {
            return refusal(409, "TRIAL_USED", "this device had its trial");
        }
        if seen.body["user"]["password"] != "s3cret" {
            return refusal(401, "UNAUTHORIZED", "wrong email or password");
        }
        let request = request_of(seen);
        reply(
            200,
            json!({"license": license(&key, "lic_1", 1, &["cad"]),
                   "certificate": certificate_for(&key, "lic_1", &request)}),
        )
    });
    let url = service.url();
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    let by_file = ok(
        dir.path(),
        &[
            "activate",
            "--online",
            &url,
            "--email",
            "ada@example.com",
            "--password-file",
            "password",
        ],
    );
    assert_eq!(by_file["newly_counted"], false);

    let by_env = entitle(
        dir.path(),
        &[
            "--json",
            "activate",
            "--online",
            &url,
            "--email",
            "ada@example.com",
        ],
        &[("ENTITLE_PASSWORD", "wrong")],
    );
    assert_eq!(exit_code(&by_env), 1);
    assert_eq!(json_out(&by_env)["error"]["code"], "UNAUTHORIZED");

    let on_argv = entitle(
        dir.path(),
        &[
            "activate",
            "--online",
            &url,
            "--email",
            "ada@example.com",
            "--password",
            "s3cret",
        ],
        &[],
    );
    assert_eq!(exit_code(&on_argv), 2);

    let trial = entitle(dir.path(), &["--json", "trial", "--online", &url], &[]);
    assert_eq!(exit_code(&trial), 1);
    assert_eq!(json_out(&trial)["error"]["code"], "TRIAL_USED");
    // Every password the service saw came from the file or the variable.
    let passwords: Vec<Value> = service
        .seen()
        .iter()
        .filter_map(|s| s.body["user"].get("password").cloned())
        .collect();
    assert_eq!(passwords, [json!("s3cret"), json!("wrong")]);
}
