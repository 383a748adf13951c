//! Defaults that fail closed: an engine must be told where its state lives
//! (forgetting it used to keep everything in memory, so trials and
//! activations started again at every launch), and it detects a virtual
//! machine by default, as the command line always did.

mod common;

use common::*;
use entitle::device::detect_virtual_machine;
use entitle::Engine;
use serde_json::json;

#[test]
fn an_engine_without_a_store_or_in_memory_is_an_error_naming_both() {
    let vendor = Vendor::new();
    let err = Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .background_refresh(false)
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let message = err.to_string();
    assert!(message.contains(".store("), "{message}");
    assert!(message.contains(".in_memory()"), "{message}");

    // Saying so builds.
    assert!(Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .in_memory()
        .background_refresh(false)
        .build()
        .is_ok());
}

#[test]
fn a_state_kept_in_a_store_outlives_the_engine_and_in_memory_does_not() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    let trial = vendor.license(json!({"id": "trial", "trial": true, "trial_secs": 14 * DAY,
        "features": [{"code": "edit"}]}));
    let open = |builder: entitle::EngineBuilder| {
        builder
            .trust(vendor.key.public_key().clone())
            .clock(clock.clone())
            .background_refresh(false)
            .build()
            .unwrap()
    };
    let stored = || {
        open(
            Engine::builder("acme").store(
                entitle::store::FileStore::open(dir.path())
                    .unwrap_or_else(|_| entitle::store::FileStore::create(dir.path()).unwrap()),
            ),
        )
    };
    let engine = stored();
    engine.add_license(&trial).unwrap();
    drop(engine);
    clock.advance(20 * DAY);
    // The trial started on the first launch and is over now.
    let engine = stored();
    assert_eq!(
        engine.check_feature("edit").reason().code(),
        "EXPIRED",
        "a stored trial does not restart"
    );
    drop(engine);
    // In memory, as said: every launch starts afresh (and the builder
    // made the program say so).
    let fresh = open(Engine::builder("acme").in_memory());
    fresh.add_license(&trial).unwrap();
    assert!(fresh.check_feature("edit").allowed());
}

#[test]
fn a_virtual_machine_is_detected_by_default() {
    let vendor = Vendor::new();
    let license = vendor.license(json!({"id": "lic", "prevent_vm": true,
        "activations": {"max": 2}, "features": [{"code": "edit"}]}));
    let activate = |vm: Option<bool>| {
        let mut builder = Engine::builder("acme")
            .trust(vendor.key.public_key().clone())
            .clock(clock_at(T0))
            .fingerprint("machine-1")
            .in_memory()
            .background_refresh(false);
        if let Some(vm) = vm {
            builder = builder.virtual_machine(vm);
        }
        let engine = builder.build().unwrap();
        engine.add_license(&license).unwrap();
        engine
            .activate_this_device()
            .map(drop)
            .map_err(|e| e.code())
    };
    // Undeclared: what the detection says of this machine (CI and this
    // sandbox run on virtual machines, where this is the refusal).
    let expected = if detect_virtual_machine() {
        Err("VM_NOT_ALLOWED")
    } else {
        Ok(())
    };
    assert_eq!(activate(None), expected);
    // Declared either way, the declaration holds.
    assert_eq!(activate(Some(true)), Err("VM_NOT_ALLOWED"));
    assert_eq!(activate(Some(false)), Ok(()));
}
