//! Batching: the mutations an engine makes while a batch is open join one
//! PostgreSQL transaction. Their changes are kept with the batch and
//! written when it commits (or before anything reads in its transaction),
//! a row changed by several mutations once, with what the last one set:
//! eight consumes of one feature are one `UPDATE`. The batch is committed
//! once for all of them (`store/group.rs` decides when), with the new
//! generation and its notification, in one round trip.
//!
//! Two ways to hold the namespace, decided per batch:
//! - **Planned on what is known** (the usual case): the batch begins with
//!   no transaction at all; its mutations are planned on the generation
//!   this process knows (raised by its own commits and by the listener).
//!   The commit is one simple query: `BEGIN`, `entitle_advance` (which
//!   takes the namespace's row lock and moves it from that generation to
//!   the batch's, or fails the transaction if another writer moved it
//!   first), the rows, the notification, `COMMIT`. A durable write is one
//!   round trip, as cheap as a bare commit of one row.
//! - **Locked**: the batch's transaction locks the namespace's row
//!   (`SELECT ... FOR UPDATE`) before anything is read, and every
//!   mutation plans on what it read under the lock. A batch takes the
//!   lock when something must be read in it (the engine's view is behind
//!   what is known), and every batch does for a second after a conflict:
//!   writers of several processes on one namespace then take turns rather
//!   than fail each other's plans.
//!
//! A conflict (another writer moved the namespace between the plan and
//! the commit) rolls the batch back whole; nothing of it is stored, and
//! the engine plans its mutations again on what is stored
//! ([`PgStore::conflicted`]).
//!
//! A statement that fails aborts a PostgreSQL transaction whole, so a
//! failed write fails the batch: every mutation in it fails at its sync
//! and the engine reloads what is stored. Our statements are fixed upserts
//! and deletes on our own tables, and values PostgreSQL cannot hold (a NUL
//! character) are refused before they reach the batch: what fails a write
//! is the server or the connection, which would fail the batch anyway.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::database::{Pooled, CHANNEL};
use super::rows::{self, changes_licenses, holds_nul, literal, read_all, Cached, RowError};
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::{Change, Persisted, Setting, Transaction};

/// [`PgStore::batch_generation`] when no batch is open.
pub(super) const NO_BATCH: u64 = u64::MAX;

/// How long after a conflict every batch takes the lock first.
const CONTENDED_FOR: Duration = Duration::from_secs(1);

/// How many conflicted batches [`Conflicts`] remembers: a mutation asks
/// about its own right after its sync failed.
const CONFLICTS_KEPT: usize = 64;

/// The connection a batch holds, and what the store keeps between
/// batches.
#[derive(Default)]
pub(super) struct Session {
    /// The open batch, if any.
    batch: Option<Batch>,
    /// The highest generation a rolled-back batch handed out: never handed
    /// out again, so a later commit is not taken for a failed one.
    floor: u64,
    /// The tables that change only with licenses, as last read.
    cached: Cached,
    /// Until when batches take the lock first (after a conflict).
    contended_until: Option<Instant>,
}

/// The generations of the batches rolled back by a conflict, latest last:
/// their mutations stored nothing, and may be planned again.
#[derive(Debug, Default)]
pub(super) struct Conflicts(VecDeque<(u64, u64)>);

struct Batch {
    /// The transaction holding the namespace's row lock, if the batch has
    /// taken it (see the module docs); `None` while it is planned on
    /// `planned_on`.
    locked: Option<Pooled>,
    /// The namespace's generation the batch's mutations were planned on.
    planned_on: u64,
    /// The generation the batch has reached.
    generation: u64,
    /// The first generation it handed out, once it has.
    first: Option<u64>,
    /// The namespace's `licenses_generation` when the lock was taken.
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

impl Batch {
    fn planned_on(generation: u64) -> Self {
        Batch {
            locked: None,
            planned_on: generation,
            generation,
            first: None,
            licenses_at: 0,
            licenses_changed: false,
            mutations: 0,
            unwritten: Vec::new(),
            broken: false,
        }
    }
}

impl PgStore {
    /// Starts a transaction in the open batch, opening one if none is.
    pub(super) fn begin_transaction(&self) -> Result<Box<dyn Transaction + '_>> {
        let mut session = self.session.lock();
        if session.batch.as_ref().is_some_and(|b| b.broken) {
            let _ = self.fail_batch(&mut session, false);
        }
        let generation = match &session.batch {
            Some(batch) => batch.generation,
            None => {
                let contended = session
                    .contended_until
                    .is_some_and(|until| Instant::now() < until);
                let batch = if contended {
                    self.lock_namespace()?
                } else {
                    Batch::planned_on(self.known.load(Ordering::Acquire))
                };
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

    /// A batch in a transaction that holds the namespace's row lock,
    /// waiting (up to the lock timeout) for another writer to commit.
    ///
    /// One round trip: `BEGIN`, the lock timeout and the locking read go
    /// as one simple query, the namespace as a literal.
    fn lock_namespace(&self) -> Result<Batch> {
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
            // Removed under the engines open on it: nothing writes it
            // back but `PgStore::create`.
            if row.is_none() {
                return Err(super::missing(&self.database.shown, &self.namespace));
            }
            return Err(Error::StateCorrupt {
                path: self.location.clone(),
                detail: "its namespace row is unreadable".into(),
            });
        };
        let mut batch = Batch::planned_on(generation);
        batch.locked = Some(conn);
        batch.licenses_at = licenses_at;
        Ok(batch)
    }

    /// Makes the open batch a locked one, for a read in it. Its mutations
    /// so far were planned on a generation: if another writer has moved
    /// the namespace since, they conflict and are rolled back, and the
    /// locked transaction becomes a new batch if `keep` (the caller is a
    /// mutation about to plan in it), else is ended. Returns whether the
    /// open batch is now locked.
    fn lock_batch(&self, session: &mut Session, keep: bool) -> Result<bool> {
        let Some(batch) = &mut session.batch else {
            return Ok(false);
        };
        if batch.locked.is_some() {
            return Ok(true);
        }
        let mut locked = self.lock_namespace()?;
        if batch.mutations > 0 && locked.generation == batch.planned_on {
            batch.locked = locked.locked.take();
            batch.licenses_at = locked.licenses_at;
            return Ok(true);
        }
        if batch.mutations > 0 {
            let _ = self.fail_batch(session, true);
        }
        if keep {
            // The caller plans from what is stored.
            self.batch_generation
                .store(locked.generation, Ordering::Release);
            session.batch = Some(locked);
            return Ok(true);
        }
        session.batch = None;
        self.batch_generation.store(NO_BATCH, Ordering::Release);
        if let Some(mut conn) = locked.locked.take() {
            let _ = conn.client.batch_execute("ROLLBACK");
        }
        Ok(false)
    }

    /// Commits the open batch, if there is one, in one round trip (see the
    /// module docs). On failure the batch is rolled back and every
    /// mutation in it fails at its sync.
    pub(super) fn commit_batch(&self) -> Result<()> {
        let mut session = self.session.lock();
        let Some(batch) = &mut session.batch else {
            return Ok(());
        };
        if batch.broken {
            return Err(self.fail_batch(&mut session, false));
        }
        // Numbers and literals only (see `rows::Literal`); a statement
        // that fails skips the rest, `COMMIT` included, and the batch is
        // rolled back below.
        let namespace = literal(&self.namespace);
        // Never clamped: two commits at one clamped generation would each
        // pass for the other's successor, and acknowledge lost writes.
        let (Ok(generation), Ok(planned_on)) = (
            i64::try_from(batch.generation),
            i64::try_from(batch.planned_on),
        ) else {
            let cause = self.generation_overflow(batch.planned_on);
            let _ = self.fail_batch(&mut session, false);
            return Err(cause);
        };
        let licenses = batch.licenses_changed.then_some(generation);
        let mut sql = String::new();
        if batch.locked.is_none() {
            let licenses = licenses.map_or("NULL".to_owned(), |g| g.to_string());
            sql = format!(
                "BEGIN; SET LOCAL lock_timeout = {}; \
                 SELECT entitle_advance({namespace}, {planned_on}, {generation}, {licenses});\n",
                self.lock_timeout.as_millis().max(1),
            );
        }
        if let Err(e) = batch.render_unwritten(&self.namespace, &mut sql) {
            let cause = self.row_error(e);
            let _ = self.fail_batch(&mut session, false);
            return Err(cause);
        }
        if batch.locked.is_some() {
            let licenses = licenses.map_or("licenses_generation".to_owned(), |g| g.to_string());
            sql.push_str(&format!(
                "UPDATE entitle_namespaces SET generation = {generation}, \
                 licenses_generation = {licenses} WHERE namespace = {namespace};\n"
            ));
        }
        let announced = self.announcer.with_commit();
        if announced {
            let payload = literal(&self.announcer.payload(batch.generation));
            sql.push_str(&format!("SELECT pg_notify('{CHANNEL}', {payload});\n"));
        }
        sql.push_str("COMMIT");
        let committed = match &mut batch.locked {
            Some(conn) => conn.client.batch_execute(&sql),
            None => match self.database.connection(&self.location) {
                Ok(mut conn) => {
                    let committed = conn.client.batch_execute(&sql);
                    if committed.is_err() {
                        let _ = conn.client.batch_execute("ROLLBACK");
                    }
                    committed
                }
                Err(e) => {
                    let _ = self.fail_batch(&mut session, false);
                    return Err(e);
                }
            },
        };
        match committed {
            Ok(()) => {
                let (generation, mutations) = (batch.generation, batch.mutations);
                if !announced {
                    self.announcer.later(&self.database, generation);
                }
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
                let conflict = batch.locked.is_none()
                    && e.code() == Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE);
                let cause = self.sql_error(e);
                let _ = self.fail_batch(&mut session, conflict);
                Err(cause)
            }
        }
    }

    /// The refusal of a commit that would move the namespace past the
    /// largest generation PostgreSQL's `bigint` holds: no writer gets
    /// there by committing (it would take centuries), so the row was set
    /// by hand, and the store acknowledges nothing more until it is fixed.
    pub(super) fn generation_overflow(&self, from: u64) -> Error {
        Error::StateCorrupt {
            path: self.location.clone(),
            detail: format!(
                "its generation ({from}) is at the largest PostgreSQL's bigint holds and cannot \
                 move on, so no change can be stored (the row was set by hand); set \
                 entitle_namespaces.generation of namespace `{}` back to a small number \
                 with the engines stopped",
                self.namespace
            ),
        }
    }

    /// Rolls the open batch back and marks every generation it handed out
    /// as failed, returning the error its mutations' syncs report. A
    /// `conflict` stored nothing: its mutations may be planned again, and
    /// batches take the lock first for a while.
    fn fail_batch(&self, session: &mut Session, conflict: bool) -> Error {
        if let Some(mut batch) = session.batch.take() {
            if let Some(conn) = &mut batch.locked {
                let _ = conn.client.batch_execute("ROLLBACK");
            }
            session.floor = session.floor.max(batch.generation);
            if conflict {
                session.contended_until = Some(Instant::now() + CONTENDED_FOR);
                if let Some(first) = batch.first {
                    let mut conflicts = self.conflicts.lock();
                    if conflicts.0.len() == CONFLICTS_KEPT {
                        conflicts.0.pop_front();
                    }
                    conflicts.0.push_back((first, batch.generation));
                }
            }
            match batch.first {
                Some(first) => self.group.rolled_back(first, batch.generation),
                None => self.group.fail_through(batch.generation),
            }
        }
        self.batch_generation.store(NO_BATCH, Ordering::Release);
        Error::io(
            format!("committing the state at {}", self.location),
            std::io::Error::other("the transaction was rolled back; its changes are not stored"),
        )
    }

    /// Whether the mutation committed into the batch at `generation` was
    /// rolled back because another writer moved the namespace after it
    /// was planned: nothing of it is stored, and planning it again on
    /// what is stored is safe.
    pub(crate) fn conflicted(&self, generation: u64) -> bool {
        self.conflicts
            .lock()
            .0
            .iter()
            .any(|&(first, last)| (first..=last).contains(&generation))
    }

    /// Whether the mutation committed into a batch at `generation` was
    /// rolled back, for whatever reason: nothing of it is stored.
    pub(crate) fn rolled_back(&self, generation: u64) -> bool {
        self.group.was_rolled_back(generation)
    }

    /// Reads the whole state: in the open batch's transaction if there is
    /// one (what this process's engine already holds), else in a
    /// read-only snapshot of what is committed, so that the generation
    /// and the rows agree.
    pub(super) fn load_state(&self) -> Result<(u64, Persisted)> {
        let mut session = self.session.lock();
        let session = &mut *session;
        if self.lock_batch(session, false)? {
            if let Some(batch) = &mut session.batch {
                let licenses_at = (!batch.licenses_changed).then_some(batch.licenses_at);
                let read = batch.read(&self.namespace, &mut session.cached, licenses_at);
                return Ok((batch.generation, read.map_err(|e| self.row_error(e))?));
            }
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
            let Some(row) = row else {
                return Ok(None);
            };
            let (Ok(generation), Ok(licenses_at)) =
                (row.try_get::<_, i64>(0), row.try_get::<_, i64>(1))
            else {
                return Err(super::rows::RowError::Corrupt(
                    "its namespace row is unreadable".into(),
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
            Ok(Some((generation, persisted)))
        })();
        let _ = conn.client.batch_execute("COMMIT");
        let Some((generation, persisted)) = read.map_err(|e| self.row_error(e))? else {
            return Err(super::missing(&self.database.shown, &self.namespace));
        };
        self.known.fetch_max(generation, Ordering::AcqRel);
        Ok((generation, persisted))
    }
}

impl Batch {
    /// Appends to `sql` the writes of the changes kept since the last
    /// write, a row several of them set once, with the last value.
    fn render_unwritten(
        &mut self,
        namespace: &str,
        sql: &mut String,
    ) -> std::result::Result<(), RowError> {
        let changes = last_per_row(std::mem::take(&mut self.unwritten));
        changes
            .iter()
            .try_for_each(|change| rows::write(sql, namespace, change))
    }

    /// Reads the whole state in the batch's locked transaction, its
    /// changes so far written first. A failed write aborts the
    /// transaction: every mutation in the batch fails.
    fn read(
        &mut self,
        namespace: &str,
        cached: &mut Cached,
        licenses_at: Option<u64>,
    ) -> std::result::Result<Persisted, RowError> {
        let Some(conn) = &mut self.locked else {
            return Err(RowError::Corrupt(
                "a batch read before it was locked".into(),
            ));
        };
        if !self.unwritten.is_empty() {
            let mut sql = String::new();
            let changes = last_per_row(std::mem::take(&mut self.unwritten));
            let written = changes
                .iter()
                .try_for_each(|change| rows::write(&mut sql, namespace, change))
                .and_then(|()| conn.client.batch_execute(&sql).map_err(RowError::from));
            if let Err(e) = written {
                self.broken = true;
                return Err(e);
            }
        }
        read_all(conn, namespace, cached, licenses_at)
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
        Change::Set(Setting::LastReport(_)) => (4, "last_report", ""),
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

impl Drop for PgStore {
    fn drop(&mut self) {
        // The synchronous client blocks on a runtime of its own, which
        // panics on a thread that is running an async runtime's tasks;
        // and the last engine over a store may be dropped on one (a
        // server's router, at shutdown). So the last statements go on a
        // thread of their own (or here, if none can be started).
        let store = &*self;
        std::thread::scope(|scope| {
            let last = std::thread::Builder::new()
                .name("entitle-pg-drop".into())
                .spawn_scoped(scope, || store.last_statements());
            match last {
                Ok(thread) => {
                    let _ = thread.join();
                }
                Err(_) => store.last_statements(),
            }
        });
    }
}

impl PgStore {
    /// What a store does as it is dropped.
    fn last_statements(&self) {
        // Every mutation syncs before it returns, so a batch is open here
        // only if one's caller never got that far (a panic between commit
        // and sync): nobody was told it succeeded, and it is rolled back.
        let mut session = self.session.lock();
        if let Some(Batch {
            locked: Some(mut conn),
            ..
        }) = session.batch.take()
        {
            let _ = conn.client.batch_execute("ROLLBACK");
        }
        drop(session);
        // A command-line run ends here: what it committed is announced
        // before the process exits.
        self.announcer.flush(&self.database, true);
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
        let store = self.store;
        let session = &mut *self.session;
        // What is read is what the mutation plans on: under the lock.
        store.lock_batch(session, true)?;
        let Some(batch) = &mut session.batch else {
            return Err(Error::InvalidArgument(
                "a transaction read after its batch ended".into(),
            ));
        };
        self.generation = batch.generation;
        let licenses_at = (!batch.licenses_changed).then_some(batch.licenses_at);
        batch
            .read(&store.namespace, &mut session.cached, licenses_at)
            .map_err(|e| store.row_error(e))
    }

    fn latest_generation(&mut self) -> Result<u64> {
        let store = self.store;
        let session = &mut *self.session;
        // Under the namespace's lock, which the batch then holds until it
        // commits or, with nothing of its own, until this transaction is
        // dropped: what is asked here stays the latest meanwhile.
        store.lock_batch(session, true)?;
        let Some(batch) = &session.batch else {
            return Err(Error::InvalidArgument(
                "a transaction read after its batch ended".into(),
            ));
        };
        self.generation = batch.generation;
        Ok(batch.generation)
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
        let from = self.generation.max(self.session.floor);
        // Checked: a generation that would not fit a bigint acknowledges
        // nothing. Dropped still open, the transaction ends a batch it
        // opened for itself alone, releasing the namespace's lock.
        let Some(next) = from
            .checked_add(1)
            .filter(|&next| i64::try_from(next).is_ok())
        else {
            return Err(store.generation_overflow(from));
        };
        let pending = std::mem::take(&mut self.pending);
        let Some(batch) = &mut self.session.batch else {
            return Err(Error::InvalidArgument(
                "a transaction committed after its batch ended".into(),
            ));
        };
        self.open = false;
        batch.generation = next;
        batch.first.get_or_insert(next);
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
            if let Some(Batch {
                locked: Some(mut conn),
                ..
            }) = self.session.batch.take()
            {
                let _ = conn.client.batch_execute("ROLLBACK");
            }
            self.store
                .batch_generation
                .store(NO_BATCH, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::last_per_row;
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
}
