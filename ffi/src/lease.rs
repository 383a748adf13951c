//! `entitle_lease`: a floating seat this program holds.

use std::ffi::c_char;

use entitle::LeaseGuard;

use crate::decision::entitle_decision;
use crate::engine::entitle_engine;
use crate::error::{boundary, fail};
use crate::handle::{self, Handle, Kind};
use crate::status::entitle_status;
use crate::strings::optional_str_in;

/// A floating seat held by this program, renewed in the background until
/// [`entitle_lease_free`] gives it back. While it lives, the gates of its
/// feature allow (floating features say `ENTITLE_LEASE_REQUIRED` without
/// one).
#[derive(Clone)]
pub struct entitle_lease {
    guard: LeaseGuard,
}

impl Handle for entitle_lease {
    const KIND: Kind = Kind::Lease;
}

/// Takes a seat of `feature`'s floating pool (NULL: the license's own
/// pool) from this install's state, into `*lease_out`. Asking again for
/// the same pool while a lease lives shares its seat. Fails with
/// `ENTITLE_FLOATING_EXHAUSTED` when every seat is taken,
/// `ENTITLE_NOT_LICENSED` when no license has such a pool.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `feature` is NULL or
/// NUL-terminated; `lease_out` is NULL or a writable `entitle_lease *`.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let license = entitle::token::sign(&serde_json::json!({"v": 1, "id": "lic_1",
/// #     "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z", "features": [
/// #     {"code": "export"}, {"code": "simulate", "floating": {"seats": 1, "lease_secs": 60}}]}),
/// #     &vendor, entitle::token::TokenType::License).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// # unsafe { entitle_add_license(engine, c(&license).as_ptr()) };
/// let simulate = c("simulate");
/// let mut gate = ptr::null_mut();
/// unsafe { entitle_gate_new(engine, simulate.as_ptr(), &mut gate) };
/// assert_eq!(unsafe { entitle_gate_check(gate) }, 0, "LEASE_REQUIRED");
/// let mut lease = ptr::null_mut();
/// let status = unsafe { entitle_lease_acquire(engine, simulate.as_ptr(), &mut lease) };
/// assert_eq!(status, entitle_status::ENTITLE_OK);
/// assert_eq!(unsafe { entitle_gate_check(gate) }, 1);
/// unsafe { entitle_lease_free(lease) };
/// assert_eq!(unsafe { entitle_gate_check(gate) }, 0);
/// unsafe { entitle_gate_free(gate) };
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_lease_acquire(
    engine: *const entitle_engine,
    feature: *const c_char,
    lease_out: *mut *mut entitle_lease,
) -> entitle_status {
    boundary(|| {
        let engine = handle::get(engine, "engine")?.engine;
        // SAFETY: the caller's promise on the string.
        let feature = unsafe { optional_str_in(feature, "feature") }?;
        if lease_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`lease_out` is NULL"));
        }
        let guard = engine.lease(feature)?;
        let lease = handle::into_raw(entitle_lease { guard });
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { lease_out.write(lease) };
        Ok(())
    })
}

/// Whether the seat is held now (`allowed`), or why not
/// (`ENTITLE_LEASE_EXPIRED`, `ENTITLE_FLOATING_EXHAUSTED` after losing
/// it), into `*decision_out`.
///
/// # Safety
///
/// `lease` is a live handle (or NULL); `decision_out` is NULL or a
/// writable `entitle_decision`.
#[no_mangle]
pub unsafe extern "C" fn entitle_lease_check(
    lease: *const entitle_lease,
    decision_out: *mut entitle_decision,
) -> entitle_status {
    boundary(|| {
        let lease = handle::get(lease, "lease")?;
        if decision_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`decision_out` is NULL"));
        }
        let decision = entitle_decision::from(lease.guard.check());
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { decision_out.write(decision) };
        Ok(())
    })
}

/// Gives the seat back (once no other lease shares it) and releases the
/// handle. NULL does nothing; a second free is detected and ignored.
///
/// # Safety
///
/// `lease` is NULL or a handle from [`entitle_lease_acquire`].
#[no_mangle]
pub unsafe extern "C" fn entitle_lease_free(lease: *mut entitle_lease) {
    boundary(|| {
        handle::release(lease, |_| {});
        Ok(())
    });
}
