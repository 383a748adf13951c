//! The files named on the command line: read with a size bound and the path
//! in every error, written with the right permissions.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use entitle::Error;

/// Inputs (keys, specs, tokens) are small; anything bigger than this is a
/// wrong file, refused before it is read into memory.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Reads a UTF-8 text file; `what` names it in errors ("token file", ...).
pub fn read_text(path: &Path, what: &'static str) -> Result<String, Error> {
    let cannot_read = |source| Error::Io {
        context: format!("cannot read {what} `{}`", path.display()),
        source,
    };
    // Only a regular file: opening a FIFO would block until someone
    // writes to it, and a device may never end. Asked before opening
    // (which is what blocks), and of the file opened, in case the path
    // changed in between.
    let not_a_file = || {
        Error::InvalidArgument(format!(
            "{what} `{}` is not a regular file; give the path of a file",
            path.display()
        ))
    };
    if !std::fs::metadata(path).map_err(cannot_read)?.is_file() {
        return Err(not_a_file());
    }
    let file = File::open(path).map_err(cannot_read)?;
    if !file.metadata().map_err(cannot_read)?.is_file() {
        return Err(not_a_file());
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(Error::TooLarge {
            what,
            size: bytes.len(),
            limit: MAX_INPUT_BYTES as usize,
        });
    }
    String::from_utf8(bytes).map_err(|_| Error::Malformed {
        what,
        detail: format!("`{}` is not UTF-8 text", path.display()),
    })
}

/// Writes `contents` to `path`, replacing it.
pub fn write_text(path: &Path, what: &str, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Io {
        context: format!("cannot write {what} `{}`", path.display()),
        source,
    })
}

/// Whether something already sits at `path` (a dangling symlink counts).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Creates `path` holding `contents`, readable by its owner only when
/// `private`. Never follows or replaces an existing file: the caller
/// removes it first when replacing is what the user asked for.
pub fn create_new(path: &Path, what: &str, contents: &str, private: bool) -> Result<(), Error> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation, so the secret is never readable by others, not
        // even for the moment between writing and a chmod.
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    options
        .open(path)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })
        .map_err(|source| Error::Io {
            context: format!("cannot create {what} `{}`", path.display()),
            source,
        })
}

/// Removes `path` if it exists.
pub fn remove_if_present(path: &Path, what: &str) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
            context: format!("cannot replace {what} `{}`", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}
