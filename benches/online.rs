//! The vendor's online service (docs/http.md#the-vendors-service): one
//! activation of a new device by license key, `Service::activate` on a
//! file store, against its floor measured in the same run: verifying a
//! token the size of an activation request, signing a machine certificate,
//! and one bare durable SQLite commit (a new row, WAL, fsync at commit),
//! which is what an activation must do at the least (target: activation /
//! floor at most 1.5). Each device has its own fingerprint and install
//! key, made before the timing starts.
//!
//! ```text
//! cargo bench --features server --bench online -- --warm-up-time 1 --measurement-time 5
//! ```

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use entitle::books::online::{Credential, Service};
use entitle::books::Books;
use entitle::license::LicenseKey;
use entitle::store::FileStore;
use entitle::token::{self, Keyring, SigningKey, TokenType};
use entitle::SystemClock;
use serde_json::json;

/// The books' product.
const PRODUCT: &str = "acme";

/// The activation request of device `n` (as `Engine::activate_online`
/// sends it: no license id, the key names the license), with an install
/// key of its own; and that key.
fn request(n: u64) -> (String, SigningKey) {
    let install = SigningKey::generate().unwrap();
    let text = json!({
        "v": 1, "license_id": "", "fingerprint": format!("device-{n:08}"),
        "hostname": format!("host-{n}"), "nonce": format!("n-{n}"),
        "created_at": "2026-01-01T00:00:00Z", "vm": false,
        "install_key": install.public_key().to_base64url(),
    })
    .to_string();
    (text, install)
}

/// A service on a file store in `dir`, the system clock, and the key of
/// one license it issued that can activate any number of devices.
fn service(dir: &std::path::Path, vendor: SigningKey) -> (Service, LicenseKey) {
    let books = Books::builder(PRODUCT)
        .store(FileStore::create(dir).unwrap())
        .trust(vendor.public_key().clone())
        .clock(SystemClock)
        .background_refresh(false)
        .build()
        .unwrap();
    let service = Service::new(books, vendor).unwrap();
    let issued = service
        .issue(
            r#"{"product": "acme", "activations": {"max": 100000000, "counted_by": "vendor"},
                "features": [{"code": "export"}]}"#,
            &[],
        )
        .unwrap();
    (service, issued.key)
}

/// The floor, one element at a time: the request as a token signed by
/// its install key, verified; a certificate of the same fields signed by
/// the vendor key; a row for the device inserted and committed in one
/// SQLite transaction, WAL mode, fsync at commit (`synchronous=FULL`).
fn floor(c: &mut Criterion) {
    let vendor = SigningKey::from_seed(&[7; 32]);
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("bare.sqlite")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE devices (id TEXT PRIMARY KEY, request TEXT NOT NULL)")
        .unwrap();
    let mut insert = conn.prepare("INSERT INTO devices VALUES (?1, ?2)").unwrap();
    let mut next = 0u64;
    let mut group = c.benchmark_group("online");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor_verify_sign_commit", |b| {
        b.iter_custom(|iters| {
            let devices: Vec<(String, String, Keyring)> = (0..iters)
                .map(|_| {
                    next += 1;
                    let (text, install) = request(next);
                    let signed = token::sign(
                        &serde_json::from_str(&text).unwrap(),
                        &install,
                        TokenType::Receipt,
                    )
                    .unwrap();
                    let mut keyring = Keyring::new();
                    keyring.add(install.public_key().clone());
                    (format!("device-{next:08}"), signed, keyring)
                })
                .collect();
            let start = Instant::now();
            for (fingerprint, signed, keyring) in &devices {
                let verified = token::verify(signed, keyring, TokenType::Receipt).unwrap();
                let payload = verified.payload();
                let certificate = json!({
                    "v": 1, "license_id": "lic", "fingerprint": payload["fingerprint"],
                    "issued_at": "2026-01-01T00:00:00Z", "install_key": payload["install_key"],
                });
                let certificate = token::sign(&certificate, &vendor, TokenType::Machine).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                insert.execute((fingerprint, &certificate)).unwrap();
                conn.execute_batch("COMMIT").unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// `Service::activate` of a new device by license key: the request read
/// and checked, the license found by the key's hash, the device counted,
/// its certificate signed, all of it committed durably (`201`'s work,
/// without HTTP).
fn activate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (service, key) = service(dir.path(), SigningKey::from_seed(&[7; 32]));
    let credential = Credential::Key(key);
    let mut next = 0u64;
    let mut group = c.benchmark_group("online");
    group.throughput(Throughput::Elements(1));
    group.bench_function("activate_new_device", |b| {
        b.iter_custom(|iters| {
            let requests: Vec<String> = (0..iters)
                .map(|_| {
                    next += 1;
                    request(next).0
                })
                .collect();
            let start = Instant::now();
            for request in &requests {
                let done = service.activate(request, &credential, None).unwrap();
                assert!(done.created);
            }
            start.elapsed()
        })
    });
    group.finish();
    // Every device timed (and warmed up) was counted once.
    assert_eq!(service.books().activations().len() as u64, next);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = floor, activate
}
criterion_main!(benches);
