//! Opaque handles: boxes handed to C, and the registry of the live ones.
//!
//! Every handle this library makes is recorded, with its kind, until its
//! `_free`. A call looks its handle up before touching it, so a handle
//! used after its `_free`, freed twice, or of the wrong kind (a gate
//! passed as an engine) is `ENTITLE_INVALID_HANDLE`, never a read of freed
//! memory, and a call clones what it needs (an `Arc`) under the registry's
//! lock, so a `_free` on another thread cannot pull it away mid-call.
//! What it cannot tell: a stale pointer whose address the allocator has
//! since given to a new handle of the same kind is that new handle.
//!
//! `entitle_gate_check` alone skips the registry, to stay a load and a
//! comparison: it checks a magic number in the gate instead, which `_free`
//! clears first. That catches a freed gate while its memory is not reused;
//! a gate checked after its memory went to another allocation of the
//! program is undefined behaviour the library cannot see.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::fail;
use crate::status::entitle_status;

/// What a handle is, so that one kind is never taken for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Engine,
    Gate,
    Lease,
    Options,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Engine => "entitle_engine",
            Kind::Gate => "entitle_gate",
            Kind::Lease => "entitle_lease",
            Kind::Options => "entitle_options",
        }
    }
}

/// A type handed to C behind a pointer.
pub(crate) trait Handle: 'static {
    const KIND: Kind;
}

/// The live handles: address to kind.
static LIVE: Mutex<BTreeMap<usize, Kind>> = Mutex::new(BTreeMap::new());

fn live() -> std::sync::MutexGuard<'static, BTreeMap<usize, Kind>> {
    // A panic while the lock was held (caught at the boundary) left the
    // map as it was: the poison says nothing about its contents.
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Boxes `value` and records it as live.
pub(crate) fn into_raw<H: Handle>(value: H) -> *mut H {
    let ptr = Box::into_raw(Box::new(value));
    live().insert(ptr as usize, H::KIND);
    ptr
}

/// A clone of the live handle at `ptr` (for the argument named `what`):
/// `ENTITLE_NULL` when NULL, `ENTITLE_INVALID_HANDLE` when not a live
/// handle of this kind.
pub(crate) fn get<H: Handle + Clone>(ptr: *const H, what: &str) -> Result<H, entitle_status> {
    if ptr.is_null() {
        return Err(fail(
            entitle_status::ENTITLE_NULL,
            format!(
                "`{what}` is NULL: pass the {} the library gave you",
                H::KIND.name()
            ),
        ));
    }
    let live = live();
    match live.get(&(ptr as usize)) {
        // SAFETY: recorded as a live `H` by `into_raw`, and not freed:
        // `release` removes it under this same lock before freeing.
        Some(kind) if *kind == H::KIND => Ok(unsafe { (*ptr).clone() }),
        Some(kind) => Err(fail(
            entitle_status::ENTITLE_INVALID_HANDLE,
            format!("`{what}` is an {}, not an {}", kind.name(), H::KIND.name()),
        )),
        None => Err(fail(
            entitle_status::ENTITLE_INVALID_HANDLE,
            format!(
                "`{what}` is not a live {}: it was freed already, or did not come from this \
                 library",
                H::KIND.name()
            ),
        )),
    }
}

/// Frees the live handle at `ptr`, first running `retire` on it (under the
/// lock, so no call is between its lookup and its clone). NULL is nothing
/// to do; a handle that is not live is left alone, with the last error
/// saying so.
pub(crate) fn release<H: Handle>(ptr: *mut H, retire: impl FnOnce(&mut H)) {
    if ptr.is_null() {
        return;
    }
    let mut live = live();
    if live.get(&(ptr as usize)) != Some(&H::KIND) {
        drop(live);
        fail(
            entitle_status::ENTITLE_INVALID_HANDLE,
            format!(
                "{}_free of a handle that is not live (freed twice?): ignored",
                H::KIND.name()
            ),
        );
        return;
    }
    live.remove(&(ptr as usize));
    // SAFETY: it was live, so it is the box `into_raw` made, and no other
    // call can reach it now that it is out of the registry.
    let mut boxed = unsafe { Box::from_raw(ptr) };
    retire(&mut boxed);
    drop(live);
    // Dropped outside the lock: a lease's drop checks its seat in.
    drop(boxed);
}
