//! One PostgreSQL database as this process sees it: its connection pool,
//! the generation last known of each namespace opened on it, and the one
//! listener thread that keeps those generations current. Every store
//! opened on the same URL shares them, so a process holding a thousand
//! tenants' engines holds one pool and one listener, not a thousand.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::error::{Error, Result};

/// Connections per database per process, at most. A mutation holds one
/// for its batch (shared by every concurrent mutation of its store), a
/// read for its duration.
pub(super) const POOL_SIZE: u32 = 10;

/// How long a call waits for a connection when the URL sets no
/// `connect_timeout`: then the database is taken to be unreachable.
pub(super) const DEFAULT_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The channel every commit notifies, with `"<generation> <namespace>"`.
pub(super) const CHANNEL: &str = "entitle_changes";

/// The databases this process has open, by URL.
static DATABASES: Mutex<Vec<(String, Weak<Database>)>> = Mutex::new(Vec::new());

/// See the module documentation.
pub(super) struct Database {
    /// The URL as given (it may hold a password: never shown).
    url: String,
    config: Config,
    /// The URL without its password, for messages.
    pub(super) shown: String,
    pool: r2d2::Pool<Connector>,
    /// The thread that makes the pool's connections and sends deferred
    /// announcements (one for the process).
    scheduler: Arc<ScheduledThreadPool>,
    /// How long a call waits for a connection.
    pub(super) connect_wait: Duration,
    /// The generation last known of each namespace a store has open.
    namespaces: Mutex<HashMap<String, Weak<AtomicU64>>>,
    /// Whether the listener is connected and listening. While it is not,
    /// it polls the generations once a second instead.
    pub(super) listening: AtomicBool,
    /// Why the listener's last attempt to connect failed, until one
    /// succeeds (it tries once a second): while the server is down, calls
    /// are refused at once rather than each waiting out the connect
    /// timeout in turn behind the engine's writer lock.
    pub(super) unreachable: Mutex<Option<String>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("shown", &self.shown)
            .field("listening", &self.listening.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The database at `url`, shared with every store already open on it
    /// in this process, or opened now (no connection is made yet).
    pub(super) fn get(url: &str) -> Result<Arc<Database>> {
        let mut databases = DATABASES.lock();
        databases.retain(|(_, weak)| weak.strong_count() > 0);
        if let Some(open) = databases
            .iter()
            .find(|(known, _)| known == url)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok(open);
        }
        let database = Arc::new(Database::new(url)?);
        databases.push((url.to_owned(), Arc::downgrade(&database)));
        super::listener::start(Arc::downgrade(&database));
        Ok(database)
    }

    fn new(url: &str) -> Result<Database> {
        let config = Config::from_str(url).map_err(|e| {
            Error::InvalidArgument(format!(
                "`{}` is not a PostgreSQL URL ({e}); write it as \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                without_password(url)
            ))
        })?;
        let shown = describe(&config);
        let connect_wait = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_WAIT);
        // Connections are made when first needed (none at start), checked
        // by their use rather than by a round trip on every checkout: a
        // mutation is a few round trips, and one more each would show.
        let scheduler = scheduler();
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(connect_wait)
            .thread_pool(scheduler.clone())
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Connector {
                config: config.clone(),
            });
        Ok(Database {
            url: url.to_owned(),
            config,
            shown,
            pool,
            scheduler,
            connect_wait,
            namespaces: Mutex::new(HashMap::new()),
            listening: AtomicBool::new(false),
            unreachable: Mutex::new(None),
        })
    }

    /// A connection from the pool, or `STORE_UNAVAILABLE` naming where
    /// and why once the wait is over.
    pub(super) fn connection(&self, location: &str) -> Result<Pooled> {
        if let Some(reason) = self.unreachable.lock().clone() {
            // Known down: an idle connection may still serve (the server
            // may refuse only new ones); otherwise refuse now.
            return self.pool.try_get().ok_or_else(|| Error::StoreUnavailable {
                location: location.to_owned(),
                detail: format!(
                    "the last attempt to connect failed ({reason}); entitle tries again \
                     every second"
                ),
            });
        }
        self.pool
            .get_timeout(self.connect_wait)
            .map_err(|e| Error::StoreUnavailable {
                location: location.to_owned(),
                detail: format!(
                    "no connection within {} s ({e})",
                    self.connect_wait.as_secs_f64()
                ),
            })
    }

    /// A connection of its own for the listener, outside the pool.
    pub(super) fn connect_listener(&self) -> std::result::Result<Client, postgres::Error> {
        let mut config = self.config.clone();
        // A listener hears nothing on a connection that died silently:
        // the kernel's keepalives find out for it.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .connect_timeout(self.connect_wait);
        let mut client = config.connect(NoTls)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(client)
    }

    /// The generation of `namespace` as last known, shared with every
    /// store on it, raised to `generation` if that is later.
    pub(super) fn watch(&self, namespace: &str, generation: u64) -> Arc<AtomicU64> {
        let mut namespaces = self.namespaces.lock();
        let known = match namespaces.get(namespace).and_then(Weak::upgrade) {
            Some(known) => known,
            None => {
                namespaces.retain(|_, weak| weak.strong_count() > 0);
                let known = Arc::new(AtomicU64::new(0));
                namespaces.insert(namespace.to_owned(), Arc::downgrade(&known));
                known
            }
        };
        known.fetch_max(generation, Ordering::AcqRel);
        known
    }

    /// Runs `job` on the scheduler's thread after `delay`.
    pub(super) fn schedule(&self, delay: Duration, job: impl FnOnce() + Send + 'static) {
        self.scheduler.execute_after(delay, job);
    }

    /// Notifies `payload` on [`CHANNEL`], on its own (see `announce.rs`):
    /// on an idle pooled connection, or on any within the connect wait if
    /// `waiting`. Whether it was sent.
    pub(super) fn notify(&self, payload: &str, waiting: bool) -> bool {
        // Known down: no waiting (the listeners poll once it is back).
        let conn = if waiting && self.unreachable.lock().is_none() {
            self.pool.get_timeout(self.connect_wait).ok()
        } else {
            self.pool.try_get()
        };
        conn.is_some_and(|mut conn| {
            conn.client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .is_ok()
        })
    }

    /// A notification's payload, `"<generation> <namespace>"`: whether it
    /// is worth reading the table for (it names a namespace a store here
    /// has open, at a generation later than known). Only a hint: anyone
    /// who can connect may `NOTIFY` anything, so the generation it claims
    /// is never taken as known. [`Database::poll`] reads the table, and a
    /// spoofed notification costs that one query and no reload.
    pub(super) fn notified(&self, payload: &str) -> bool {
        let Some((generation, namespace)) = payload.split_once(' ') else {
            return false;
        };
        let Ok(generation) = generation.parse::<u64>() else {
            return false;
        };
        self.namespaces
            .lock()
            .get(namespace)
            .and_then(Weak::upgrade)
            .is_some_and(|known| generation > known.load(Ordering::Acquire))
    }

    /// Reads the generation of every namespace a store has open, in one
    /// query, on `client` or a pooled connection: what the listener does
    /// once it is listening again (changes made while it was not were
    /// never notified to it), and once a second while it cannot.
    pub(super) fn poll(&self, client: Option<&mut Client>) -> std::result::Result<(), String> {
        let open: Vec<(String, Arc<AtomicU64>)> = self
            .namespaces
            .lock()
            .iter()
            .filter_map(|(name, weak)| Some((name.clone(), weak.upgrade()?)))
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = open.iter().map(|(name, _)| name.as_str()).collect();
        const SQL: &str =
            "SELECT namespace, generation FROM entitle_namespaces WHERE namespace = ANY($1)";
        let rows = match client {
            Some(client) => client.query(SQL, &[&names]),
            None => {
                let mut conn = self
                    .pool
                    .get_timeout(Duration::from_millis(500))
                    .map_err(|e| e.to_string())?;
                conn.client.query(SQL, &[&names])
            }
        }
        .map_err(|e| e.to_string())?;
        for row in rows {
            let (Ok(name), Ok(generation)) = (row.try_get::<_, &str>(0), row.try_get::<_, i64>(1))
            else {
                continue;
            };
            if let Some((_, known)) = open.iter().find(|(n, _)| n == name) {
                known.fetch_max(u64::try_from(generation).unwrap_or(0), Ordering::AcqRel);
            }
        }
        Ok(())
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let mut databases = DATABASES.lock();
        databases.retain(|(url, weak)| url != &self.url && weak.strong_count() > 0);
    }
}

/// One scheduler thread for every pool in the process (r2d2 would start
/// three per pool): it makes connections and closes idle ones.
fn scheduler() -> Arc<ScheduledThreadPool> {
    static SCHEDULER: OnceLock<Arc<ScheduledThreadPool>> = OnceLock::new();
    Arc::clone(SCHEDULER.get_or_init(|| {
        Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("entitle-pg-pool")
                .build(),
        )
    }))
}

/// The URL without its password: `postgres://USER@HOST:PORT/DATABASE`.
fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("postgres");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{dbname}")
}

/// `url` with any password replaced by `***`, for a message about a URL
/// that does not parse.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a URL)".to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A pooled connection.
pub(super) type Pooled = r2d2::PooledConnection<Connector>;

/// Makes the pool's connections.
#[derive(Debug)]
pub(super) struct Connector {
    config: Config,
}

/// A connection and the statements prepared on it: each statement is
/// parsed once per connection, not once per use.
pub(super) struct Conn {
    pub(super) client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Conn {
    fn statement(&mut self, sql: &'static str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs one of entitle's statements.
    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }

    /// Runs one of entitle's queries.
    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }
}

impl r2d2::ManageConnection for Connector {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Conn, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        // Whatever the server's defaults: a commit is durable when it
        // returns, and a string literal means what it says.
        client.batch_execute(
            "SET synchronous_commit = on; SET standard_conforming_strings = on; \
             SET default_transaction_isolation = 'read committed'",
        )?;
        Ok(Conn {
            client,
            prepared: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// What a client error means for the store at `location`: the database
/// is out of reach (`STORE_UNAVAILABLE`), a row lock was waited for too
/// long (`STATE_LOCKED`), the tables are not the ones entitle writes
/// (`STATE_CORRUPT`), or another failure of the server.
pub(super) fn db_error(location: &str, waited: Duration, e: postgres::Error) -> Error {
    let detail = explain(&e);
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or was lost.
        return Error::StoreUnavailable {
            location: location.to_owned(),
            detail,
        };
    };
    let corrupt = |what: &str| Error::StateCorrupt {
        path: location.to_owned(),
        detail: format!("{what} ({detail})"),
    };
    match code {
        c if *c == SqlState::LOCK_NOT_AVAILABLE => Error::StateLocked {
            path: location.to_owned(),
            waited_ms: waited.as_millis() as u64,
        },
        // `entitle_advance` refusing to move a namespace past the largest
        // generation (set by hand): nothing can be stored until it is fixed.
        c if *c == SqlState::NUMERIC_VALUE_OUT_OF_RANGE => {
            corrupt("its namespace's generation cannot move on (it was set by hand)")
        }
        c if [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
            SqlState::DATATYPE_MISMATCH,
            SqlState::UNDEFINED_FUNCTION,
            SqlState::NOT_NULL_VIOLATION,
            SqlState::CHECK_VIOLATION,
            SqlState::UNIQUE_VIOLATION,
        ]
        .contains(c) =>
        {
            corrupt("its tables are not the ones entitle writes")
        }
        c if c.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::INVALID_PASSWORD,
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                SqlState::INVALID_CATALOG_NAME,
            ]
            .contains(c) =>
        {
            Error::StoreUnavailable {
                location: location.to_owned(),
                detail,
            }
        }
        _ => Error::io(
            format!("reading or writing the state at {location}"),
            std::io::Error::other(detail),
        ),
    }
}

/// A client error in words: the server's message and code when it sent
/// one (the client's own text says only "db error"), else the client's
/// text and its cause.
pub(super) fn explain(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        let config = Config::from_str("postgres://app:s3cret@db.internal:6543/licenses").unwrap();
        assert_eq!(
            describe(&config),
            "postgres://app@db.internal:6543/licenses"
        );
        assert_eq!(
            without_password("postgres://app:s3cret@db/x?bad=1"),
            "postgres://app:***@db/x?bad=1"
        );
    }

    #[test]
    fn a_url_that_does_not_parse_is_an_invalid_argument_without_its_password() {
        let err = Database::get("postgres://app:s3cret@db:notaport/x").unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
