//! A store that keeps nothing: the engine's memory is the state.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use std::collections::BTreeMap;

use crate::error::Result;
use crate::store::history::{page_of, pool_key};
use crate::store::{
    minute_buckets, Change, EventCursor, EventPage, History, HistoryEvent, MinuteBucket, Persisted,
    Store, StoredEvent, Transaction,
};

/// A store for tests, simulations and engines that need no durability.
/// Everything is lost when the engine is dropped. One engine (and its
/// clones) per store.
///
/// ```
/// use entitle::store::{MemoryStore, Store};
/// let store = MemoryStore::new();
/// assert_eq!(store.generation().unwrap(), 0);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    generation: AtomicU64,
    writer: Mutex<()>,
    history: Mutex<MemoryHistory>,
}

/// The history a memory store keeps (lost with it, as its state is).
#[derive(Debug, Default)]
struct MemoryHistory {
    /// By (time, id).
    events: BTreeMap<(i64, i64), HistoryEvent>,
    next_id: i64,
    /// By (pool key, minute).
    buckets: BTreeMap<(String, i64), MinuteBucket>,
}

impl MemoryHistory {
    fn merge(&mut self, bucket: &MinuteBucket) {
        self.buckets
            .entry((
                pool_key(bucket.feature.as_deref()).to_owned(),
                bucket.minute,
            ))
            .and_modify(|b| b.merge(bucket))
            .or_insert_with(|| bucket.clone());
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl History for MemoryStore {
    fn append(&self, events: &[HistoryEvent]) -> Result<()> {
        let mut history = self.history.lock();
        for event in events {
            history.next_id += 1;
            let id = history.next_id;
            history.events.insert((event.at, id), event.clone());
        }
        for bucket in minute_buckets(events) {
            history.merge(&bucket);
        }
        Ok(())
    }

    fn merge_buckets(&self, buckets: &[MinuteBucket]) -> Result<()> {
        let mut history = self.history.lock();
        for bucket in buckets {
            history.merge(bucket);
        }
        Ok(())
    }

    fn buckets(
        &self,
        feature: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<(Option<MinuteBucket>, Vec<MinuteBucket>)> {
        let history = self.history.lock();
        let pool = pool_key(feature).to_owned();
        let before = history
            .buckets
            .range((pool.clone(), i64::MIN)..(pool.clone(), from))
            .next_back()
            .map(|(_, b)| b.clone());
        let within = if from < to {
            history
                .buckets
                .range((pool.clone(), from)..(pool, to))
                .map(|(_, b)| b.clone())
                .collect()
        } else {
            Vec::new()
        };
        Ok((before, within))
    }

    fn events(
        &self,
        from: i64,
        to: i64,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> Result<EventPage> {
        let history = self.history.lock();
        let start = match cursor {
            Some(c) if (c.at, c.id) >= (from, i64::MIN) => (c.at, c.id.saturating_add(1)),
            _ => (from, i64::MIN),
        };
        let rows = history
            .events
            .range(start..)
            .take_while(|((at, _), _)| *at < to)
            .take(limit.saturating_add(1))
            .map(|((_, id), event)| StoredEvent {
                id: *id,
                event: event.clone(),
            })
            .collect();
        Ok(page_of(rows, limit))
    }

    fn prune(&self, before: i64) -> Result<u64> {
        let mut history = self.history.lock();
        let kept_events = history.events.split_off(&(before, i64::MIN));
        let mut gone = history.events.len();
        history.events = kept_events;
        let old = history.buckets.len();
        history.buckets.retain(|_, b| b.minute >= before);
        gone += old - history.buckets.len();
        Ok(gone as u64)
    }
}

impl Store for MemoryStore {
    fn history(&self) -> Option<&dyn History> {
        Some(self)
    }

    fn generation(&self) -> Result<u64> {
        Ok(self.generation.load(Ordering::Acquire))
    }

    fn load(&self) -> Result<(u64, Persisted)> {
        Ok((self.generation()?, Persisted::default()))
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        let guard = self.writer.lock();
        Ok(Box::new(MemoryTransaction {
            store: self,
            start: self.generation.load(Ordering::Acquire),
            _guard: guard,
        }))
    }
}

struct MemoryTransaction<'a> {
    store: &'a MemoryStore,
    start: u64,
    _guard: MutexGuard<'a, ()>,
}

impl Transaction for MemoryTransaction<'_> {
    fn generation(&self) -> u64 {
        self.start
    }

    fn load(&mut self) -> Result<Persisted> {
        Ok(Persisted::default())
    }

    fn write(&mut self, _changes: &[Change]) -> Result<()> {
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<u64> {
        let next = self.start + 1;
        self.store.generation.store(next, Ordering::Release);
        Ok(next)
    }
}
