//! Batching: the mutations an engine makes while a batch is open join one
//! PostgreSQL transaction, which holds the namespace's row lock from its
//! first mutation to its commit. A mutation's changes are written when it
//! commits; the batch is committed once for all of them
//! (`store/group.rs` decides when), with the new generation and its
//! notification.
//!
//! A statement that fails aborts a PostgreSQL transaction whole, so a
//! failed write fails the batch: every mutation in it fails at its sync
//! and the engine reloads what is stored. Our statements are fixed upserts
//! and deletes on our own tables, and values PostgreSQL cannot hold (a NUL
//! character) are refused before they reach the batch: what fails a write
//! is the server or the connection, which would fail the batch anyway.

use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;

use super::database::Pooled;
use super::rows::{changes_licenses, holds_nul, read_all, write, Cached};
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::{Change, Persisted, Transaction};

/// [`PgStore::batch_generation`] when no batch is open.
pub(super) const NO_BATCH: u64 = u64::MAX;

/// The connection a batch holds, and what the store keeps between
/// batches.
#[derive(Default)]
pub(super) struct Session {
    /// The open batch, if any, and the connection its transaction is on.
    batch: Option<Batch>,
    /// The highest generation a rolled-back batch handed out: never handed
    /// out again, so a later commit is not taken for a failed one.
    floor: u64,
    /// The tables that change only with licenses, as last read.
    cached: Cached,
}

struct Batch {
    conn: Pooled,
    /// The generation the batch has reached, in its own transaction.
    generation: u64,
    /// The namespace's `licenses_generation` when the batch began.
    licenses_at: u64,
    /// A mutation in the batch changed a table [`Cached`] keeps.
    licenses_changed: bool,
    /// Mutations committed into it.
    mutations: usize,
    /// A write failed: the transaction is aborted and cannot commit.
    broken: bool,
}

impl PgStore {
    /// Starts a transaction in the open batch, opening one if none is.
    pub(super) fn begin_transaction(&self) -> Result<Box<dyn Transaction + '_>> {
        let mut session = self.session.lock();
        if session.batch.as_ref().is_some_and(|b| b.broken) {
            let _ = self.fail_batch(&mut session);
        }
        let generation = match &session.batch {
            Some(batch) => batch.generation,
            None => {
                let batch = self.begin_batch()?;
                let generation = batch.generation;
                self.known.fetch_max(generation, Ordering::AcqRel);
                self.batch_generation.store(generation, Ordering::Release);
                session.batch = Some(batch);
                generation
            }
        };
        Ok(Box::new(PgTransaction {
            store: self,
            session,
            generation,
            pending: Vec::new(),
            open: true,
        }))
    }

    /// Begins the transaction a batch shares and locks the namespace,
    /// waiting (up to the lock timeout) for another writer to commit.
    fn begin_batch(&self) -> Result<Batch> {
        let begin = format!(
            "BEGIN; SET LOCAL lock_timeout = {}",
            self.lock_timeout.as_millis().max(1)
        );
        let mut conn = self.database.connection(&self.location)?;
        if let Err(e) = conn.client.batch_execute(&begin) {
            if !conn.client.is_closed() {
                return Err(self.sql_error(e));
            }
            // A pooled connection the server closed since (a restart):
            // nothing was done on it; try once on a fresh one.
            drop(conn);
            conn = self.database.connection(&self.location)?;
            conn.client
                .batch_execute(&begin)
                .map_err(|e| self.sql_error(e))?;
        }
        let locked = conn.query(
            "SELECT generation, licenses_generation FROM entitle_namespaces \
             WHERE namespace = $1 FOR UPDATE",
            &[&self.namespace],
        );
        let row = match locked {
            Ok(rows) => rows.into_iter().next(),
            Err(e) => {
                let _ = conn.client.batch_execute("ROLLBACK");
                return Err(self.sql_error(e));
            }
        };
        let read = row.map(|r| (r.try_get::<_, i64>(0), r.try_get::<_, i64>(1)));
        let (generation, licenses_at) = match read {
            Some((Ok(generation), Ok(licenses_at))) => (generation, licenses_at),
            _ => {
                let _ = conn.client.batch_execute("ROLLBACK");
                return Err(Error::StateCorrupt {
                    path: self.location.clone(),
                    detail: "its namespace row is missing or unreadable".into(),
                });
            }
        };
        Ok(Batch {
            conn,
            generation: u64::try_from(generation).unwrap_or(0),
            licenses_at: u64::try_from(licenses_at).unwrap_or(0),
            licenses_changed: false,
            mutations: 0,
            broken: false,
        })
    }

    /// Commits the open batch, if there is one: the generation it reached,
    /// its notification, then `COMMIT`. On failure the batch is rolled
    /// back and every mutation in it fails at its sync.
    pub(super) fn commit_batch(&self) -> Result<()> {
        let mut session = self.session.lock();
        let Some(batch) = &mut session.batch else {
            return Ok(());
        };
        if batch.broken {
            return Err(self.fail_batch(&mut session));
        }
        let generation = i64::try_from(batch.generation).unwrap_or(i64::MAX);
        let payload = format!("{} {}", batch.generation, self.namespace);
        let moved = batch.conn.query(
            "WITH moved AS (UPDATE entitle_namespaces SET generation = $2, \
             licenses_generation = CASE WHEN $3 THEN $2 ELSE licenses_generation END \
             WHERE namespace = $1 RETURNING namespace) \
             SELECT pg_notify('entitle_changes', $4) FROM moved",
            &[
                &self.namespace,
                &generation,
                &batch.licenses_changed,
                &payload,
            ],
        );
        match moved.and_then(|_| batch.conn.client.batch_execute("COMMIT")) {
            Ok(()) => {
                let (generation, mutations) = (batch.generation, batch.mutations);
                self.group.batch_committed(mutations);
                self.committed.fetch_max(generation, Ordering::AcqRel);
                // Raised before the batch's own is withdrawn: the
                // generation this store reports never goes back.
                self.known.fetch_max(generation, Ordering::AcqRel);
                session.batch = None;
                self.batch_generation.store(NO_BATCH, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let cause = self.sql_error(e);
                let _ = self.fail_batch(&mut session);
                Err(cause)
            }
        }
    }

    /// Rolls the open batch back and marks every generation it handed out
    /// as failed, returning the error its mutations' syncs report.
    fn fail_batch(&self, session: &mut Session) -> Error {
        if let Some(mut batch) = session.batch.take() {
            let _ = batch.conn.client.batch_execute("ROLLBACK");
            session.floor = session.floor.max(batch.generation);
            self.group.fail_through(batch.generation);
        }
        self.batch_generation.store(NO_BATCH, Ordering::Release);
        Error::io(
            format!("committing the state at {}", self.location),
            std::io::Error::other("the transaction was rolled back; its changes are not stored"),
        )
    }

    /// Reads the whole state: in the open batch's transaction if there is
    /// one (what this process's engine already holds), else in a
    /// read-only snapshot of what is committed, so that the generation
    /// and the rows agree.
    pub(super) fn load_state(&self) -> Result<(u64, Persisted)> {
        let mut session = self.session.lock();
        let session = &mut *session;
        if let Some(batch) = &mut session.batch {
            let licenses_at = (!batch.licenses_changed).then_some(batch.licenses_at);
            let read = read_all(
                &mut batch.conn,
                &self.namespace,
                &mut session.cached,
                licenses_at,
            );
            return Ok((batch.generation, read.map_err(|e| self.row_error(e))?));
        }
        let mut conn = self.database.connection(&self.location)?;
        conn.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| self.sql_error(e))?;
        let read = (|| {
            let row = conn
                .query(
                    "SELECT generation, licenses_generation FROM entitle_namespaces \
                     WHERE namespace = $1",
                    &[&self.namespace],
                )?
                .into_iter()
                .next();
            let Some((Ok(generation), Ok(licenses_at))) =
                row.map(|r| (r.try_get::<_, i64>(0), r.try_get::<_, i64>(1)))
            else {
                return Err(super::rows::RowError::Corrupt(
                    "its namespace row is missing or unreadable".into(),
                ));
            };
            let generation = u64::try_from(generation).unwrap_or(0);
            let licenses_at = u64::try_from(licenses_at).unwrap_or(0);
            let persisted = read_all(
                &mut conn,
                &self.namespace,
                &mut session.cached,
                Some(licenses_at),
            )?;
            Ok((generation, persisted))
        })();
        let _ = conn.client.batch_execute("COMMIT");
        let (generation, persisted) = read.map_err(|e| self.row_error(e))?;
        self.known.fetch_max(generation, Ordering::AcqRel);
        Ok((generation, persisted))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Every mutation syncs before it returns, so a batch is open here
        // only if one's caller never got that far (a panic between commit
        // and sync): nobody was told it succeeded, and it is rolled back.
        let mut session = self.session.lock();
        if let Some(mut batch) = session.batch.take() {
            let _ = batch.conn.client.batch_execute("ROLLBACK");
        }
    }
}

struct PgTransaction<'a> {
    store: &'a PgStore,
    session: MutexGuard<'a, Session>,
    generation: u64,
    /// Changes recorded by `write`, written at `commit`: a transaction
    /// dropped before then has touched nothing of the batch.
    pending: Vec<Change>,
    open: bool,
}

impl Transaction for PgTransaction<'_> {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn load(&mut self) -> Result<Persisted> {
        let session = &mut *self.session;
        let Some(batch) = &mut session.batch else {
            return Err(Error::InvalidArgument(
                "a transaction read after its batch ended".into(),
            ));
        };
        let licenses_at = (!batch.licenses_changed).then_some(batch.licenses_at);
        read_all(
            &mut batch.conn,
            &self.store.namespace,
            &mut session.cached,
            licenses_at,
        )
        .map_err(|e| self.store.row_error(e))
    }

    fn write(&mut self, changes: &[Change]) -> Result<()> {
        if changes.iter().any(holds_nul) {
            return Err(Error::InvalidArgument(
                "a text to store holds a NUL character, which PostgreSQL cannot store".into(),
            ));
        }
        self.pending.extend_from_slice(changes);
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<u64> {
        let store = self.store;
        let next = self.generation.max(self.session.floor) + 1;
        let pending = std::mem::take(&mut self.pending);
        let Some(batch) = &mut self.session.batch else {
            return Err(Error::InvalidArgument(
                "a transaction committed after its batch ended".into(),
            ));
        };
        let written = pending
            .iter()
            .try_for_each(|change| write(&mut batch.conn, &store.namespace, change));
        if let Err(e) = written {
            // The transaction is aborted: every mutation in it fails.
            batch.broken = true;
            return Err(store.row_error(e));
        }
        self.open = false;
        batch.generation = next;
        batch.mutations += 1;
        batch.licenses_changed |= pending.iter().any(changes_licenses);
        store.group.joined(batch.mutations);
        store.batch_generation.store(next, Ordering::Release);
        Ok(next)
    }
}

impl Drop for PgTransaction<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // An abandoned mutation wrote nothing (see `pending`); a batch it
        // opened for itself alone is ended, releasing the namespace.
        if self
            .session
            .batch
            .as_ref()
            .is_some_and(|b| b.mutations == 0)
        {
            if let Some(mut batch) = self.session.batch.take() {
                let _ = batch.conn.client.batch_execute("ROLLBACK");
            }
            self.store
                .batch_generation
                .store(NO_BATCH, Ordering::Release);
        }
    }
}
