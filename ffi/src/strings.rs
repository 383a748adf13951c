//! Strings across the boundary: NUL-terminated UTF-8 in, and out into a
//! caller's buffer that says its length and is told the size needed.

use std::ffi::{c_char, CStr};

use crate::error::fail;
use crate::status::entitle_status;

/// The text behind `ptr`, for the argument named `what`: `ENTITLE_NULL`
/// when NULL, `ENTITLE_INVALID_UTF8` when not UTF-8.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_in<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, entitle_status> {
    if ptr.is_null() {
        return Err(fail(
            entitle_status::ENTITLE_NULL,
            format!("`{what}` is NULL: pass a NUL-terminated UTF-8 string"),
        ));
    }
    // SAFETY: not NULL, and NUL-terminated by the caller's promise.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        fail(
            entitle_status::ENTITLE_INVALID_UTF8,
            format!(
                "`{what}` is not UTF-8 (the byte at offset {} is not); pass UTF-8 text",
                e.valid_up_to()
            ),
        )
    })
}

/// As [`str_in`], with NULL meaning none.
///
/// # Safety
///
/// As [`str_in`].
pub(crate) unsafe fn optional_str_in<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, entitle_status> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's promise, passed on.
        unsafe { str_in(ptr, what) }.map(Some)
    }
}

/// Writes `text` and a NUL into `buf` (of `len` bytes) and its size into
/// `*needed`; or, when it does not fit, only `*needed`, failing with
/// `ENTITLE_BUFFER_TOO_SMALL` (and the last error saying so).
///
/// # Safety
///
/// As [`copy_out`].
pub(crate) unsafe fn str_out(
    text: &str,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> Result<(), entitle_status> {
    // SAFETY: the caller's promise, passed on.
    match unsafe { copy_out(text, buf, len, needed) } {
        entitle_status::ENTITLE_OK => Ok(()),
        entitle_status::ENTITLE_BUFFER_TOO_SMALL => Err(fail(
            entitle_status::ENTITLE_BUFFER_TOO_SMALL,
            format!(
                "the buffer holds {len} bytes and the text needs {}: call again with a buffer \
                 of `*needed` bytes",
                text.len() + 1
            ),
        )),
        other => Err(fail(other, "`needed` is NULL: pass a pointer to a size_t")),
    }
}

/// [`str_out`] without touching the last error (for `entitle_last_error`
/// itself).
///
/// # Safety
///
/// `buf` is NULL or points to `len` writable bytes; `needed` is NULL or
/// points to a writable `usize`.
pub(crate) unsafe fn copy_out(
    text: &str,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> entitle_status {
    if needed.is_null() {
        return entitle_status::ENTITLE_NULL;
    }
    let size = text.len() + 1;
    // SAFETY: `needed` is not NULL and writable by the caller's promise.
    unsafe { needed.write(size) };
    if buf.is_null() || len < size {
        return entitle_status::ENTITLE_BUFFER_TOO_SMALL;
    }
    // SAFETY: `buf` holds `len >= size` writable bytes; `text` is ours
    // and cannot overlap the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    entitle_status::ENTITLE_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_buffer_is_left_alone_and_told_the_size() {
        let mut buf = [7 as c_char; 4];
        let mut needed = 0;
        let status = unsafe { copy_out("hello", buf.as_mut_ptr(), buf.len(), &mut needed) };
        assert_eq!(status, entitle_status::ENTITLE_BUFFER_TOO_SMALL);
        assert_eq!(needed, 6);
        assert!(buf.iter().all(|b| *b == 7));
        let mut buf = [7 as c_char; 6];
        let status = unsafe { copy_out("hello", buf.as_mut_ptr(), buf.len(), &mut needed) };
        assert_eq!(status, entitle_status::ENTITLE_OK);
        assert_eq!(
            unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str(),
            Ok("hello")
        );
    }

    #[test]
    fn null_and_non_utf8_are_statuses() {
        assert_eq!(
            unsafe { str_in(std::ptr::null(), "x") },
            Err(entitle_status::ENTITLE_NULL)
        );
        let bad = b"ab\xff\0";
        assert_eq!(
            unsafe { str_in(bad.as_ptr().cast(), "x") },
            Err(entitle_status::ENTITLE_INVALID_UTF8)
        );
        assert_eq!(
            unsafe { copy_out("x", std::ptr::null_mut(), 0, std::ptr::null_mut()) },
            entitle_status::ENTITLE_NULL
        );
    }
}
