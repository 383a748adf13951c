//! The SQLite schema: its tables, the checks every open runs on them, and
//! the migrations that bring a state written by an older entitle up to
//! date.
//!
//! Damage: SQLite keeps no checksum of a database page, so every open runs
//! its structural check (`PRAGMA integrity_check`) and every load compares
//! each table's rows with a count kept beside them by triggers. Torn,
//! zeroed or misplaced pages and a file cut short give `STATE_CORRUPT`
//! (`tests/state_damage.rs`); a flipped bit inside a value reads as
//! another value.

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{begin_immediate, corrupt_rows, sql_error};
use crate::error::{Error, Result};
use crate::store::FORMAT_VERSION;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS licenses (
    id TEXT PRIMARY KEY, token TEXT NOT NULL, added_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS serials (id TEXT PRIMARY KEY, serial INTEGER NOT NULL, issued_at INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, user_type TEXT NOT NULL, added_at INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL, name TEXT, email TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activations (
    license_id TEXT NOT NULL, fingerprint TEXT NOT NULL, activated_at INTEGER NOT NULL,
    expires_at INTEGER, certificate INTEGER NOT NULL, hostname TEXT NOT NULL,
    vm INTEGER NOT NULL, token TEXT, install_key TEXT, machine TEXT,
    PRIMARY KEY (license_id, fingerprint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transfers (license_id TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY, client TEXT NOT NULL, feature TEXT, created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, borrowed_until INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    license_id TEXT NOT NULL, code TEXT NOT NULL, period_start INTEGER NOT NULL,
    used INTEGER NOT NULL, PRIMARY KEY (license_id, code)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS first_use (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signed (
    digest TEXT PRIMARY KEY, typ TEXT NOT NULL, token TEXT NOT NULL,
    added_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS issued_receipts (
    license_id TEXT NOT NULL, fingerprint TEXT NOT NULL, deactivated_at INTEGER NOT NULL,
    nonce TEXT NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (license_id, fingerprint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accepted_receipts (
    license_id TEXT NOT NULL, fingerprint TEXT NOT NULL, nonce TEXT NOT NULL,
    install_key TEXT NOT NULL, deactivated_at INTEGER NOT NULL, accepted_at INTEGER NOT NULL,
    token TEXT NOT NULL, PRIMARY KEY (license_id, fingerprint, nonce)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (
    fingerprint TEXT NOT NULL, sequence INTEGER NOT NULL, install_key TEXT NOT NULL,
    created_at INTEGER NOT NULL, ingested_at INTEGER NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (fingerprint, sequence)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS closed_periods (
    license_id TEXT NOT NULL, code TEXT NOT NULL, starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (license_id, code, starts_at)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS books (
    kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
";

/// Brings a state written by an older format up to this one, in the
/// transaction that opens it. The tables added since format 1 (`signed`
/// in format 2; `issued_receipts`, `accepted_receipts` and `reports` in
/// format 3; `closed_periods` in format 4, empty for an older state,
/// whose closed periods were overwritten as they closed; `books`, the
/// vendor's online service, in format 6) are made by
/// [`SCHEMA`]. Activations gain the certificate
/// token in format 2 (an old certificate row has none, and so grants
/// nothing until its certificate is applied again) and the install key in
/// format 3 (none for an activation recorded before installs had keys:
/// its receipts cannot be checked, and the vendor frees it by hand), and
/// the `issued_at` of each id's latest issue (`serials.issued_at`) and
/// the machine a named device was activated on in format 4 (none: an
/// activation of a named device grants nothing until it is made again).
/// Users gain a name and an email in format 5 (none for an older user).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('activations')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for column in ["token", "install_key", "machine"] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!("ALTER TABLE activations ADD COLUMN {column} TEXT"))?;
        }
    }
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('serials')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !columns.iter().any(|c| c == "issued_at") {
        conn.execute_batch("ALTER TABLE serials ADD COLUMN issued_at INTEGER")?;
    }
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('users')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for column in ["name", "email"] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!("ALTER TABLE users ADD COLUMN {column} TEXT"))?;
        }
    }
    Ok(())
}

/// Makes the state ready on open, in one transaction: checks its
/// structure and tables, creates what is missing, migrates an older
/// format, refuses a newer one.
pub(super) fn prepare(conn: &Connection, shown: &str, lock_timeout: Duration) -> Result<()> {
    let sql = |e| sql_error(shown, e);
    conn.busy_timeout(lock_timeout).map_err(sql)?;
    // WAL: readers never block the writer. NORMAL: commits reach the log
    // without an fsync; `sync` then makes them durable in groups before
    // any mutation returns Ok.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql)?;
    check_structure(conn, shown)?;
    begin_immediate(conn, shown, lock_timeout)?;
    match upgrade(conn, shown) {
        Ok(()) => conn.execute_batch("COMMIT").map_err(sql),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Creates the tables and counts of a new state, or brings an older
/// format up to this one.
fn upgrade(conn: &Connection, shown: &str) -> Result<()> {
    let sql = |e| sql_error(shown, e);
    let fresh = check_tables(conn).map_err(sql)?;
    conn.execute_batch(SCHEMA).map_err(sql)?;
    migrate(conn).map_err(sql)?;
    count_rows(conn).map_err(sql)?;
    version_rows(conn).map_err(sql)?;
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    let corrupt = |detail: String| Error::StateCorrupt {
        path: shown.to_owned(),
        detail,
    };
    let set_version = |statement: &str| {
        conn.execute(statement, params![FORMAT_VERSION.to_string()])
            .map(drop)
            .map_err(sql)
    };
    match version.as_deref().map(str::parse::<u32>) {
        None if !fresh => Err(corrupt("its format_version is missing".into())),
        None => set_version(
            "INSERT INTO meta (key, value) VALUES ('format_version', ?1), ('generation', '0')",
        ),
        Some(Ok(FORMAT_VERSION)) => Ok(()),
        Some(Ok(v)) if v < FORMAT_VERSION => {
            set_version("UPDATE meta SET value = ?1 WHERE key = 'format_version'")
        }
        Some(Ok(v)) => Err(corrupt(format!(
            "it was written by a newer entitle (format {v}; this one reads up to \
             {FORMAT_VERSION}): upgrade entitle"
        ))),
        Some(Err(_)) => Err(corrupt("its format_version is not a number".into())),
    }
}

/// Each data table and its key columns. SQLite keeps a count of each
/// table's rows in `meta` (`rows.<table>`), maintained by triggers in the
/// same transaction as the rows; every load compares. A leaf page replaced
/// by another table's valid page passes SQLite's structural check but not
/// this one.
const COUNTED: [(&str, &str); 15] = [
    ("licenses", "id = NEW.id"),
    ("serials", "id = NEW.id"),
    ("tombstones", "id = NEW.id"),
    ("users", "id = NEW.id"),
    (
        "activations",
        "license_id = NEW.license_id AND fingerprint = NEW.fingerprint",
    ),
    ("transfers", "license_id = NEW.license_id"),
    ("leases", "id = NEW.id"),
    (
        "counters",
        "license_id = NEW.license_id AND code = NEW.code",
    ),
    ("signed", "digest = NEW.digest"),
    ("first_use", "id = NEW.id"),
    (
        "issued_receipts",
        "license_id = NEW.license_id AND fingerprint = NEW.fingerprint",
    ),
    (
        "accepted_receipts",
        "license_id = NEW.license_id AND fingerprint = NEW.fingerprint AND nonce = NEW.nonce",
    ),
    (
        "reports",
        "fingerprint = NEW.fingerprint AND sequence = NEW.sequence",
    ),
    (
        "closed_periods",
        "license_id = NEW.license_id AND code = NEW.code AND starts_at = NEW.starts_at",
    ),
    ("books", "kind = NEW.kind AND key = NEW.key"),
];

/// The tables of format 1: all present, or none (a new state). Tables
/// added since are made when missing ([`migrate`]).
const FIRST_TABLES: [&str; 9] = [
    "meta",
    "licenses",
    "serials",
    "tombstones",
    "users",
    "activations",
    "transfers",
    "leases",
    "counters",
];

/// Creates the counting triggers and, for a state written before they
/// existed, the counts themselves.
///
/// The insert trigger runs *before* the insert and counts only a key not
/// yet present, so `INSERT OR REPLACE` of an existing row (which fires no
/// delete trigger unless `recursive_triggers` is on, and it is not, here
/// or in any older entitle) leaves the count alone.
fn count_rows(conn: &Connection) -> rusqlite::Result<()> {
    for (table, key) in COUNTED {
        conn.execute_batch(&format!(
            "CREATE TRIGGER IF NOT EXISTS rows_{table}_insert BEFORE INSERT ON {table}
               WHEN NOT EXISTS (SELECT 1 FROM {table} WHERE {key})
               BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1
                     WHERE key = 'rows.{table}'; END;
             CREATE TRIGGER IF NOT EXISTS rows_{table}_delete AFTER DELETE ON {table}
               BEGIN UPDATE meta SET value = CAST(value AS INTEGER) - 1
                     WHERE key = 'rows.{table}'; END;
             INSERT OR IGNORE INTO meta (key, value)
               SELECT 'rows.{table}', CAST(count(*) AS TEXT) FROM {table};"
        ))?;
    }
    Ok(())
}

/// The tables that change seldom and hold large tokens (licenses and what
/// goes with them; the receipts and reports a vendor's books keep): a
/// trigger gives each a fresh random `version.<table>` on every change,
/// so a reader that read them at that version need not read them again
/// (a refresh after another process's change reads only what changed).
pub(super) const VERSIONED: [&str; 8] = [
    "licenses",
    "serials",
    "tombstones",
    "signed",
    "first_use",
    "accepted_receipts",
    "reports",
    "books",
];

///
/// The trigger sets the version with an `UPDATE` of the row made here:
/// a statement inside a trigger takes the conflict policy of the statement
/// that fired it, so the `INSERT OR REPLACE` older entitles used became an
/// `INSERT OR IGNORE` when fired by one (`signed`, `first_use`), and left
/// the version as it was: another process then kept the rows it had read
/// before, and lost a revocation list or key rotation on its next refresh.
/// Those triggers are replaced on open.
fn version_rows(conn: &Connection) -> rusqlite::Result<()> {
    for table in VERSIONED {
        conn.execute_batch(&format!(
            "INSERT OR IGNORE INTO meta (key, value)
               VALUES ('version.{table}', lower(hex(randomblob(8))));"
        ))?;
        for event in ["INSERT", "UPDATE", "DELETE"] {
            conn.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS version_{table}_{event};
                 CREATE TRIGGER IF NOT EXISTS bump_{table}_{event} AFTER {event} ON {table}
                   BEGIN UPDATE meta SET value = lower(hex(randomblob(8)))
                         WHERE key = 'version.{table}'; END;"
            ))?;
        }
    }
    Ok(())
}

/// Refuses rows that do not add up to the count kept beside them.
pub(super) fn check_count(
    meta: &BTreeMap<String, String>,
    table: &str,
    read: usize,
) -> rusqlite::Result<()> {
    let Some(kept) = meta.get(&format!("rows.{table}")) else {
        return Ok(()); // a state no entitle with counts has opened yet
    };
    if kept.parse::<usize>().ok() == Some(read) {
        return Ok(());
    }
    Err(corrupt_rows(format!(
        "the {table} table holds {read} rows where {kept} were written"
    )))
}

/// SQLite's structural check of every page (`PRAGMA integrity_check`),
/// once per open: a page torn, zeroed or copied over another would
/// otherwise read as a state with rows missing, which grants more than was
/// licensed. `quick_check` misses a leaf copied over its sibling (keys out
/// of order across pages); `integrity_check` does not (both shown by
/// `tests/state_damage.rs`). Cost, measured once with Python's sqlite3 on
/// a 37 MB table of a million users: 0.18 s (`quick_check` 0.10 s),
/// against about 0.7 s to read the rows.
fn check_structure(conn: &Connection, shown: &str) -> Result<()> {
    let verdict: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(|e| sql_error(shown, e))?;
    if verdict == "ok" {
        return Ok(());
    }
    Err(Error::StateCorrupt {
        path: shown.to_owned(),
        detail: format!("SQLite's structural check failed: {verdict}"),
    })
}

/// Whether the state is new (none of its tables exist yet). Refuses a
/// state that lost some of its tables: creating them again empty would be
/// a silent reset.
fn check_tables(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let present: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let missing: Vec<&str> = FIRST_TABLES
        .into_iter()
        .filter(|t| !present.iter().any(|p| p == t))
        .collect();
    if missing.is_empty() || missing.len() == FIRST_TABLES.len() {
        return Ok(!missing.is_empty());
    }
    Err(corrupt_rows(format!(
        "the table(s) {} are missing",
        missing.join(", ")
    )))
}
