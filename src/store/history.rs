//! The license server's history (docs/http.md#history): what happened to
//! its floating pools, kept apart from the engine's state.
//!
//! Events are many (one a second is 7.8 million in 90 days), so they are
//! never part of [`Persisted`](super::Persisted) nor read by
//! [`Store::load`](super::Store::load): a store that keeps history answers
//! [`Store::history`](super::Store::history) with a [`History`] of its own,
//! which appends events in batches, answers range queries and forgets what
//! is older than the retention.
//!
//! Each batch also merges into per-minute buckets (a pool's peak seats in
//! use, its denials, its peak queue, and its level after the minute's last
//! event), so that a series over 90 days reads at most 129,600 small rows
//! rather than millions of events. Buckets merge, never overwrite
//! (peaks by `MAX`, denials by `SUM`, the level by the latest event):
//! several servers sharing one PostgreSQL namespace write the same minutes.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// What happened to a pool.
///
/// ```
/// use entitle::store::EventKind;
/// assert_eq!(EventKind::ForceRelease.as_str(), "force_release");
/// assert_eq!(EventKind::parse("deny"), Some(EventKind::Deny));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A lease was taken (or renewed by checking out again).
    Checkout,
    /// A lease was checked in.
    Checkin,
    /// A lease lapsed without a check-in.
    Expiry,
    /// A checkout was refused (with the reason's code).
    Deny,
    /// A checkout joined the pool's queue.
    Queue,
    /// A checkout left the queue (served, timed out or gone).
    Dequeue,
    /// An administrator freed a lease.
    ForceRelease,
    /// A lease was borrowed (taken off the network).
    Borrow,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 8] = [
        EventKind::Checkout,
        EventKind::Checkin,
        EventKind::Expiry,
        EventKind::Deny,
        EventKind::Queue,
        EventKind::Dequeue,
        EventKind::ForceRelease,
        EventKind::Borrow,
    ];

    /// Its name, as stored and answered.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Checkout => "checkout",
            EventKind::Checkin => "checkin",
            EventKind::Expiry => "expiry",
            EventKind::Deny => "deny",
            EventKind::Queue => "queue",
            EventKind::Dequeue => "dequeue",
            EventKind::ForceRelease => "force_release",
            EventKind::Borrow => "borrow",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One event, as recorded.
///
/// ```
/// use entitle::store::{EventKind, HistoryEvent};
/// let event = HistoryEvent::new(1_700_000_000, EventKind::Checkout, None, "desk-1")
///     .lease("l-1")
///     .counts(3, 0);
/// assert_eq!(event.in_use, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryEvent {
    /// When (Unix seconds).
    pub at: i64,
    /// What.
    pub kind: EventKind,
    /// The pool: a feature's own, or `None` for the license-level pool.
    pub feature: Option<String>,
    /// The client concerned.
    pub client: String,
    /// The lease concerned, when there is one.
    pub lease_id: Option<String>,
    /// Why a checkout was refused (an error code), for [`EventKind::Deny`].
    pub reason: Option<String>,
    /// Seats of the pool in use after the event.
    pub in_use: u32,
    /// Checkouts waiting for the pool after the event.
    pub queued: u32,
}

impl HistoryEvent {
    /// An event of `kind` at `at` (Unix seconds) in `feature`'s pool, for
    /// `client`, with no lease, no reason and counts of zero.
    pub fn new(at: i64, kind: EventKind, feature: Option<&str>, client: &str) -> Self {
        HistoryEvent {
            at,
            kind,
            feature: feature.map(str::to_owned),
            client: client.to_owned(),
            lease_id: None,
            reason: None,
            in_use: 0,
            queued: 0,
        }
    }

    /// The same event about lease `id`.
    pub fn lease(mut self, id: &str) -> Self {
        self.lease_id = Some(id.to_owned());
        self
    }

    /// The same event with the reason `code` (a denial's).
    pub fn reason(mut self, code: &str) -> Self {
        self.reason = Some(code.to_owned());
        self
    }

    /// The same event with the pool's counts after it.
    pub fn counts(mut self, in_use: u32, queued: u32) -> Self {
        self.in_use = in_use;
        self.queued = queued;
        self
    }
}

/// An event as stored: with the sequence number the store gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredEvent {
    /// The store's number for it: increasing in the order events were
    /// stored.
    pub id: i64,
    /// The event.
    pub event: HistoryEvent,
}

/// A page of events and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventPage {
    /// The events, by time and then by id.
    pub items: Vec<StoredEvent>,
    /// Where the next page starts (`None`: this was the last).
    pub next_cursor: Option<EventCursor>,
}

/// A place in the events, after which a page starts: the time and id of
/// the last event of the page before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    /// The last event's time (Unix seconds).
    pub at: i64,
    /// The last event's id.
    pub id: i64,
}

impl EventCursor {
    /// As text, for a URL: `AT.ID`.
    ///
    /// ```
    /// use entitle::store::EventCursor;
    /// let cursor = EventCursor { at: 1_700_000_000, id: 7 };
    /// assert_eq!(EventCursor::parse(&cursor.to_text()), Some(cursor));
    /// assert_eq!(EventCursor::parse("seven"), None);
    /// ```
    pub fn to_text(self) -> String {
        format!("{}.{}", self.at, self.id)
    }

    /// The cursor written as `AT.ID`, if `text` is one.
    pub fn parse(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('.')?;
        Some(EventCursor {
            at: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// One minute of one pool, as kept.
///
/// ```
/// use entitle::store::MinuteBucket;
/// let bucket = MinuteBucket::new(None, 1_700_000_040).in_use(4).denials(2);
/// assert_eq!(bucket.minute, 1_700_000_040 - 1_700_000_040 % 60);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinuteBucket {
    /// The pool (`None`: the license-level pool).
    pub feature: Option<String>,
    /// The minute's first second (Unix seconds, a multiple of 60).
    pub minute: i64,
    /// The most seats in use after any event of the minute.
    pub in_use_peak: u32,
    /// Checkouts refused in the minute.
    pub denials: u64,
    /// The longest queue after any event of the minute.
    pub queued_peak: u32,
    /// When the minute's last event was (Unix seconds).
    pub last_at: i64,
    /// Seats in use after the minute's last event: the level the pool
    /// stays at until its next event.
    pub in_use_last: u32,
    /// The queue after the minute's last event.
    pub queued_last: u32,
}

impl MinuteBucket {
    /// An empty bucket of the minute holding `at`.
    pub fn new(feature: Option<&str>, at: i64) -> Self {
        MinuteBucket {
            feature: feature.map(str::to_owned),
            minute: at - at.rem_euclid(60),
            in_use_peak: 0,
            denials: 0,
            queued_peak: 0,
            last_at: at,
            in_use_last: 0,
            queued_last: 0,
        }
    }

    /// The same bucket with `n` seats in use at its peak and at its end.
    pub fn in_use(mut self, n: u32) -> Self {
        self.in_use_peak = n;
        self.in_use_last = n;
        self
    }

    /// The same bucket with `n` denials.
    pub fn denials(mut self, n: u64) -> Self {
        self.denials = n;
        self
    }

    /// The same bucket with `n` waiting at its peak and at its end.
    pub fn queued(mut self, n: u32) -> Self {
        self.queued_peak = n;
        self.queued_last = n;
        self
    }

    /// `other` (the same pool and minute) merged into this one, as every
    /// store merges: peaks by maximum, denials by sum, the level by the
    /// later last event.
    pub fn merge(&mut self, other: &MinuteBucket) {
        self.in_use_peak = self.in_use_peak.max(other.in_use_peak);
        self.queued_peak = self.queued_peak.max(other.queued_peak);
        self.denials = self.denials.saturating_add(other.denials);
        if other.last_at >= self.last_at {
            self.last_at = other.last_at;
            self.in_use_last = other.in_use_last;
            self.queued_last = other.queued_last;
        }
    }
}

/// The buckets a batch of events makes, one per pool and minute (events
/// in the order they happened, as a recorder appends them).
///
/// ```
/// use entitle::store::{minute_buckets, EventKind, HistoryEvent};
/// let events = [
///     HistoryEvent::new(60, EventKind::Checkout, None, "a").counts(1, 0),
///     HistoryEvent::new(61, EventKind::Deny, None, "b").counts(1, 0),
///     HistoryEvent::new(62, EventKind::Checkin, None, "a").counts(0, 0),
/// ];
/// let buckets = minute_buckets(&events);
/// assert_eq!(buckets.len(), 1);
/// assert_eq!((buckets[0].in_use_peak, buckets[0].denials, buckets[0].in_use_last), (1, 1, 0));
/// ```
pub fn minute_buckets(events: &[HistoryEvent]) -> Vec<MinuteBucket> {
    let mut buckets: BTreeMap<(Option<&str>, i64), MinuteBucket> = BTreeMap::new();
    for event in events {
        let mut one = MinuteBucket::new(event.feature.as_deref(), event.at)
            .in_use(event.in_use)
            .queued(event.queued);
        if event.kind == EventKind::Deny {
            one.denials = 1;
        }
        buckets
            .entry((event.feature.as_deref(), one.minute))
            .and_modify(|b| b.merge(&one))
            .or_insert(one);
    }
    buckets.into_values().collect()
}

/// The width of a series' points.
///
/// ```
/// use entitle::store::Step;
/// assert_eq!(Step::parse("hour").map(Step::secs), Some(3600));
/// assert_eq!(Step::parse("week"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// One point a minute.
    Minute,
    /// One point an hour.
    Hour,
    /// One point a day (UTC).
    Day,
}

impl Step {
    /// The step named `name` (`minute`, `hour`, `day`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "minute" => Some(Step::Minute),
            "hour" => Some(Step::Hour),
            "day" => Some(Step::Day),
            _ => None,
        }
    }

    /// Its width in seconds.
    pub const fn secs(self) -> i64 {
        match self {
            Step::Minute => 60,
            Step::Hour => 3600,
            Step::Day => 86_400,
        }
    }
}

/// The most points one series may have: a query asking for more is
/// refused, so that every answer is bounded work.
pub const MAX_POINTS: i64 = 10_000;

/// One point of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Point {
    /// The point's first second (Unix seconds, a multiple of the step).
    pub at: i64,
    /// The most seats in use at any time in it.
    pub in_use_peak: u32,
    /// Checkouts refused in it.
    pub denials: u64,
    /// The longest queue at any time in it.
    pub queued_peak: u32,
}

/// The points of a series over `[from, to)` (`from` rounded down to the
/// step), one per step, with none missing.
///
/// `before` is the last bucket before the range, if any: the level the
/// pool entered the range at. `buckets` are the range's, by minute. A
/// point's peak counts the level it started at, so a pool that held five
/// seats all day without an event reads five, not zero.
///
/// ```
/// use entitle::store::{series, MinuteBucket, Step};
/// let before = MinuteBucket::new(None, 0).in_use(5);
/// let points = series(Some(&before), &[], 3600, 3 * 3600, Step::Hour);
/// assert_eq!(points.len(), 2);
/// assert!(points.iter().all(|p| p.in_use_peak == 5));
/// ```
pub fn series(
    before: Option<&MinuteBucket>,
    buckets: &[MinuteBucket],
    from: i64,
    to: i64,
    step: Step,
) -> Vec<Point> {
    let width = step.secs();
    let start = from - from.rem_euclid(width);
    let mut level = before.map_or((0, 0), |b| (b.in_use_last, b.queued_last));
    let mut points = Vec::new();
    let mut next = buckets.iter().peekable();
    let mut at = start;
    while at < to {
        let end = at.saturating_add(width);
        let mut point = Point {
            at,
            in_use_peak: level.0,
            denials: 0,
            queued_peak: level.1,
        };
        while let Some(bucket) = next.next_if(|b| b.minute < end) {
            if bucket.minute < at {
                continue;
            }
            point.in_use_peak = point.in_use_peak.max(bucket.in_use_peak);
            point.queued_peak = point.queued_peak.max(bucket.queued_peak);
            point.denials = point.denials.saturating_add(bucket.denials);
            level = (bucket.in_use_last, bucket.queued_last);
        }
        points.push(point);
        at = end;
    }
    points
}

/// How many points a series over `[from, to)` with `step` has.
///
/// ```
/// use entitle::store::{point_count, Step};
/// assert_eq!(point_count(0, 86_400, Step::Hour), 24);
/// assert_eq!(point_count(30, 90, Step::Minute), 2);
/// ```
pub fn point_count(from: i64, to: i64, step: Step) -> i64 {
    let width = step.secs();
    let start = from - from.rem_euclid(width);
    if to <= start {
        return 0;
    }
    (to - start + width - 1) / width
}

/// A store's history: events appended in batches, merged into minute
/// buckets, queried by range, pruned by age. Calls may block (disk or
/// network): a server makes them off its request path.
///
/// ```
/// use entitle::store::{EventKind, HistoryEvent, MemoryStore, Step, Store};
/// let store = MemoryStore::new();
/// let history = store.history().expect("the memory store keeps history");
/// history.append(&[HistoryEvent::new(120, EventKind::Checkout, None, "a").counts(1, 0)])?;
/// let points = history.series(None, 0, 240, Step::Minute)?;
/// assert_eq!(points.iter().map(|p| p.in_use_peak).collect::<Vec<_>>(), [0, 0, 1, 1]);
/// # Ok::<(), entitle::Error>(())
/// ```
pub trait History: Send + Sync {
    /// Stores `events` and merges their minute buckets, in one
    /// transaction.
    fn append(&self, events: &[HistoryEvent]) -> Result<()>;

    /// Merges `buckets` into those kept (what [`History::append`] does
    /// with the buckets of its events).
    fn merge_buckets(&self, buckets: &[MinuteBucket]) -> Result<()>;

    /// The minute buckets of `feature`'s pool in `[from, to)`, by minute,
    /// and the last one before `from`.
    fn buckets(
        &self,
        feature: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<(Option<MinuteBucket>, Vec<MinuteBucket>)>;

    /// Up to `limit` events with `from <= at < to`, after `cursor`, by
    /// time and then id.
    fn events(
        &self,
        from: i64,
        to: i64,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> Result<EventPage>;

    /// Forgets events and buckets before `before` (Unix seconds); how
    /// many rows went.
    fn prune(&self, before: i64) -> Result<u64>;

    /// The series of `feature`'s pool over `[from, to)` by `step`
    /// ([`series`]); more than [`MAX_POINTS`] points is refused.
    fn series(&self, feature: Option<&str>, from: i64, to: i64, step: Step) -> Result<Vec<Point>> {
        let count = point_count(from, to, step);
        if count > MAX_POINTS {
            return Err(Error::InvalidArgument(format!(
                "this range has {count} points at one a {}; at most {MAX_POINTS} are answered: \
                 narrow the range or take a wider step",
                match step {
                    Step::Minute => "minute",
                    Step::Hour => "hour",
                    Step::Day => "day",
                }
            )));
        }
        let width = step.secs();
        let start = from - from.rem_euclid(width);
        let (before, buckets) = self.buckets(feature, start, to)?;
        Ok(series(before.as_ref(), &buckets, start, to, step))
    }
}

/// The pool as a bucket key: the license-level pool is the empty string
/// (no feature code is empty).
pub(crate) fn pool_key(feature: Option<&str>) -> &str {
    feature.unwrap_or("")
}

/// The pool a bucket key names.
pub(crate) fn pool_of_key(key: String) -> Option<String> {
    (!key.is_empty()).then_some(key)
}

/// Events a page asks for, plus one to know whether another page follows.
pub(crate) fn page_of(mut rows: Vec<StoredEvent>, limit: usize) -> EventPage {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|e| EventCursor {
            at: e.event.at,
            id: e.id,
        })
    } else {
        None
    };
    EventPage {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_without_events_keeps_the_level_of_the_one_before() {
        let buckets = [
            MinuteBucket::new(None, 60).in_use(2),
            MinuteBucket::new(None, 180).in_use(1).denials(3),
        ];
        let points = series(None, &buckets, 0, 300, Step::Minute);
        let peaks: Vec<u32> = points.iter().map(|p| p.in_use_peak).collect();
        assert_eq!(peaks, [0, 2, 2, 2, 1]);
        assert_eq!(points.iter().map(|p| p.denials).sum::<u64>(), 3);
    }

    #[test]
    fn merging_is_max_sum_and_latest_level_in_any_order() {
        let a = MinuteBucket::new(None, 10).in_use(5).denials(1);
        let mut b = MinuteBucket::new(None, 50).in_use(2).denials(2);
        b.in_use_peak = 3;
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!((ab.in_use_peak, ab.denials, ab.in_use_last), (5, 3, 2));
    }
}
