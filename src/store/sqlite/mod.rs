//! The durable store: one SQLite database in the state directory.
//!
//! Why SQLite rather than a single-process embedded store: several
//! processes (the CLI, a service, a desktop app) share one state directory.
//! SQLite gives cross-process writer exclusion with a bounded wait, WAL
//! crash recovery (log frames are checksummed) and readers that never
//! block the writer, all decades-proven. A single-process store would need
//! to be opened and closed around every operation to be shared.
//!
//! The module is split by concern: `schema` (tables, checks on open,
//! migrations), `rows` (records to SQL and back), `batch` (the open
//! transaction mutations share); when a batch is committed and synced,
//! and by whom, is `store/group.rs`, shared with the PostgreSQL store.
//! Group commit: each mutation waits, outside the engine's lock, until
//! its batch is committed and the log synced: one caller commits and
//! fsyncs once for all of it, so concurrent writers share one `BEGIN`, one `COMMIT` and one fsync, and a mutation still
//! returns only once it is on disk. BENCHMARKS.md, "Durable writes", has
//! the figures.

mod batch;
mod history;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::{Error, Result};
use crate::store::group::{GroupCommit, Unsynced};
use crate::store::{
    EventCursor, EventPage, History, HistoryEvent, MinuteBucket, Persisted, Settings, Store,
    Transaction,
};
use batch::Session;
use history::HistoryFile;
use rows::read_all;

/// The file holding the state, inside the state directory.
pub const STATE_FILE: &str = "state.sqlite";

/// How long a writer waits for another before giving up with `STATE_LOCKED`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The license server's history, in a file of its own beside the
    /// state (`history.rs` says why).
    history: HistoryFile,
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
            session: Mutex::new(Session::new(conn)),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            committed: Default::default(),
            group: GroupCommit::default(),
            log: Mutex::new(None),
            history: HistoryFile::new(dir),
        };
        schema::prepare(&store.session.lock().conn, &shown, store.lock_timeout)?;
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

    /// The settings alone, without reading the rest of the state: what a
    /// program needs to know before it builds an engine on the store.
    pub fn settings(&self) -> Result<Settings> {
        rows::read_settings(&self.session.lock().conn).map_err(|e| sql_error(&self.shown(), e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }
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
        let mut session = self.session.lock();
        let session = &mut *session;
        let conn = &session.conn;
        // One read transaction, so the generation and the rows agree (an
        // open batch already is one).
        let own = session.batch.is_none();
        if own {
            conn.execute_batch("BEGIN")
                .map_err(|e| sql_error(&shown, e))?;
        }
        let result = session
            .generation()
            .and_then(|g| Ok((g, read_all(conn, &mut session.cached)?)));
        if own {
            let _ = conn.execute_batch("COMMIT");
        }
        result.map_err(|e| sql_error(&shown, e))
    }

    fn sync(&self, generation: u64) -> Result<()> {
        self.sync_with(generation, &AtomicUsize::new(0))
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        self.begin_transaction()
    }

    fn history(&self) -> Option<&dyn History> {
        Some(self)
    }
}

impl History for FileStore {
    fn append(&self, events: &[HistoryEvent]) -> Result<()> {
        self.history.append(events)
    }

    fn merge_buckets(&self, buckets: &[MinuteBucket]) -> Result<()> {
        self.history.merge_buckets(buckets)
    }

    fn buckets(
        &self,
        feature: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<(Option<MinuteBucket>, Vec<MinuteBucket>)> {
        self.history.buckets(feature, from, to)
    }

    fn events(
        &self,
        from: i64,
        to: i64,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> Result<EventPage> {
        self.history.events(from, to, cursor, limit)
    }

    fn prune(&self, before: i64) -> Result<u64> {
        self.history.prune(before)
    }
}

impl FileStore {
    /// [`Store::sync`], told how many other mutations of the engine are
    /// `under_way` (started, not yet committed): the round may wait a
    /// moment for them, so that one commit and one fsync cover them too.
    pub(crate) fn sync_with(&self, generation: u64, under_way: &AtomicUsize) -> Result<()> {
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

    /// A mutation counted as under way ended without committing: callers
    /// waiting for it to join their round need not wait any longer.
    pub(crate) fn abandoned(&self) {
        self.group.abandoned();
    }

    /// Whether the mutation committed into a batch at `generation` was
    /// rolled back: nothing of it is stored.
    pub(crate) fn rolled_back(&self, generation: u64) -> bool {
        self.group.was_rolled_back(generation)
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

/// Takes SQLite's write lock (`BEGIN IMMEDIATE`), waiting for another
/// process's writer up to `timeout`, then `STATE_LOCKED`. Taken before
/// reading, so two writers never both read a state one of them is about
/// to change.
fn begin_immediate(conn: &Connection, shown: &str, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        match conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
        {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && started.elapsed() < timeout => {
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

/// A finding about the rows, as SQLite's own corruption error, so that
/// [`sql_error`] reports it as `STATE_CORRUPT` like SQLite's findings.
fn corrupt_rows(detail: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(detail),
    )
}
