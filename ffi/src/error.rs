//! The calling thread's last error, and the panic boundary every entry
//! point runs inside.
//!
//! A failing call returns its status and leaves a message (the engine's
//! own: what happened and what to do) for `entitle_last_error`. The
//! message stays until the next failing call on the same thread, as
//! `errno` does.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::entitle_status;
use crate::strings;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as this thread's last error and gives `status` back.
pub(crate) fn fail(status: entitle_status, message: impl Into<String>) -> entitle_status {
    let message = message.into();
    // A thread being torn down has no last error to keep: the status
    // still says what happened.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = message);
    status
}

/// An engine error: its code's status, its message as the last error.
impl From<entitle::Error> for entitle_status {
    fn from(error: entitle::Error) -> Self {
        fail(entitle_status::of_error(&error), error.to_string())
    }
}

/// Runs one entry point: its failures are statuses (with the last error
/// set), and a panic inside becomes `ENTITLE_PANIC` rather than unwinding
/// into C, which is undefined behaviour.
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), entitle_status>) -> entitle_status {
    // Unwind safety: a call that panicked changed nothing the caller can
    // see through a handle (out-parameters are written last), and the
    // engine's own state is behind locks that do not poison.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => entitle_status::ENTITLE_OK,
        Ok(Err(status)) => status,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            fail(
                entitle_status::ENTITLE_PANIC,
                format!(
                    "entitle panicked ({what}); nothing was changed by this call. This is a \
                     bug in entitle: please report it with this message"
                ),
            )
        }
    }
}

/// Copies this thread's last error message (NUL-terminated UTF-8, empty
/// when no call on this thread has failed) into `buf` of `len` bytes.
///
/// Writes `*needed` (the message's length plus its NUL) and returns
/// `ENTITLE_OK` if it fits, or `ENTITLE_BUFFER_TOO_SMALL` leaving `buf`
/// alone (`buf` may then be NULL with `len` 0: a way to ask the size).
/// `ENTITLE_NULL` when `needed` is NULL. Never changes the last error.
///
/// # Safety
///
/// `buf` is NULL or points to `len` writable bytes; `needed` is NULL or
/// points to a writable `size_t`.
///
/// ```
/// use entitle_ffi::*;
/// use std::ffi::CStr;
///
/// let status = unsafe { entitle_engine_open(std::ptr::null(), std::ptr::null(),
///     std::ptr::null(), std::ptr::null_mut()) };
/// assert_eq!(status, entitle_status::ENTITLE_NULL);
/// let mut buf = [0 as std::ffi::c_char; 256];
/// let mut needed = 0usize;
/// assert_eq!(unsafe { entitle_last_error(buf.as_mut_ptr(), buf.len(), &mut needed) },
///     entitle_status::ENTITLE_OK);
/// let message = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
/// assert!(message.contains("product"), "{message}");
/// assert_eq!(needed, message.len() + 1);
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_last_error(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> entitle_status {
    catch_unwind(|| {
        let message = LAST_ERROR
            .try_with(|last| last.borrow().clone())
            .unwrap_or_default();
        // SAFETY: the caller's promise on `buf`, `len` and `needed`.
        unsafe { strings::copy_out(&message, buf, len, needed) }
    })
    .unwrap_or(entitle_status::ENTITLE_PANIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        LAST_ERROR.with(|last| last.borrow().clone())
    }

    #[test]
    fn a_panic_inside_is_a_status_and_a_message_not_an_unwind_into_c() {
        let status = boundary(|| panic!("boom in a test"));
        assert_eq!(status, entitle_status::ENTITLE_PANIC);
        assert!(last().contains("boom in a test"), "{}", last());
        let status = boundary(|| std::panic::panic_any(42_u8));
        assert_eq!(status, entitle_status::ENTITLE_PANIC);
        assert!(last().contains("without a message"));
    }

    #[test]
    fn an_engine_error_keeps_its_code_and_its_message() {
        let status = boundary(|| {
            Err(entitle_status::from(entitle::Error::LicenseNotFound {
                id: "lic_9".into(),
            }))
        });
        assert_eq!(status, entitle_status::ENTITLE_LICENSE_NOT_FOUND);
        assert!(last().contains("lic_9"));
    }

    #[test]
    fn each_thread_has_its_own_last_error() {
        fail(entitle_status::ENTITLE_NULL, "here");
        std::thread::spawn(|| {
            assert_eq!(last(), "");
            fail(entitle_status::ENTITLE_NULL, "there");
        })
        .join()
        .unwrap();
        assert_eq!(last(), "here");
    }
}
