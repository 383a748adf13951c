//! Named users and their seats, and giving this device up with a receipt
//! for the vendor.

use std::ffi::c_char;

use crate::decision::entitle_decision;
use crate::engine::entitle_engine;
use crate::error::{boundary, fail};
use crate::handle;
use crate::status::entitle_status;
use crate::strings::{optional_str_in, str_in, str_out};

/// Adds the named user `user_id` of type `user_type` (`"named"`, or any
/// type the program uses), taking a seat of the licenses' `seats` when the
/// user is not active already; a user who is active keeps their seat (and
/// their activity is recorded). Writes the decision that let the user in
/// (`ENTITLE_OK`, or `ENTITLE_OVERAGE` beyond the licensed seats within
/// the hard limit) into `*decision_out` when it is not NULL. Fails with
/// `ENTITLE_SEAT_LIMIT` when no seat is free (nothing changes then),
/// `ENTITLE_INVALID_ARGUMENT` for an empty or overlong id.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); the strings are NULL or
/// NUL-terminated; `decision_out` is NULL or a writable
/// `entitle_decision`.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// let license = entitle::token::sign(&serde_json::json!({"v": 1, "id": "lic_1",
///     "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
///     "seats": {"max": 1}, "features": [{"code": "export"}]}),
///     &vendor, entitle::token::TokenType::License).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// unsafe { entitle_add_license(engine, c(&license).as_ptr()) };
/// let named = c("named");
/// assert_eq!(unsafe { entitle_user_add(engine, c("ada").as_ptr(), named.as_ptr(), ptr::null_mut()) },
///     entitle_status::ENTITLE_OK);
/// assert_eq!(unsafe { entitle_user_add(engine, c("bob").as_ptr(), named.as_ptr(), ptr::null_mut()) },
///     entitle_status::ENTITLE_SEAT_LIMIT);
/// assert_eq!(unsafe { entitle_user_remove(engine, c("ada").as_ptr()) }, entitle_status::ENTITLE_OK);
/// assert_eq!(unsafe { entitle_user_add(engine, c("bob").as_ptr(), named.as_ptr(), ptr::null_mut()) },
///     entitle_status::ENTITLE_OK);
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_user_add(
    engine: *const entitle_engine,
    user_id: *const c_char,
    user_type: *const c_char,
    decision_out: *mut entitle_decision,
) -> entitle_status {
    boundary(|| {
        let engine = handle::get(engine, "engine")?.engine;
        // SAFETY (both): the caller's promise on the strings.
        let id = unsafe { str_in(user_id, "user_id") }?;
        let user_type = unsafe { str_in(user_type, "user_type") }?;
        let decision = engine.add_user(id, user_type)?;
        if !decision_out.is_null() {
            // SAFETY: not NULL, writable by the caller's promise.
            unsafe { decision_out.write(entitle_decision::from(decision)) };
        }
        Ok(())
    })
}

/// Removes the user `user_id`, freeing their seat
/// (`ENTITLE_USER_NOT_FOUND` when there is no such user).
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `user_id` is NULL or
/// NUL-terminated.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// assert_eq!(unsafe { entitle_user_remove(engine, c("nobody").as_ptr()) },
///     entitle_status::ENTITLE_USER_NOT_FOUND);
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_user_remove(
    engine: *const entitle_engine,
    user_id: *const c_char,
) -> entitle_status {
    boundary(|| {
        let engine = handle::get(engine, "engine")?.engine;
        // SAFETY: the caller's promise on the string.
        let id = unsafe { str_in(user_id, "user_id") }?;
        engine.remove_user(id)?;
        Ok(())
    })
}

/// Whether one more user could be added now (`allowed`), or why not
/// (`ENTITLE_SEAT_LIMIT`, `ENTITLE_NOT_LICENSED`...), into
/// `*decision_out`: for greying out an "Add user" button. Changes
/// nothing.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `decision_out` is NULL or a
/// writable `entitle_decision`.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// let mut decision = std::mem::MaybeUninit::<entitle_decision>::uninit();
/// assert_eq!(unsafe { entitle_can_add_user(engine, decision.as_mut_ptr()) },
///     entitle_status::ENTITLE_OK);
/// let decision = unsafe { decision.assume_init() };
/// assert!(!decision.allowed, "no license yet");
/// assert_eq!(decision.reason, entitle_status::ENTITLE_NOT_LICENSED);
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_can_add_user(
    engine: *const entitle_engine,
    decision_out: *mut entitle_decision,
) -> entitle_status {
    boundary(|| {
        let engine = handle::get(engine, "engine")?.engine;
        if decision_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`decision_out` is NULL"));
        }
        let decision = entitle_decision::from(engine.can_add_user());
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { decision_out.write(decision) };
        Ok(())
    })
}

/// Deactivates this device for a node-locked license (`license_id`, or
/// NULL for the one license it is activated for) and writes the signed
/// deactivation receipt to send the vendor (the armored text `entitle
/// deactivate --receipt` writes;
/// docs/formats.md#deactivation-receipt-typ-receipt) into `buf`. It
/// counts one of the license's transfers (`ENTITLE_TRANSFER_LIMIT` when
/// none are left: nothing changes then).
///
/// Asked again once the device is deactivated, it writes the same receipt
/// again (kept in the state), so asking the size with a NULL `buf` first
/// and calling again with a buffer of `*needed` bytes works, and a
/// receipt lost before it was saved is not lost. `ENTITLE_NOT_ACTIVATED`
/// when this device was neither activated nor given up here;
/// `ENTITLE_INVALID_ARGUMENT` when it is activated for several licenses
/// and `license_id` is NULL; `ENTITLE_DEVICE_UNKNOWN` when this machine
/// gives no machine id.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `license_id` is NULL or
/// NUL-terminated; `buf` is NULL or `len` writable bytes; `needed` is
/// NULL or a writable `size_t`.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// let mut needed = 0usize;
/// let status = unsafe {
///     entitle_deactivate_this_device(engine, ptr::null(), ptr::null_mut(), 0, &mut needed)
/// };
/// assert_eq!(status, entitle_status::ENTITLE_NOT_ACTIVATED, "never activated here");
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_deactivate_this_device(
    engine: *const entitle_engine,
    license_id: *const c_char,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> entitle_status {
    boundary(|| {
        let engine = handle::get(engine, "engine")?.engine;
        // SAFETY: the caller's promise on the string.
        let license_id = unsafe { optional_str_in(license_id, "license_id") }?;
        if needed.is_null() {
            // Checked before the device is given up: a receipt the caller
            // cannot be told the size of would be given up for nothing.
            return Err(fail(
                entitle_status::ENTITLE_NULL,
                "`needed` is NULL: pass a pointer to a size_t",
            ));
        }
        let Some(fingerprint) = engine.fingerprint() else {
            return Err(fail(
                entitle_status::ENTITLE_DEVICE_UNKNOWN,
                "this machine gives no machine id, so it has no activation to give up",
            ));
        };
        let issued = engine.deactivate_with_receipt(fingerprint, license_id)?;
        // SAFETY: the caller's promise on `buf`, `len` and `needed`.
        unsafe { str_out(&issued.token, buf, len, needed) }
    })
}
