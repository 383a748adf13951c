//! Identifiers: what a license id, user id, client id, feature code,
//! product code or device fingerprint may be. One rule for all of them,
//! so that no path stores a name another path would refuse: 1 to
//! [`MAX_NAME_LEN`] bytes, no control characters (which would garble every
//! listing, and let one name pose as another in a terminal).

use crate::error::{Error, Result};

/// The longest identifier, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Whether `value` is a well-formed identifier.
pub(crate) fn is_name(value: &str) -> bool {
    // Printable ASCII, the usual name, is checked without decoding.
    let printable = |text: &str| text.bytes().all(|b| (b' '..=b'~').contains(&b));
    !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && (printable(value) || !value.chars().any(char::is_control))
}

/// Refuses an ill-formed identifier given as an argument; `what` names it
/// ("a user id", "a device fingerprint").
pub(crate) fn check(what: &str, value: &str) -> Result<()> {
    if is_name(value) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{what} is 1 to {MAX_NAME_LEN} printable characters"
    )))
}
