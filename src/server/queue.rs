//! Checkouts waiting for a seat: one first-come, first-served line per
//! pool, bounded.
//!
//! Only the head of a line tries the engine; the others wait to move up.
//! A seat freed by a check-in wakes every line (the server does not know
//! which pool a lease id drew on without asking the engine); a seat freed
//! by a lease lapsing is found by the head when it retries at the
//! `retry_at` the engine gave it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The lines, by the pool a checkout draws on (a feature's own, or the
/// license-level pool: `None`).
#[derive(Default)]
pub(crate) struct Queues {
    lines: Mutex<HashMap<Option<String>, Line>>,
    next_ticket: AtomicU64,
}

#[derive(Default)]
struct Line {
    waiting: VecDeque<u64>,
    moved: Arc<Notify>,
}

/// A place in a line, left when dropped (the request finished, timed
/// out, or its client went away).
pub(crate) struct Place<'a> {
    queues: &'a Queues,
    pool: Option<String>,
    ticket: u64,
    /// Woken when the line moves or a seat may be free.
    pub(crate) moved: Arc<Notify>,
}

/// The line is full.
pub(crate) struct Full;

impl Queues {
    /// How many wait for `pool`.
    pub(crate) fn len(&self, pool: &Option<String>) -> usize {
        self.lines.lock().get(pool).map_or(0, |l| l.waiting.len())
    }

    /// The length of every line, for the metrics.
    pub(crate) fn lengths(&self) -> Vec<(Option<String>, usize)> {
        self.lines
            .lock()
            .iter()
            .map(|(pool, line)| (pool.clone(), line.waiting.len()))
            .collect()
    }

    /// Joins the end of `pool`'s line, unless `max` already wait there.
    pub(crate) fn join(&self, pool: &Option<String>, max: usize) -> Result<Place<'_>, Full> {
        let mut lines = self.lines.lock();
        let line = lines.entry(pool.clone()).or_default();
        if line.waiting.len() >= max {
            return Err(Full);
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        line.waiting.push_back(ticket);
        Ok(Place {
            queues: self,
            pool: pool.clone(),
            ticket,
            moved: Arc::clone(&line.moved),
        })
    }

    /// Wakes every waiter: a seat may be free.
    pub(crate) fn seat_freed(&self) {
        for line in self.lines.lock().values() {
            line.moved.notify_waiters();
        }
    }
}

impl Place<'_> {
    /// Whether this place is at the head of its line.
    pub(crate) fn is_head(&self) -> bool {
        self.queues
            .lines
            .lock()
            .get(&self.pool)
            .and_then(|l| l.waiting.front().copied())
            == Some(self.ticket)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut lines = self.queues.lines.lock();
        if let Some(line) = lines.get_mut(&self.pool) {
            line.waiting.retain(|t| *t != self.ticket);
            // The next in line may be the head now.
            line.moved.notify_waiters();
            if line.waiting.is_empty() {
                lines.remove(&self.pool);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Join(usize),
        Leave(usize),
    }

    proptest! {
        /// Against a plain list: the head of each line is always the
        /// earliest place still in it, a full line refuses, and leaving
        /// (served, timed out, gone) never reorders the rest.
        #[test]
        fn lines_keep_first_come_first_served_order(
            ops in prop::collection::vec(prop_oneof![
                (0usize..2).prop_map(Op::Join),
                (0usize..8).prop_map(Op::Leave),
            ], 1..80)
        ) {
            const MAX: usize = 4;
            let queues = Queues::default();
            let pools = [None, Some("cad".to_owned())];
            let mut places: Vec<(usize, Place<'_>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Join(pool) => {
                        let waiting = places.iter().filter(|(p, _)| *p == pool).count();
                        match queues.join(&pools[pool], MAX) {
                            Ok(place) => {
                                prop_assert!(waiting < MAX);
                                places.push((pool, place));
                            }
                            Err(Full) => prop_assert_eq!(waiting, MAX),
                        }
                    }
                    Op::Leave(i) => {
                        if i < places.len() {
                            places.remove(i);
                        }
                    }
                }
                for (pool, key) in pools.iter().enumerate() {
                    let mine: Vec<&Place<'_>> =
                        places.iter().filter(|(p, _)| *p == pool).map(|(_, pl)| pl).collect();
                    prop_assert_eq!(queues.len(key), mine.len());
                    for (n, place) in mine.iter().enumerate() {
                        prop_assert_eq!(place.is_head(), n == 0);
                    }
                }
            }
        }
    }
}
