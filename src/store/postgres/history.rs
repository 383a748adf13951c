//! The license server's history in PostgreSQL: `entitle_history_events`
//! and `entitle_history_minutes`, keyed by namespace like every table.
//! Several servers on one namespace append to the same tables: events get
//! ids from one identity column, and buckets merge in the upsert itself
//! (`GREATEST`, `+`, the later last event), never overwrite. A batch
//! takes two round trips (events, buckets) in one transaction, its rows
//! passed as arrays; buckets are written in key order, so two writers
//! merging the same minutes take their row locks in the same order.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::Row;

use super::database::{db_error, Pooled};
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::history::{page_of, pool_key, pool_of_key};
use crate::store::{
    minute_buckets, EventCursor, EventKind, EventPage, History, HistoryEvent, MinuteBucket,
    StoredEvent,
};

const INSERT_EVENTS: &str = "
INSERT INTO entitle_history_events
    (namespace, at, kind, feature, client, lease_id, reason, in_use, queued)
SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::integer[], $9::integer[])";

const MERGE: &str = "
INSERT INTO entitle_history_minutes AS m
    (namespace, pool, minute, in_use_peak, denials, queued_peak, last_at, in_use_last,
     queued_last)
SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::integer[], $5::bigint[],
                         $6::integer[], $7::bigint[], $8::integer[], $9::integer[])
ON CONFLICT (namespace, pool, minute) DO UPDATE SET
    in_use_peak = GREATEST(m.in_use_peak, EXCLUDED.in_use_peak),
    denials = m.denials + EXCLUDED.denials,
    queued_peak = GREATEST(m.queued_peak, EXCLUDED.queued_peak),
    in_use_last = CASE WHEN EXCLUDED.last_at >= m.last_at THEN EXCLUDED.in_use_last
                       ELSE m.in_use_last END,
    queued_last = CASE WHEN EXCLUDED.last_at >= m.last_at THEN EXCLUDED.queued_last
                       ELSE m.queued_last END,
    last_at = GREATEST(m.last_at, EXCLUDED.last_at)";

const BEFORE: &str = "
SELECT pool, minute, in_use_peak, denials, queued_peak, last_at, in_use_last, queued_last
FROM entitle_history_minutes WHERE namespace = $1 AND pool = $2 AND minute < $3
ORDER BY minute DESC LIMIT 1";

const WITHIN: &str = "
SELECT pool, minute, in_use_peak, denials, queued_peak, last_at, in_use_last, queued_last
FROM entitle_history_minutes WHERE namespace = $1 AND pool = $2 AND minute >= $3
  AND minute < $4 ORDER BY minute";

const EVENTS: &str = "
SELECT id, at, kind, feature, client, lease_id, reason, in_use, queued
FROM entitle_history_events WHERE namespace = $1 AND (at, id) > ($2, $3) AND at < $4
ORDER BY at, id LIMIT $5";

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl PgStore {
    fn history_error(&self, e: postgres::Error) -> Error {
        db_error(&self.location, Duration::ZERO, e)
    }

    /// Runs `work` in one transaction on a pooled connection.
    fn history_write(
        &self,
        work: impl FnOnce(&mut Pooled) -> std::result::Result<(), postgres::Error>,
    ) -> Result<()> {
        let mut conn = self.database.connection(&self.location)?;
        conn.client
            .batch_execute("BEGIN")
            .map_err(|e| self.history_error(e))?;
        match work(&mut conn) {
            Ok(()) => conn
                .client
                .batch_execute("COMMIT")
                .map_err(|e| self.history_error(e)),
            Err(e) => {
                let _ = conn.client.batch_execute("ROLLBACK");
                Err(self.history_error(e))
            }
        }
    }
}

/// `buckets` with those of one pool and minute merged: one upsert may
/// touch a row only once.
fn merged(buckets: &[MinuteBucket]) -> Vec<MinuteBucket> {
    let mut by_key: BTreeMap<(&str, i64), MinuteBucket> = BTreeMap::new();
    for bucket in buckets {
        by_key
            .entry((pool_key(bucket.feature.as_deref()), bucket.minute))
            .and_modify(|b| b.merge(bucket))
            .or_insert_with(|| bucket.clone());
    }
    by_key.into_values().collect()
}

fn merge(
    conn: &mut Pooled,
    namespace: &str,
    buckets: &[MinuteBucket],
) -> std::result::Result<(), postgres::Error> {
    if buckets.is_empty() {
        return Ok(());
    }
    let buckets = merged(buckets);
    let pools: Vec<&str> = buckets
        .iter()
        .map(|b| pool_key(b.feature.as_deref()))
        .collect();
    let minutes: Vec<i64> = buckets.iter().map(|b| b.minute).collect();
    let peaks: Vec<i32> = buckets.iter().map(|b| int(b.in_use_peak)).collect();
    let denials: Vec<i64> = buckets
        .iter()
        .map(|b| i64::try_from(b.denials).unwrap_or(i64::MAX))
        .collect();
    let queued: Vec<i32> = buckets.iter().map(|b| int(b.queued_peak)).collect();
    let last_at: Vec<i64> = buckets.iter().map(|b| b.last_at).collect();
    let in_use_last: Vec<i32> = buckets.iter().map(|b| int(b.in_use_last)).collect();
    let queued_last: Vec<i32> = buckets.iter().map(|b| int(b.queued_last)).collect();
    conn.execute(
        MERGE,
        &[
            &namespace,
            &pools,
            &minutes,
            &peaks,
            &denials,
            &queued,
            &last_at,
            &in_use_last,
            &queued_last,
        ],
    )
    .map(drop)
}

fn bucket_of(row: &Row) -> std::result::Result<MinuteBucket, postgres::Error> {
    let denials: i64 = row.try_get(3)?;
    Ok(MinuteBucket {
        feature: pool_of_key(row.try_get(0)?),
        minute: row.try_get(1)?,
        in_use_peak: count(row.try_get(2)?),
        denials: u64::try_from(denials).unwrap_or(0),
        queued_peak: count(row.try_get(4)?),
        last_at: row.try_get(5)?,
        in_use_last: count(row.try_get(6)?),
        queued_last: count(row.try_get(7)?),
    })
}

impl History for PgStore {
    fn append(&self, events: &[HistoryEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let buckets = minute_buckets(events);
        let at: Vec<i64> = events.iter().map(|e| e.at).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let features: Vec<Option<&str>> = events.iter().map(|e| e.feature.as_deref()).collect();
        let clients: Vec<&str> = events.iter().map(|e| e.client.as_str()).collect();
        let leases: Vec<Option<&str>> = events.iter().map(|e| e.lease_id.as_deref()).collect();
        let reasons: Vec<Option<&str>> = events.iter().map(|e| e.reason.as_deref()).collect();
        let in_use: Vec<i32> = events.iter().map(|e| int(e.in_use)).collect();
        let queued: Vec<i32> = events.iter().map(|e| int(e.queued)).collect();
        self.history_write(|conn| {
            conn.execute(
                INSERT_EVENTS,
                &[
                    &self.namespace,
                    &at,
                    &kinds,
                    &features,
                    &clients,
                    &leases,
                    &reasons,
                    &in_use,
                    &queued,
                ],
            )?;
            merge(conn, &self.namespace, &buckets)
        })
    }

    fn merge_buckets(&self, buckets: &[MinuteBucket]) -> Result<()> {
        self.history_write(|conn| merge(conn, &self.namespace, buckets))
    }

    fn buckets(
        &self,
        feature: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<(Option<MinuteBucket>, Vec<MinuteBucket>)> {
        let mut conn = self.database.connection(&self.location)?;
        let pool = pool_key(feature);
        let read = |conn: &mut Pooled| {
            let before = conn
                .query(BEFORE, &[&self.namespace, &pool, &from])?
                .first()
                .map(bucket_of)
                .transpose()?;
            let within = conn
                .query(WITHIN, &[&self.namespace, &pool, &from, &to])?
                .iter()
                .map(bucket_of)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok((before, within))
        };
        read(&mut conn).map_err(|e| self.history_error(e))
    }

    fn events(
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
        let mut conn = self.database.connection(&self.location)?;
        let rows = conn
            .query(EVENTS, &[&self.namespace, &at, &id, &to, &take])
            .map_err(|e| self.history_error(e))?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let read = || -> std::result::Result<StoredEvent, postgres::Error> {
                Ok(StoredEvent {
                    id: row.try_get(0)?,
                    event: HistoryEvent {
                        at: row.try_get(1)?,
                        kind: EventKind::Checkout,
                        feature: row.try_get(3)?,
                        client: row.try_get(4)?,
                        lease_id: row.try_get(5)?,
                        reason: row.try_get(6)?,
                        in_use: count(row.try_get(7)?),
                        queued: count(row.try_get(8)?),
                    },
                })
            };
            let mut event = read().map_err(|e| self.history_error(e))?;
            let kind: String = row.try_get(2).map_err(|e| self.history_error(e))?;
            event.event.kind = EventKind::parse(&kind).ok_or_else(|| Error::StateCorrupt {
                path: self.location.clone(),
                detail: format!(
                    "a history event has the kind `{kind}`, which entitle never writes"
                ),
            })?;
            items.push(event);
        }
        Ok(page_of(items, limit))
    }

    fn prune(&self, before: i64) -> Result<u64> {
        let mut gone = 0;
        self.history_write(|conn| {
            gone += conn.execute(
                "DELETE FROM entitle_history_events WHERE namespace = $1 AND at < $2",
                &[&self.namespace, &before],
            )?;
            gone += conn.execute(
                "DELETE FROM entitle_history_minutes WHERE namespace = $1 AND minute < $2",
                &[&self.namespace, &before],
            )?;
            Ok(())
        })?;
        Ok(gone)
    }
}
