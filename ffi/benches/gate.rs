//! `entitle_gate_check` through the `extern "C"` function against the
//! Rust `FeatureGate::check` it wraps, in one run: the price of the C ABI
//! (a call the compiler cannot inline, the magic-number check, the panic
//! boundary). Both gates are of the same license on an in-memory engine
//! reading the system clock, as a desktop program's are.
//!
//!   cargo bench -p entitle-ffi --bench gate

use std::ffi::CString;
use std::hint::black_box;
use std::ptr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use entitle::token::{sign, SigningKey, TokenType};
use entitle::Engine;
use entitle_ffi::*;

fn license(vendor: &SigningKey) -> String {
    let doc = serde_json::json!({
        "v": 1, "id": "lic_bench", "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
        "features": [{"code": "export"}]
    });
    sign(&doc, vendor, TokenType::License).expect("signed")
}

mod gate_check {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let vendor = SigningKey::generate().expect("a key");
        let token = license(&vendor);

        let engine = Engine::builder("acme-cad")
            .in_memory()
            .trust(vendor.public_key().clone())
            .background_refresh(false)
            .build()
            .expect("an engine");
        engine.add_license(&token).expect("added");
        let rust_gate = engine.feature("export");
        assert!(rust_gate.check().allowed());

        let product = CString::new("acme-cad").unwrap();
        let pem = CString::new(vendor.public_key().to_pem()).unwrap();
        let token = CString::new(token).unwrap();
        let feature = CString::new("export").unwrap();
        let mut c_engine = ptr::null_mut();
        let mut c_gate = ptr::null_mut();
        // SAFETY: valid strings and out-pointers; freed below.
        unsafe {
            assert_eq!(
                entitle_engine_open(product.as_ptr(), pem.as_ptr(), ptr::null(), &mut c_engine),
                entitle_status::ENTITLE_OK
            );
            assert_eq!(
                entitle_add_license(c_engine, token.as_ptr()),
                entitle_status::ENTITLE_OK
            );
            assert_eq!(
                entitle_gate_new(c_engine, feature.as_ptr(), &mut c_gate),
                entitle_status::ENTITLE_OK
            );
            assert_eq!(entitle_gate_check(c_gate), 1);
        }

        let mut group = c.benchmark_group("gate_check");
        group.throughput(Throughput::Elements(1));
        group.bench_function("rust FeatureGate::check", |b| {
            b.iter(|| black_box(&rust_gate).check().allowed())
        });
        let gate_ptr = c_gate as *const entitle_gate;
        group.bench_function("C entitle_gate_check", |b| {
            // SAFETY: a live gate, freed after the group.
            b.iter(|| unsafe { entitle_gate_check(black_box(gate_ptr)) })
        });
        let engine_ptr = c_engine as *const entitle_engine;
        group.bench_function("C entitle_check_feature (by name)", |b| {
            let mut decision = std::mem::MaybeUninit::<entitle_decision>::uninit();
            // SAFETY: a live engine, a valid string and out-pointer.
            b.iter(|| unsafe {
                entitle_check_feature(
                    black_box(engine_ptr),
                    feature.as_ptr(),
                    decision.as_mut_ptr(),
                )
            })
        });
        group.finish();
        // SAFETY: made above, freed once.
        unsafe {
            entitle_gate_free(c_gate);
            entitle_engine_free(c_engine);
        }
    }
}

criterion_group!(benches, gate_check::bench);
criterion_main!(benches);
