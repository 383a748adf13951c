//! A desktop program's life through the C ABI, called as C calls it: open
//! an engine on a state directory, add a license, gate, consume, hold a
//! floating seat, read license info, and what happens to handles that
//! were freed.

mod common;

use std::ffi::c_char;
use std::ptr;

use common::{c, closed_url, decision_of, last_error, text_out, LeaseServer, Vendor};
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

/// A lease's id and end, through the C calls.
fn id_and_end(lease: *const entitle_lease) -> (String, i64) {
    let id = text_out(|buf, len, needed| unsafe { entitle_lease_id(lease, buf, len, needed) })
        .unwrap_or_else(|status| panic!("{status:?}: {}", last_error()));
    let mut ends = 0i64;
    assert_eq!(
        unsafe { entitle_lease_expires_unix(lease, &mut ends) },
        ENTITLE_OK
    );
    (id, ends)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_seat_from_a_license_server_counts_in_the_gates_and_goes_back_when_freed() {
    let vendor = Vendor::new();
    let server = LeaseServer::start(&vendor);
    let license = vendor.license("lic_1", serde_json::json!({}));
    let engine = vendor.open(None);
    let other = vendor.open(None);
    let simulate = c("simulate");
    unsafe {
        assert_eq!(entitle_add_license(engine, license.as_ptr()), ENTITLE_OK);
        assert_eq!(entitle_add_license(other, license.as_ptr()), ENTITLE_OK);
        let mut gate = ptr::null_mut();
        assert_eq!(
            entitle_gate_new(engine, simulate.as_ptr(), &mut gate),
            ENTITLE_OK
        );
        assert_eq!(entitle_gate_check(gate), 0, "LEASE_REQUIRED");

        let mut lease = ptr::null_mut();
        let status = entitle_lease_acquire_from_server(
            engine,
            server.url.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_OK, "{}", last_error());
        assert_eq!(entitle_gate_check(gate), 1, "the server's seat counts");
        let mut held = decision_of(engine, "export");
        assert_eq!(entitle_lease_check(lease, &mut held), ENTITLE_OK);
        assert!(held.allowed);
        // The server holds it: the same id, ending within the license's
        // lease_secs (600).
        let (id, ends) = id_and_end(lease);
        let on_server = server.engine.leases();
        assert_eq!(on_server.len(), 1);
        assert_eq!(on_server[0].id, id);
        assert_eq!(on_server[0].feature.as_deref(), Some("simulate"));
        assert_eq!(on_server[0].expires_at.unix(), ends);
        assert!(ends > now_unix() && ends <= now_unix() + 600, "{ends}");

        // Asked again by this program, the server's seat is shared: it
        // goes back with the last handle.
        let mut again = ptr::null_mut();
        let status = entitle_lease_acquire_from_server(
            engine,
            server.url.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut again,
        );
        assert_eq!(status, ENTITLE_OK, "{}", last_error());
        assert_eq!(id_and_end(again).0, id);
        entitle_lease_free(again);
        assert_eq!(
            entitle_gate_check(gate),
            1,
            "the first handle keeps the seat"
        );
        assert_eq!(server.engine.leases().len(), 1);

        // Another instance of the program finds the one seat taken, and is
        // told when to try again.
        let mut second = ptr::null_mut();
        let status = entitle_lease_acquire_from_server(
            other,
            server.url.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut second,
        );
        assert_eq!(status, ENTITLE_FLOATING_EXHAUSTED);
        assert!(second.is_null(), "written only on success");
        assert!(last_error().contains("license server"), "{}", last_error());

        // Freed: checked in on the server, and the gate closes.
        entitle_lease_free(lease);
        assert_eq!(entitle_gate_check(gate), 0);
        assert!(server.engine.leases().is_empty());
        assert_eq!(
            entitle_lease_id(lease, ptr::null_mut(), 0, &mut 0),
            ENTITLE_INVALID_HANDLE
        );
        let status = entitle_lease_acquire_from_server(
            other,
            server.url.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut second,
        );
        assert_eq!(status, ENTITLE_OK, "{}", last_error());
        assert_eq!(server.engine.leases().len(), 1);
        entitle_lease_free(second);
        assert!(server.engine.leases().is_empty());
        entitle_gate_free(gate);
        entitle_engine_free(other);
        entitle_engine_free(engine);
    }
}

#[test]
fn a_server_that_is_absent_or_signs_with_another_key_is_a_status_and_a_message() {
    let vendor = Vendor::new();
    let server = LeaseServer::start(&vendor);
    let engine = vendor.open(None);
    let simulate = c("simulate");
    unsafe {
        let mut lease = ptr::null_mut();
        // Nothing listens there.
        let url = closed_url();
        let status = entitle_lease_acquire_from_server(
            engine,
            url.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_SERVER_UNREACHABLE);
        let address = url.to_str().unwrap().trim_start_matches("http://");
        assert!(last_error().contains(address), "{}", last_error());
        assert!(lease.is_null());

        // The server is there, but its leases are not signed with this
        // key: refused, and the seat it gave is given back.
        let stranger = entitle::token::SigningKey::generate().unwrap();
        let stranger = c(&stranger.public_key().to_pem());
        let status = entitle_lease_acquire_from_server(
            engine,
            server.url.as_ptr(),
            stranger.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_LEASE_KEY_MISMATCH, "{}", last_error());
        assert!(lease.is_null());
        assert!(server.engine.leases().is_empty(), "the seat went back");

        // What cannot be a server or a key.
        let status = entitle_lease_acquire_from_server(
            engine,
            c("ftp://example").as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_INVALID_ARGUMENT);
        assert!(last_error().contains("http://"), "{}", last_error());
        let status = entitle_lease_acquire_from_server(
            engine,
            server.url.as_ptr(),
            c("not a key").as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_MALFORMED);
        let status = entitle_lease_acquire_from_server(
            engine,
            ptr::null(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_NULL);
        assert!(last_error().contains("server_url"), "{}", last_error());
        let bad = b"http://127.0.0.1:1\xff\0";
        let status = entitle_lease_acquire_from_server(
            engine,
            bad.as_ptr().cast(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_INVALID_UTF8);
        let status = entitle_lease_acquire_from_server(
            engine,
            server.url.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            ptr::null_mut(),
        );
        assert_eq!(status, ENTITLE_NULL);
        assert!(lease.is_null());
        assert!(server.engine.leases().is_empty(), "nothing was taken");
        entitle_engine_free(engine);
    }
}

#[test]
fn a_local_lease_tells_its_id_and_end() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let engine = vendor.open(Some(dir.path()));
    unsafe {
        let license = vendor.license("lic_1", serde_json::json!({}));
        assert_eq!(entitle_add_license(engine, license.as_ptr()), ENTITLE_OK);
        let mut lease = ptr::null_mut();
        assert_eq!(
            entitle_lease_acquire(engine, c("simulate").as_ptr(), &mut lease),
            ENTITLE_OK
        );
        let (id, ends) = id_and_end(lease);
        assert!(id.starts_with("lease_"), "{id}");
        assert!(ends > now_unix() && ends <= now_unix() + 600, "{ends}");
        let mut buf = [b'#' as c_char; 4];
        let mut needed = 0usize;
        assert_eq!(
            entitle_lease_id(lease, buf.as_mut_ptr(), buf.len(), &mut needed),
            ENTITLE_BUFFER_TOO_SMALL
        );
        assert_eq!(needed, id.len() + 1);
        assert_eq!(buf, [b'#' as c_char; 4]);
        assert_eq!(
            entitle_lease_expires_unix(lease, ptr::null_mut()),
            ENTITLE_NULL
        );
        assert_eq!(
            entitle_lease_expires_unix(engine.cast(), &mut 0),
            ENTITLE_INVALID_HANDLE
        );
        entitle_lease_free(lease);
        entitle_engine_free(engine);
    }
}

/// An engine opened with `options`, with the license `extra` makes.
fn open_with(vendor: &Vendor, options: *const entitle_options) -> *mut entitle_engine {
    let mut engine = ptr::null_mut();
    let status = unsafe {
        entitle_engine_open_with(
            c("acme-cad").as_ptr(),
            vendor.pem.as_ptr(),
            ptr::null(),
            options,
            &mut engine,
        )
    };
    assert_eq!(status, ENTITLE_OK, "{}", last_error());
    engine
}

#[test]
fn the_programs_version_channel_and_release_date_are_checked_against_the_license() {
    let vendor = Vendor::new();
    let license = vendor.license(
        "lic_v2",
        serde_json::json!({
            "versions": ">=2.0, <3", "channels": ["stable"],
            "maintenance_until": "2026-06-01T00:00:00Z"
        }),
    );
    // 2026-05-01 and 2026-07-01, in Unix seconds.
    let (before, after) = (1_777_593_600_i64, 1_782_864_000_i64);
    let reason = |version: Option<&str>, channel: Option<&str>, released: Option<i64>| unsafe {
        let mut options = ptr::null_mut();
        assert_eq!(entitle_options_new(&mut options), ENTITLE_OK);
        if let Some(version) = version {
            assert_eq!(
                entitle_options_set_version(options, c(version).as_ptr()),
                ENTITLE_OK
            );
        }
        if let Some(channel) = channel {
            assert_eq!(
                entitle_options_set_channel(options, c(channel).as_ptr()),
                ENTITLE_OK
            );
        }
        if let Some(released) = released {
            assert_eq!(
                entitle_options_set_release_date(options, released),
                ENTITLE_OK
            );
        }
        let engine = open_with(&vendor, options);
        entitle_options_free(options);
        assert_eq!(
            entitle_add_license(engine, license.as_ptr()),
            ENTITLE_OK,
            "{}",
            last_error()
        );
        let reason = decision_of(engine, "export").reason;
        entitle_engine_free(engine);
        reason
    };
    assert_eq!(
        reason(Some("2.3.1"), Some("stable"), Some(before)),
        ENTITLE_OK
    );
    assert_eq!(
        reason(Some("3.0.0"), Some("stable"), Some(before)),
        ENTITLE_VERSION_NOT_LICENSED
    );
    assert_eq!(
        reason(Some("2.3.1"), Some("beta"), Some(before)),
        ENTITLE_VERSION_NOT_LICENSED
    );
    assert_eq!(
        reason(None, Some("stable"), Some(before)),
        ENTITLE_VERSION_NOT_LICENSED,
        "a license with versions gives a program that says none nothing"
    );
    assert_eq!(
        reason(Some("2.3.1"), Some("stable"), Some(after)),
        ENTITLE_MAINTENANCE_EXPIRED
    );
    // Without options (or NULL options), as entitle_engine_open.
    let engine = open_with(&vendor, ptr::null());
    unsafe {
        assert_eq!(entitle_add_license(engine, license.as_ptr()), ENTITLE_OK);
        assert_eq!(
            decision_of(engine, "export").reason,
            ENTITLE_VERSION_NOT_LICENSED
        );
        entitle_engine_free(engine);
    }
}

#[test]
fn options_refuse_what_is_not_a_version_a_channel_or_a_date_and_keep_their_values() {
    let vendor = Vendor::new();
    unsafe {
        let mut options = ptr::null_mut();
        assert_eq!(entitle_options_new(ptr::null_mut()), ENTITLE_NULL);
        assert_eq!(entitle_options_new(&mut options), ENTITLE_OK);
        assert_eq!(
            entitle_options_set_version(options, c("2.3.1").as_ptr()),
            ENTITLE_OK
        );
        assert_eq!(
            entitle_options_set_version(options, c("2.3").as_ptr()),
            ENTITLE_INVALID_ARGUMENT
        );
        assert!(last_error().contains("semver"), "{}", last_error());
        assert_eq!(
            entitle_options_set_version(options, ptr::null()),
            ENTITLE_NULL
        );
        assert_eq!(
            entitle_options_set_version(options, c"2.\xff".as_ptr()),
            ENTITLE_INVALID_UTF8
        );
        assert_eq!(
            entitle_options_set_channel(options, c("").as_ptr()),
            ENTITLE_INVALID_ARGUMENT
        );
        assert_eq!(
            entitle_options_set_channel(options, c("be\nta").as_ptr()),
            ENTITLE_INVALID_ARGUMENT
        );
        assert_eq!(
            entitle_options_set_channel(options, c(&"x".repeat(257)).as_ptr()),
            ENTITLE_INVALID_ARGUMENT
        );
        assert_eq!(
            entitle_options_set_release_date(options, -1),
            ENTITLE_INVALID_ARGUMENT
        );
        assert!(last_error().contains("1970"), "{}", last_error());
        // Refused values left 2.3.1 in place: a 2.x license allows.
        let engine = open_with(&vendor, options);
        let license = vendor.license("lic_v", serde_json::json!({"versions": "2"}));
        assert_eq!(entitle_add_license(engine, license.as_ptr()), ENTITLE_OK);
        assert!(decision_of(engine, "export").allowed);
        entitle_engine_free(engine);

        // Handles of the wrong kind, or freed.
        let engine = vendor.open(None);
        assert_eq!(
            entitle_options_set_channel(engine.cast(), c("stable").as_ptr()),
            ENTITLE_INVALID_HANDLE
        );
        let mut other = ptr::null_mut();
        let status = entitle_engine_open_with(
            c("acme-cad").as_ptr(),
            vendor.pem.as_ptr(),
            ptr::null(),
            engine.cast(),
            &mut other,
        );
        assert_eq!(status, ENTITLE_INVALID_HANDLE);
        assert!(last_error().contains("options"), "{}", last_error());
        entitle_options_free(options);
        assert_eq!(
            entitle_options_set_release_date(options, 0),
            ENTITLE_INVALID_HANDLE
        );
        let status = entitle_engine_open_with(
            c("acme-cad").as_ptr(),
            vendor.pem.as_ptr(),
            ptr::null(),
            options,
            &mut other,
        );
        assert_eq!(status, ENTITLE_INVALID_HANDLE);
        assert!(other.is_null());
        entitle_options_free(options); // twice: ignored
        entitle_options_free(ptr::null_mut());
        entitle_engine_free(engine);
    }
}

#[test]
fn users_take_seats_and_give_them_back() {
    let vendor = Vendor::new();
    let engine = vendor.open(None);
    let license = vendor.license("lic_seats", serde_json::json!({"seats": {"max": 2}}));
    let named = c("named");
    let can_add = || unsafe {
        let mut decision = decision_of(engine, "export");
        assert_eq!(entitle_can_add_user(engine, &mut decision), ENTITLE_OK);
        decision
    };
    unsafe {
        assert_eq!(can_add().reason, ENTITLE_NOT_LICENSED);
        assert_eq!(entitle_add_license(engine, license.as_ptr()), ENTITLE_OK);
        assert!(can_add().allowed);
        let mut decision = decision_of(engine, "export");
        decision.reason = ENTITLE_PANIC;
        assert_eq!(
            entitle_user_add(engine, c("ada").as_ptr(), named.as_ptr(), &mut decision),
            ENTITLE_OK,
            "{}",
            last_error()
        );
        assert_eq!((decision.allowed, decision.reason), (true, ENTITLE_OK));
        assert_eq!(
            entitle_user_add(engine, c("bob").as_ptr(), named.as_ptr(), ptr::null_mut()),
            ENTITLE_OK
        );
        // Ada again keeps her seat; a third user finds none.
        assert_eq!(
            entitle_user_add(engine, c("ada").as_ptr(), named.as_ptr(), ptr::null_mut()),
            ENTITLE_OK
        );
        assert_eq!(can_add().reason, ENTITLE_SEAT_LIMIT);
        let before = decision;
        assert_eq!(
            entitle_user_add(engine, c("cy").as_ptr(), named.as_ptr(), &mut decision),
            ENTITLE_SEAT_LIMIT
        );
        assert_eq!(decision, before, "written only on success");
        assert!(last_error().contains("cy"), "{}", last_error());
        assert_eq!(entitle_user_remove(engine, c("bob").as_ptr()), ENTITLE_OK);
        assert!(can_add().allowed);
        assert_eq!(
            entitle_user_add(engine, c("cy").as_ptr(), named.as_ptr(), ptr::null_mut()),
            ENTITLE_OK
        );
        assert_eq!(
            entitle_user_remove(engine, c("bob").as_ptr()),
            ENTITLE_USER_NOT_FOUND
        );
        assert_eq!(
            entitle_user_add(engine, c("").as_ptr(), named.as_ptr(), ptr::null_mut()),
            ENTITLE_INVALID_ARGUMENT
        );
        assert_eq!(
            entitle_user_add(engine, ptr::null(), named.as_ptr(), ptr::null_mut()),
            ENTITLE_NULL
        );
        assert_eq!(
            entitle_user_remove(engine, c"b\xffb".as_ptr()),
            ENTITLE_INVALID_UTF8
        );
        assert_eq!(entitle_can_add_user(engine, ptr::null_mut()), ENTITLE_NULL);
        entitle_engine_free(engine);
        assert_eq!(
            entitle_user_remove(engine, c("ada").as_ptr()),
            ENTITLE_INVALID_HANDLE
        );
    }
}

#[test]
fn giving_this_device_up_writes_a_receipt_the_vendors_books_can_read() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let engine = vendor.open(Some(dir.path()));
    let locked = vendor.license(
        "lic_nl",
        serde_json::json!({"activations": {"max": 1, "max_transfers": 1}}),
    );
    unsafe {
        assert_eq!(entitle_add_license(engine, locked.as_ptr()), ENTITLE_OK);
        // Not activated: nothing to give up, and no receipt.
        let mut needed = 0usize;
        assert_eq!(
            entitle_deactivate_this_device(engine, ptr::null(), ptr::null_mut(), 0, &mut needed),
            ENTITLE_NOT_ACTIVATED
        );
        assert_eq!(entitle_activate_this_device(engine), ENTITLE_OK);
        assert!(decision_of(engine, "export").allowed);
        // NULL `needed` is refused before the device is given up.
        assert_eq!(
            entitle_deactivate_this_device(
                engine,
                ptr::null(),
                ptr::null_mut(),
                0,
                ptr::null_mut()
            ),
            ENTITLE_NULL
        );
        assert!(decision_of(engine, "export").allowed);
        // Asking the size gives the device up; the second call writes the
        // same receipt, kept in the state.
        let receipt = text_out(|buf, len, needed| {
            entitle_deactivate_this_device(engine, c("lic_nl").as_ptr(), buf, len, needed)
        })
        .unwrap_or_else(|status| panic!("{status:?}: {}", last_error()));
        assert_eq!(decision_of(engine, "export").reason, ENTITLE_NOT_ACTIVATED);
        let again = text_out(|buf, len, needed| {
            entitle_deactivate_this_device(engine, ptr::null(), buf, len, needed)
        })
        .unwrap();
        assert_eq!(again, receipt);
        // What it says, read as the vendor's books read it.
        let install_key = {
            let engine = entitle::Engine::builder("acme-cad")
                .trust(vendor.key.public_key().clone())
                .store(entitle::store::FileStore::open(dir.path()).unwrap())
                .build()
                .unwrap();
            engine.install_key().unwrap()
        };
        let read = entitle::license::DeactivationReceipt::verify(&receipt, &install_key)
            .unwrap_or_else(|e| panic!("{e}: {receipt}"));
        assert_eq!(read.license_id, "lic_nl");
        assert_eq!(
            entitle_deactivate_this_device(
                engine,
                c"lic\xff".as_ptr(),
                ptr::null_mut(),
                0,
                &mut needed
            ),
            ENTITLE_INVALID_UTF8
        );
        entitle_engine_free(engine);
    }
}

#[test]
fn a_list_of_servers_passes_over_one_that_does_not_answer() {
    let vendor = Vendor::new();
    let server = LeaseServer::start(&vendor);
    let license = vendor.license("lic_1", serde_json::json!({}));
    let engine = vendor.open(None);
    let simulate = c("simulate");
    // Redundant servers, the first of which is down: separated by spaces.
    let urls = c(&format!(
        "{}  {}",
        closed_url().to_str().unwrap(),
        server.url.to_str().unwrap()
    ));
    unsafe {
        assert_eq!(entitle_add_license(engine, license.as_ptr()), ENTITLE_OK);
        let mut lease = ptr::null_mut();
        let status = entitle_lease_acquire_from_server(
            engine,
            urls.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_OK, "{}", last_error());
        let (id, _) = id_and_end(lease);
        assert_eq!(server.engine.leases().len(), 1);
        assert_eq!(server.engine.leases()[0].id, id);
        entitle_lease_free(lease);
        assert!(server.engine.leases().is_empty(), "the seat went back");

        // None of them answers: unreachable, each named.
        let (first, second) = (closed_url(), closed_url());
        let none = c(&format!(
            "{} {}",
            first.to_str().unwrap(),
            second.to_str().unwrap()
        ));
        let mut lease = ptr::null_mut();
        let status = entitle_lease_acquire_from_server(
            engine,
            none.as_ptr(),
            server.key_pem.as_ptr(),
            simulate.as_ptr(),
            &mut lease,
        );
        assert_eq!(status, ENTITLE_SERVER_UNREACHABLE);
        assert!(lease.is_null());
        let message = last_error();
        for url in [&first, &second] {
            let url = url.to_str().unwrap();
            let addr = url.trim_start_matches("http://");
            assert!(message.contains(addr), "{message}");
        }
        entitle_engine_free(engine);
    }
}
