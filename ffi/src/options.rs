//! `entitle_options`: what a program says about itself when it opens its
//! engine (its version, release channel and release date), which licenses
//! with `versions`, `channels` or `maintenance_until` are checked against.
//!
//! A builder in rustls-ffi's manner: made by `entitle_options_new`, set
//! by its setters (each checks its value at once), read by
//! `entitle_engine_open_with`, released by `entitle_options_free`. One
//! options handle may open several engines.

use std::ffi::c_char;
use std::sync::{Arc, Mutex, MutexGuard};

use entitle::{EngineBuilder, Timestamp};

use crate::error::{boundary, fail};
use crate::handle::{self, Handle, Kind};
use crate::status::entitle_status;
use crate::strings::str_in;

/// The longest channel name, in bytes (the engine's limit for names).
const MAX_CHANNEL_LEN: usize = 256;

/// What a program says about itself to the engine it opens: made by
/// [`entitle_options_new`], set with `entitle_options_set_*`, passed to
/// [`entitle_engine_open_with`](crate::entitle_engine_open_with),
/// released by [`entitle_options_free`]. Safe to share between threads
/// (the setters take a lock).
#[derive(Clone)]
pub struct entitle_options {
    set: Arc<Mutex<Settings>>,
}

impl Handle for entitle_options {
    const KIND: Kind = Kind::Options;
}

/// The values set so far.
#[derive(Clone, Default)]
struct Settings {
    version: Option<String>,
    channel: Option<String>,
    release_date: Option<Timestamp>,
}

impl entitle_options {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        // A panic while setting (caught at the boundary) left the values
        // whole: each is replaced in one assignment.
        self.set
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `builder` told what these options say.
    pub(crate) fn apply(&self, builder: EngineBuilder) -> EngineBuilder {
        let settings = self.settings().clone();
        let builder = match settings.version {
            Some(version) => builder.version(version),
            None => builder,
        };
        let builder = match settings.channel {
            Some(channel) => builder.channel(channel),
            None => builder,
        };
        match settings.release_date {
            Some(date) => builder.release_date(date),
            None => builder,
        }
    }
}

/// Makes an empty set of options into `*options_out`: no version, no
/// channel, no release date (what [`entitle_engine_open`](crate::entitle_engine_open)
/// opens with).
///
/// # Safety
///
/// `options_out` is NULL or points to a writable `entitle_options *`.
///
/// ```
/// use entitle_ffi::*;
/// use std::ffi::CString;
///
/// let mut options = std::ptr::null_mut();
/// assert_eq!(unsafe { entitle_options_new(&mut options) }, entitle_status::ENTITLE_OK);
/// let version = CString::new("2.3.1").unwrap();
/// assert_eq!(unsafe { entitle_options_set_version(options, version.as_ptr()) },
///     entitle_status::ENTITLE_OK);
/// let not_a_version = CString::new("2.3").unwrap();
/// assert_eq!(unsafe { entitle_options_set_version(options, not_a_version.as_ptr()) },
///     entitle_status::ENTITLE_INVALID_ARGUMENT);
/// unsafe { entitle_options_free(options) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_options_new(
    options_out: *mut *mut entitle_options,
) -> entitle_status {
    boundary(|| {
        if options_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`options_out` is NULL"));
        }
        let options = handle::into_raw(entitle_options {
            set: Arc::new(Mutex::new(Settings::default())),
        });
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { options_out.write(options) };
        Ok(())
    })
}

/// Runs `body` on the settings of the live options `options`.
fn with_settings(
    options: *const entitle_options,
    body: impl FnOnce(&mut Settings) -> Result<(), entitle_status>,
) -> entitle_status {
    boundary(|| {
        let options = handle::get(options, "options")?;
        let mut settings = options.settings();
        body(&mut settings)
    })
}

/// Sets this program's version, a semver version (`"2.3.1"`,
/// `"2.4.0-beta.1"`), checked against each license's `versions`
/// (`ENTITLE_VERSION_NOT_LICENSED` when out of range). A license that
/// sets `versions` gives a program that does not say its version nothing.
/// Fails with `ENTITLE_INVALID_ARGUMENT` for text that is not a version
/// (the options keep their previous value).
///
/// # Safety
///
/// `options` is a live handle (or NULL); `version` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn entitle_options_set_version(
    options: *mut entitle_options,
    version: *const c_char,
) -> entitle_status {
    // SAFETY: the caller's promise on the string.
    let version = unsafe { str_in(version, "version") };
    with_settings(options, |settings| {
        let version = version?;
        entitle::semver::Version::parse(version).map_err(|e| {
            fail(
                entitle_status::ENTITLE_INVALID_ARGUMENT,
                format!(
                    "`version` {:?} is not a semver version ({e}): give MAJOR.MINOR.PATCH, such \
                     as \"2.3.1\" or \"2.4.0-beta.1\"",
                    version.chars().take(100).collect::<String>()
                ),
            )
        })?;
        settings.version = Some(version.to_owned());
        Ok(())
    })
}

/// Sets this program's release channel (`"stable"`, `"beta"`: 1 to 256
/// bytes, no control characters), checked against each license's
/// `channels`. A license that lists channels gives a program that does
/// not say its channel nothing (`ENTITLE_VERSION_NOT_LICENSED`).
///
/// # Safety
///
/// `options` is a live handle (or NULL); `channel` is NULL or
/// NUL-terminated.
///
/// ```
/// use entitle_ffi::*;
/// use std::ffi::CString;
///
/// let mut options = std::ptr::null_mut();
/// unsafe { entitle_options_new(&mut options) };
/// let beta = CString::new("beta").unwrap();
/// assert_eq!(unsafe { entitle_options_set_channel(options, beta.as_ptr()) },
///     entitle_status::ENTITLE_OK);
/// let empty = CString::new("").unwrap();
/// assert_eq!(unsafe { entitle_options_set_channel(options, empty.as_ptr()) },
///     entitle_status::ENTITLE_INVALID_ARGUMENT);
/// unsafe { entitle_options_free(options) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_options_set_channel(
    options: *mut entitle_options,
    channel: *const c_char,
) -> entitle_status {
    // SAFETY: the caller's promise on the string.
    let channel = unsafe { str_in(channel, "channel") };
    with_settings(options, |settings| {
        let channel = channel?;
        if channel.is_empty()
            || channel.len() > MAX_CHANNEL_LEN
            || channel.chars().any(char::is_control)
        {
            return Err(fail(
                entitle_status::ENTITLE_INVALID_ARGUMENT,
                format!(
                    "`channel` is 1 to {MAX_CHANNEL_LEN} bytes without control characters, \
                     such as \"stable\""
                ),
            ));
        }
        settings.channel = Some(channel.to_owned());
        Ok(())
    })
}

/// Sets the release date of this build, in Unix seconds (UTC), checked
/// against each license's `maintenance_until`: a build released after
/// maintenance ended is denied with `ENTITLE_MAINTENANCE_EXPIRED`.
/// Compile it in with the build (the date the build was made), never read
/// it from the machine's clock. Fails with `ENTITLE_INVALID_ARGUMENT`
/// for a date before 1970.
///
/// # Safety
///
/// `options` is a live handle (or NULL).
///
/// ```
/// use entitle_ffi::*;
///
/// let mut options = std::ptr::null_mut();
/// unsafe { entitle_options_new(&mut options) };
/// // 2026-01-01T00:00:00Z
/// assert_eq!(unsafe { entitle_options_set_release_date(options, 1_767_225_600) },
///     entitle_status::ENTITLE_OK);
/// assert_eq!(unsafe { entitle_options_set_release_date(options, -1) },
///     entitle_status::ENTITLE_INVALID_ARGUMENT);
/// unsafe { entitle_options_free(options) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_options_set_release_date(
    options: *mut entitle_options,
    release_date_unix: i64,
) -> entitle_status {
    with_settings(options, |settings| {
        if release_date_unix < 0 {
            return Err(fail(
                entitle_status::ENTITLE_INVALID_ARGUMENT,
                format!(
                    "`release_date_unix` {release_date_unix} is before 1970: give the build's \
                     date in Unix seconds"
                ),
            ));
        }
        settings.release_date = Some(Timestamp::from_unix(release_date_unix));
        Ok(())
    })
}

/// Releases a set of options. NULL does nothing; a second free is
/// detected and ignored. Engines opened with them keep what they said.
///
/// # Safety
///
/// `options` is NULL or a handle from [`entitle_options_new`].
#[no_mangle]
pub unsafe extern "C" fn entitle_options_free(options: *mut entitle_options) {
    boundary(|| {
        handle::release(options, |_| {});
        Ok(())
    });
}
