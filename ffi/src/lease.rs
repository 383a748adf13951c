//! `entitle_lease`: a floating seat this program holds, taken from the
//! install's own state or from a license server on the LAN.

use std::ffi::c_char;

use entitle::LeaseGuard;

use crate::decision::entitle_decision;
use crate::engine::entitle_engine;
use crate::error::{boundary, fail};
use crate::handle::{self, Handle, Kind};
use crate::status::entitle_status;
use crate::strings::{optional_str_in, str_in, str_out};

/// A floating seat held by this program (from the install's state, or
/// from a license server), renewed in the background until
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

/// Takes a seat of `feature`'s floating pool (NULL: the license's own
/// pool) from the license server at `server_url` (`http://HOST:PORT`,
/// where `entitle serve` listens), into `*lease_out`. The lease the
/// server answers must be signed by `server_key_pem`, the server's lease
/// key (the text `entitle serve --print-lease-pub` prints; ship it with
/// the program or let the administrator configure it).
///
/// The seat is taken under this engine's client id and counts in its
/// gates: while the lease lives, a gate of the pool's feature allows
/// (the engine must hold the license the server serves for its gates to
/// allow). The lease is renewed in the background, rides out a server
/// that is down until the lease ends, and is given back to the server by
/// [`entitle_lease_free`]. Asking the same server again for the same pool
/// while a lease of it lives shares that lease's seat (each handle is
/// freed; the seat goes back with the last).
///
/// `server_url` is one address (`http://HOST:PORT`), or the addresses of
/// redundant servers sharing one PostgreSQL namespace separated by
/// spaces: the first is asked until it cannot be reached or answers
/// `503`, then the next, and the background renewal does the same.
///
/// The call blocks while the server is asked (up to 5 seconds to
/// connect, 30 to answer): make it off the user interface's thread.
/// Fails with `ENTITLE_SERVER_UNREACHABLE` (no server at that address,
/// or it answered garbage; the last error names the address),
/// `ENTITLE_LEASE_KEY_MISMATCH` (the lease is not signed with
/// `server_key_pem`: the seat is given back), `ENTITLE_MALFORMED` (a key
/// that does not read), `ENTITLE_INVALID_ARGUMENT` (an address that is
/// not `http://` or `https://`), or as the server refuses
/// (`ENTITLE_FLOATING_EXHAUSTED`, `ENTITLE_NOT_LICENSED`...).
///
/// # Safety
///
/// `engine` is a live handle (or NULL); the strings are NULL (`feature`
/// may be) or NUL-terminated; `lease_out` is NULL or a writable
/// `entitle_lease *`.
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
/// // A port nothing listens on.
/// let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let url = c(&format!("http://{}", closed.local_addr().unwrap()));
/// drop(closed);
/// let server_key = entitle::token::SigningKey::generate().unwrap();
/// let server_pem = c(&server_key.public_key().to_pem());
/// let mut lease = ptr::null_mut();
/// let status = unsafe {
///     entitle_lease_acquire_from_server(engine, url.as_ptr(), server_pem.as_ptr(),
///         c("simulate").as_ptr(), &mut lease)
/// };
/// assert_eq!(status, entitle_status::ENTITLE_SERVER_UNREACHABLE);
/// assert!(lease.is_null());
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_lease_acquire_from_server(
    engine: *const entitle_engine,
    server_url: *const c_char,
    server_key_pem: *const c_char,
    feature: *const c_char,
    lease_out: *mut *mut entitle_lease,
) -> entitle_status {
    boundary(|| {
        let engine = handle::get(engine, "engine")?;
        // SAFETY (all three): the caller's promise on the strings.
        let url = unsafe { str_in(server_url, "server_url") }?;
        let key = unsafe { str_in(server_key_pem, "server_key_pem") }?;
        let feature = unsafe { optional_str_in(feature, "feature") }?;
        if lease_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`lease_out` is NULL"));
        }
        // The guard keeps what it needs of the client (the server's
        // address and key); the engine keeps the client, which hands out
        // the guard of a pool again while it lives.
        let guard = engine.server(url, key)?.lease(feature)?;
        let lease = handle::into_raw(entitle_lease { guard });
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { lease_out.write(lease) };
        Ok(())
    })
}

/// The lease the guard holds now, or why it holds none.
fn held(guard: &LeaseGuard) -> Result<entitle::engine::Lease, entitle_status> {
    guard.lease().ok_or_else(|| match guard.lost() {
        Some(lost) => entitle_status::from(lost),
        None => fail(
            entitle_status::ENTITLE_LEASE_EXPIRED,
            "the lease is not held now",
        ),
    })
}

/// Writes the id of the lease held now (the id the server or the
/// install's state knows it by, as `entitle lease list` shows it) into
/// `buf`. Fails with the reason the seat was lost
/// (`ENTITLE_FLOATING_EXHAUSTED`...) while it is not held; the lease keeps
/// trying to take it again.
///
/// # Safety
///
/// `lease` is a live handle (or NULL); `buf` is NULL or `len` writable
/// bytes; `needed` is NULL or a writable `size_t`.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let license = entitle::token::sign(&serde_json::json!({"v": 1, "id": "lic_1",
/// #     "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z", "features": [
/// #     {"code": "simulate", "floating": {"seats": 1, "lease_secs": 60}}]}),
/// #     &vendor, entitle::token::TokenType::License).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// # unsafe { entitle_add_license(engine, c(&license).as_ptr()) };
/// let mut lease = ptr::null_mut();
/// unsafe { entitle_lease_acquire(engine, c("simulate").as_ptr(), &mut lease) };
/// let mut buf = [0 as std::ffi::c_char; 128];
/// let mut needed = 0usize;
/// assert_eq!(unsafe { entitle_lease_id(lease, buf.as_mut_ptr(), buf.len(), &mut needed) },
///     entitle_status::ENTITLE_OK);
/// let id = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
/// assert!(id.starts_with("lease_"), "{id}");
/// let mut expires = 0i64;
/// assert_eq!(unsafe { entitle_lease_expires_unix(lease, &mut expires) },
///     entitle_status::ENTITLE_OK);
/// assert!(expires > 1_700_000_000);
/// unsafe { entitle_lease_free(lease) };
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_lease_id(
    lease: *const entitle_lease,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> entitle_status {
    boundary(|| {
        let lease = handle::get(lease, "lease")?;
        let held = held(&lease.guard)?;
        // SAFETY: the caller's promise on `buf`, `len` and `needed`.
        unsafe { str_out(&held.id, buf, len, needed) }
    })
}

/// Writes when the lease held now ends unless renewed (or when its
/// borrow ends), in Unix seconds, into `*expires_out`. The background
/// renewal moves it forward. Fails as [`entitle_lease_id`] does while the
/// seat is not held.
///
/// # Safety
///
/// `lease` is a live handle (or NULL); `expires_out` is NULL or a
/// writable `int64_t`. See [`entitle_lease_id`] for an example.
///
/// ```
/// use entitle_ffi::*;
/// let mut ends = 0i64;
/// assert_eq!(unsafe { entitle_lease_expires_unix(std::ptr::null(), &mut ends) },
///     entitle_status::ENTITLE_NULL);
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_lease_expires_unix(
    lease: *const entitle_lease,
    expires_out: *mut i64,
) -> entitle_status {
    boundary(|| {
        let lease = handle::get(lease, "lease")?;
        if expires_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`expires_out` is NULL"));
        }
        let held = held(&lease.guard)?;
        let ends = held.borrowed_until.unwrap_or(held.expires_at);
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { expires_out.write(ends.unix()) };
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

/// Gives the seat back (once no other lease shares it; to the server it
/// came from, best effort: a seat not given back frees itself when its
/// lease ends) and releases the handle. NULL does nothing; a second free is detected and ignored.
///
/// # Safety
///
/// `lease` is NULL or a handle from [`entitle_lease_acquire`] or
/// [`entitle_lease_acquire_from_server`].
#[no_mangle]
pub unsafe extern "C" fn entitle_lease_free(lease: *mut entitle_lease) {
    boundary(|| {
        handle::release(lease, |_| {});
        Ok(())
    });
}
