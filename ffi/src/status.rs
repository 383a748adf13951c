//! `entitle_status`: what every fallible function returns.
//!
//! One stable constant per code the engine can give (a [`Reason`] of a
//! decision or a denial, an [`Error`]'s code), `ENTITLE_` and the code:
//! `SEAT_LIMIT` is `ENTITLE_SEAT_LIMIT`. The numbers never change: reasons
//! keep the engine's order (`ENTITLE_OK` is 0 and allows, as do 1 to 3),
//! errors start at 100, warnings at 500 and this library's own conditions
//! (a NULL pointer, a short buffer, a panic) at 1000. New codes get new
//! numbers at the end of their group. docs/errors.md explains each code.

use entitle::{Error, Reason, Warning};

/// The outcome of a call: `ENTITLE_OK` (0), or why it failed. Also the
/// reason of an [`entitle_decision`](crate::entitle_decision).
///
/// In C this is a `uint32_t`; a function that takes one back
/// ([`entitle_reason_message`](crate::entitle_reason_message)) takes any
/// `uint32_t` and answers for those it does not know too.
///
/// ```
/// use entitle_ffi::entitle_status;
/// assert_eq!(entitle_status::ENTITLE_OK as u32, 0);
/// assert_eq!(entitle_status::ENTITLE_SEAT_LIMIT.code(), "SEAT_LIMIT");
/// ```
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum entitle_status {
    // ---- reasons (docs/errors.md#reasons), in the engine's order -------
    /// Success; as a reason, allowed by a license in force.
    ENTITLE_OK = 0,
    /// Allowed: past `expires_at`, within the grace period.
    ENTITLE_IN_GRACE = 1,
    /// Allowed beyond the licensed amount (soft seats, consumption overage).
    ENTITLE_OVERAGE = 2,
    /// Allowed: expired with `on_expiry: keep`.
    ENTITLE_EXPIRED_KEPT = 3,
    /// No license grants the feature.
    ENTITLE_NOT_LICENSED = 4,
    /// Every license that granted it has expired.
    ENTITLE_EXPIRED = 5,
    /// The license granting it starts later.
    ENTITLE_NOT_YET_VALID = 6,
    /// The license granting it is suspended.
    ENTITLE_SUSPENDED = 7,
    /// The license granting it was revoked.
    ENTITLE_REVOKED = 8,
    /// This build was released after maintenance ended.
    ENTITLE_MAINTENANCE_EXPIRED = 9,
    /// The license is node-locked and this device is not activated.
    ENTITLE_NOT_ACTIVATED = 10,
    /// The license is node-locked and this machine gives no machine id.
    ENTITLE_DEVICE_UNKNOWN = 11,
    /// No seat is free.
    ENTITLE_SEAT_LIMIT = 12,
    /// The clock is behind the latest time seen.
    ENTITLE_CLOCK_TAMPERED = 13,
    /// All activation slots are taken.
    ENTITLE_ACTIVATION_LIMIT = 14,
    /// No transfers are left.
    ENTITLE_TRANSFER_LIMIT = 15,
    /// Only a vendor-signed machine certificate can activate this license.
    ENTITLE_CERTIFICATE_REQUIRED = 16,
    /// The license refuses virtual machines.
    ENTITLE_VM_NOT_ALLOWED = 17,
    /// Every floating seat is leased.
    ENTITLE_FLOATING_EXHAUSTED = 18,
    /// The lease ended.
    ENTITLE_LEASE_EXPIRED = 19,
    /// No such lease.
    ENTITLE_LEASE_NOT_FOUND = 20,
    /// The license does not allow borrowing.
    ENTITLE_BORROW_NOT_ALLOWED = 21,
    /// The borrow is longer than the license allows.
    ENTITLE_BORROW_TOO_LONG = 22,
    /// The quota for this period is used up.
    ENTITLE_CONSUMPTION_LIMIT = 23,
    /// The feature is floating and this program holds no lease on it.
    ENTITLE_LEASE_REQUIRED = 24,
    /// The machine certificate was given up on this install.
    ENTITLE_CERTIFICATE_DEACTIVATED = 25,
    /// The lease is borrowed and cannot be checked in early.
    ENTITLE_LEASE_BORROWED = 26,
    /// The license is for other versions or channels of the program.
    ENTITLE_VERSION_NOT_LICENSED = 27,

    // ---- errors (docs/errors.md) ---------------------------------------
    /// The signature does not verify.
    ENTITLE_SIGNATURE_INVALID = 100,
    /// The token names a key this install does not trust.
    ENTITLE_UNKNOWN_KEY = 101,
    /// The input is not well formed.
    ENTITLE_MALFORMED = 102,
    /// The input is larger than the limit for its kind.
    ENTITLE_TOO_LARGE = 103,
    /// A token of another type than expected.
    ENTITLE_WRONG_TYPE = 104,
    /// A signed document for another product.
    ENTITLE_PRODUCT_MISMATCH = 105,
    /// The license id was revoked on this install.
    ENTITLE_LICENSE_REVOKED = 106,
    /// An older issue of a license replaced by a newer one.
    ENTITLE_LICENSE_REPLAYED = 107,
    /// No license with this id is installed.
    ENTITLE_LICENSE_NOT_FOUND = 108,
    /// No user with this id.
    ENTITLE_USER_NOT_FOUND = 109,
    /// A machine certificate for another device or install.
    ENTITLE_FINGERPRINT_MISMATCH = 110,
    /// A deactivation receipt the vendor's books refuse.
    ENTITLE_RECEIPT_INVALID = 111,
    /// A deactivation receipt accepted before.
    ENTITLE_RECEIPT_REPLAYED = 112,
    /// A usage report the vendor's books refuse.
    ENTITLE_REPORT_INVALID = 113,
    /// A usage report ingested before.
    ENTITLE_REPORT_REPLAYED = 114,
    /// The state directory is damaged.
    ENTITLE_STATE_CORRUPT = 115,
    /// Another process held the state too long.
    ENTITLE_STATE_LOCKED = 116,
    /// The state exists with other settings.
    ENTITLE_STATE_EXISTS = 117,
    /// The state was never initialised.
    ENTITLE_STATE_MISSING = 118,
    /// The database holding the state cannot be reached.
    ENTITLE_STORE_UNAVAILABLE = 119,
    /// The license server cannot be reached.
    ENTITLE_SERVER_UNREACHABLE = 120,
    /// The license server signs its leases with another key.
    ENTITLE_LEASE_KEY_MISMATCH = 121,
    /// This device has had its trial already.
    ENTITLE_TRIAL_USED = 122,
    /// The vendor's service did not accept the credential.
    ENTITLE_UNAUTHORIZED = 123,
    /// Too many failed attempts.
    ENTITLE_RATE_LIMITED = 124,
    /// Reading or writing a file failed.
    ENTITLE_IO_ERROR = 125,
    /// An argument is not valid (an empty product, no trusted key...).
    ENTITLE_INVALID_ARGUMENT = 126,

    // ---- warnings that are not reasons --------------------------------
    /// A decision's warning only: the right ends soon.
    ENTITLE_ENDING = 500,

    // ---- this library's own --------------------------------------------
    /// A pointer that must not be NULL was NULL.
    ENTITLE_NULL = 1000,
    /// The caller's buffer is too small; `*needed` says how many bytes,
    /// the NUL included.
    ENTITLE_BUFFER_TOO_SMALL = 1001,
    /// A string argument is not UTF-8.
    ENTITLE_INVALID_UTF8 = 1002,
    /// The library panicked; nothing was changed by the call that did
    /// (a bug: please report the last error's message).
    ENTITLE_PANIC = 1003,
    /// A handle that is not live: freed already, or never made by this
    /// library (where that can be seen; see the header's notes).
    ENTITLE_INVALID_HANDLE = 1004,
    /// An error code newer than this library's table (cannot happen in a
    /// build whose tests pass).
    ENTITLE_UNKNOWN_ERROR = 1005,
}

use entitle_status::*;

impl entitle_status {
    /// Every status, in numeric order.
    ///
    /// ```
    /// use entitle_ffi::entitle_status;
    /// assert_eq!(entitle_status::all()[0], entitle_status::ENTITLE_OK);
    /// ```
    pub fn all() -> &'static [entitle_status] {
        &STATUSES
    }

    /// The stable code this status stands for: the engine's (`"SEAT_LIMIT"`)
    /// or this library's own (`"BUFFER_TOO_SMALL"`).
    ///
    /// ```
    /// use entitle_ffi::entitle_status;
    /// assert_eq!(entitle_status::ENTITLE_BUFFER_TOO_SMALL.code(), "BUFFER_TOO_SMALL");
    /// ```
    pub const fn code(self) -> &'static str {
        match self {
            ENTITLE_OK => "OK",
            ENTITLE_IN_GRACE => "IN_GRACE",
            ENTITLE_OVERAGE => "OVERAGE",
            ENTITLE_EXPIRED_KEPT => "EXPIRED_KEPT",
            ENTITLE_NOT_LICENSED => "NOT_LICENSED",
            ENTITLE_EXPIRED => "EXPIRED",
            ENTITLE_NOT_YET_VALID => "NOT_YET_VALID",
            ENTITLE_SUSPENDED => "SUSPENDED",
            ENTITLE_REVOKED => "REVOKED",
            ENTITLE_MAINTENANCE_EXPIRED => "MAINTENANCE_EXPIRED",
            ENTITLE_NOT_ACTIVATED => "NOT_ACTIVATED",
            ENTITLE_DEVICE_UNKNOWN => "DEVICE_UNKNOWN",
            ENTITLE_SEAT_LIMIT => "SEAT_LIMIT",
            ENTITLE_CLOCK_TAMPERED => "CLOCK_TAMPERED",
            ENTITLE_ACTIVATION_LIMIT => "ACTIVATION_LIMIT",
            ENTITLE_TRANSFER_LIMIT => "TRANSFER_LIMIT",
            ENTITLE_CERTIFICATE_REQUIRED => "CERTIFICATE_REQUIRED",
            ENTITLE_VM_NOT_ALLOWED => "VM_NOT_ALLOWED",
            ENTITLE_FLOATING_EXHAUSTED => "FLOATING_EXHAUSTED",
            ENTITLE_LEASE_EXPIRED => "LEASE_EXPIRED",
            ENTITLE_LEASE_NOT_FOUND => "LEASE_NOT_FOUND",
            ENTITLE_BORROW_NOT_ALLOWED => "BORROW_NOT_ALLOWED",
            ENTITLE_BORROW_TOO_LONG => "BORROW_TOO_LONG",
            ENTITLE_CONSUMPTION_LIMIT => "CONSUMPTION_LIMIT",
            ENTITLE_LEASE_REQUIRED => "LEASE_REQUIRED",
            ENTITLE_CERTIFICATE_DEACTIVATED => "CERTIFICATE_DEACTIVATED",
            ENTITLE_LEASE_BORROWED => "LEASE_BORROWED",
            ENTITLE_VERSION_NOT_LICENSED => "VERSION_NOT_LICENSED",
            ENTITLE_SIGNATURE_INVALID => "SIGNATURE_INVALID",
            ENTITLE_UNKNOWN_KEY => "UNKNOWN_KEY",
            ENTITLE_MALFORMED => "MALFORMED",
            ENTITLE_TOO_LARGE => "TOO_LARGE",
            ENTITLE_WRONG_TYPE => "WRONG_TYPE",
            ENTITLE_PRODUCT_MISMATCH => "PRODUCT_MISMATCH",
            ENTITLE_LICENSE_REVOKED => "LICENSE_REVOKED",
            ENTITLE_LICENSE_REPLAYED => "LICENSE_REPLAYED",
            ENTITLE_LICENSE_NOT_FOUND => "LICENSE_NOT_FOUND",
            ENTITLE_USER_NOT_FOUND => "USER_NOT_FOUND",
            ENTITLE_FINGERPRINT_MISMATCH => "FINGERPRINT_MISMATCH",
            ENTITLE_RECEIPT_INVALID => "RECEIPT_INVALID",
            ENTITLE_RECEIPT_REPLAYED => "RECEIPT_REPLAYED",
            ENTITLE_REPORT_INVALID => "REPORT_INVALID",
            ENTITLE_REPORT_REPLAYED => "REPORT_REPLAYED",
            ENTITLE_STATE_CORRUPT => "STATE_CORRUPT",
            ENTITLE_STATE_LOCKED => "STATE_LOCKED",
            ENTITLE_STATE_EXISTS => "STATE_EXISTS",
            ENTITLE_STATE_MISSING => "STATE_MISSING",
            ENTITLE_STORE_UNAVAILABLE => "STORE_UNAVAILABLE",
            ENTITLE_SERVER_UNREACHABLE => "SERVER_UNREACHABLE",
            ENTITLE_LEASE_KEY_MISMATCH => "LEASE_KEY_MISMATCH",
            ENTITLE_TRIAL_USED => "TRIAL_USED",
            ENTITLE_UNAUTHORIZED => "UNAUTHORIZED",
            ENTITLE_RATE_LIMITED => "RATE_LIMITED",
            ENTITLE_IO_ERROR => "IO_ERROR",
            ENTITLE_INVALID_ARGUMENT => "INVALID_ARGUMENT",
            ENTITLE_ENDING => "ENDING",
            ENTITLE_NULL => "NULL",
            ENTITLE_BUFFER_TOO_SMALL => "BUFFER_TOO_SMALL",
            ENTITLE_INVALID_UTF8 => "INVALID_UTF8",
            ENTITLE_PANIC => "PANIC",
            ENTITLE_INVALID_HANDLE => "INVALID_HANDLE",
            ENTITLE_UNKNOWN_ERROR => "UNKNOWN_ERROR",
        }
    }

    /// The status of `code`, if it is one.
    ///
    /// ```
    /// use entitle_ffi::entitle_status;
    /// assert_eq!(entitle_status::from_code("EXPIRED"), Some(entitle_status::ENTITLE_EXPIRED));
    /// assert_eq!(entitle_status::from_code("NOPE"), None);
    /// ```
    pub fn from_code(code: &str) -> Option<entitle_status> {
        STATUSES.into_iter().find(|status| status.code() == code)
    }

    /// The status of a raw number from C, if it is one.
    ///
    /// ```
    /// use entitle_ffi::entitle_status;
    /// assert_eq!(entitle_status::from_u32(12), Some(entitle_status::ENTITLE_SEAT_LIMIT));
    /// assert_eq!(entitle_status::from_u32(99), None);
    /// ```
    pub fn from_u32(value: u32) -> Option<entitle_status> {
        STATUSES.into_iter().find(|status| *status as u32 == value)
    }

    /// The status of a reason (a decision's, or a denial's).
    ///
    /// ```
    /// use entitle_ffi::entitle_status;
    /// assert_eq!(entitle_status::of_reason(entitle::Reason::Expired), entitle_status::ENTITLE_EXPIRED);
    /// ```
    #[inline]
    pub fn of_reason(reason: Reason) -> entitle_status {
        // A match rather than a lookup by code: the hot path of
        // `entitle_check_feature` goes through here. The unit tests check
        // it against the codes.
        match reason {
            Reason::Ok => ENTITLE_OK,
            Reason::InGrace => ENTITLE_IN_GRACE,
            Reason::Overage => ENTITLE_OVERAGE,
            Reason::ExpiredKept => ENTITLE_EXPIRED_KEPT,
            Reason::NotLicensed => ENTITLE_NOT_LICENSED,
            Reason::Expired => ENTITLE_EXPIRED,
            Reason::NotYetValid => ENTITLE_NOT_YET_VALID,
            Reason::Suspended => ENTITLE_SUSPENDED,
            Reason::Revoked => ENTITLE_REVOKED,
            Reason::MaintenanceExpired => ENTITLE_MAINTENANCE_EXPIRED,
            Reason::NotActivated => ENTITLE_NOT_ACTIVATED,
            Reason::DeviceUnknown => ENTITLE_DEVICE_UNKNOWN,
            Reason::SeatLimit => ENTITLE_SEAT_LIMIT,
            Reason::ClockTampered => ENTITLE_CLOCK_TAMPERED,
            Reason::ActivationLimit => ENTITLE_ACTIVATION_LIMIT,
            Reason::TransferLimit => ENTITLE_TRANSFER_LIMIT,
            Reason::CertificateRequired => ENTITLE_CERTIFICATE_REQUIRED,
            Reason::VmNotAllowed => ENTITLE_VM_NOT_ALLOWED,
            Reason::FloatingExhausted => ENTITLE_FLOATING_EXHAUSTED,
            Reason::LeaseExpired => ENTITLE_LEASE_EXPIRED,
            Reason::LeaseNotFound => ENTITLE_LEASE_NOT_FOUND,
            Reason::BorrowNotAllowed => ENTITLE_BORROW_NOT_ALLOWED,
            Reason::BorrowTooLong => ENTITLE_BORROW_TOO_LONG,
            Reason::ConsumptionLimit => ENTITLE_CONSUMPTION_LIMIT,
            Reason::LeaseRequired => ENTITLE_LEASE_REQUIRED,
            Reason::CertificateDeactivated => ENTITLE_CERTIFICATE_DEACTIVATED,
            Reason::LeaseBorrowed => ENTITLE_LEASE_BORROWED,
            Reason::VersionNotLicensed => ENTITLE_VERSION_NOT_LICENSED,
            other => Self::from_code(other.code()).unwrap_or(ENTITLE_UNKNOWN_ERROR),
        }
    }

    /// The status of an error: its code's.
    ///
    /// ```
    /// use entitle_ffi::entitle_status;
    /// let err = entitle::Error::LicenseNotFound { id: "lic_1".into() };
    /// assert_eq!(entitle_status::of_error(&err), entitle_status::ENTITLE_LICENSE_NOT_FOUND);
    /// ```
    pub fn of_error(error: &Error) -> entitle_status {
        Self::from_code(error.code()).unwrap_or(ENTITLE_UNKNOWN_ERROR)
    }

    /// The status of a decision's warning.
    pub(crate) fn of_warning(warning: Option<Warning>) -> entitle_status {
        match warning {
            None => ENTITLE_OK,
            Some(Warning::Ending) => ENTITLE_ENDING,
            Some(other) => Self::from_code(other.code()).unwrap_or(ENTITLE_UNKNOWN_ERROR),
        }
    }

    /// The reason this status stands for, if it is one.
    pub(crate) fn reason(self) -> Option<Reason> {
        // Reasons are numbered as the engine orders them; `of_reason` is
        // the one table.
        REASONS
            .into_iter()
            .find(|reason| Self::of_reason(*reason) == self)
    }
}

/// Every status, in numeric order (a free constant: cbindgen would export
/// an associated one into the header).
const STATUSES: [entitle_status; 62] = [
    ENTITLE_OK,
    ENTITLE_IN_GRACE,
    ENTITLE_OVERAGE,
    ENTITLE_EXPIRED_KEPT,
    ENTITLE_NOT_LICENSED,
    ENTITLE_EXPIRED,
    ENTITLE_NOT_YET_VALID,
    ENTITLE_SUSPENDED,
    ENTITLE_REVOKED,
    ENTITLE_MAINTENANCE_EXPIRED,
    ENTITLE_NOT_ACTIVATED,
    ENTITLE_DEVICE_UNKNOWN,
    ENTITLE_SEAT_LIMIT,
    ENTITLE_CLOCK_TAMPERED,
    ENTITLE_ACTIVATION_LIMIT,
    ENTITLE_TRANSFER_LIMIT,
    ENTITLE_CERTIFICATE_REQUIRED,
    ENTITLE_VM_NOT_ALLOWED,
    ENTITLE_FLOATING_EXHAUSTED,
    ENTITLE_LEASE_EXPIRED,
    ENTITLE_LEASE_NOT_FOUND,
    ENTITLE_BORROW_NOT_ALLOWED,
    ENTITLE_BORROW_TOO_LONG,
    ENTITLE_CONSUMPTION_LIMIT,
    ENTITLE_LEASE_REQUIRED,
    ENTITLE_CERTIFICATE_DEACTIVATED,
    ENTITLE_LEASE_BORROWED,
    ENTITLE_VERSION_NOT_LICENSED,
    ENTITLE_SIGNATURE_INVALID,
    ENTITLE_UNKNOWN_KEY,
    ENTITLE_MALFORMED,
    ENTITLE_TOO_LARGE,
    ENTITLE_WRONG_TYPE,
    ENTITLE_PRODUCT_MISMATCH,
    ENTITLE_LICENSE_REVOKED,
    ENTITLE_LICENSE_REPLAYED,
    ENTITLE_LICENSE_NOT_FOUND,
    ENTITLE_USER_NOT_FOUND,
    ENTITLE_FINGERPRINT_MISMATCH,
    ENTITLE_RECEIPT_INVALID,
    ENTITLE_RECEIPT_REPLAYED,
    ENTITLE_REPORT_INVALID,
    ENTITLE_REPORT_REPLAYED,
    ENTITLE_STATE_CORRUPT,
    ENTITLE_STATE_LOCKED,
    ENTITLE_STATE_EXISTS,
    ENTITLE_STATE_MISSING,
    ENTITLE_STORE_UNAVAILABLE,
    ENTITLE_SERVER_UNREACHABLE,
    ENTITLE_LEASE_KEY_MISMATCH,
    ENTITLE_TRIAL_USED,
    ENTITLE_UNAUTHORIZED,
    ENTITLE_RATE_LIMITED,
    ENTITLE_IO_ERROR,
    ENTITLE_INVALID_ARGUMENT,
    ENTITLE_ENDING,
    ENTITLE_NULL,
    ENTITLE_BUFFER_TOO_SMALL,
    ENTITLE_INVALID_UTF8,
    ENTITLE_PANIC,
    ENTITLE_INVALID_HANDLE,
    ENTITLE_UNKNOWN_ERROR,
];

/// Every reason the engine has, for the way back from a status.
const REASONS: [Reason; 28] = Reason::ALL;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    /// The string literals of the function starting at `signature` in the
    /// core crate's `file` that look like codes (as tests/docs.rs reads
    /// them): every code the engine can return.
    fn core_codes(file: &str, signature: &str) -> BTreeSet<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let start = text
            .find(signature)
            .unwrap_or_else(|| panic!("{file} no longer has `{signature}`: update this test"));
        let body = &text[start..];
        let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
        body.split('"')
            .skip(1)
            .step_by(2)
            .filter(|literal| {
                literal.len() >= 2
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_code_the_core_can_return_maps_to_its_own_constant() {
        let reasons = core_codes("src/decision.rs", "pub const fn code(self)");
        let errors = core_codes("src/error.rs", "pub fn code(&self)");
        assert!(
            reasons.len() >= 28 && errors.len() >= 26,
            "{reasons:?} {errors:?}"
        );
        assert!(reasons.contains("LEASE_BORROWED") && errors.contains("INVALID_ARGUMENT"));
        let mut seen = HashSet::new();
        for code in reasons.iter().chain(&errors) {
            let status = entitle_status::from_code(code)
                .unwrap_or_else(|| panic!("no entitle_status for `{code}`: add ENTITLE_{code}"));
            assert_eq!(format!("{status:?}"), format!("ENTITLE_{code}"));
            assert!(seen.insert(status as u32), "{code} shares its number");
        }
    }

    #[test]
    fn numbers_and_codes_are_each_used_once_and_all_is_complete() {
        let numbers: HashSet<u32> = STATUSES.iter().map(|s| *s as u32).collect();
        let codes: HashSet<&str> = STATUSES.iter().map(|s| s.code()).collect();
        assert_eq!(numbers.len(), STATUSES.len());
        assert_eq!(codes.len(), STATUSES.len());
        for status in STATUSES {
            assert_eq!(format!("{status:?}"), format!("ENTITLE_{}", status.code()));
            assert_eq!(entitle_status::from_u32(status as u32), Some(status));
        }
        // Numeric order, so the header reads as the groups above.
        assert!(STATUSES
            .windows(2)
            .all(|pair| (pair[0] as u32) < (pair[1] as u32)));
    }

    #[test]
    fn reasons_keep_the_engines_order_and_map_both_ways() {
        for (i, reason) in REASONS.into_iter().enumerate() {
            let status = entitle_status::of_reason(reason);
            assert_eq!(status as usize, i, "{reason:?}");
            assert_eq!(status.code(), reason.code());
            assert_eq!(status.reason(), Some(reason));
        }
        assert_eq!(ENTITLE_NULL.reason(), None);
        assert_eq!(ENTITLE_MALFORMED.reason(), None);
    }

    #[test]
    fn errors_map_to_their_codes_status() {
        let denied = Error::Denied {
            reason: Reason::SeatLimit,
            message: "no seat".into(),
            retry_at: None,
        };
        assert_eq!(entitle_status::of_error(&denied), ENTITLE_SEAT_LIMIT);
        let errors = [
            (Error::SignatureInvalid, ENTITLE_SIGNATURE_INVALID),
            (
                Error::InstallKeyMismatch {
                    fingerprint: "d".into(),
                },
                ENTITLE_FINGERPRINT_MISMATCH,
            ),
            (Error::Unauthorized("x".into()), ENTITLE_UNAUTHORIZED),
            (Error::InvalidArgument("x".into()), ENTITLE_INVALID_ARGUMENT),
        ];
        for (error, status) in errors {
            assert_eq!(entitle_status::of_error(&error), status, "{error}");
        }
    }

    #[test]
    fn warnings_map_to_their_reasons_or_ending() {
        assert_eq!(entitle_status::of_warning(None), ENTITLE_OK);
        assert_eq!(
            entitle_status::of_warning(Some(Warning::Ending)),
            ENTITLE_ENDING
        );
        assert_eq!(
            entitle_status::of_warning(Some(Warning::InGrace)),
            ENTITLE_IN_GRACE
        );
        assert_eq!(
            entitle_status::of_warning(Some(Warning::Overage)),
            ENTITLE_OVERAGE
        );
    }
}
