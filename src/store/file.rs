//! The durable store: one SQLite database in the state directory.
//!
//! Why SQLite rather than a single-process embedded store: several
//! processes (the CLI, a service, a desktop app) share one state directory.
//! SQLite gives cross-process writer exclusion with a bounded wait, WAL
//! crash recovery (log frames are checksummed) and readers that never
//! block the writer, all decades-proven. A single-process store would need
//! to be opened and closed around every operation to be shared.
//!
//! Damage: SQLite keeps no checksum of a database page, so every open runs
//! its structural check (`PRAGMA integrity_check`) and every load compares
//! each table's rows with a count kept beside them by triggers. Torn,
//! zeroed or misplaced pages and a file cut short give `STATE_CORRUPT`
//! (`tests/state_damage.rs`: 20,000 random damages, none read as a smaller
//! state); a flipped bit inside a value reads as another value.
//!
//! Group commit: mutations made while the engine's writer lock is held
//! join one open SQLite transaction (a batch). A mutation's changes are
//! written when it commits, as one statement or inside a savepoint, so
//! that one that fails or is dropped undoes only itself. Each mutation then
//! waits, outside the lock, until its batch is committed and the log synced
//! ([`Store::sync`]): one caller commits the batch and fsyncs the log once
//! for all of it, so concurrent writers share one `BEGIN`, one `COMMIT`
//! and one fsync instead of queueing for one each, and a mutation still
//! returns only once it is on disk. A batch whose commit fails is rolled
//! back and every mutation in it fails. When a round starts and who leads
//! it is decided in `group.rs` (it waits, boundedly, for mutations under
//! way to join); BENCHMARKS.md, "Durable writes", has the figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::group::{GroupCommit, Unsynced};
use crate::store::{
    ActivationKind, ActivationRecord, Change, Counter, LeaseRecord, LicenseRow, Persisted,
    SignedRow, Store, Transaction, UserRow, FORMAT_VERSION,
};

/// The file holding the state, inside the state directory.
pub const STATE_FILE: &str = "state.sqlite";

/// How long a writer waits for another before giving up with `STATE_LOCKED`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS licenses (
    id TEXT PRIMARY KEY, token TEXT NOT NULL, added_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS serials (id TEXT PRIMARY KEY, serial INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, user_type TEXT NOT NULL, added_at INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activations (
    license_id TEXT NOT NULL, fingerprint TEXT NOT NULL, activated_at INTEGER NOT NULL,
    expires_at INTEGER, certificate INTEGER NOT NULL, hostname TEXT NOT NULL,
    vm INTEGER NOT NULL, token TEXT, PRIMARY KEY (license_id, fingerprint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transfers (license_id TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY, client TEXT NOT NULL, feature TEXT, created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, borrowed_until INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    license_id TEXT NOT NULL, code TEXT NOT NULL, period_start INTEGER NOT NULL,
    used INTEGER NOT NULL, PRIMARY KEY (license_id, code)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signed (
    digest TEXT PRIMARY KEY, typ TEXT NOT NULL, token TEXT NOT NULL,
    added_at INTEGER NOT NULL) WITHOUT ROWID;
";

/// Brings a state written by format 1 up to this one, in the transaction
/// that opens it: the `signed` table is made by [`SCHEMA`]; activations
/// gain the certificate token (an old certificate row has none, and so
/// grants nothing until its certificate is applied again).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('activations')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !columns.iter().any(|c| c == "token") {
        conn.execute_batch("ALTER TABLE activations ADD COLUMN token TEXT")?;
    }
    Ok(())
}

/// A crash-safe store in a directory, shareable by several processes.
///
/// Every transaction is on disk once [`Store::sync`] has returned for its
/// generation (the engine waits for it before a mutation returns); a
/// transaction interrupted by a crash is rolled back when the state is next
/// opened. Between `commit` and `sync` a transaction's changes wait, with
/// those of concurrent writers, in one open SQLite transaction.
///
/// ```
/// use entitle::store::{FileStore, Store};
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileStore::create(dir.path()).unwrap();
/// assert_eq!(store.generation().unwrap(), 0);
/// ```
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    session: Mutex<Session>,
    lock_timeout: Duration,
    /// The latest generation this process committed to SQLite.
    committed: AtomicU64,
    /// When a batch is committed and synced, and by whom.
    group: GroupCommit,
    /// The write-ahead log, kept open so a sync is one system call; used
    /// by one round at a time.
    log: Mutex<Option<std::fs::File>>,
}

impl FileStore {
    /// Opens the state in `dir`, creating the directory and an empty
    /// state if there is none.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating the state directory {}", dir.display()), e))?;
        Self::open_with(dir, true)
    }

    /// Opens an existing state in `dir` (`STATE_MISSING` if there is none).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir.as_ref(), false)
    }

    fn open_with(dir: &Path, create: bool) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let shown = path.display().to_string();
        if !create && !path.exists() {
            return Err(Error::StateMissing {
                path: dir.display().to_string(),
            });
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| sql_error(&shown, e))?;
        let store = FileStore {
            path,
            session: Mutex::new(Session {
                conn,
                batch: None,
                floor: 0,
            }),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            committed: Default::default(),
            group: GroupCommit::default(),
            log: Mutex::new(None),
        };
        store.prepare()?;
        Ok(store)
    }

    /// Sets how long a writer waits for another process before
    /// `STATE_LOCKED`.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.lock_timeout = timeout;
        self.session
            .lock()
            .conn
            .busy_timeout(timeout)
            .map_err(|e| sql_error(&self.shown(), e))?;
        Ok(self)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn prepare(&self) -> Result<()> {
        let shown = self.shown();
        let conn = &self.session.lock().conn;
        conn.busy_timeout(self.lock_timeout)
            .map_err(|e| sql_error(&shown, e))?;
        // WAL: readers never block the writer. NORMAL: commits reach the
        // log without an fsync; `sync` then makes them durable in groups
        // before any mutation returns Ok.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| sql_error(&shown, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| sql_error(&shown, e))?;
        check_structure(conn, &shown)?;
        let started = Instant::now();
        loop {
            match conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => break,
                Err(e) if is_busy(&e) && started.elapsed() < self.lock_timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(sql_error(&shown, e)),
            }
        }
        let result = (|| {
            let fresh = check_tables(conn)?;
            conn.execute_batch(SCHEMA)?;
            migrate(conn)?;
            count_rows(conn)?;
            let version: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'format_version'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok::<_, rusqlite::Error>((fresh, version))
        })();
        let (fresh, version) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(sql_error(&shown, e));
            }
        };
        match version.as_deref().map(str::parse::<u32>) {
            None if !fresh => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Error::StateCorrupt {
                    path: shown,
                    detail: "its format_version is missing".into(),
                });
            }
            None => {
                let init = conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('format_version', ?1), ('generation', '0')",
                    params![FORMAT_VERSION.to_string()],
                );
                if let Err(e) = init {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(sql_error(&shown, e));
                }
            }
            Some(Ok(FORMAT_VERSION)) => {}
            Some(Ok(v)) if v < FORMAT_VERSION => {
                let upgraded = conn.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'format_version'",
                    params![FORMAT_VERSION.to_string()],
                );
                if let Err(e) = upgraded {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(sql_error(&shown, e));
                }
            }
            Some(Ok(v)) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Error::InvalidArgument(format!(
                    "the state at {shown} was written by a newer entitle (format {v}, this one reads up to {FORMAT_VERSION}); upgrade entitle"
                )));
            }
            Some(Err(_)) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Error::StateCorrupt {
                    path: shown,
                    detail: "its format_version is not a number".into(),
                });
            }
        }
        conn.execute_batch("COMMIT")
            .map_err(|e| sql_error(&shown, e))
    }
}

/// Each data table and its key columns. SQLite keeps a count of each
/// table's rows in `meta` (`rows.<table>`), maintained by triggers in the
/// same transaction as the rows; every load compares. A leaf page replaced
/// by another table's valid page passes SQLite's structural check but not
/// this one.
const COUNTED: [(&str, &str); 9] = [
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

/// Refuses rows that do not add up to the count kept beside them.
fn check_count(meta: &BTreeMap<String, String>, table: &str, read: usize) -> rusqlite::Result<()> {
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

/// A finding about the rows, as SQLite's own corruption error, so that
/// [`sql_error`] reports it as `STATE_CORRUPT` like SQLite's findings.
fn corrupt_rows(detail: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(detail),
    )
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

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn sql_error(path: &str, e: rusqlite::Error) -> Error {
    // Our statements are fixed and tested: a generic error, a broken
    // constraint or a statement that does not prepare ("no such column")
    // means the file's schema is not what entitle wrote.
    let foreign_schema = matches!(e, rusqlite::Error::SqlInputError { .. })
        || matches!(
            e.sqlite_error_code(),
            Some(ErrorCode::Unknown | ErrorCode::ConstraintViolation | ErrorCode::SchemaChanged)
        );
    if foreign_schema {
        return Error::StateCorrupt {
            path: path.to_owned(),
            detail: format!("its schema is not the one entitle writes ({e})"),
        };
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::StateLocked {
            path: path.to_owned(),
            waited_ms: DEFAULT_LOCK_TIMEOUT.as_millis() as u64,
        },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Error::StateCorrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        _ => match e {
            rusqlite::Error::QueryReturnedNoRows => Error::StateCorrupt {
                path: path.to_owned(),
                detail: "a row entitle always writes (the generation) is missing".into(),
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => Error::StateCorrupt {
                path: path.to_owned(),
                detail: format!("a stored value has the wrong type ({e})"),
            },
            other => Error::io(
                format!("reading or writing the state at {path}"),
                std::io::Error::other(other.to_string()),
            ),
        },
    }
}

impl FileStore {
    /// fsyncs the write-ahead log, through the handle kept from the last
    /// time when there is one. The log stays while this connection is open
    /// (SQLite removes it only when the last connection closes), so the
    /// handle stays valid; after a failure it is opened afresh.
    fn fsync_log(&self) -> Result<()> {
        let failed = |e| Error::io(format!("syncing the state at {}", self.shown()), e);
        let mut log = self.log.lock();
        if let Some(file) = log.take() {
            file.sync_data().map_err(failed)?;
            *log = Some(file);
            return Ok(());
        }
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        match std::fs::File::open(&wal) {
            Ok(file) => {
                file.sync_data().map_err(failed)?;
                *log = Some(file);
                Ok(())
            }
            // No log (not in WAL mode): sync the database itself.
            Err(_) => std::fs::File::open(&self.path)
                .and_then(|f| f.sync_data())
                .map_err(failed),
        }
    }
}

fn read_generation(conn: &Connection) -> rusqlite::Result<u64> {
    // Cached statements: a mutation runs this and BEGIN/COMMIT every time,
    // and parsing them again cost more than executing them.
    let text: String = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'generation'")?
        .query_row([], |r| r.get(0))?;
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            "generation is not a number".into(),
        )
    })
}

fn read_all(conn: &Connection) -> rusqlite::Result<Persisted> {
    let mut state = Persisted::default();
    let mut kept = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT key, value FROM meta")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (k, v) = row?;
        if k.starts_with("rows.") {
            kept.insert(k, v);
        } else {
            state.meta.insert(k, v);
        }
    }
    let mut stmt = conn.prepare("SELECT id, token, added_at, revoked FROM licenses")?;
    for row in stmt.query_map([], |r| {
        Ok(LicenseRow {
            id: r.get(0)?,
            token: r.get(1)?,
            added_at: r.get(2)?,
            revoked: r.get::<_, i64>(3)? != 0,
        })
    })? {
        state.licenses.push(row?);
    }
    check_count(&kept, "licenses", state.licenses.len())?;
    let mut stmt = conn.prepare("SELECT id, serial FROM serials")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))? {
        let (id, serial) = row?;
        state.serials.push((id, u64::try_from(serial).unwrap_or(0)));
    }
    check_count(&kept, "serials", state.serials.len())?;
    let mut stmt = conn.prepare("SELECT id, at FROM tombstones")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        state.tombstones.push(row?);
    }
    check_count(&kept, "tombstones", state.tombstones.len())?;
    let mut stmt = conn.prepare("SELECT id, user_type, added_at, last_active_at FROM users")?;
    for row in stmt.query_map([], |r| {
        Ok(UserRow {
            id: r.get(0)?,
            user_type: r.get(1)?,
            added_at: r.get(2)?,
            last_active_at: r.get(3)?,
        })
    })? {
        state.users.push(row?);
    }
    check_count(&kept, "users", state.users.len())?;
    let mut stmt = conn.prepare(
        "SELECT license_id, fingerprint, activated_at, expires_at, certificate, hostname, vm, token FROM activations",
    )?;
    for row in stmt.query_map([], |r| {
        let kind = match (r.get::<_, i64>(4)? != 0, r.get::<_, Option<String>>(7)?) {
            (false, _) => ActivationKind::Counted,
            (true, Some(token)) => ActivationKind::Certificate(token),
            (true, None) => ActivationKind::Recorded,
        };
        Ok((
            r.get(0)?,
            r.get(1)?,
            ActivationRecord {
                activated_at: r.get(2)?,
                expires_at: r.get(3)?,
                kind,
                hostname: r.get(5)?,
                vm: r.get::<_, i64>(6)? != 0,
            },
        ))
    })? {
        state.activations.push(row?);
    }
    check_count(&kept, "activations", state.activations.len())?;
    let mut stmt = conn.prepare("SELECT license_id, count FROM transfers")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        state.transfers.push(row?);
    }
    check_count(&kept, "transfers", state.transfers.len())?;
    let mut stmt = conn.prepare(
        "SELECT id, client, feature, created_at, expires_at, borrowed_until FROM leases",
    )?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            LeaseRecord {
                client: r.get(1)?,
                feature: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                borrowed_until: r.get(5)?,
            },
        ))
    })? {
        state.leases.push(row?);
    }
    check_count(&kept, "leases", state.leases.len())?;
    let mut stmt = conn.prepare("SELECT license_id, code, period_start, used FROM counters")?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            Counter {
                period_start: r.get(2)?,
                used: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            },
        ))
    })? {
        state.counters.push(row?);
    }
    check_count(&kept, "counters", state.counters.len())?;
    let mut stmt = conn.prepare("SELECT typ, token, added_at FROM signed")?;
    for row in stmt.query_map([], |r| {
        Ok(SignedRow {
            typ: r.get(0)?,
            token: r.get(1)?,
            added_at: r.get(2)?,
        })
    })? {
        state.signed.push(row?);
    }
    check_count(&kept, "signed", state.signed.len())?;
    Ok(state)
}

impl Store for FileStore {
    fn location(&self) -> String {
        self.shown()
    }

    fn generation(&self) -> Result<u64> {
        // Inside an open batch, the batch's own generation: the state this
        // process's engine already holds (written when the batch commits).
        self.session
            .lock()
            .generation()
            .map_err(|e| sql_error(&self.shown(), e))
    }

    fn load(&self) -> Result<(u64, Persisted)> {
        let shown = self.shown();
        let session = self.session.lock();
        let conn = &session.conn;
        // One read transaction, so the generation and the rows agree (an
        // open batch already is one).
        let own = session.batch.is_none();
        if own {
            conn.execute_batch("BEGIN")
                .map_err(|e| sql_error(&shown, e))?;
        }
        let result = session.generation().and_then(|g| Ok((g, read_all(conn)?)));
        if own {
            let _ = conn.execute_batch("COMMIT");
        }
        result.map_err(|e| sql_error(&shown, e))
    }

    fn sync(&self, generation: u64) -> Result<()> {
        self.sync_with(generation, &AtomicUsize::new(0))
    }

    fn sync_with(&self, generation: u64, under_way: &AtomicUsize) -> Result<()> {
        let round = || {
            let committed = self.commit_batch();
            // Everything committed so far is covered by the fsync below.
            let covered = self.committed.load(Ordering::Acquire);
            (covered, committed.and_then(|()| self.fsync_log()))
        };
        self.group
            .sync(generation, under_way, round)
            .map_err(|unsynced| match unsynced {
                Unsynced::Failed(e) => e,
                Unsynced::Covered => Error::io(
                    format!("syncing the state at {}", self.shown()),
                    std::io::Error::other(
                        "the commit or fsync covering this change failed; it may not be on disk",
                    ),
                ),
            })
    }

    fn abandoned(&self) {
        self.group.abandoned();
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        let shown = self.shown();
        let mut session = self.session.lock();
        if session.batch.as_ref().is_some_and(|b| b.broken) {
            // A mutation's undo failed and took the transaction with it:
            // start afresh rather than build on what is left.
            let _ = self.fail_batch(&mut session);
        }
        let generation = match &session.batch {
            Some(batch) => batch.generation,
            None => {
                let generation = self.begin_batch(&session.conn, &shown)?;
                session.batch = Some(Batch {
                    generation,
                    mutations: 0,
                    broken: false,
                });
                generation
            }
        };
        Ok(Box::new(FileTransaction {
            session,
            group: &self.group,
            shown,
            generation,
            pending: Vec::new(),
            open: true,
        }))
    }
}

impl FileStore {
    /// Starts the SQLite transaction a batch of mutations shares, and
    /// reads the generation it starts from.
    fn begin_batch(&self, conn: &Connection, shown: &str) -> Result<u64> {
        // busy_timeout makes SQLite wait for another process's writer;
        // BEGIN IMMEDIATE takes the write lock now, so two writers never
        // both read a state one of them is about to change.
        let started = Instant::now();
        loop {
            match conn
                .prepare_cached("BEGIN IMMEDIATE")
                .and_then(|mut s| s.execute([]))
            {
                Ok(_) => break,
                Err(e) if is_busy(&e) && started.elapsed() < self.lock_timeout => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) if is_busy(&e) => {
                    return Err(Error::StateLocked {
                        path: shown.to_owned(),
                        waited_ms: started.elapsed().as_millis() as u64,
                    })
                }
                Err(e) => return Err(sql_error(shown, e)),
            }
        }
        read_generation(conn).map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            sql_error(shown, e)
        })
    }

    /// Commits the open batch, if there is one. On failure the batch is
    /// rolled back and every mutation in it fails at its sync.
    fn commit_batch(&self) -> Result<()> {
        let mut session = self.session.lock();
        let Some(batch) = &session.batch else {
            return Ok(());
        };
        let generation = batch.generation;
        if batch.broken {
            return Err(self.fail_batch(&mut session));
        }
        // The generation is written once per batch, not per mutation:
        // nothing reads it from the file before the batch commits (this
        // process asks the batch, others see it only once committed).
        let conn = &session.conn;
        match set_meta(conn, "generation", &generation.to_string()).and_then(|()| {
            conn.prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
        }) {
            Ok(_) => {
                self.group.batch_committed(batch.mutations);
                session.batch = None;
                self.committed.fetch_max(generation, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                let cause = sql_error(&self.shown(), e);
                let _ = self.fail_batch(&mut session);
                Err(cause)
            }
        }
    }

    /// Rolls the open batch back and marks every generation it handed out
    /// as failed, returning the error its mutations' syncs report.
    fn fail_batch(&self, session: &mut Session) -> Error {
        let _ = session.conn.execute_batch("ROLLBACK");
        if let Some(batch) = session.batch.take() {
            // Generations the batch handed out are never handed out again,
            // so a later commit is not taken for a failed one.
            session.floor = session.floor.max(batch.generation);
            self.group.fail_through(batch.generation);
        }
        Error::io(
            format!("committing the state at {}", self.shown()),
            std::io::Error::other("the transaction was rolled back; its changes are not on disk"),
        )
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        // Every mutation syncs before it returns, so a batch is open here
        // only if one's caller never got that far (a panic between commit
        // and sync): commit what it made, as a commit without a batch would
        // have; its caller was never told it failed.
        let _ = self.commit_batch();
    }
}

/// The connection, and the transaction it holds open between mutations
/// that are committed together.
#[derive(Debug)]
struct Session {
    conn: Connection,
    /// The open batch: mutations made and released but not yet committed
    /// to SQLite (the next [`Store::sync`] commits them).
    batch: Option<Batch>,
    /// The highest generation a rolled-back batch handed out.
    floor: u64,
}

#[derive(Debug)]
struct Batch {
    /// The generation the batch has reached, in its own transaction.
    generation: u64,
    /// Mutations committed into it.
    mutations: usize,
    /// A mutation's undo failed: the batch cannot commit.
    broken: bool,
}

impl Session {
    /// The generation of the state this connection sees: the open batch's
    /// own, or the one stored.
    fn generation(&self) -> rusqlite::Result<u64> {
        match &self.batch {
            Some(batch) => Ok(batch.generation),
            None => read_generation(&self.conn),
        }
    }

    /// Ends a batch that holds no mutation, releasing SQLite's write lock.
    fn end_empty_batch(&mut self) {
        if self.batch.as_ref().is_some_and(|b| b.mutations == 0) {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.batch = None;
        }
    }
}

struct FileTransaction<'a> {
    session: MutexGuard<'a, Session>,
    group: &'a GroupCommit,
    shown: String,
    generation: u64,
    /// Changes recorded by `write`, written to SQLite at `commit`: a
    /// transaction dropped before then has touched nothing of the batch.
    pending: Vec<Change>,
    open: bool,
}

impl FileTransaction<'_> {
    /// Writes the recorded changes into the batch, all or none: one that
    /// fails undoes only its own mutation's changes, not the batch's.
    fn write_pending(&mut self) -> rusqlite::Result<()> {
        let (written, undone) = match self.pending.as_slice() {
            [] => (Ok(()), true),
            // One statement is undone by SQLite itself when it fails.
            [change] => (self.write_one(change), true),
            // Several need a savepoint to be undone together.
            changes => self.write_in_savepoint(changes),
        };
        // Some failures (a full disk, an I/O error) make SQLite roll back
        // the whole transaction: the batch's earlier mutations are gone.
        let lost = written.is_err() && self.session.conn.is_autocommit();
        if !undone || lost {
            self.break_batch();
        }
        written
    }

    /// Writes `changes` inside a savepoint, rolled back to if one fails;
    /// and whether the batch is as it was before (false if the undo failed).
    fn write_in_savepoint(&self, changes: &[Change]) -> (rusqlite::Result<()>, bool) {
        let conn = &self.session.conn;
        let statement = |sql| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
        if let Err(e) = statement("SAVEPOINT mutation") {
            return (Err(e), true);
        }
        let written = changes.iter().try_for_each(|c| self.write_one(c));
        match written.and_then(|()| statement("RELEASE mutation").map(drop)) {
            Ok(()) => (Ok(()), true),
            Err(e) => {
                let undone = conn
                    .execute_batch("ROLLBACK TO mutation; RELEASE mutation")
                    .is_ok();
                (Err(e), undone)
            }
        }
    }

    /// The batch cannot commit: every mutation in it fails at its sync.
    fn break_batch(&mut self) {
        if let Some(batch) = &mut self.session.batch {
            batch.broken = true;
        }
    }

    fn write_one(&self, change: &Change) -> rusqlite::Result<()> {
        let conn = &self.session.conn;
        match change {
            Change::LatestSeen(t) => set_meta(conn, "latest_seen", &t.to_string()),
            Change::MaxIssuedAt(t) => set_meta(conn, "max_issued_at", &t.to_string()),
            Change::Meta(k, v) => set_meta(conn, k, v),
            Change::PutLicense(l) => conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO licenses (id, token, added_at, revoked) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    l.verified.id,
                    l.verified.token(),
                    l.added_at.unix(),
                    l.revoked as i64
                ])
                .map(drop),
            Change::DeleteLicense(id) => conn
                .prepare_cached("DELETE FROM licenses WHERE id = ?1")?
                .execute(params![id])
                .map(drop),
            Change::Serial(id, serial) => conn
                .prepare_cached("INSERT OR REPLACE INTO serials (id, serial) VALUES (?1, ?2)")?
                .execute(params![id, i64::try_from(*serial).unwrap_or(i64::MAX)])
                .map(drop),
            Change::Tombstone(id, at) => conn
                .prepare_cached("INSERT OR REPLACE INTO tombstones (id, at) VALUES (?1, ?2)")?
                .execute(params![id, at])
                .map(drop),
            Change::PutRevocations(token) => put_signed(conn, "revocations", token),
            Change::PutKeys { token, .. } => put_signed(conn, "keys", token),
            Change::PutUser {
                id,
                user_type,
                added_at,
                last_active_at,
            } => conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO users (id, user_type, added_at, last_active_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, user_type, added_at, last_active_at])
                .map(drop),
            Change::DeleteUser(id) => conn
                .prepare_cached("DELETE FROM users WHERE id = ?1")?
                .execute(params![id])
                .map(drop),
            Change::PutActivation {
                license_id,
                fingerprint,
                record,
            } => conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO activations (license_id, fingerprint, activated_at, expires_at, certificate, hostname, vm, token) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    license_id,
                    fingerprint,
                    record.activated_at,
                    record.expires_at,
                    !matches!(record.kind, ActivationKind::Counted) as i64,
                    record.hostname,
                    record.vm as i64,
                    match &record.kind {
                        ActivationKind::Certificate(token) => Some(token.as_str()),
                        _ => None,
                    },
                ])
                .map(drop),
            Change::DeleteActivation {
                license_id,
                fingerprint,
            } => conn
                .prepare_cached("DELETE FROM activations WHERE license_id = ?1 AND fingerprint = ?2")?
                .execute(params![license_id, fingerprint])
                .map(drop),
            Change::Transfers(license_id, n) => conn
                .prepare_cached("INSERT OR REPLACE INTO transfers (license_id, count) VALUES (?1, ?2)")?
                .execute(params![license_id, n])
                .map(drop),
            Change::PutLease(id, lease) => conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO leases (id, client, feature, created_at, expires_at, borrowed_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    id,
                    lease.client,
                    lease.feature,
                    lease.created_at,
                    lease.expires_at,
                    lease.borrowed_until
                ])
                .map(drop),
            Change::DeleteLease(id) => conn
                .prepare_cached("DELETE FROM leases WHERE id = ?1")?
                .execute(params![id])
                .map(drop),
            Change::PutCounter {
                license_id,
                code,
                counter,
            } => {
                // Every consume rewrites its counter: an UPDATE in place
                // is cheaper than a REPLACE, which deletes and inserts the
                // row and runs the counting trigger's lookup.
                let row = params![
                    license_id,
                    code,
                    counter.period_start,
                    i64::try_from(counter.used).unwrap_or(i64::MAX)
                ];
                let updated = conn
                    .prepare_cached(
                        "UPDATE counters SET period_start = ?3, used = ?4 WHERE license_id = ?1 AND code = ?2",
                    )?
                    .execute(row)?;
                if updated == 0 {
                    conn.prepare_cached(
                        "INSERT INTO counters (license_id, code, period_start, used) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(row)?;
                }
                Ok(())
            }
        }
    }
}

/// Keeps a signed token, once (keyed by its digest).
fn put_signed(conn: &Connection, typ: &str, token: &str) -> rusqlite::Result<()> {
    let digest: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    conn.prepare_cached(
        "INSERT OR IGNORE INTO signed (digest, typ, token, added_at) VALUES (?1, ?2, ?3, strftime('%s', 'now'))",
    )?
    .execute(params![digest, typ, token])
    .map(drop)
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])
        .map(drop)
}

impl Transaction for FileTransaction<'_> {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn load(&mut self) -> Result<Persisted> {
        read_all(&self.session.conn).map_err(|e| sql_error(&self.shown, e))
    }

    fn write(&mut self, changes: &[Change]) -> Result<()> {
        self.pending.extend_from_slice(changes);
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<u64> {
        let next = self.generation.max(self.session.floor) + 1;
        self.write_pending()
            .map_err(|e| sql_error(&self.shown, e))?;
        self.open = false;
        if let Some(batch) = &mut self.session.batch {
            batch.generation = next;
            batch.mutations += 1;
            self.group.joined(batch.mutations);
        }
        Ok(next)
    }
}

impl Drop for FileTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // An abandoned mutation wrote nothing (see `pending`); a batch
            // it opened for itself alone is ended.
            self.session.end_empty_batch();
        }
    }
}
