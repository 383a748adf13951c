//! What adding a license costs beyond the signature check itself.
//!
//! `verify/add_license` is the whole path a license file takes
//! ([`VerifiedLicense::verify`]: armor, base64url, strict JSON, header
//! rules, Ed25519 strict verification, document parsing and validation);
//! `verify/bare_verify_strict` is ed25519-dalek's `verify_strict` alone on
//! the same signing input and signature. Measured in one run so the figure
//! that matters is their ratio (target: at most 1.25, counted in
//! instructions by `examples/verify_instructions.rs`). `verify/part_*`
//! measure the largest pieces of the difference alone.
//!
//! ```text
//! cargo bench --bench verify -- --warm-up-time 2 --measurement-time 5
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

#[path = "typical_license.rs"]
mod typical_license;

mod verification {
    use super::typical_license::typical_license;
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use entitle::license::{License, VerifiedLicense};
    use entitle::token::{armor, dearmor, sign, Keyring, SigningKey, TokenType};

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
