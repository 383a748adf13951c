//! Batching: the mutations made while the engine's writer lock is held
//! join one open SQLite transaction (a batch), each written when it
//! commits, as one statement or inside a savepoint, so that one that
//! fails or is dropped undoes only itself. The batch is committed and the
//! log synced once for all of them (`store/group.rs` decides when).

use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;
use rusqlite::Connection;

use super::rows::{read_all, read_generation, set_generation, write, Cached};
use super::{begin_immediate, sql_error, FileStore};
use crate::error::{Error, Result};
use crate::store::group::GroupCommit;
use crate::store::{Change, Persisted, Transaction};

impl FileStore {
    /// Starts a transaction in the open batch, opening one if none is.
    pub(super) fn begin_transaction(&self) -> Result<Box<dyn Transaction + '_>> {
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

    /// Starts the SQLite transaction a batch of mutations shares, and
    /// reads the generation it starts from.
    fn begin_batch(&self, conn: &Connection, shown: &str) -> Result<u64> {
        begin_immediate(conn, shown, self.lock_timeout)?;
        read_generation(conn).map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            sql_error(shown, e)
        })
    }

    /// Commits the open batch, if there is one. On failure the batch is
    /// rolled back and every mutation in it fails at its sync.
    pub(super) fn commit_batch(&self) -> Result<()> {
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
        match set_generation(conn, generation).and_then(|()| {
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
            // Its mutations were handed out one generation each, in turn.
            match batch.mutations as u64 {
                0 => self.group.fail_through(batch.generation),
                n => self
                    .group
                    .rolled_back(batch.generation + 1 - n, batch.generation),
            }
        }
        Error::io(
            format!("committing the state at {}", self.shown()),
            std::io::Error::other("the transaction was rolled back; its changes are not on disk"),
        )
    }
}

/// The connection, and the transaction it holds open between mutations
/// that are committed together.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) conn: Connection,
    /// The open batch: mutations made and released but not yet committed
    /// to SQLite (the next [`Store::sync`] commits them).
    pub(super) batch: Option<Batch>,
    /// The highest generation a rolled-back batch handed out.
    pub(super) floor: u64,
    /// The large, seldom changed tables as last read.
    pub(super) cached: Cached,
}

#[derive(Debug)]
pub(super) struct Batch {
    /// The generation the batch has reached, in its own transaction.
    pub(super) generation: u64,
    /// Mutations committed into it.
    pub(super) mutations: usize,
    /// A mutation's undo failed: the batch cannot commit.
    pub(super) broken: bool,
}

impl Session {
    pub(super) fn new(conn: Connection) -> Self {
        Session {
            conn,
            batch: None,
            floor: 0,
            cached: Cached::default(),
        }
    }

    /// The generation of the state this connection sees: the open batch's
    /// own, or the one stored.
    pub(super) fn generation(&self) -> rusqlite::Result<u64> {
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

pub(super) struct FileTransaction<'a> {
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
            [change] => (write(&self.session.conn, change), true),
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
        let written = changes.iter().try_for_each(|c| write(conn, c));
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
}

impl Transaction for FileTransaction<'_> {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn load(&mut self) -> Result<Persisted> {
        let session = &mut *self.session;
        read_all(&session.conn, &mut session.cached).map_err(|e| sql_error(&self.shown, e))
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
