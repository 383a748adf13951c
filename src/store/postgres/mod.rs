//! The state in PostgreSQL (docs/semantics.md#durability-and-sharing): services with several
//! replicas, on one host or many, and many tenants, enforce exact limits
//! together, on the database they already run.
//!
//! How it holds the store contract:
//! - **Exact limits across hosts.** Every table is keyed by `namespace`;
//!   each namespace has one row in `entitle_namespaces` holding its
//!   generation, and every write transaction locks that row first, so
//!   writers in a namespace take turns across every process and host.
//!   Each decides on the latest committed state: either it read under
//!   the lock, or it planned on a generation and its commit moves the row
//!   on from exactly that one, failing (and planning again) if another
//!   writer moved it first. Namespaces never wait for each other.
//! - **Durable when acknowledged, all or nothing.** A mutation returns
//!   once the transaction holding it has committed (`synchronous_commit`
//!   on), in one round trip with its rows: a crash of the client before
//!   then leaves no trace, PostgreSQL rolls the transaction back.
//! - **Batching, as the file store does.** Mutations made while a batch
//!   is open join its transaction; one commit covers them all
//!   (`store/group.rs` decides when), so eight threads get several times
//!   the throughput of one.
//! - **Change propagation at no cost.** Commits notify the namespace's
//!   new generation (`NOTIFY`, at most one every 100 ms from a store
//!   writing in a loop: `announce`); one listener thread per database per
//!   process keeps the generations in memory, so [`Store::generation`] is
//!   an atomic load. The listener also polls them once a second, in one
//!   query, for what no notification told it.
//!
//! The module is split by concern: `database` (the pool and the
//! generations, shared by every store on one URL), `listener`, `announce`
//! (the notifications a store sends), `schema` (tables, version), `rows`
//! (records to SQL and back) and `batch` (the commit mutations share).

mod announce;
mod batch;
mod database;
mod history;
mod listener;
mod rows;
mod schema;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::store::group::{GroupCommit, Unsynced};
use crate::store::{Persisted, Settings, Store, Transaction};
use announce::Announcer;
use batch::{Conflicts, Session, NO_BATCH};
use database::{db_error, Database};
use rows::RowError;

pub use schema::SCHEMA_VERSION;

/// How long a writer waits for another holding the namespace before
/// giving up with `STATE_LOCKED`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest namespace name.
pub const MAX_NAMESPACE_LEN: usize = 200;

/// A store in a PostgreSQL database, under one namespace: shared by every
/// engine, process and host that opens the same URL and namespace.
///
/// Namespaces are made on purpose, never by opening one:
/// [`PgStore::create`] makes a namespace (and the tables, all named
/// `entitle_*`, the first time); [`PgStore::open`] opens one that exists
/// and is `STATE_MISSING` otherwise, so a mistyped name is an error
/// rather than an empty install answering `NOT_LICENSED`.
/// [`PgStore::namespaces`] lists them and [`PgStore::remove`] deletes one.
///
/// Opening brings older tables up to date and refuses tables written by a
/// newer entitle (`STATE_CORRUPT`). A database that cannot be reached
/// gives `STORE_UNAVAILABLE`, naming the host and port and what to check.
/// Stores opened on the same URL in one process share one connection pool
/// and one listener thread, whatever their namespaces.
///
/// ```no_run
/// use entitle::store::PgStore;
/// use entitle::Engine;
///
/// let url = "postgres://entitle@db.internal/licenses";
/// // Once, when the tenant signs up:
/// PgStore::create(url, "tenant-42")?;
/// // Every time a replica starts:
/// let store = PgStore::open(url, "tenant-42")?;
/// let engine = Engine::builder("acme").store(store).build()?;
/// # Ok::<(), entitle::Error>(())
/// ```
pub struct PgStore {
    database: Arc<Database>,
    namespace: String,
    /// Where the state lives, for messages: the URL without its password,
    /// and the namespace.
    location: String,
    /// The generation of the namespace as last known, shared with every
    /// store on it in this process and raised by the listener.
    known: Arc<AtomicU64>,
    session: Mutex<Session>,
    /// The batches a conflict rolled back, for their mutations to ask.
    conflicts: Mutex<Conflicts>,
    /// Tells other processes of this store's commits.
    announcer: Arc<Announcer>,
    /// The open batch's generation, or [`NO_BATCH`]: what
    /// [`Store::generation`] answers while a batch is open (the state this
    /// process's engine already holds).
    batch_generation: AtomicU64,
    /// The latest generation this store committed.
    committed: AtomicU64,
    lock_timeout: Duration,
    /// When a batch is committed, and by whom.
    group: GroupCommit,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens the state under `namespace` in the database at `url`
    /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, with the
    /// parameters libpq takes, such as `connect_timeout=SECONDS`, which
    /// also bounds how long a call waits for a connection; default 5 s).
    ///
    /// The namespace must exist: one that [`PgStore::create`] never made
    /// (or [`PgStore::remove`] deleted), or a database without entitle's
    /// tables, is `STATE_MISSING` naming it, and nothing is made.
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// let url = "postgresql://app:secret@127.0.0.1:5432/app?connect_timeout=2";
    /// match PgStore::open(url, "defualt") {
    ///     Ok(_) => {}
    ///     // A typo: no tenant is made by it.
    ///     Err(e) if e.code() == "STATE_MISSING" => eprintln!("{e}"),
    ///     Err(e) => return Err(e),
    /// }
    /// let store = PgStore::open(url, "default")?;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn open(url: &str, namespace: &str) -> Result<Self> {
        check_namespace(namespace)?;
        let database = Database::get(url)?;
        let location = located(&database, namespace);
        let generation = {
            let mut conn = database.connection(&location)?;
            match schema::ready(&mut conn, &location, false)? {
                true => schema::generation(&mut conn, &location, namespace)?,
                false => None,
            }
        };
        match generation {
            Some(generation) => Ok(PgStore::on(database, namespace, location, generation)),
            None => Err(missing(&database.shown, namespace)),
        }
    }

    /// Makes the namespace `namespace` in the database at `url` (see
    /// [`PgStore::open`] for the URL), and entitle's tables if the
    /// database has none yet, and opens it. A namespace that exists
    /// already is `STATE_EXISTS`, and is left as it was.
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// let url = "postgres://app@db/app";
    /// let store = PgStore::create(url, "tenant-7")?;
    /// assert_eq!(store.namespace(), "tenant-7");
    /// // Made once: a second `create` is refused.
    /// let again = PgStore::create(url, "tenant-7").unwrap_err();
    /// assert_eq!(again.code(), "STATE_EXISTS");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn create(url: &str, namespace: &str) -> Result<Self> {
        check_namespace(namespace)?;
        let database = Database::get(url)?;
        let location = located(&database, namespace);
        {
            let mut conn = database.connection(&location)?;
            schema::ready(&mut conn, &location, true)?;
            if !schema::add_namespace(&mut conn, &location, namespace)? {
                return Err(Error::StateExists {
                    path: location,
                    detail: "was left as it was: open it with `PgStore::open`, or create \
                             another namespace"
                        .into(),
                });
            }
        }
        Ok(PgStore::on(database, namespace, location, 0))
    }

    /// The namespaces in the database at `url`, sorted (by bytes); none
    /// if it has no entitle tables.
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// for namespace in PgStore::namespaces("postgres://app@db/app")? {
    ///     println!("{namespace}");
    /// }
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn namespaces(url: &str) -> Result<Vec<String>> {
        let database = Database::get(url)?;
        let location = database.shown.clone();
        let mut conn = database.connection(&location)?;
        if !schema::ready(&mut conn, &location, false)? {
            return Ok(Vec::new());
        }
        schema::namespaces(&mut conn, &location)
    }

    /// Deletes the namespace `namespace` in the database at `url`: every
    /// row of it in every entitle table, in one transaction (licenses,
    /// users, activations, counters, books: all of it, for good). Other
    /// namespaces are untouched. An unknown namespace is `STATE_MISSING`.
    ///
    /// Engines still open on it keep what they hold in memory, and their
    /// next change fails with `STATE_MISSING`: nothing recreates the
    /// namespace but [`PgStore::create`]. Stop them before creating a
    /// namespace of the same name again.
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// let url = "postgres://app@db/app";
    /// PgStore::remove(url, "tenant-7")?;
    /// assert!(!PgStore::namespaces(url)?.contains(&"tenant-7".to_owned()));
    /// assert_eq!(PgStore::remove(url, "tenant-7").unwrap_err().code(), "STATE_MISSING");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn remove(url: &str, namespace: &str) -> Result<()> {
        check_namespace(namespace)?;
        let database = Database::get(url)?;
        let location = located(&database, namespace);
        let mut conn = database.connection(&location)?;
        let removed = schema::ready(&mut conn, &location, false)?
            && schema::remove_namespace(&mut conn, &location, namespace, DEFAULT_LOCK_TIMEOUT)?;
        match removed {
            true => Ok(()),
            false => Err(missing(&database.shown, namespace)),
        }
    }

    /// The store on `namespace`, known to be at `generation`.
    fn on(database: Arc<Database>, namespace: &str, location: String, generation: u64) -> Self {
        let known = database.watch(namespace, generation);
        PgStore {
            database,
            namespace: namespace.to_owned(),
            location,
            known,
            session: Mutex::new(Session::default()),
            conflicts: Mutex::new(Conflicts::default()),
            announcer: Announcer::new(namespace),
            batch_generation: AtomicU64::new(NO_BATCH),
            committed: AtomicU64::new(0),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            group: GroupCommit::default(),
        }
    }

    /// Sets how long a writer waits for another holding the namespace
    /// before `STATE_LOCKED` (default 10 s).
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// # use std::time::Duration;
    /// let store = PgStore::open("postgres://app@db/app", "default")?
    ///     .with_lock_timeout(Duration::from_secs(2));
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The settings alone, without reading the rest of the state: what a
    /// program (or the CLI) needs to know before it builds an engine.
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// let store = PgStore::open("postgres://app@db/app", "default")?;
    /// let product = store.settings()?.product;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn settings(&self) -> Result<Settings> {
        let mut conn = self.database.connection(&self.location)?;
        rows::read_settings(&mut conn, &self.namespace).map_err(|e| self.row_error(e))
    }

    /// The namespace this store is under.
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// let store = PgStore::open("postgres://app@db/app", "tenant-7")?;
    /// assert_eq!(store.namespace(), "tenant-7");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether this process's listener on the database is listening now.
    /// While it is not, other engines' changes are seen by polling, once
    /// a second.
    ///
    /// ```no_run
    /// # use entitle::store::PgStore;
    /// let store = PgStore::open("postgres://app@db/app", "default")?;
    /// println!("change notifications: {}", store.listening());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn listening(&self) -> bool {
        self.database.listening.load(Ordering::Acquire)
    }

    fn sql_error(&self, e: postgres::Error) -> Error {
        db_error(&self.location, self.lock_timeout, e)
    }

    fn row_error(&self, e: RowError) -> Error {
        match e {
            RowError::Client(e) => self.sql_error(e),
            RowError::Corrupt(detail) => Error::StateCorrupt {
                path: self.location.clone(),
                detail,
            },
        }
    }
}

impl Store for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn history(&self) -> Option<&dyn crate::store::History> {
        Some(self)
    }

    fn generation(&self) -> Result<u64> {
        // Memory only: the refresher asks every engine once a second.
        match self.batch_generation.load(Ordering::Acquire) {
            NO_BATCH => Ok(self.known.load(Ordering::Acquire)),
            open => Ok(open),
        }
    }

    fn load(&self) -> Result<(u64, Persisted)> {
        self.load_state()
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        self.begin_transaction()
    }

    fn sync(&self, generation: u64) -> Result<()> {
        self.sync_with(generation, &AtomicUsize::new(0))
    }
}

impl PgStore {
    /// [`Store::sync`], told how many other mutations of the engine are
    /// `under_way`: the round may wait a moment for them, so that one
    /// commit covers them too.
    pub(crate) fn sync_with(&self, generation: u64, under_way: &AtomicUsize) -> Result<()> {
        let round = || {
            let committed = self.commit_batch();
            (self.committed.load(Ordering::Acquire), committed)
        };
        self.group
            .sync(generation, under_way, round)
            .map_err(|unsynced| match unsynced {
                Unsynced::Failed(e) => e,
                Unsynced::Covered => Error::io(
                    format!("committing the state at {}", self.location),
                    std::io::Error::other(
                        "the commit covering this change failed; it may not be stored",
                    ),
                ),
            })
    }

    /// A mutation counted as under way ended without committing.
    pub(crate) fn abandoned(&self) {
        self.group.abandoned();
    }
}

/// Where a store on `namespace` lives, for messages.
fn located(database: &Database, namespace: &str) -> String {
    format!("{} (namespace `{namespace}`)", database.shown)
}

/// `STATE_MISSING` for a namespace that does not exist (never made, or
/// removed), saying how to make one.
pub(super) fn missing(shown: &str, namespace: &str) -> Error {
    Error::StateMissing {
        path: format!(
            "{shown} (namespace `{namespace}`, which does not exist: make it with \
             `PgStore::create` or `entitle --store URL --namespace {namespace} init`; \
             `PgStore::namespaces` or `entitle --store URL namespace list` lists those there are)"
        ),
    }
}

/// Refuses a namespace that cannot name an install well: empty, too long,
/// or with control characters.
fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty()
        || namespace.len() > MAX_NAMESPACE_LEN
        || namespace.chars().any(char::is_control)
    {
        return Err(Error::InvalidArgument(format!(
            "a namespace is 1 to {MAX_NAMESPACE_LEN} printable characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_with_control_characters_is_refused_before_any_connection() {
        for bad in ["", "a\nb", "nul\0", &"x".repeat(MAX_NAMESPACE_LEN + 1)] {
            let url = "postgres://nobody@127.0.0.1:1/none";
            let open = PgStore::open(url, bad).unwrap_err();
            let create = PgStore::create(url, bad).unwrap_err();
            let remove = PgStore::remove(url, bad).unwrap_err();
            for err in [open, create, remove] {
                assert_eq!(err.code(), "INVALID_ARGUMENT", "{bad:?}");
            }
        }
    }
}
