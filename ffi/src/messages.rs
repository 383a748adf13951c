//! Words for end users: a sentence per status, fit for a dialog, and the
//! library's version.

use std::ffi::{c_char, CStr, CString};
use std::panic::catch_unwind;
use std::sync::OnceLock;

use entitle::{Error, Timestamp, Warning};

use crate::status::entitle_status::{self, *};

/// The sentence for numbers this library does not know.
const UNKNOWN: &CStr = c"Something unexpected went wrong with the license check.";

/// A sentence for the user of a program, in their words (no codes, no
/// commands), for a status: a decision's reason or warning, or a failed
/// call's status. Static and NUL-terminated: never free it. Any number is
/// accepted; one this library does not know gets a general sentence.
///
/// ```
/// use entitle_ffi::{entitle_reason_message, entitle_status};
/// use std::ffi::CStr;
/// let text = unsafe { CStr::from_ptr(entitle_reason_message(entitle_status::ENTITLE_EXPIRED as u32)) };
/// assert_eq!(text.to_str().unwrap(), "Your license has expired.");
/// ```
#[no_mangle]
pub extern "C" fn entitle_reason_message(reason: u32) -> *const c_char {
    catch_unwind(|| {
        let table = MESSAGES.get_or_init(messages);
        table
            .iter()
            .find(|(status, _)| *status as u32 == reason)
            .map_or(UNKNOWN.as_ptr(), |(_, text)| text.as_ptr())
    })
    .unwrap_or(UNKNOWN.as_ptr())
}

/// The stable code of a status, `"SEAT_LIMIT"` for `ENTITLE_SEAT_LIMIT`
/// (docs/errors.md explains each), for logs and for wrappers in other
/// languages; `"UNKNOWN_ERROR"` for a number this library does not know.
/// Static and NUL-terminated: never free it.
///
/// ```
/// use entitle_ffi::{entitle_status_code, entitle_status};
/// use std::ffi::CStr;
/// let code = unsafe { CStr::from_ptr(entitle_status_code(entitle_status::ENTITLE_SEAT_LIMIT as u32)) };
/// assert_eq!(code.to_str().unwrap(), "SEAT_LIMIT");
/// ```
#[no_mangle]
pub extern "C" fn entitle_status_code(status: u32) -> *const c_char {
    catch_unwind(|| {
        let table = CODES.get_or_init(|| {
            entitle_status::all()
                .iter()
                .map(|status| (*status, CString::new(status.code()).unwrap_or_default()))
                .collect()
        });
        let unknown = entitle_status::ENTITLE_UNKNOWN_ERROR as u32;
        let find = |number: u32| table.iter().find(|(s, _)| *s as u32 == number);
        find(status)
            .or_else(|| find(unknown))
            .map_or(UNKNOWN_CODE.as_ptr(), |(_, code)| code.as_ptr())
    })
    .unwrap_or(UNKNOWN_CODE.as_ptr())
}

/// The code for numbers this library does not know.
const UNKNOWN_CODE: &CStr = c"UNKNOWN_ERROR";

/// Every status's code, NUL-terminated, made once.
static CODES: OnceLock<Vec<(entitle_status, CString)>> = OnceLock::new();

/// The library's version ("0.1.0"), static and NUL-terminated.
///
/// ```
/// use std::ffi::CStr;
/// let version = unsafe { CStr::from_ptr(entitle_ffi::entitle_version()) };
/// assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
/// ```
#[no_mangle]
pub extern "C" fn entitle_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Every status's sentence, made once: they live as long as the process.
static MESSAGES: OnceLock<Vec<(entitle_status, CString)>> = OnceLock::new();

fn messages() -> Vec<(entitle_status, CString)> {
    entitle_status::all()
        .iter()
        .copied()
        .map(|status| {
            let text = sentence(status);
            // The engine's sentences hold no NUL; should one, it is cut.
            let text = CString::new(text.replace('\0', "")).unwrap_or_default();
            (status, text)
        })
        .collect()
}

/// The sentence for `status`: the engine's own for its reasons and errors.
fn sentence(status: entitle_status) -> String {
    if let Some(reason) = status.reason() {
        return reason.message().to_owned();
    }
    if let Some(error) = sample_error(status) {
        return error.user_message().to_owned();
    }
    match status {
        ENTITLE_ENDING => Warning::Ending.message(),
        ENTITLE_BUFFER_TOO_SMALL | ENTITLE_NULL | ENTITLE_INVALID_UTF8 | ENTITLE_INVALID_HANDLE => {
            "The program made a mistake calling the license check. Please contact its vendor."
        }
        _ => "Something unexpected went wrong with the license check. Please contact support.",
    }
    .to_owned()
}

/// An error of the kind `status` stands for, to ask the engine for its
/// sentence (the sentence depends on the kind alone).
fn sample_error(status: entitle_status) -> Option<Error> {
    let s = String::new;
    Some(match status {
        ENTITLE_SIGNATURE_INVALID => Error::SignatureInvalid,
        ENTITLE_UNKNOWN_KEY => Error::UnknownKey { kid: s() },
        ENTITLE_MALFORMED => Error::Malformed {
            what: "input",
            detail: s(),
        },
        ENTITLE_TOO_LARGE => Error::TooLarge {
            what: "input",
            size: 0,
            limit: 0,
        },
        ENTITLE_WRONG_TYPE => Error::WrongType {
            expected: "license",
            found: s(),
        },
        ENTITLE_PRODUCT_MISMATCH => Error::ProductMismatch {
            what: s(),
            expected: s(),
            found: s(),
        },
        ENTITLE_LICENSE_REVOKED => Error::LicenseRevoked { id: s() },
        ENTITLE_LICENSE_REPLAYED => Error::LicenseReplayed {
            id: s(),
            offered: 0,
            known: 0,
        },
        ENTITLE_LICENSE_NOT_FOUND => Error::LicenseNotFound { id: s() },
        ENTITLE_USER_NOT_FOUND => Error::UserNotFound { id: s() },
        ENTITLE_FINGERPRINT_MISMATCH => Error::FingerprintMismatch {
            expected: s(),
            found: s(),
        },
        ENTITLE_RECEIPT_INVALID => Error::ReceiptInvalid { detail: s() },
        ENTITLE_RECEIPT_REPLAYED => Error::ReceiptReplayed {
            license_id: s(),
            fingerprint: s(),
            nonce: s(),
            accepted_at: Timestamp::from_unix(0),
        },
        ENTITLE_REPORT_INVALID => Error::ReportInvalid { detail: s() },
        ENTITLE_REPORT_REPLAYED => Error::ReportReplayed {
            fingerprint: s(),
            sequence: 0,
            detail: s(),
        },
        ENTITLE_STATE_CORRUPT => Error::StateCorrupt {
            path: s(),
            detail: s(),
        },
        ENTITLE_STATE_LOCKED => Error::StateLocked {
            path: s(),
            waited_ms: 0,
        },
        ENTITLE_STATE_EXISTS => Error::StateExists {
            path: s(),
            detail: s(),
        },
        ENTITLE_STATE_MISSING => Error::StateMissing { path: s() },
        ENTITLE_STORE_UNAVAILABLE => Error::StoreUnavailable {
            location: s(),
            detail: s(),
        },
        ENTITLE_SERVER_UNREACHABLE => Error::ServerUnreachable {
            url: s(),
            detail: s(),
        },
        ENTITLE_LEASE_KEY_MISMATCH => Error::LeaseKeyMismatch { url: s() },
        ENTITLE_TRIAL_USED => Error::TrialUsed { fingerprint: s() },
        ENTITLE_UNAUTHORIZED => Error::Unauthorized(s()),
        ENTITLE_RATE_LIMITED => Error::RateLimited {
            retry_after_secs: 0,
        },
        ENTITLE_IO_ERROR => Error::Io {
            context: s(),
            source: std::io::Error::other("sample"),
        },
        ENTITLE_INVALID_ARGUMENT => Error::InvalidArgument(s()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(status: u32) -> String {
        let ptr = entitle_reason_message(status);
        // SAFETY: static NUL-terminated strings.
        unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn every_error_status_has_a_sample_of_its_own_code() {
        for &status in entitle_status::all() {
            if let Some(error) = sample_error(status) {
                assert_eq!(error.code(), status.code());
            } else {
                assert!(
                    status.reason().is_some() || status as u32 >= 500,
                    "{status:?} has no sample error"
                );
            }
        }
    }

    #[test]
    fn every_status_has_a_sentence_without_codes() {
        for &status in entitle_status::all() {
            let words = text(status as u32);
            assert!(words.ends_with('.'), "{status:?}: {words}");
            assert!(
                !words.contains('_') && !words.contains('`'),
                "{status:?}: {words}"
            );
        }
        assert_eq!(
            text(entitle_status::ENTITLE_SEAT_LIMIT as u32),
            entitle::Reason::SeatLimit.message()
        );
        assert_eq!(
            text(entitle_status::ENTITLE_SIGNATURE_INVALID as u32),
            Error::SignatureInvalid.user_message()
        );
        assert_eq!(text(777_777), UNKNOWN.to_str().unwrap());
    }

    #[test]
    fn every_status_has_its_code_and_unknown_numbers_say_so() {
        for &status in entitle_status::all() {
            // SAFETY: static NUL-terminated strings.
            let code = unsafe { CStr::from_ptr(entitle_status_code(status as u32)) };
            assert_eq!(code.to_str(), Ok(status.code()));
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(entitle_status_code(99)) };
        assert_eq!(unknown.to_str(), Ok("UNKNOWN_ERROR"));
    }

    #[test]
    fn the_version_is_the_crates() {
        // SAFETY: a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(entitle_version()) };
        assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
    }
}
