//! The one error type of the crate, with stable codes.
//!
//! Denials of a mutation (a full seat pool, a used-up quota) are errors
//! because the caller asked for a change that did not happen; denials of a
//! *check* are not errors at all but a [`Decision`](crate::Decision).

use crate::decision::Reason;
use crate::time::{ParseTimestampError, Timestamp};

/// Everything that can go wrong in `entitle`.
///
/// Every variant has a stable [`code`](Error::code) in SCREAMING_SNAKE_CASE
/// (the contract other programs rely on) and a message that says what
/// happened and what to do about it.
///
/// ```
/// use entitle::{Error, token::Keyring};
///
/// let keyring = Keyring::new();
/// let err = entitle::token::verify("not a token", &keyring, entitle::token::TokenType::License)
///     .unwrap_err();
/// assert_eq!(err.code(), "MALFORMED");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The signature does not verify. Deliberately opaque: saying which
    /// check failed would help a forger.
    #[error("the signature is invalid: the token was altered or was not signed by the key its `kid` names; ask the vendor for a fresh copy")]
    SignatureInvalid,

    /// The token names a key the keyring does not hold.
    #[error("no trusted public key has kid `{kid}`: the vendor signed this with a key this install does not trust; apply the vendor's signed key rotation, or ask the vendor which key signed it")]
    UnknownKey {
        /// The `kid` the token named.
        kid: String,
    },

    /// The input is not well formed (bad base64, bad JSON, a field of the
    /// wrong shape...).
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being read ("token header", "license", "filter"...).
        what: &'static str,
        /// What exactly was wrong, naming the field where there is one.
        detail: String,
    },

    /// The input is larger than the limit for its kind.
    #[error("{what} is too large: {size} bytes (or items) over the limit of {limit}; this is not a valid input")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A token of one `typ` was offered where another is expected.
    #[error("this token is a `{found}` token, but a `{expected}` token is expected here")]
    WrongType {
        /// The expected `typ`.
        expected: &'static str,
        /// The `typ` the token carries.
        found: String,
    },

    /// A signed document (license, revocation list, key rotation) is
    /// for another product.
    #[error("{what} is for product `{found}`, but this install enforces product `{expected}`")]
    ProductMismatch {
        /// What was offered: "license `lic_1`", "this key rotation"...
        what: String,
        /// The engine's product.
        expected: String,
        /// The license's product.
        found: String,
    },

    /// The license id was revoked or hard-removed and can never be added again.
    #[error("license `{id}` has been revoked on this install and can never be added again; ask the vendor for a new license")]
    LicenseRevoked {
        /// The license id.
        id: String,
    },

    /// An older issue of a license replaced by a newer one.
    #[error("license `{id}` serial {offered} is older than serial {known} already seen; use the newest copy from the vendor")]
    LicenseReplayed {
        /// The license id.
        id: String,
        /// The serial offered.
        offered: u64,
        /// The highest serial seen.
        known: u64,
    },

    /// No license with this id is installed.
    #[error("no license `{id}` is installed")]
    LicenseNotFound {
        /// The license id.
        id: String,
    },

    /// A machine certificate for another device.
    #[error("this machine certificate is for device `{found}`, but this device is `{expected}`; send this device's own activation request to the vendor")]
    FingerprintMismatch {
        /// This device's fingerprint.
        expected: String,
        /// The certificate's fingerprint.
        found: String,
    },

    /// A machine certificate for this device, but bound to another
    /// install's key (docs/formats.md#machine-certificate-typ-machine). Same code as a certificate for
    /// another device: it is not this install's.
    #[error("this machine certificate binds device `{fingerprint}` to another install's key, not this install's (was the state made again after the request went out?); send this install's own activation request to the vendor")]
    InstallKeyMismatch {
        /// The device.
        fingerprint: String,
    },

    /// A deactivation receipt the vendor's books cannot accept: forged,
    /// altered, signed by another install, or for a device they do not
    /// hold activated.
    #[error("the deactivation receipt is refused: {detail}")]
    ReceiptInvalid {
        /// Why, and what to do.
        detail: String,
    },

    /// A deactivation receipt accepted before: a receipt frees its slot
    /// once.
    #[error("this receipt (nonce `{nonce}`) for device `{fingerprint}` and license `{license_id}` was accepted at {accepted_at}, when its slot was freed; a receipt counts once. A device deactivated again brings a new receipt")]
    ReceiptReplayed {
        /// The license.
        license_id: String,
        /// The device.
        fingerprint: String,
        /// The receipt's nonce.
        nonce: String,
        /// When the books accepted it.
        accepted_at: Timestamp,
    },

    /// A usage report the vendor's books cannot accept: forged, altered,
    /// signed by another install, or from a device whose install key they
    /// never recorded.
    #[error("the usage report is refused: {detail}")]
    ReportInvalid {
        /// Why, and what to do.
        detail: String,
    },

    /// A usage report whose sequence is at or below the last one the
    /// books ingested from its device: ingested before, or another state
    /// of the install reporting.
    #[error("report {sequence} from device `{fingerprint}` is refused: {detail}; each report counts once. Ask the customer for their latest report")]
    ReportReplayed {
        /// The device.
        fingerprint: String,
        /// The report's sequence number.
        sequence: u64,
        /// What the books hold instead.
        detail: String,
    },

    /// No user with this id.
    #[error("no user `{id}` on this install")]
    UserNotFound {
        /// The user id.
        id: String,
    },

    /// A mutation was refused by policy: seat, activation, lease and
    /// consumption limits, expired licenses, tampered clocks.
    #[error("{message}")]
    Denied {
        /// Why, as a stable reason (its code is this error's code).
        reason: Reason,
        /// What happened and what to do.
        message: String,
        /// When trying again may succeed, where that is known.
        retry_at: Option<Timestamp>,
    },

    /// The state directory is damaged.
    #[error("the state at {path} is corrupt: {detail}; restore it from a backup, or move it aside and re-apply your licenses")]
    StateCorrupt {
        /// Where the state lives.
        path: String,
        /// What was found.
        detail: String,
    },

    /// Another process held the state too long.
    #[error("the state at {path} stayed locked by another process for {waited_ms} ms; retry, or find the process holding it")]
    StateLocked {
        /// Where the state lives.
        path: String,
        /// How long we waited.
        waited_ms: u64,
    },

    /// `init` was asked to change the settings of a state that exists:
    /// its trust root is fixed at creation.
    #[error("the state at {path} already exists and {detail}")]
    StateExists {
        /// Where the state lives.
        path: String,
        /// What differs, and what to do instead.
        detail: String,
    },

    /// The state directory was never initialised.
    #[error("no state at {path}: it must be initialised first")]
    StateMissing {
        /// Where the state was looked for.
        path: String,
    },

    /// The database holding the state cannot be reached (PostgreSQL down,
    /// a wrong host, port, user, password or database, or a connection
    /// lost mid-mutation). Nothing was changed by the call that failed
    /// with it; retry once the database is back.
    ///
    /// ```
    /// let err = entitle::Error::StoreUnavailable {
    ///     location: "postgres://app@db.internal:5432/licenses (namespace `default`)".into(),
    ///     detail: "connection refused".into(),
    /// };
    /// assert_eq!(err.code(), "STORE_UNAVAILABLE");
    /// assert!(err.to_string().contains("db.internal:5432"));
    /// ```
    #[error("cannot reach the state at {location}: {detail}; check that the PostgreSQL server is running and accepts TCP connections at that host and port (pg_isready), that the user, password and database in the URL are right, and that pg_hba.conf admits this host; nothing was changed")]
    StoreUnavailable {
        /// Where the state lives (the URL without its password, and the
        /// namespace).
        location: String,
        /// What the client reported.
        detail: String,
    },

    /// The license server could not be reached (refused, timed out, no
    /// route, a name that does not resolve) or answered with something
    /// that is not its API (a 5xx, a proxy's page). Nothing was taken; a
    /// lease guard rides this out until its lease ends.
    ///
    /// ```
    /// let err = entitle::Error::ServerUnreachable {
    ///     url: "http://licenses.lan:8740".into(),
    ///     detail: "connection refused".into(),
    /// };
    /// assert_eq!(err.code(), "SERVER_UNREACHABLE");
    /// assert!(err.to_string().contains("http://licenses.lan:8740"));
    /// ```
    #[error("cannot reach the license server at {url}: {detail}; check that `entitle serve` runs there, that the address and port are right and that no firewall is in between")]
    ServerUnreachable {
        /// The server's address, as the client was given it.
        url: String,
        /// What failed.
        detail: String,
    },

    /// The vendor's service gave this device its trial already: one trial
    /// per device and product, whatever happened to the install since.
    ///
    /// ```
    /// let err = entitle::Error::TrialUsed { fingerprint: "desk-1".into() };
    /// assert_eq!(err.code(), "TRIAL_USED");
    /// ```
    #[error(
        "device `{fingerprint}` has had its trial of this product already; buy a license to go on"
    )]
    TrialUsed {
        /// The device.
        fingerprint: String,
    },

    /// The vendor's service did not accept the credential: a license key
    /// it does not know, a wrong email or password, a missing or wrong
    /// admin token.
    ///
    /// ```
    /// let err = entitle::Error::Unauthorized("no license has this key".into());
    /// assert_eq!(err.code(), "UNAUTHORIZED");
    /// ```
    #[error(
        "not authorized: {0}; check the license key, or the email and password, and try again"
    )]
    Unauthorized(String),

    /// Too many failed attempts from this address: the service refuses
    /// more for a while.
    ///
    /// ```
    /// let err = entitle::Error::RateLimited { retry_after_secs: 60 };
    /// assert_eq!(err.code(), "RATE_LIMITED");
    /// ```
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    RateLimited {
        /// How long to wait before trying again.
        retry_after_secs: u64,
    },

    /// The license server's lease token does not verify against the
    /// server key this program was configured with: the server signs with
    /// another key (a new state, another server), or the configured key
    /// is wrong. The seat the server gave was checked in.
    ///
    /// ```
    /// let err = entitle::Error::LeaseKeyMismatch { url: "http://licenses.lan:8740".into() };
    /// assert_eq!(err.code(), "LEASE_KEY_MISMATCH");
    /// ```
    #[error("the license server at {url} signs its leases with another key than the one this program trusts, so its seat was checked in; configure the server's own key (`entitle serve --print-lease-pub` on the server prints it)")]
    LeaseKeyMismatch {
        /// The server's address.
        url: String,
    },

    /// An I/O error outside the store (reading a key file, writing output).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The caller asked for something impossible (a bad argument).
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// The stable code of this error, for programs and for `--json` output.
    ///
    /// ```
    /// let err = entitle::Error::LicenseNotFound { id: "lic_1".into() };
    /// assert_eq!(err.code(), "LICENSE_NOT_FOUND");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::SignatureInvalid => "SIGNATURE_INVALID",
            Error::UnknownKey { .. } => "UNKNOWN_KEY",
            Error::Malformed { .. } => "MALFORMED",
            Error::TooLarge { .. } => "TOO_LARGE",
            Error::WrongType { .. } => "WRONG_TYPE",
            Error::ProductMismatch { .. } => "PRODUCT_MISMATCH",
            Error::LicenseRevoked { .. } => "LICENSE_REVOKED",
            Error::LicenseReplayed { .. } => "LICENSE_REPLAYED",
            Error::LicenseNotFound { .. } => "LICENSE_NOT_FOUND",
            Error::UserNotFound { .. } => "USER_NOT_FOUND",
            Error::FingerprintMismatch { .. } | Error::InstallKeyMismatch { .. } => {
                "FINGERPRINT_MISMATCH"
            }
            Error::ReceiptInvalid { .. } => "RECEIPT_INVALID",
            Error::ReceiptReplayed { .. } => "RECEIPT_REPLAYED",
            Error::ReportInvalid { .. } => "REPORT_INVALID",
            Error::ReportReplayed { .. } => "REPORT_REPLAYED",
            Error::Denied { reason, .. } => reason.code(),
            Error::StateCorrupt { .. } => "STATE_CORRUPT",
            Error::StateLocked { .. } => "STATE_LOCKED",
            Error::StateExists { .. } => "STATE_EXISTS",
            Error::StateMissing { .. } => "STATE_MISSING",
            Error::StoreUnavailable { .. } => "STORE_UNAVAILABLE",
            Error::ServerUnreachable { .. } => "SERVER_UNREACHABLE",
            Error::LeaseKeyMismatch { .. } => "LEASE_KEY_MISMATCH",
            Error::TrialUsed { .. } => "TRIAL_USED",
            Error::Unauthorized(_) => "UNAUTHORIZED",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Io { .. } => "IO_ERROR",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
        }
    }

    /// A sentence fit for an application's dialog: what happened, in its
    /// user's words, without codes, paths or commands (log
    /// [`Display`](std::fmt::Display) and [`Error::code`] for support).
    ///
    /// ```
    /// let err = entitle::Error::SignatureInvalid;
    /// assert_eq!(
    ///     err.user_message(),
    ///     "This license file is damaged or was not issued by your vendor."
    /// );
    /// ```
    pub fn user_message(&self) -> &'static str {
        match self {
            Error::Denied { reason, .. } => reason.message(),
            Error::SignatureInvalid => {
                "This license file is damaged or was not issued by your vendor."
            }
            Error::UnknownKey { .. } => {
                "This license file was signed with a key this version does not know. Please contact your vendor."
            }
            Error::Malformed { .. } | Error::TooLarge { .. } | Error::WrongType { .. } => {
                "This is not a valid license file."
            }
            Error::ProductMismatch { .. } => "This license is for another product.",
            Error::LicenseRevoked { .. } => {
                "This license has been revoked. Please contact your vendor."
            }
            Error::LicenseReplayed { .. } => {
                "A newer copy of this license is already installed."
            }
            Error::LicenseNotFound { .. } => "This license is not installed.",
            Error::UserNotFound { .. } => "There is no such user.",
            Error::FingerprintMismatch { .. } | Error::InstallKeyMismatch { .. } => {
                "This activation file is for another computer."
            }
            Error::ReceiptInvalid { .. } | Error::ReceiptReplayed { .. } => {
                "This deactivation receipt cannot be accepted."
            }
            Error::ReportInvalid { .. } | Error::ReportReplayed { .. } => {
                "This usage report cannot be accepted."
            }
            Error::StateCorrupt { .. } => {
                "The license data on this computer is damaged. Please contact support."
            }
            Error::StateLocked { .. } => {
                "The license data is busy in another program. Please try again."
            }
            Error::StateExists { .. } | Error::StateMissing { .. } => {
                "The license data on this computer is not set up as expected. Please contact support."
            }
            Error::StoreUnavailable { .. } => {
                "The license server's database cannot be reached. Please try again later."
            }
            Error::ServerUnreachable { .. } => {
                "The license server cannot be reached. Check the network connection and try again."
            }
            Error::LeaseKeyMismatch { .. } => {
                "The license server is not the one this program is set up for. Please contact your administrator."
            }
            Error::TrialUsed { .. } => "The trial of this product has been used on this computer.",
            Error::Unauthorized(_) => {
                "The license key, email or password is not right. Please check it and try again."
            }
            Error::RateLimited { .. } => "Too many attempts. Please wait a minute and try again.",
            Error::Io { .. } => "The license data could not be read or written.",
            Error::InvalidArgument(_) => "The request was not valid.",
        }
    }

    /// The policy reason, when this error is a denial.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::Denied { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Malformed {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn denied(reason: Reason, message: impl Into<String>) -> Self {
        Error::Denied {
            reason,
            message: message.into(),
            retry_at: None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<ParseTimestampError> for Error {
    /// A time that does not read is malformed input, like any other.
    ///
    /// ```
    /// let err: entitle::Error = entitle::Timestamp::parse("yesterday").unwrap_err().into();
    /// assert_eq!(err.code(), "MALFORMED");
    /// ```
    fn from(e: ParseTimestampError) -> Self {
        Error::malformed("time", e.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
