//! The license server's history in SQLite: a file of its own beside the
//! state, `history.sqlite`, opened the first time history is used.
//!
//! Why not the state's own file: every open of the state checks each of
//! its pages (`PRAGMA integrity_check`, see `schema.rs`), which millions
//! of events would slow for every command that opens it; and SQLite has
//! one writer per file, so a batch of events would wait for, and hold up,
//! the engine's mutations. The history grants nothing, so it needs
//! neither the check nor the engine's lock.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use super::{begin_immediate, sql_error, DEFAULT_LOCK_TIMEOUT};
use crate::error::{Error, Result};
use crate::store::history::{page_of, pool_key, pool_of_key};
use crate::store::{
    minute_buckets, EventCursor, EventKind, EventPage, HistoryEvent, MinuteBucket, StoredEvent,
};

/// The history's file, inside the state directory.
pub(crate) const HISTORY_FILE: &str = "history.sqlite";

/// The version of the history's tables this crate writes.
const HISTORY_VERSION: u32 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL, feature TEXT,
    client TEXT NOT NULL, lease_id TEXT, reason TEXT, in_use INTEGER NOT NULL,
    queued INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_at ON events (at, id);
CREATE TABLE IF NOT EXISTS minutes (
    pool TEXT NOT NULL, minute INTEGER NOT NULL, in_use_peak INTEGER NOT NULL,
    denials INTEGER NOT NULL, queued_peak INTEGER NOT NULL, last_at INTEGER NOT NULL,
    in_use_last INTEGER NOT NULL, queued_last INTEGER NOT NULL,
    PRIMARY KEY (pool, minute)) WITHOUT ROWID;
";

const MERGE: &str = "
INSERT INTO minutes (pool, minute, in_use_peak, denials, queued_peak, last_at, in_use_last,
                     queued_last)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (pool, minute) DO UPDATE SET
    in_use_peak = max(in_use_peak, excluded.in_use_peak),
    denials = denials + excluded.denials,
    queued_peak = max(queued_peak, excluded.queued_peak),
    in_use_last = CASE WHEN excluded.last_at >= last_at THEN excluded.in_use_last
                       ELSE in_use_last END,
    queued_last = CASE WHEN excluded.last_at >= last_at THEN excluded.queued_last
                       ELSE queued_last END,
    last_at = max(last_at, excluded.last_at)";

const BUCKET_COLUMNS: &str =
    "pool, minute, in_use_peak, denials, queued_peak, last_at, in_use_last, queued_last";

/// The history file of one state directory, opened when first used.
#[derive(Debug)]
pub(crate) struct HistoryFile {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl HistoryFile {
    /// The history of the state directory `dir` (nothing is opened yet).
    pub(crate) fn new(dir: &Path) -> Self {
        HistoryFile {
            path: dir.join(HISTORY_FILE),
            conn: Mutex::new(None),
        }
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Runs `work` on the connection, opening (and making) the file first
    /// if it is not open yet.
    fn with<T>(&self, work: impl FnOnce(&Connection, &str) -> Result<T>) -> Result<T> {
        let shown = self.shown();
        let mut slot = self.conn.lock();
        if slot.is_none() {
            *slot = Some(open(&self.path, &shown)?);
        }
        match slot.as_ref() {
            Some(conn) => work(conn, &shown),
            None => Err(Error::io(
                format!("opening the history at {shown}"),
                std::io::Error::other("the connection was not kept"),
            )),
        }
    }

    /// In one write transaction.
    fn write<T>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.with(|conn, shown| {
            begin_immediate(conn, shown, DEFAULT_LOCK_TIMEOUT)?;
            match work(conn) {
                Ok(value) => {
                    conn.execute_batch("COMMIT")
                        .map_err(|e| sql_error(shown, e))?;
                    Ok(value)
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(sql_error(shown, e))
                }
            }
        })
    }

    pub(crate) fn append(&self, events: &[HistoryEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let buckets = minute_buckets(events);
        self.write(|conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO events (at, kind, feature, client, lease_id, reason, in_use, \
                 queued) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for e in events {
                insert.execute(params![
                    e.at,
                    e.kind.as_str(),
                    e.feature,
                    e.client,
                    e.lease_id,
                    e.reason,
                    e.in_use,
                    e.queued
                ])?;
            }
            merge(conn, &buckets)
        })
    }

    pub(crate) fn merge_buckets(&self, buckets: &[MinuteBucket]) -> Result<()> {
        self.write(|conn| merge(conn, buckets))
    }

    pub(crate) fn buckets(
        &self,
        feature: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<(Option<MinuteBucket>, Vec<MinuteBucket>)> {
        let pool = pool_key(feature);
        self.with(|conn, shown| {
            let sql = |e| sql_error(shown, e);
            let before = conn
                .prepare_cached(&format!(
                    "SELECT {BUCKET_COLUMNS} FROM minutes WHERE pool = ?1 AND minute < ?2 \
                     ORDER BY minute DESC LIMIT 1"
                ))
                .and_then(|mut s| s.query_row(params![pool, from], bucket_of).optional())
                .map_err(sql)?;
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {BUCKET_COLUMNS} FROM minutes WHERE pool = ?1 AND minute >= ?2 \
                     AND minute < ?3 ORDER BY minute"
                ))
                .map_err(sql)?;
            let within = stmt
                .query_map(params![pool, from, to], bucket_of)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sql)?;
            Ok((before, within))
        })
    }

    pub(crate) fn events(
        &self,
        from: i64,
        to: i64,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> Result<EventPage> {
        let (at, id) = match cursor {
            Some(c) if (c.at, c.id) >= (from, i64::MIN) => (c.at, c.id),
            _ => (from, i64::MIN),
        };
        let take = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        self.with(|conn, shown| {
            let sql = |e| sql_error(shown, e);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, at, kind, feature, client, lease_id, reason, in_use, queued \
                     FROM events WHERE (at, id) > (?1, ?2) AND at < ?3 ORDER BY at, id \
                     LIMIT ?4",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![at, id, to, take], event_of)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sql)?;
            Ok(page_of(rows, limit))
        })
    }

    pub(crate) fn prune(&self, before: i64) -> Result<u64> {
        self.write(|conn| {
            let events = conn.execute("DELETE FROM events WHERE at < ?1", [before])?;
            let minutes = conn.execute("DELETE FROM minutes WHERE minute < ?1", [before])?;
            Ok((events + minutes) as u64)
        })
    }
}

fn open(path: &Path, shown: &str) -> Result<Connection> {
    let sql = |e| sql_error(shown, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(DEFAULT_LOCK_TIMEOUT).map_err(sql)?;
    // WAL: the queries of the admin routes never wait for a flush. A
    // crash loses at most the batches not yet checkpointed to the log,
    // as the server's buffer loses its last second anyway.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql)?;
    begin_immediate(&conn, shown, DEFAULT_LOCK_TIMEOUT)?;
    let made = (|| {
        conn.execute_batch(SCHEMA)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'history_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if version.is_none() {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('history_version', ?1)",
                [HISTORY_VERSION.to_string()],
            )?;
        }
        Ok(version)
    })();
    let version = match made {
        Ok(version) => version,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(sql(e));
        }
    };
    match version.as_deref().map(str::parse::<u32>) {
        None | Some(Ok(HISTORY_VERSION)) => {}
        Some(Ok(v)) if v > HISTORY_VERSION => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(Error::StateCorrupt {
                path: shown.to_owned(),
                detail: format!(
                    "the history was written by a newer entitle (version {v}; this one reads \
                     up to {HISTORY_VERSION}): upgrade entitle"
                ),
            });
        }
        // Older versions are brought up here as they come.
        Some(Ok(_)) => {}
        Some(Err(_)) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(Error::StateCorrupt {
                path: shown.to_owned(),
                detail: "its history_version is not a number".into(),
            });
        }
    }
    conn.execute_batch("COMMIT").map_err(sql)?;
    Ok(conn)
}

fn merge(conn: &Connection, buckets: &[MinuteBucket]) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(MERGE)?;
    for b in buckets {
        upsert.execute(params![
            pool_key(b.feature.as_deref()),
            b.minute,
            b.in_use_peak,
            i64::try_from(b.denials).unwrap_or(i64::MAX),
            b.queued_peak,
            b.last_at,
            b.in_use_last,
            b.queued_last
        ])?;
    }
    Ok(())
}

fn bucket_of(row: &Row<'_>) -> rusqlite::Result<MinuteBucket> {
    let denials: i64 = row.get(3)?;
    Ok(MinuteBucket {
        feature: pool_of_key(row.get(0)?),
        minute: row.get(1)?,
        in_use_peak: row.get(2)?,
        denials: u64::try_from(denials).unwrap_or(0),
        queued_peak: row.get(4)?,
        last_at: row.get(5)?,
        in_use_last: row.get(6)?,
        queued_last: row.get(7)?,
    })
}

fn event_of(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let kind: String = row.get(2)?;
    let kind = EventKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("`{kind}` is no event kind").into(),
        )
    })?;
    Ok(StoredEvent {
        id: row.get(0)?,
        event: HistoryEvent {
            at: row.get(1)?,
            kind,
            feature: row.get(3)?,
            client: row.get(4)?,
            lease_id: row.get(5)?,
            reason: row.get(6)?,
            in_use: row.get(7)?,
            queued: row.get(8)?,
        },
    })
}
