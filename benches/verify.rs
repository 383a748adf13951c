//! What adding a license costs beyond the signature check itself.
//!
//! `verify/add_license` is the whole path a license file takes
//! ([`VerifiedLicense::verify`]: armor, base64url, strict JSON, header
//! rules, Ed25519 strict verification, document parsing and validation);
//! `verify/bare_verify_strict` is ed25519-dalek's `verify_strict` alone on
//! the same signing input and signature. Measured in one run so the figure
//! that matters is their ratio (target: at most 1.10). `verify/part_*`
//! measure the largest pieces of the difference alone.
//!
//! ```text
//! cargo bench --bench verify -- --warm-up-time 2 --measurement-time 5
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

mod verification {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use entitle::license::{License, VerifiedLicense};
    use entitle::token::{armor, dearmor, sign, Keyring, SigningKey, TokenType};
    use serde_json::json;

    /// A license as a vendor typically issues one: a customer, a term with
    /// grace, seats, activations, and a dozen features of every kind.
    fn typical_license() -> serde_json::Value {
        json!({
            "v": 1,
            "id": "lic_01J9Z6Q3W8R2T5Y7U1I4O6P8A0",
            "serial": 2,
            "product": "acme-studio",
            "name": "Acme Studio Professional",
            "customer": {"name": "Initech GmbH", "email": "it@initech.example"},
            "kind": "subscription",
            "issued_at": "2026-01-15T09:30:00Z",
            "starts_at": "2026-02-01T00:00:00Z",
            "expires_at": "2027-02-01T00:00:00Z",
            "grace_secs": 1_209_600,
            "on_expiry": "keep",
            "maintenance_until": "2027-02-01T00:00:00Z",
            "seats": {"max": 25, "hard_max": 30},
            "activations": {"max": 50, "max_transfers": 10},
            "floating": {"seats": 5, "lease_secs": 900, "borrow_max_secs": 604_800},
            "features": [
                {"code": "editor"},
                {"code": "export.pdf"},
                {"code": "export.svg"},
                {"code": "collaboration"},
                {"code": "plugins", "limit": 20},
                {"code": "cloud.render", "consumption": {"max": 5000, "overage": 500, "reset": "monthly"}},
                {"code": "api", "consumption": {"max": 100_000, "reset": "daily"}},
                {"code": "solver", "floating": {"seats": 2, "lease_secs": 300}},
                {"code": "beta.ai", "expires_at": "2026-06-01T00:00:00Z"},
                {"code": "sso"}
            ],
            "metadata": {"order": "SO-2026-00042", "reseller": "Acme EU"}
        })
    }

    pub fn bench(c: &mut Criterion) {
        let key = SigningKey::from_seed(&[0x42; 32]);
        let mut keyring = Keyring::new();
        keyring.add(key.public_key().clone());
        let token = sign(&typical_license(), &key, TokenType::License).expect("sign");
        let armored = armor(&token, TokenType::License);

        let (signing_input, signature) = token.rsplit_once('.').expect("compact token");
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .expect("base64")
            .try_into()
            .expect("64 bytes");
        let signature = ed25519_dalek::Signature::from_bytes(&signature);
        let verifying_key = ed25519_dalek::VerifyingKey::from_bytes(key.public_key().as_bytes())
            .expect("public key");
        let signing_input = signing_input.as_bytes();

        // Both must succeed, or the comparison measures an early exit.
        VerifiedLicense::verify(&armored, &keyring).expect("the license verifies");
        verifying_key
            .verify_strict(signing_input, &signature)
            .expect("the signature verifies");

        let mut group = c.benchmark_group("verify");
        group.throughput(Throughput::Elements(1));
        group.bench_function("add_license", |b| {
            b.iter(|| VerifiedLicense::verify(black_box(&armored), &keyring))
        });
        group.bench_function("bare_verify_strict", |b| {
            b.iter(|| verifying_key.verify_strict(black_box(signing_input), black_box(&signature)))
        });

        // Where the difference goes: the two largest parts of the full path
        // besides the signature, measured alone.
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).expect("a payload part"))
            .expect("base64");
        group.bench_function("part_dearmor", |b| b.iter(|| dearmor(black_box(&armored))));
        group.bench_function("part_license_document", |b| {
            b.iter(|| License::from_json_slice(black_box(&payload)))
        });
        group.finish();
    }
}

criterion_group!(benches, verification::bench);
criterion_main!(benches);
