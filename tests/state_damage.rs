//! Damage to the state file (flipped bytes, torn or zeroed pages, a file
//! cut short) is reported as `STATE_CORRUPT`: never a panic, never another
//! error code that sends the administrator looking at disks or
//! permissions, and never a state that silently lost rows.
//!
//! What this cannot promise: SQLite keeps no checksum of the values in a
//! row, so a flipped bit inside a value (a user id, a lease's end) reads
//! as another value. Such a state opens whole, row for row; the test
//! accepts it. The one refusal other than `STATE_CORRUPT` it accepts is
//! the product check naming a damaged product code.
//!
//! Each case damages a copy of one real state file at a seeded random
//! place, so a failure names the seed and the damage that reproduces it.

mod common;

use std::path::Path;

use common::*;
use entitle::store::{FileStore, Store};
use entitle::Engine;
use serde_json::json;

const USERS: usize = 400;

/// The rows of each table, as the store reads them.
fn rows(dir: &Path) -> [usize; 9] {
    let (_, p) = FileStore::open(dir).unwrap().load().unwrap();
    [
        p.licenses.len(),
        p.serials.len(),
        p.tombstones.len(),
        p.users.len(),
        p.activations.len(),
        p.transfers.len(),
        p.leases.len(),
        p.counters.len(),
        p.signed.len(),
    ]
}

fn open(vendor: &Vendor, dir: &Path) -> entitle::Result<Engine> {
    vendor
        .builder(&clock_at(T0))
        .fingerprint("dev")
        .store(FileStore::open(dir)?)
        .build()
}

/// A state with several pages of every kind of row.
fn original(vendor: &Vendor, dir: &Path) -> (Vec<u8>, [usize; 9]) {
    {
        let engine = vendor
            .builder(&clock_at(T0))
            .fingerprint("dev")
            .store(FileStore::create(dir).unwrap())
            .build()
            .unwrap();
        // Signed facts beside the licenses: a certificate activation, a
        // revocation list (and its tombstone), a key rotation.
        engine
            .add_license(&vendor.license(json!({"id": "lic-locked",
                "activations": {"counted_by": "vendor"}, "features": [{"code": "cad"}]})))
            .unwrap();
        engine
            .apply(&vendor.sign(
                json!({"v": 1, "license_id": "lic-locked", "fingerprint": "dev",
                       "issued_at": T0, "expires_at": "2027-01-01T00:00:00Z"}),
                entitle::token::TokenType::Machine,
            ))
            .unwrap();
        engine
            .apply_revocations(&vendor.revocations_for(Some("acme"), &["lic-gone"], T0))
            .unwrap();
        let next = entitle::token::SigningKey::from_seed(&[7; 32]);
        engine
            .apply(&vendor.sign(
                json!({"v": 1, "product": "acme", "issued_at": T0,
                       "keys": [base64_key(next.public_key().as_bytes())]}),
                entitle::token::TokenType::Keys,
            ))
            .unwrap();
        for i in 0..3 {
            engine
                .add_license(&vendor.license(json!({
                    "id": format!("lic-{i}"),
                    "seats": {"max": 1000},
                    "floating": {"seats": 50, "lease_secs": 3600},
                    "features": [{"code": "export"},
                        {"code": "api", "consumption": {"max": 1_000_000}}],
                })))
                .unwrap();
        }
        for i in 0..USERS {
            engine
                .add_user(&format!("user-{i:05}-{}", "x".repeat(40)), "member")
                .unwrap();
        }
        for i in 0..20 {
            engine.checkout(&format!("client-{i}"), None).unwrap();
        }
        engine.consume("api", 77).unwrap();
    }
    let bytes = std::fs::read(dir.join("state.sqlite")).unwrap();
    assert!(
        !dir.join("state.sqlite-wal").exists()
            || std::fs::metadata(dir.join("state.sqlite-wal"))
                .unwrap()
                .len()
                == 0,
        "the last close checkpoints the log into the main file"
    );
    drop(open(vendor, dir).unwrap());
    let rows = rows(dir);
    assert_eq!(rows, [4, 4, 1, USERS, 1, 0, 20, 1, 2]);
    (bytes, rows)
}

fn base64_key(bytes: &[u8; 32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A small deterministic generator, so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PAGE: usize = 4096;

fn damage(bytes: &[u8], rng: &mut Rng) -> (String, Vec<u8>) {
    let mut out = bytes.to_vec();
    let pages = bytes.len() / PAGE;
    match rng.below(5) {
        0 => {
            let at = rng.below(bytes.len());
            let mask = (rng.below(255) + 1) as u8;
            out[at] ^= mask;
            (format!("byte {at} xor {mask:#04x}"), out)
        }
        1 => {
            let len = rng.below(bytes.len());
            out.truncate(len);
            (format!("cut to {len} bytes"), out)
        }
        2 => {
            let page = rng.below(pages);
            out[page * PAGE..(page + 1) * PAGE].fill(0);
            (format!("page {page} zeroed"), out)
        }
        3 => {
            let page = rng.below(pages);
            for b in &mut out[page * PAGE..(page + 1) * PAGE] {
                *b = rng.next() as u8;
            }
            (format!("page {page} random"), out)
        }
        _ => {
            let (from, to) = (rng.below(pages), rng.below(pages));
            out.copy_within(from * PAGE..(from + 1) * PAGE, to * PAGE);
            (format!("page {from} copied over page {to}"), out)
        }
    }
}

#[test]
fn damaged_state_files_are_state_corrupt_or_read_whole() {
    let vendor = Vendor::new();
    let source = tempfile::tempdir().unwrap();
    let (bytes, whole) = original(&vendor, source.path());
    let cases: u64 = std::env::var("ENTITLE_DAMAGE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut failures = Vec::new();
    let (mut corrupt, mut read) = (0, 0);
    for seed in 1..=cases {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (what, damaged) = damage(&bytes, &mut rng);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.sqlite"), &damaged).unwrap();
        if std::env::var("ENTITLE_DAMAGE_KEEP").ok() == Some(seed.to_string()) {
            std::fs::write("/tmp/damaged.sqlite", &damaged).unwrap();
            std::fs::write("/tmp/original.sqlite", &bytes).unwrap();
        }
        match open(&vendor, dir.path()) {
            Err(e) if e.code() == "STATE_CORRUPT" => corrupt += 1,
            Err(e) if e.to_string().contains("belongs to product") => corrupt += 1,
            Err(e) => failures.push(format!("seed {seed} ({what}): {}: {e}", e.code())),
            Ok(engine) => {
                // Damage in unused bytes is harmless; damage that drops
                // rows must not pass for a smaller state.
                drop(engine);
                let now = rows(dir.path());
                if now != whole {
                    failures.push(format!(
                        "seed {seed} ({what}): opened with rows lost: {now:?}, was {whole:?}"
                    ));
                } else {
                    read += 1;
                }
            }
        }
    }
    eprintln!("state damage: {cases} cases, {corrupt} STATE_CORRUPT, {read} read whole");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
