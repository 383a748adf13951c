//! The vendor's online service (docs/http.md#the-vendors-service): one
//! activation of a new device by license key, `Service::activate` on a
//! file store, against its floor measured in the same run: verifying a
//! token the size of an activation request, signing a machine certificate,
//! and one bare durable SQLite commit (a new row, WAL, fsync at commit),
//! which is what an activation must do at the least (target: activation /
//! floor at most 1.5). Each device has its own fingerprint and install
//! key, made before the timing starts. Criterion times one side, then
//! the other; `online/interleaved` then prints the ratio measured with
//! the two sides taking turns (see [`interleaved`]), which the disk's
//! swings on a shared machine reach alike.
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

/// The floor of one activation: the request as a token signed by its
/// install key, verified; a certificate of the same fields signed by the
/// vendor key; a row for the device inserted and committed in one SQLite
/// transaction, WAL mode, fsync at commit (`synchronous=FULL`).
struct Floor {
    vendor: SigningKey,
    conn: rusqlite::Connection,
    _dir: tempfile::TempDir,
    next: u64,
}

/// One device's input to the floor: its fingerprint, its request signed
/// by its install key, and a keyring of that key.
struct SignedRequest {
    fingerprint: String,
    token: String,
    keyring: Keyring,
}

impl Floor {
    fn new() -> Floor {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("bare.sqlite")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute_batch("CREATE TABLE devices (id TEXT PRIMARY KEY, request TEXT NOT NULL)")
            .unwrap();
        Floor {
            vendor: SigningKey::from_seed(&[7; 32]),
            conn,
            _dir: dir,
            next: 0,
        }
    }

    /// The next device's input (not timed).
    fn prepare(&mut self) -> SignedRequest {
        self.next += 1;
        let (text, install) = request(self.next);
        let token = token::sign(
            &serde_json::from_str(&text).unwrap(),
            &install,
            TokenType::Receipt,
        )
        .unwrap();
        let mut keyring = Keyring::new();
        keyring.add(install.public_key().clone());
        SignedRequest {
            fingerprint: format!("device-{:08}", self.next),
            token,
            keyring,
        }
    }

    /// The timed work.
    fn run(&self, input: &SignedRequest) {
        let verified = token::verify(&input.token, &input.keyring, TokenType::Receipt).unwrap();
        let payload = verified.payload();
        let certificate = json!({
            "v": 1, "license_id": "lic", "fingerprint": payload["fingerprint"],
            "issued_at": "2026-01-01T00:00:00Z", "install_key": payload["install_key"],
        });
        let certificate = token::sign(&certificate, &self.vendor, TokenType::Machine).unwrap();
        self.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        self.conn
            .prepare_cached("INSERT INTO devices VALUES (?1, ?2)")
            .unwrap()
            .execute((&input.fingerprint, &certificate))
            .unwrap();
        self.conn.execute_batch("COMMIT").unwrap();
    }
}

fn floor(c: &mut Criterion) {
    let mut floor = Floor::new();
    let mut group = c.benchmark_group("online");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor_verify_sign_commit", |b| {
        b.iter_custom(|iters| {
            let inputs: Vec<SignedRequest> = (0..iters).map(|_| floor.prepare()).collect();
            let start = Instant::now();
            for input in &inputs {
                floor.run(input);
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

/// Rounds of the interleaved measurement, and elements of each side per
/// round.
const ROUNDS: usize = 200;
const PER_ROUND: usize = 10;

/// The ratio, measured so that the disk's moods reach both sides alike:
/// on a shared machine an fsync takes 0.1 ms one minute and 4 ms the
/// next, and criterion times one side after the other. Here each round
/// times ten floors then ten activations (their inputs made untimed), and
/// the ratio is of the medians of the rounds' means. Printed, not
/// compared across runs by criterion; only under `cargo bench`.
fn interleaved(_: &mut Criterion) {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut floor = Floor::new();
    let dir = tempfile::tempdir().unwrap();
    let (service, key) = service(dir.path(), SigningKey::from_seed(&[7; 32]));
    let credential = Credential::Key(key);
    let mut next = 0u64;
    let (mut floors, mut activations) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + ROUNDS / 10 {
        let inputs: Vec<SignedRequest> = (0..PER_ROUND).map(|_| floor.prepare()).collect();
        let requests: Vec<String> = (0..PER_ROUND)
            .map(|_| {
                next += 1;
                request(next).0
            })
            .collect();
        let start = Instant::now();
        for input in &inputs {
            floor.run(input);
        }
        let floor_time = start.elapsed() / PER_ROUND as u32;
        let start = Instant::now();
        for request in &requests {
            service.activate(request, &credential, None).unwrap();
        }
        let activate_time = start.elapsed() / PER_ROUND as u32;
        // The first tenth warms both up (SQLite's logs grow until their
        // first checkpoint).
        if round >= ROUNDS / 10 {
            floors.push(floor_time);
            activations.push(activate_time);
        }
    }
    floors.sort();
    activations.sort();
    let (floor_median, activate_median) = (floors[ROUNDS / 2], activations[ROUNDS / 2]);
    println!(
        "online/interleaved: {ROUNDS} rounds of {PER_ROUND} + {PER_ROUND}: floor median {:.1} µs, \
         activate_new_device median {:.1} µs, ratio {:.2}",
        floor_median.as_secs_f64() * 1e6,
        activate_median.as_secs_f64() * 1e6,
        activate_median.as_secs_f64() / floor_median.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = floor, activate, interleaved
}
criterion_main!(benches);
