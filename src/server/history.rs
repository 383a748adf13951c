//! The server's history (docs/http.md#history): what happened to its
//! floating pools, recorded off the request path, and the admin routes
//! that read it back.
//!
//! A handler only pushes an event onto a bounded buffer ([`Recorder`]);
//! once a second a task writes the buffer to the store in one transaction
//! on the blocking pool (and once more when the server stops), so a
//! request never waits for the history's disk or database. A crash loses
//! the last second at most. Leases that lapse are found on the same tick:
//! the recorder watches the leases this server granted or renewed, and
//! one past its end that the engine no longer holds is recorded as an
//! expiry at the instant it ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::{Engine, Lease};
use crate::error::{Error, Result};
use crate::store::{point_count, EventCursor, EventKind, HistoryEvent, Step, MAX_POINTS};
use crate::time::Timestamp;

use super::admin::authorize;
use super::api::{blocking, ok, query, Answer, ApiError, App, RouteTable};
use super::queue::{Full, Place};

/// The most events the buffer holds between two flushes; beyond, events
/// are dropped and counted ([`Recorder::dropped`]) rather than let a
/// store that stopped answering grow the server's memory without bound.
pub const MAX_BUFFERED: usize = 100_000;

/// How often old history is pruned.
const PRUNE_EVERY_SECS: i64 = 3600;

/// The most events one page of `/admin/events` returns.
pub const MAX_EVENTS_PAGE: usize = 1000;

/// A lease the recorder watches for its lapse.
struct Watched {
    feature: Option<String>,
    client: String,
    expires_at: i64,
}

/// Records what happens to an engine's floating pools into its store's
/// history: cheap for the caller (one lock and a push), written in
/// batches by [`Recorder::flush`].
///
/// ```
/// use entitle::server::history::Recorder;
/// use entitle::store::{EventKind, Store};
/// let engine = entitle::Engine::builder("acme").in_memory().build()?;
/// let recorder = Recorder::new(engine, 90);
/// assert!(recorder.is_on());
/// recorder.record(EventKind::Deny, None, "desk-1", None, Some("FLOATING_EXHAUSTED"), 0);
/// assert_eq!(recorder.flush()?, 1);
/// # Ok::<(), entitle::Error>(())
/// ```
pub struct Recorder {
    engine: Engine,
    days: u32,
    on: bool,
    buffer: Mutex<Vec<HistoryEvent>>,
    dropped: AtomicU64,
    watched: Mutex<HashMap<String, Watched>>,
    /// When old history was last pruned (Unix seconds).
    pruned_at: Mutex<Option<i64>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("on", &self.on)
            .field("days", &self.days)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for `engine`'s pools keeping `history_days` of history:
    /// off when that is 0 or the engine's store keeps no history.
    pub fn new(engine: Engine, history_days: u32) -> Self {
        let on = history_days > 0 && engine.history().is_some();
        Recorder {
            engine,
            days: history_days,
            on,
            buffer: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            watched: Mutex::new(HashMap::new()),
            pruned_at: Mutex::new(None),
        }
    }

    /// Whether it records anything.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records an event of `kind` in `pool` (a feature's, or `None`: the
    /// license-level pool) for `client`, now, with the pool's seats in
    /// use as the engine holds them now and `queued` waiting.
    pub fn record(
        &self,
        kind: EventKind,
        pool: Option<&str>,
        client: &str,
        lease_id: Option<&str>,
        reason: Option<&str>,
        queued: usize,
    ) {
        if !self.on {
            return;
        }
        let at = self.engine.now().unix();
        let in_use = u32::try_from(self.engine.pool_in_use(pool)).unwrap_or(u32::MAX);
        let mut event = HistoryEvent::new(at, kind, pool, client)
            .counts(in_use, u32::try_from(queued).unwrap_or(u32::MAX));
        event.lease_id = lease_id.map(str::to_owned);
        event.reason = reason.map(str::to_owned);
        self.push(event);
    }

    /// Records an event of `kind` about `lease`; a lease taken, renewed
    /// or borrowed is watched for its lapse from then on, one freed is
    /// not.
    pub fn record_lease(&self, kind: EventKind, lease: &Lease, queued: usize) {
        if !self.on {
            return;
        }
        match kind {
            EventKind::Checkin | EventKind::ForceRelease | EventKind::Expiry => {
                self.watched.lock().remove(&lease.id);
            }
            _ => self.watch(lease),
        }
        self.record(
            kind,
            lease.feature.as_deref(),
            &lease.client,
            Some(&lease.id),
            None,
            queued,
        );
    }

    /// Watches `lease` (renewed by a heartbeat) for its lapse.
    pub fn watch(&self, lease: &Lease) {
        if !self.on {
            return;
        }
        self.watched.lock().insert(
            lease.id.clone(),
            Watched {
                feature: lease.feature.clone(),
                client: lease.client.clone(),
                expires_at: lease.expires_at.unix(),
            },
        );
    }

    fn push(&self, event: HistoryEvent) {
        let mut buffer = self.buffer.lock();
        if buffer.len() >= MAX_BUFFERED {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.push(event);
        }
    }

    /// Writes what was recorded since the last flush to the store, in one
    /// transaction, after noting the watched leases that lapsed; prunes
    /// history older than the retention once an hour. Blocks: call it
    /// off the request path. Returns how many events were written.
    pub fn flush(&self) -> Result<usize> {
        self.flush_with(&|_| 0)
    }

    /// [`Recorder::flush`], with `queued` telling how many wait for a
    /// pool (for the expiries it notes).
    pub(crate) fn flush_with(&self, queued: &dyn Fn(Option<&str>) -> usize) -> Result<usize> {
        let Some(history) = self.engine.history().filter(|_| self.on) else {
            return Ok(0);
        };
        let now = self.engine.now().unix();
        self.note_expiries(now, queued);
        let batch = std::mem::take(&mut *self.buffer.lock());
        let written = batch.len();
        if let Err(e) = history.append(&batch) {
            // Kept for the next tick (a database restarting), within the
            // buffer's bound.
            let mut buffer = self.buffer.lock();
            let room = MAX_BUFFERED.saturating_sub(buffer.len());
            let lost = batch.len().saturating_sub(room);
            self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
            let mut kept: Vec<HistoryEvent> = batch.into_iter().take(room).collect();
            kept.append(&mut buffer);
            *buffer = kept;
            return Err(e);
        }
        let due = {
            let mut pruned_at = self.pruned_at.lock();
            let due = pruned_at.is_none_or(|at| now - at >= PRUNE_EVERY_SECS);
            if due {
                *pruned_at = Some(now);
            }
            due
        };
        if due {
            history.prune(now - i64::from(self.days) * 86_400)?;
        }
        Ok(written)
    }

    /// Records the lapse of every watched lease past its end that the
    /// engine no longer holds; forgets one renewed elsewhere (another
    /// server sharing the store watches it then).
    fn note_expiries(&self, now: i64, queued: &dyn Fn(Option<&str>) -> usize) {
        let due: Vec<(String, Watched)> = {
            let mut watched = self.watched.lock();
            let ids: Vec<String> = watched
                .iter()
                .filter(|(_, w)| w.expires_at <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| watched.remove(&id).map(|w| (id, w)))
                .collect()
        };
        for (id, lease) in due {
            if self.engine.live_lease(&id).is_some() {
                continue;
            }
            let pool = lease.feature.as_deref();
            let in_use = u32::try_from(self.engine.pool_in_use(pool)).unwrap_or(u32::MAX);
            let waiting = u32::try_from(queued(pool)).unwrap_or(u32::MAX);
            self.push(
                HistoryEvent::new(lease.expires_at, EventKind::Expiry, pool, &lease.client)
                    .lease(&id)
                    .counts(in_use, waiting),
            );
        }
    }
}

// ---- the server's side ------------------------------------------------------

impl App {
    /// Records an event of `kind` in `pool` for `client` in the history
    /// (nothing when it is off), with the pool's counts now.
    pub(super) fn record(
        &self,
        kind: EventKind,
        pool: Option<&str>,
        client: &str,
        lease_id: Option<&str>,
        reason: Option<&str>,
    ) {
        let queued = self.queues.len(&pool.map(str::to_owned));
        self.history
            .record(kind, pool, client, lease_id, reason, queued);
    }

    /// Records an event of `kind` about `lease` (a checkout, check-in,
    /// borrow or force release).
    pub(super) fn record_lease(&self, kind: EventKind, lease: &Lease) {
        let queued = self.queues.len(&lease.feature);
        self.history.record_lease(kind, lease, queued);
    }

    /// Writes the history buffered so far (the tick, and the last flush
    /// when the server stops).
    pub(super) fn flush_history(&self) {
        let queues = &self.queues;
        let queued = |pool: Option<&str>| queues.len(&pool.map(str::to_owned));
        if let Err(e) = self.history.flush_with(&queued) {
            eprintln!("history: could not write events to the store ({e}); retrying in a second");
        }
    }
}

/// A checkout's place in its pool's line, recorded: `queue` when it
/// joins, `dequeue` when it leaves (served, timed out, or its client
/// gone), whichever way the request ends.
pub(super) struct Waiting<'a> {
    app: &'a App,
    place: Option<Place<'a>>,
    pool: Option<String>,
    client: String,
}

impl<'a> Waiting<'a> {
    /// Joins the end of `pool`'s line for `client`, unless it is full.
    pub(super) fn join(app: &'a App, pool: &Option<String>, client: &str) -> Result<Self, Full> {
        let place = app.queues.join(pool, app.max_queue)?;
        app.record(EventKind::Queue, pool.as_deref(), client, None, None);
        Ok(Waiting {
            app,
            place: Some(place),
            pool: pool.clone(),
            client: client.to_owned(),
        })
    }
}

impl Waiting<'_> {
    /// Woken when the line moves or a seat may be free.
    pub(super) fn moved(&self) -> Arc<tokio::sync::Notify> {
        self.place
            .as_ref()
            .map(|p| Arc::clone(&p.moved))
            .unwrap_or_default()
    }

    /// Whether this place is at the head of its line.
    pub(super) fn is_head(&self) -> bool {
        self.place.as_ref().is_some_and(Place::is_head)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // Left first, so that the count recorded no longer holds it.
        drop(self.place.take());
        self.app.record(
            EventKind::Dequeue,
            self.pool.as_deref(),
            &self.client,
            None,
            None,
        );
    }
}

/// Starts the task that flushes `app`'s history once a second, on the
/// blocking pool.
pub(super) fn start(app: &Arc<App>) {
    if !app.history.is_on() {
        return;
    }
    let app = Arc::clone(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported = 0;
        loop {
            tick.tick().await;
            let flushing = Arc::clone(&app);
            let _ = tokio::task::spawn_blocking(move || flushing.flush_history()).await;
            let dropped = app.history.dropped();
            if dropped > reported {
                eprintln!(
                    "history: {} event(s) dropped, the buffer of {MAX_BUFFERED} being full",
                    dropped - reported
                );
                reported = dropped;
            }
        }
    });
}

/// The history routes: the server's table is extended with them.
pub(super) fn table() -> RouteTable<Arc<App>> {
    vec![
        (Method::GET, "/admin/history", get(history_json)),
        (Method::GET, "/admin/history.csv", get(history_csv)),
        (Method::GET, "/admin/events", get(events)),
    ]
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

fn history_off() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "history is off on this server: it was started with --history-days 0, or its store \
         keeps no history",
    )
}

/// `from` and `to` (both inclusive) as Unix seconds: `to` defaults to
/// now, `from` to a day before `to`. Returns `[from, to + 1)`.
fn range(app: &App, from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    let parse = |name: &str, text: &str| {
        Timestamp::parse(text).map(Timestamp::unix).map_err(|e| {
            invalid(format!(
                "`{name}` is not a time: {e}; write it as RFC 3339, like 2026-12-01T00:00:00Z"
            ))
        })
    };
    let to = match to.filter(|t| !t.is_empty()) {
        Some(text) => parse("to", text)?,
        None => app.engine.now().unix(),
    };
    let from = match from.filter(|t| !t.is_empty()) {
        Some(text) => parse("from", text)?,
        None => to.saturating_sub(86_400),
    };
    if from > to {
        return Err(invalid(format!(
            "`from` ({}) is after `to` ({}); swap them",
            Timestamp::from_unix(from),
            Timestamp::from_unix(to)
        )));
    }
    Ok((from, to.saturating_add(1)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    feature: Option<String>,
}

/// The series a history route answers.
async fn series(
    app: &Arc<App>,
    headers: &HeaderMap,
    params: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Vec<crate::store::Point>, ApiError> {
    authorize(app, headers)?;
    let q = query(params)?;
    if !app.history.is_on() {
        return Err(history_off());
    }
    let step_name = q.step.as_deref().unwrap_or("hour");
    let step = Step::parse(step_name).ok_or_else(|| {
        invalid(format!(
            "`step` is `{step_name}`; it is one of minute, hour, day"
        ))
    })?;
    let (from, to) = range(app, q.from.as_deref(), q.to.as_deref())?;
    let points = point_count(from, to, step);
    if points > MAX_POINTS {
        return Err(invalid(format!(
            "this range has {points} points at one a {step_name}; at most {MAX_POINTS} are \
             answered: narrow the range or take a wider step"
        )));
    }
    let feature = q.feature.filter(|f| !f.is_empty());
    let engine = app.engine.clone();
    blocking(move || match engine.history() {
        Some(history) => history.series(feature.as_deref(), from, to, step),
        None => Err(Error::InvalidArgument("this store keeps no history".into())),
    })
    .await
}

async fn history_json(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<SeriesQuery>, QueryRejection>,
) -> Answer {
    let points = series(&app, &headers, params).await?;
    let items: Vec<Value> = points
        .iter()
        .map(|p| {
            json!({
                "at": Timestamp::from_unix(p.at),
                "in_use_peak": p.in_use_peak,
                "denials": p.denials,
                "queued_peak": p.queued_peak,
            })
        })
        .collect();
    ok(json!({ "items": items }))
}

async fn history_csv(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<SeriesQuery>, QueryRejection>,
) -> Answer {
    let points = series(&app, &headers, params).await?;
    let mut text = String::with_capacity(40 * (points.len() + 1));
    text.push_str("at,in_use_peak,denials,queued_peak\n");
    for p in &points {
        text.push_str(&format!(
            "{},{},{},{}\n",
            Timestamp::from_unix(p.at),
            p.in_use_peak,
            p.denials,
            p.queued_peak
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<EventsQuery>, QueryRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let q = query(params)?;
    if !app.history.is_on() {
        return Err(history_off());
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(invalid(format!(
            "`limit` is {limit}; it is 1 to {MAX_EVENTS_PAGE}"
        )));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(text) => Some(EventCursor::parse(text).ok_or_else(|| {
            invalid("`cursor` is not one this server gave: pass `next_cursor` as it came")
        })?),
        None => None,
    };
    let (from, to) = range(&app, q.from.as_deref(), q.to.as_deref())?;
    let engine = app.engine.clone();
    let page = blocking(move || match engine.history() {
        Some(history) => history.events(from, to, cursor, limit),
        None => Err(Error::InvalidArgument("this store keeps no history".into())),
    })
    .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|stored| {
            let e = &stored.event;
            json!({
                "id": stored.id,
                "at": Timestamp::from_unix(e.at),
                "kind": e.kind.as_str(),
                "feature": e.feature,
                "client": e.client,
                "lease_id": e.lease_id,
                "reason": e.reason,
                "in_use": e.in_use,
                "queued": e.queued,
            })
        })
        .collect();
    ok(json!({
        "items": items,
        "next_cursor": page.next_cursor.map(EventCursor::to_text),
    }))
}
