//! Batching: the mutations an engine makes while a batch is open join one
//! PostgreSQL transaction, which holds the namespace's row lock from its
//! first mutation to its commit. A mutation's changes are kept with the
//! batch when it commits and written together before the batch commits
//! (or before anything reads in its transaction), a row changed by several
//! mutations once, with what the last one set: eight consumes of one
//! feature are one `UPDATE`, not eight round trips with the writer lock
//! held. The batch is committed once for all of them (`store/group.rs`
//! decides when), with the new generation and its notification.
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
use super::rows::{changes_licenses, holds_nul, read_all, write, Cached, RowError};
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::{Change, Persisted, Setting, Transaction};

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
    /// Their changes, in order, not yet written (see the module docs).
    unwritten: Vec<Change>,
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
    ///
    /// One round trip: `BEGIN`, the lock timeout and the locking read go
    /// as one simple query, the namespace as a literal. A durable write is
    /// three round trips in all (this, its rows, the commit), as a bare
    /// `BEGIN`/`UPDATE`/`COMMIT` is; each costs as much as the rows.
    fn begin_batch(&self) -> Result<Batch> {
        let begin = format!(
            "BEGIN; SET LOCAL lock_timeout = {}; \
             SELECT generation, licenses_generation FROM entitle_namespaces \
             WHERE namespace = {} FOR UPDATE",
            self.lock_timeout.as_millis().max(1),
            literal(&self.namespace),
        );
        let mut conn = self.database.connection(&self.location)?;
        let locked = match conn.client.simple_query(&begin) {
            Err(_) if conn.client.is_closed() => {
                // A pooled connection the server closed since (a
                // restart): nothing was done on it; try once on a fresh
                // one.
                drop(conn);
                conn = self.database.connection(&self.location)?;
                conn.client.simple_query(&begin)
            }
            locked => locked,
        };
        let row = match locked {
            Ok(messages) => messages.into_iter().find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            }),
            Err(e) => {
                let _ = conn.client.batch_execute("ROLLBACK");
                return Err(self.sql_error(e));
            }
        };
        let number = |i: usize| {
            row.as_ref()
                .and_then(|r| r.get(i))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let (Some(generation), Some(licenses_at)) = (number(0), number(1)) else {
            let _ = conn.client.batch_execute("ROLLBACK");
            return Err(Error::StateCorrupt {
                path: self.location.clone(),
                detail: "its namespace row is missing or unreadable".into(),
            });
        };
        Ok(Batch {
            conn,
            generation,
            licenses_at,
            licenses_changed: false,
            mutations: 0,
            unwritten: Vec::new(),
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
        if let Err(e) = batch.write_unwritten(&self.namespace) {
            let cause = self.row_error(e);
            let _ = self.fail_batch(&mut session);
            return Err(cause);
        }
        // The new generation, its notification and `COMMIT` in one round
        // trip (one simple query; the generation is a number, the
        // namespace a literal). A statement that fails skips the rest,
        // `COMMIT` included, and the batch is rolled back below.
        let generation = i64::try_from(batch.generation).unwrap_or(i64::MAX);
        let namespace = literal(&self.namespace);
        let licenses_generation = if batch.licenses_changed {
            generation.to_string()
        } else {
            "licenses_generation".to_owned()
        };
        let payload = literal(&format!("{} {}", batch.generation, self.namespace));
        let commit = format!(
            "WITH moved AS (UPDATE entitle_namespaces SET generation = {generation}, \
             licenses_generation = {licenses_generation} \
             WHERE namespace = {namespace} RETURNING namespace) \
             SELECT pg_notify('entitle_changes', {payload}) FROM moved; COMMIT"
        );
        match batch.conn.client.batch_execute(&commit) {
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
            let read = batch.write_unwritten(&self.namespace).and_then(|()| {
                read_all(
                    &mut batch.conn,
                    &self.namespace,
                    &mut session.cached,
                    licenses_at,
                )
            });
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

impl Batch {
    /// Writes the changes kept since the last write, a row several of
    /// them set once, with the last value. A failure aborts the
    /// transaction: every mutation in the batch fails.
    fn write_unwritten(&mut self, namespace: &str) -> std::result::Result<(), RowError> {
        let changes = last_per_row(std::mem::take(&mut self.unwritten));
        let written = changes
            .iter()
            .try_for_each(|change| write(&mut self.conn, namespace, change));
        if written.is_err() {
            self.broken = true;
        }
        written
    }
}

/// The row a change sets whole (an upsert of every column, or a delete),
/// so that of several changes to it only the last matters; `None` for a
/// change that does not (one that keeps the first value, or writes several
/// rows).
fn whole_row(change: &Change) -> Option<(u8, &str, &str)> {
    Some(match change {
        Change::PutCounter(c) => (0, c.license_id.as_str(), c.code.as_str()),
        Change::PutUser(u) => (1, u.id.as_str(), ""),
        Change::DeleteUser(id) => (1, id.as_str(), ""),
        Change::PutLease(l) => (2, l.id.as_str(), ""),
        Change::DeleteLease(id) => (2, id.as_str(), ""),
        Change::PutActivation(a) => (3, a.license_id.as_str(), a.fingerprint.as_str()),
        Change::DeleteActivation {
            license_id,
            fingerprint,
        } => (3, license_id.as_str(), fingerprint.as_str()),
        Change::Set(Setting::LatestSeen(_)) => (4, "latest_seen", ""),
        Change::Set(Setting::MaxIssuedAt(_)) => (4, "max_issued_at", ""),
        Change::Set(Setting::ReportSequence(_)) => (4, "report_sequence", ""),
        Change::Transfers(license_id, _) => (5, license_id.as_str(), ""),
        _ => return None,
    })
}

/// `changes` without those a later change to the same whole row
/// supersedes; the rest in their order (changes to different rows do not
/// depend on each other's order).
fn last_per_row(changes: Vec<Change>) -> Vec<Change> {
    if changes.len() < 2 {
        return changes;
    }
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<Change> = Vec::with_capacity(changes.len());
    for change in changes.into_iter().rev() {
        let superseded = match whole_row(&change) {
            Some((table, a, b)) => !seen.insert((table, a.to_owned(), b.to_owned())),
            None => false,
        };
        if !superseded {
            kept.push(change);
        }
    }
    kept.reverse();
    kept
}

/// `text` as an SQL string literal: an escape string (`E'...'`), whose
/// backslashes and quotes are doubled, reads the same whatever the
/// server's `standard_conforming_strings`. NUL, which no PostgreSQL text
/// holds, is refused before any text reaches here (a namespace has no
/// control characters).
fn literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
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
        batch
            .write_unwritten(&self.store.namespace)
            .and_then(|()| {
                read_all(
                    &mut batch.conn,
                    &self.store.namespace,
                    &mut session.cached,
                    licenses_at,
                )
            })
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
        self.open = false;
        batch.generation = next;
        batch.mutations += 1;
        batch.licenses_changed |= pending.iter().any(changes_licenses);
        batch.unwritten.extend(pending);
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

#[cfg(test)]
mod tests {
    use super::{last_per_row, literal};
    use crate::store::{Change, CounterRecord, Setting};

    #[test]
    fn of_several_changes_to_one_row_only_the_last_is_written() {
        let counter = |code: &str, used| {
            Change::PutCounter(CounterRecord {
                license_id: "lic".into(),
                code: code.into(),
                period_start: 0,
                used,
            })
        };
        let changes = vec![
            counter("api", 1),
            Change::Set(Setting::LatestSeen(10)),
            Change::FirstUse("lic".into(), 5),
            counter("api", 2),
            counter("export", 1),
            Change::FirstUse("lic".into(), 6),
            Change::Set(Setting::LatestSeen(11)),
            counter("api", 3),
        ];
        assert_eq!(
            last_per_row(changes),
            vec![
                Change::FirstUse("lic".into(), 5),
                counter("export", 1),
                Change::FirstUse("lic".into(), 6),
                Change::Set(Setting::LatestSeen(11)),
                counter("api", 3),
            ]
        );
    }

    #[test]
    fn a_literal_doubles_quotes_and_backslashes() {
        assert_eq!(literal("tenant-7"), "E'tenant-7'");
        assert_eq!(literal("o'brien"), "E'o''brien'");
        assert_eq!(
            literal("a\\'; DROP TABLE x; --"),
            "E'a\\\\''; DROP TABLE x; --'"
        );
    }
}
