//! What each fuzz target feeds its input to. The stable test suite
//! (`tests/fuzz_corpus.rs`) replays the corpora through these same
//! functions, so a crash found here stays fixed.
//!
//! Each function feeds its input to the reader production uses for that
//! format (one per format) and returns its result; the fuzzer looks for
//! panics (and hangs), and for the few properties asserted here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use entitle::engine::ActivationRequest;
use entitle::license::{
    DeactivationReceipt, KeyRotation, License, LicenseKey, MachineCertificate, RevocationList,
    UsageReport, VerifiedLicense,
};
use entitle::policy::activation::{accept_receipt, ReceiptBooks};
use entitle::policy::reports::{ingest_report, ReportBooks};
use entitle::store::{ActivationRecord, FileStore};
use entitle::token::{self, Keyring, LeaseToken, PublicKey, SigningKey, TokenType};
use entitle::Engine;

/// The seed of the one key the `token` target trusts; the corpus holds
/// tokens it signed, so mutations reach the signature check and beyond.
pub const FUZZ_KEY_SEED: [u8; 32] = [0x42; 32];

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let mut keyring = Keyring::new();
        keyring.add(SigningKey::from_seed(&FUZZ_KEY_SEED).public_key().clone());
        keyring
    })
}

/// `token`: decode without verifying (as `entitle inspect` does), verify
/// against a fixed keyring as `apply` does, and as a license as
/// `add_license` does. What verifies as a license verifies as a token of
/// that type.
pub fn token(data: &[u8]) -> entitle::Result<()> {
    let text = std::str::from_utf8(data).map_err(|_| not_utf8())?;
    let decoded = token::decode_unverified(text);
    let verified = token::verify_any(text, keyring(), None);
    if VerifiedLicense::verify(text, keyring()).is_ok() {
        let typ = verified.as_ref().map(token::VerifiedToken::typ);
        assert_eq!(
            typ.ok(),
            Some(TokenType::License),
            "a license verifies alone"
        );
    }
    decoded.and(verified).map(drop)
}

/// `armor`: read an armored or bare token.
pub fn armor(data: &[u8]) -> entitle::Result<()> {
    let text = std::str::from_utf8(data).map_err(|_| not_utf8())?;
    token::dearmor(text).map(drop)
}

/// `license`: any bytes read as a license document, as verification reads
/// a signed payload. What reads, written back as JSON, reads the same.
pub fn license(data: &[u8]) -> entitle::Result<()> {
    let license = License::from_json_slice(data)?;
    let written = serde_json::to_vec(&license).expect("a license serializes");
    let reread = License::from_json_slice(&written);
    assert_eq!(
        reread.as_ref().ok(),
        Some(&license),
        "round trip: {reread:?}"
    );
    Ok(())
}

/// `request`: an offline activation request, as a person carried it.
pub fn request(data: &[u8]) -> entitle::Result<()> {
    ActivationRequest::from_json_text(&String::from_utf8_lossy(data)).map(drop)
}

/// `machine`: the bytes as a certificate payload (read as a verified
/// token's payload is), and as a machine token verified against the fixed
/// keyring. Ok when either reading accepts.
pub fn machine(data: &[u8]) -> entitle::Result<()> {
    let payload = entitle::fuzzing::parse_strict_json(data, "machine certificate")
        .and_then(|value| MachineCertificate::from_json(&value));
    let signed = MachineCertificate::verify(&String::from_utf8_lossy(data), keyring());
    for certificate in [&payload, &signed].into_iter().flatten() {
        // What a vendor signs is the serialized struct: it must read back.
        let written = serde_json::to_value(certificate).expect("a certificate serializes");
        let reread = MachineCertificate::from_json(&written);
        assert_eq!(
            reread.as_ref().ok(),
            Some(certificate),
            "round trip: {reread:?}"
        );
    }
    signed.or(payload).map(drop)
}

/// `revocations`: the bytes as a revocation list payload (read as a
/// verified token's payload is), and as a revocations token verified
/// against the fixed keyring.
pub fn revocations(data: &[u8]) -> entitle::Result<()> {
    let payload = entitle::fuzzing::parse_strict_json(data, "revocations")
        .and_then(|value| RevocationList::from_json(&value));
    let signed = RevocationList::verify(&String::from_utf8_lossy(data), keyring());
    for list in [&payload, &signed].into_iter().flatten() {
        let written = serde_json::to_value(list).expect("a revocation list serializes");
        let reread = RevocationList::from_json(&written);
        assert_eq!(reread.as_ref().ok(), Some(list), "round trip: {reread:?}");
    }
    signed.or(payload).map(drop)
}

/// `keys`: the bytes as a key rotation payload (read as a verified token's
/// payload is), and as a keys token verified against the fixed keyring. A
/// rotation that reads is applied to the fixed keyring: refused or not,
/// that never panics, and an applied one trusts some key and none it
/// retires.
pub fn keys(data: &[u8]) -> entitle::Result<()> {
    let payload = entitle::fuzzing::parse_strict_json(data, "key rotation")
        .and_then(|value| KeyRotation::from_json(&value));
    let signed = KeyRotation::verify(&String::from_utf8_lossy(data), keyring());
    for rotation in [&payload, &signed].into_iter().flatten() {
        if let Ok(next) = rotation.applied_to(keyring()) {
            assert!(!next.is_empty(), "a rotation left no key: {rotation:?}");
            for kid in &rotation.retire {
                assert!(next.get(kid).is_none(), "retired {kid} is still trusted");
            }
        }
    }
    signed.or(payload).map(drop)
}

/// The install key the `receipt` and `report` targets verify against: the
/// fixed key's public half (the corpus holds tokens it signed).
fn install_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed(&FUZZ_KEY_SEED).public_key().clone())
}

/// `receipt`: the bytes as a receipt payload (read as a verified token's
/// payload is), as a receipt token verified against the fixed install key,
/// read unverified as the books first read one, and through the books'
/// decision with an activation bound to that key. What verifies reads the
/// same unverified, and the books accept exactly what verifies.
pub fn receipt(data: &[u8]) -> entitle::Result<()> {
    let payload = entitle::fuzzing::parse_strict_json(data, "deactivation receipt")
        .and_then(|value| DeactivationReceipt::from_json(&value));
    let text = String::from_utf8_lossy(data);
    let signed = DeactivationReceipt::verify(&text, install_key());
    let claimed = DeactivationReceipt::read_unverified(&text);
    for receipt in [&payload, &signed, &claimed].into_iter().flatten() {
        let written = serde_json::to_value(receipt).expect("a receipt serializes");
        let reread = DeactivationReceipt::from_json(&written);
        assert_eq!(
            reread.as_ref().ok(),
            Some(receipt),
            "round trip: {reread:?}"
        );
    }
    if let Ok(signed) = &signed {
        assert_eq!(claimed.as_ref().ok(), Some(signed), "read unverified");
    }
    if let Ok(claimed) = &claimed {
        let mut activation = ActivationRecord::default();
        activation.license_id = claimed.license_id.clone();
        activation.fingerprint = claimed.fingerprint.clone();
        activation.install_key = Some(install_key().to_base64url());
        let books = ReceiptBooks {
            activation: Some(&activation),
            ..ReceiptBooks::default()
        };
        let accepted = accept_receipt(&text, &books, 0);
        assert_eq!(
            accepted.is_ok(),
            signed.is_ok(),
            "the books accept what verifies: {:?}",
            accepted.err()
        );
    }
    signed.or(payload).map(drop)
}

/// `report`: the bytes as a usage report payload, as a report token
/// verified against the fixed install key, read unverified, and through
/// the books' decision with that key recorded for its device. What
/// verifies reads the same unverified, and the books take exactly what
/// verifies.
pub fn report(data: &[u8]) -> entitle::Result<()> {
    let payload = entitle::fuzzing::parse_strict_json(data, "usage report")
        .and_then(|value| UsageReport::from_json(&value));
    let text = String::from_utf8_lossy(data);
    let signed = UsageReport::verify(&text, install_key());
    let claimed = UsageReport::read_unverified(&text);
    for report in [&payload, &signed, &claimed].into_iter().flatten() {
        let written = serde_json::to_value(report).expect("a report serializes");
        let reread = UsageReport::from_json(&written);
        assert_eq!(reread.as_ref().ok(), Some(report), "round trip: {reread:?}");
    }
    if let Ok(signed) = &signed {
        assert_eq!(claimed.as_ref().ok(), Some(signed), "read unverified");
    }
    if claimed.is_ok() {
        let key = install_key().to_base64url();
        let books = ReportBooks {
            keys: vec![key.as_str()],
            ingested: Vec::new(),
        };
        let taken = ingest_report(&text, &books, 0);
        assert_eq!(
            taken.is_ok(),
            signed.is_ok(),
            "the books take what verifies: {:?}",
            taken.err()
        );
        if let Ok(taken) = taken {
            assert!(taken
                .missing
                .iter()
                .all(|g| g.from <= g.to && g.to < taken.report.sequence));
        }
    }
    signed.or(payload).map(drop)
}

/// `state`: the bytes as the state file of a fresh state directory, opened
/// and read by an engine that trusts the fixed key (so stored licenses
/// signed by it reach the engine). A corrupt file must be an error.
pub fn state(data: &[u8]) -> entitle::Result<()> {
    let dir = ScratchDir::new()?;
    std::fs::write(dir.0.join("state.sqlite"), data)
        .map_err(|source| scratch_error("writing the state file", source))?;
    let store = FileStore::open(&dir.0)?;
    let engine = Engine::builder("fuzz")
        .keyring(keyring().clone())
        .store(store)
        .background_refresh(false)
        .build()?;
    let _ = engine.usage(0, 10);
    let _ = engine.license_infos();
    let _ = engine.check_feature("x");
    Ok(())
}

/// A state directory of its own for one input, removed after it. Unique
/// per process and per call: the stable suite replays on several threads.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> entitle::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "entitle-fuzz-state-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        // A directory left by a killed run with a reused pid.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)
            .map_err(|source| scratch_error("creating the scratch state directory", source))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_error(context: &str, source: std::io::Error) -> entitle::Error {
    entitle::Error::Io {
        context: context.into(),
        source,
    }
}

fn not_utf8() -> entitle::Error {
    entitle::Error::InvalidArgument("fuzz input is not UTF-8".into())
}

/// `filter`: the text of a license listing's filter, order and cursor, as
/// `entitle license list --filter --order --cursor` hands them to the
/// engine (`license_query`, then `Engine::licenses`) over a few licenses.
/// A filter that parses prints in a form that parses back to itself.
pub fn filter(data: &[u8]) -> entitle::Result<()> {
    let text = std::str::from_utf8(data).map_err(|_| not_utf8())?;
    if let Ok(filter) = entitle::query::Filter::parse(text) {
        let canonical = filter.to_string();
        if canonical.len() <= entitle::query::MAX_FILTER_BYTES {
            let again = entitle::query::Filter::parse(&canonical).ok();
            assert_eq!(again, Some(filter), "{canonical}");
        }
    }
    let listing = listing();
    let ordered = entitle::engine::license_query(Some(text), Some(text), None, Some(text));
    let plain = entitle::engine::license_query(None, None, None, Some(text));
    for query in [ordered, plain].into_iter().flatten() {
        let _ = listing.licenses(&query);
    }
    entitle::engine::license_query(Some(text), None, None, None)
        .and_then(|query| listing.licenses(&query))
        .map(drop)
}

/// An engine with a few licenses to list.
fn listing() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let key = SigningKey::from_seed(&FUZZ_KEY_SEED);
        let engine = Engine::builder("acme")
            .in_memory()
            .trust(key.public_key().clone())
            .clock(entitle::ManualClock::new(entitle::Timestamp::from_unix(
                1_767_225_600,
            )))
            .background_refresh(false)
            .build()
            .expect("an in-memory engine builds");
        for (id, extra) in [
            (
                "lic_a",
                serde_json::json!({"expires_at": "2027-01-01T00:00:00Z", "trial": true}),
            ),
            ("lic_b", serde_json::json!({"name": "Team", "serial": 3})),
            (
                "lic_c",
                serde_json::json!({"starts_at": "2030-01-01T00:00:00Z"}),
            ),
        ] {
            let mut document = serde_json::json!({"v": 1, "id": id, "product": "acme",
                "issued_at": "2026-01-01T00:00:00Z"});
            if let (Some(doc), Some(extra)) = (document.as_object_mut(), extra.as_object()) {
                doc.extend(extra.clone());
            }
            let token = token::sign(&document, &key, TokenType::License).expect("signs");
            engine
                .add_license(&token)
                .expect("a license of the engine's product");
        }
        engine
    })
}

/// `lease`: the bytes as a lease token payload (read as a verified
/// token's payload is), and as a lease token verified against the fixed
/// key (a client's reading of its server's lease, online or borrowed).
/// What reads, writes back to the same.
pub fn lease(data: &[u8]) -> entitle::Result<()> {
    let payload = entitle::fuzzing::parse_strict_json(data, "lease token")
        .and_then(|value| LeaseToken::from_json(&value));
    let text = String::from_utf8_lossy(data);
    let signed = LeaseToken::verify(&text, install_key());
    for lease in [&payload, &signed].into_iter().flatten() {
        let written = serde_json::to_value(lease).expect("a lease serializes");
        let reread = LeaseToken::from_json(&written);
        assert_eq!(reread.as_ref().ok(), Some(lease), "round trip: {reread:?}");
        assert!(
            lease.issued_at <= lease.expires_at,
            "a lease ends after it starts"
        );
    }
    signed.or(payload).map(drop)
}

/// `license_key`: the bytes as a license key a person typed (lossy UTF-8,
/// as a form field or a command line hands it over). A key that reads
/// displays in a form that reads back to itself, with the same hash.
pub fn license_key(data: &[u8]) -> entitle::Result<()> {
    let key = LicenseKey::parse(&String::from_utf8_lossy(data))?;
    let shown = key.to_string();
    let reread = LicenseKey::parse(&shown);
    assert_eq!(reread.as_ref().ok(), Some(&key), "round trip of {shown}");
    assert_eq!(reread.map(|k| k.hash()).ok(), Some(key.hash()));
    Ok(())
}
