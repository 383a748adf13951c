//! `entitle_gate`: one feature's gate, the check a program makes in its
//! hot paths.

use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use entitle::FeatureGate;

use crate::decision::entitle_decision;
use crate::engine::entitle_engine;
use crate::error::{boundary, fail};
use crate::handle::{self, Handle, Kind};
use crate::status::entitle_status;
use crate::strings::str_in;

/// What a live gate holds in `magic`; `entitle_gate_free` clears it.
const GATE_MAGIC: u64 = 0x656e_7469_746c_6567; // "entitleg"

/// A handle on one feature of an engine, made by [`entitle_gate_new`],
/// released by [`entitle_gate_free`]: [`entitle_gate_check`] is a load
/// and a comparison. It follows every change (licenses, activations, this
/// program's leases, the meter) and keeps its engine alive.
pub struct entitle_gate {
    magic: AtomicU64,
    gate: FeatureGate,
}

impl Clone for entitle_gate {
    fn clone(&self) -> Self {
        entitle_gate {
            magic: AtomicU64::new(self.magic.load(Ordering::Relaxed)),
            gate: self.gate.clone(),
        }
    }
}

impl Handle for entitle_gate {
    const KIND: Kind = Kind::Gate;
}

/// Makes the gate of `feature` on `engine` into `*gate_out`.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `feature` is NULL or
/// NUL-terminated; `gate_out` is NULL or a writable `entitle_gate *`.
#[no_mangle]
pub unsafe extern "C" fn entitle_gate_new(
    engine: *const entitle_engine,
    feature: *const c_char,
    gate_out: *mut *mut entitle_gate,
) -> entitle_status {
    boundary(|| {
        let engine = handle::get(engine, "engine")?.engine;
        // SAFETY: the caller's promise on the string.
        let feature = unsafe { str_in(feature, "feature") }?;
        if gate_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`gate_out` is NULL"));
        }
        let gate = handle::into_raw(entitle_gate {
            magic: AtomicU64::new(GATE_MAGIC),
            gate: engine.feature(feature),
        });
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { gate_out.write(gate) };
        Ok(())
    })
}

/// 1 if the gate's feature may be used now, 0 if not (or if `gate` is
/// NULL or freed, as far as that can be seen). No lock, no allocation: one
/// atomic load and a clock read on the fast path.
/// [`entitle_gate_decision`] says why.
///
/// # Safety
///
/// `gate` is NULL or a handle from [`entitle_gate_new`]. A freed gate is
/// caught while its memory is not reused; after that, reading it is
/// undefined behaviour this function cannot detect.
#[no_mangle]
pub unsafe extern "C" fn entitle_gate_check(gate: *const entitle_gate) -> c_int {
    // No registry lookup here (see the `handle` module): a magic number.
    let checked = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: NULL or a gate, by the caller's promise.
        match unsafe { gate.as_ref() } {
            Some(gate) if gate.magic.load(Ordering::Relaxed) == GATE_MAGIC => {
                c_int::from(gate.gate.check().allowed())
            }
            _ => not_a_gate(gate),
        }
    }));
    checked.unwrap_or(0)
}

#[cold]
#[inline(never)]
fn not_a_gate(gate: *const entitle_gate) -> c_int {
    let what = if gate.is_null() { "NULL" } else { "freed" };
    fail(
        if gate.is_null() {
            entitle_status::ENTITLE_NULL
        } else {
            entitle_status::ENTITLE_INVALID_HANDLE
        },
        format!("entitle_gate_check of a {what} gate: denied"),
    );
    0
}

/// The gate's full answer (why, the notice to show, until when) into
/// `*decision_out`.
///
/// # Safety
///
/// `gate` is a live handle (or NULL); `decision_out` is NULL or a
/// writable `entitle_decision`.
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
/// let mut gate = ptr::null_mut();
/// unsafe { entitle_gate_new(engine, c("simulate").as_ptr(), &mut gate) };
/// let mut decision = std::mem::MaybeUninit::<entitle_decision>::uninit();
/// assert_eq!(unsafe { entitle_gate_decision(gate, decision.as_mut_ptr()) }, entitle_status::ENTITLE_OK);
/// let decision = unsafe { decision.assume_init() };
/// assert_eq!(decision.reason, entitle_status::ENTITLE_LEASE_REQUIRED);
/// let words = unsafe { std::ffi::CStr::from_ptr(entitle_reason_message(decision.reason as u32)) };
/// assert!(words.to_str().unwrap().starts_with("This feature needs a seat"));
/// unsafe { entitle_gate_free(gate) };
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_gate_decision(
    gate: *const entitle_gate,
    decision_out: *mut entitle_decision,
) -> entitle_status {
    boundary(|| {
        let gate = handle::get(gate, "gate")?;
        if decision_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`decision_out` is NULL"));
        }
        let decision = entitle_decision::from(gate.gate.check());
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { decision_out.write(decision) };
        Ok(())
    })
}

/// Releases a gate. NULL does nothing; a second free is detected and
/// ignored.
///
/// # Safety
///
/// `gate` is NULL or a handle from [`entitle_gate_new`], and no other
/// thread is checking it.
#[no_mangle]
pub unsafe extern "C" fn entitle_gate_free(gate: *mut entitle_gate) {
    boundary(|| {
        handle::release(gate, |gate| gate.magic.store(0, Ordering::Relaxed));
        Ok(())
    });
}
