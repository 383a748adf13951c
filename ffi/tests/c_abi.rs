//! A desktop program's life through the C ABI, called as C calls it: open
//! an engine on a state directory, add a license, gate, consume, hold a
//! floating seat, read license info, and what happens to handles that
//! were freed.

mod common;

use std::ffi::c_char;
use std::ptr;

use common::{c, decision_of, last_error, text_out, Vendor};
use entitle_ffi::entitle_status::*;
use entitle_ffi::*;

#[test]
fn a_program_gates_consumes_leases_and_reads_its_licenses() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let engine = vendor.open(Some(dir.path()));
    unsafe {
        let mut gate = ptr::null_mut();
        assert_eq!(
            entitle_gate_new(engine, c("export").as_ptr(), &mut gate),
            ENTITLE_OK
        );
        assert_eq!(entitle_gate_check(gate), 0, "no license yet");

        let license = vendor.license("lic_1", serde_json::json!({}));
        assert_eq!(
            entitle_add_license(engine, license.as_ptr()),
            ENTITLE_OK,
            "{}",
            last_error()
        );
        assert_eq!(
            entitle_gate_check(gate),
            1,
            "the gate follows the new license"
        );
        let mut decision = decision_of(engine, "export");
        assert!(decision.allowed);
        assert_eq!(
            (decision.reason, decision.warning, decision.until_unix),
            (ENTITLE_OK, ENTITLE_OK, 0)
        );
        assert_eq!(entitle_gate_decision(gate, &mut decision), ENTITLE_OK);
        assert!(decision.allowed);

        // Metered: three units, then the quota is used up.
        let render = c("render");
        for _ in 0..3 {
            assert_eq!(
                entitle_consume(engine, render.as_ptr(), 1),
                ENTITLE_OK,
                "{}",
                last_error()
            );
        }
        assert_eq!(
            entitle_consume(engine, render.as_ptr(), 1),
            ENTITLE_CONSUMPTION_LIMIT
        );
        assert!(last_error().contains("render"), "{}", last_error());
        assert_eq!(
            decision_of(engine, "render").reason,
            ENTITLE_CONSUMPTION_LIMIT
        );

        // Floating: allowed only while this program holds the seat.
        assert_eq!(
            decision_of(engine, "simulate").reason,
            ENTITLE_LEASE_REQUIRED
        );
        let mut lease = ptr::null_mut();
        let simulate = c("simulate");
        assert_eq!(
            entitle_lease_acquire(engine, simulate.as_ptr(), &mut lease),
            ENTITLE_OK,
            "{}",
            last_error()
        );
        assert!(decision_of(engine, "simulate").allowed);
        let mut held = decision_of(engine, "export");
        assert_eq!(entitle_lease_check(lease, &mut held), ENTITLE_OK);
        assert!(held.allowed);
        // A second engine (another instance of the program) finds the one seat taken.
        let other = vendor.open(Some(dir.path()));
        let mut second = ptr::null_mut();
        assert_eq!(
            entitle_lease_acquire(other, simulate.as_ptr(), &mut second),
            ENTITLE_FLOATING_EXHAUSTED
        );
        assert!(
            second.is_null(),
            "out-parameters are written only on success"
        );
        entitle_lease_free(lease);
        assert_eq!(
            decision_of(engine, "simulate").reason,
            ENTITLE_LEASE_REQUIRED
        );
        assert_eq!(
            entitle_lease_acquire(other, simulate.as_ptr(), &mut second),
            ENTITLE_OK,
            "{}",
            last_error()
        );
        entitle_lease_free(second);
        entitle_engine_free(other);

        // License info, as JSON.
        let info = text_out(|buf, len, needed| entitle_license_info_json(engine, buf, len, needed))
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info[0]["id"], "lic_1");
        let used = info[0]["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "render")
            .unwrap();
        assert_eq!(used["consumption"]["used"], 3, "{used}");

        entitle_gate_free(gate);
        entitle_engine_free(engine);
    }
    // The state is on disk: a new engine on the same directory sees it.
    let engine = vendor.open(Some(dir.path()));
    assert!(decision_of(engine, "export").allowed);
    assert_eq!(
        decision_of(engine, "render").reason,
        ENTITLE_CONSUMPTION_LIMIT
    );
    unsafe { entitle_engine_free(engine) };
}

#[test]
fn a_license_from_another_vendor_or_product_is_refused_with_its_code() {
    let vendor = Vendor::new();
    let engine = vendor.open(None);
    let forger = Vendor::new();
    unsafe {
        let forged = forger.license("lic_1", serde_json::json!({}));
        assert_eq!(
            entitle_add_license(engine, forged.as_ptr()),
            ENTITLE_UNKNOWN_KEY
        );
        let other = vendor.license("lic_2", serde_json::json!({"product": "other"}));
        assert_eq!(
            entitle_apply(engine, other.as_ptr()),
            ENTITLE_PRODUCT_MISMATCH
        );
        assert!(last_error().contains("other"), "{}", last_error());
        assert_eq!(
            entitle_add_license(engine, c("not a license").as_ptr()),
            ENTITLE_MALFORMED
        );
        let good = vendor.license("lic_3", serde_json::json!({}));
        assert_eq!(entitle_apply(engine, good.as_ptr()), ENTITLE_OK);
        assert!(decision_of(engine, "export").allowed);
        entitle_engine_free(engine);
    }
}

#[test]
fn an_expired_license_denies_with_its_reason_and_a_sentence_for_the_user() {
    let vendor = Vendor::new();
    let engine = vendor.open(None);
    let expired = vendor.license(
        "lic_old",
        serde_json::json!({"expires_at": "2026-01-02T00:00:00Z"}),
    );
    unsafe {
        assert_eq!(
            entitle_add_license(engine, expired.as_ptr()),
            ENTITLE_OK,
            "{}",
            last_error()
        );
        let decision = decision_of(engine, "export");
        assert!(!decision.allowed);
        assert_eq!(decision.reason, ENTITLE_EXPIRED);
        let words = std::ffi::CStr::from_ptr(entitle_reason_message(decision.reason as u32));
        assert_eq!(words.to_str().unwrap(), "Your license has expired.");
        entitle_engine_free(engine);
    }
}

#[test]
fn a_node_locked_license_activates_this_device_and_makes_a_request() {
    let vendor = Vendor::new();
    let engine = vendor.open(None);
    let locked = vendor.license("lic_nl", serde_json::json!({"activations": {"max": 1}}));
    unsafe {
        assert_eq!(entitle_add_license(engine, locked.as_ptr()), ENTITLE_OK);
        assert_eq!(decision_of(engine, "export").reason, ENTITLE_NOT_ACTIVATED);
        let request = text_out(|buf, len, needed| entitle_request(engine, buf, len, needed));
        let request: serde_json::Value = serde_json::from_str(&request.unwrap()).unwrap();
        assert_eq!(request["license_id"], "lic_nl");
        assert_eq!(
            entitle_activate_this_device(engine),
            ENTITLE_OK,
            "{}",
            last_error()
        );
        assert!(decision_of(engine, "export").allowed);
        entitle_engine_free(engine);
    }
}

#[test]
fn a_short_buffer_gets_the_size_and_is_left_alone() {
    let vendor = Vendor::new();
    let engine = vendor.open(None);
    unsafe {
        let mut buf = [b'#' as c_char; 2];
        let mut needed = 0usize;
        let status = entitle_license_info_json(engine, buf.as_mut_ptr(), buf.len(), &mut needed);
        assert_eq!(
            status, ENTITLE_BUFFER_TOO_SMALL,
            "`[]` and a NUL are 3 bytes"
        );
        assert_eq!(needed, 3);
        assert_eq!(buf, [b'#' as c_char; 2]);
        assert!(last_error().contains("needs 3"), "{}", last_error());
        let mut buf = [b'#' as c_char; 3];
        assert_eq!(
            entitle_license_info_json(engine, buf.as_mut_ptr(), 3, &mut needed),
            ENTITLE_OK
        );
        assert_eq!(std::ffi::CStr::from_ptr(buf.as_ptr()).to_str(), Ok("[]"));
        assert_eq!(
            entitle_license_info_json(engine, buf.as_mut_ptr(), 3, ptr::null_mut()),
            ENTITLE_NULL
        );
        entitle_engine_free(engine);
    }
}

#[test]
fn handles_used_after_free_or_as_another_kind_are_refused() {
    let vendor = Vendor::new();
    let engine = vendor.open(None);
    unsafe {
        let mut gate = ptr::null_mut();
        assert_eq!(
            entitle_gate_new(engine, c("export").as_ptr(), &mut gate),
            ENTITLE_OK
        );
        // A gate passed where an engine goes.
        assert_eq!(
            entitle_activate_this_device(gate.cast()),
            ENTITLE_INVALID_HANDLE
        );
        assert!(last_error().contains("entitle_gate"), "{}", last_error());
        // The gate outlives its engine.
        entitle_engine_free(engine);
        assert_eq!(entitle_gate_check(gate), 0);
        assert_eq!(
            entitle_consume(engine, c("render").as_ptr(), 1),
            ENTITLE_INVALID_HANDLE
        );
        assert!(last_error().contains("freed"), "{}", last_error());
        entitle_engine_free(engine); // twice: ignored
        assert!(last_error().contains("not live"), "{}", last_error());
        entitle_gate_free(gate);
        let mut decision = std::mem::zeroed();
        assert_eq!(
            entitle_gate_decision(gate, &mut decision),
            ENTITLE_INVALID_HANDLE
        );
        entitle_gate_free(gate);
        entitle_engine_free(ptr::null_mut());
        entitle_gate_free(ptr::null_mut());
        entitle_lease_free(ptr::null_mut());
        assert_eq!(entitle_gate_check(ptr::null()), 0);
    }
}

#[test]
fn opening_refuses_what_cannot_work_and_says_why() {
    let vendor = Vendor::new();
    let mut engine = ptr::null_mut();
    unsafe {
        let status = entitle_engine_open(
            c("acme-cad").as_ptr(),
            c("no key here").as_ptr(),
            ptr::null(),
            &mut engine,
        );
        assert_eq!(status, ENTITLE_INVALID_ARGUMENT);
        assert!(last_error().contains("PEM"), "{}", last_error());
        let status = entitle_engine_open(
            c("").as_ptr(),
            vendor.pem.as_ptr(),
            ptr::null(),
            &mut engine,
        );
        assert_eq!(status, ENTITLE_INVALID_ARGUMENT);
        let status = entitle_engine_open(
            c("acme-cad").as_ptr(),
            vendor.pem.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
        );
        assert_eq!(status, ENTITLE_NULL);
        let bad = b"acme\xff\0";
        let status = entitle_engine_open(
            bad.as_ptr().cast(),
            vendor.pem.as_ptr(),
            ptr::null(),
            &mut engine,
        );
        assert_eq!(status, ENTITLE_INVALID_UTF8);
        assert!(last_error().contains("product"), "{}", last_error());
        assert!(engine.is_null(), "written only on success");
        // A state of another product.
        let dir = tempfile::tempdir().unwrap();
        let path = c(dir.path().to_str().unwrap());
        let status = entitle_engine_open(
            c("acme-cad").as_ptr(),
            vendor.pem.as_ptr(),
            path.as_ptr(),
            &mut engine,
        );
        assert_eq!(status, ENTITLE_OK);
        entitle_engine_free(engine);
        let mut other = ptr::null_mut();
        let status = entitle_engine_open(
            c("acme-viewer").as_ptr(),
            vendor.pem.as_ptr(),
            path.as_ptr(),
            &mut other,
        );
        assert_eq!(status, ENTITLE_INVALID_ARGUMENT);
        assert!(other.is_null());
    }
}
