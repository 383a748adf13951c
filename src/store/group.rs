//! Group commit: concurrent writers share one commit and one fsync.
//!
//! Each mutation joins the open batch, then waits here until a round (a
//! commit of the batch and an fsync) covers it. The first caller that
//! finds nothing left to wait for leads the round for everyone in the
//! batch; the others wait for it to end. This module decides *when* a
//! round starts and who waits for what; the store says what a round does.
//!
//! When to start is the whole game with several callers in a loop: a round
//! started the moment the last one ends covers only the callers that
//! waited through the last round, the ones it released join the round
//! after, and the two halves alternate, half of the callers per fsync. So
//! a round waits, briefly and boundedly, for the mutations under way and
//! for the callers the last round released ([`gather_until`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a round waits at most for mutations under way to join its
/// batch (from when the last round ended, or the caller arrived if later).
/// Only a mutation that is slow or stuck lasts this long: otherwise the
/// last one to arrive leads the round, and one that fails says so.
pub(crate) const GATHER_FOR: Duration = Duration::from_millis(1);

/// How long after a round ends the next one waits at most for the callers
/// it released to come back with their next mutation, while fewer have
/// than it had: long enough to wake and make one, short beside an fsync.
pub(crate) const REJOIN_FOR: Duration = Duration::from_micros(100);

/// What a caller that finds no round under way knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lull {
    /// Now.
    pub now: Instant,
    /// When the caller started waiting.
    pub arrived: Instant,
    /// When the last round ended, if one has.
    pub ended_at: Option<Instant>,
    /// A round ended since the caller arrived without covering it.
    pub passed_over: bool,
    /// Other mutations started and not yet in the batch.
    pub under_way: usize,
    /// Mutations in the open batch.
    pub batched: usize,
    /// Mutations the last round covered.
    pub last_round: usize,
}

/// `None` if the caller should lead a round now, or until when it should
/// wait for others to join the batch first, so that one commit and one
/// fsync cover them all. A caller alone (nothing under way, no more
/// callers than the batch holds came through the last round) leads at
/// once: a single writer never waits.
///
/// ```text
/// under way > 0                     -> wait until max(ended, arrived) + GATHER_FOR
/// passed over, or batched < last    -> wait until ended + REJOIN_FOR
/// otherwise                         -> lead
/// ```
pub(crate) fn gather_until(lull: Lull) -> Option<Instant> {
    let ended = lull.ended_at.unwrap_or(lull.arrived);
    let until = if lull.under_way > 0 {
        ended.max(lull.arrived) + GATHER_FOR
    } else if lull.passed_over || lull.batched < lull.last_round {
        ended + REJOIN_FOR
    } else {
        return None;
    };
    (lull.now < until).then_some(until)
}

/// The group commit's shared state; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    /// A std mutex and condvar: their `notify_all` wakes every waiter at
    /// once, where parking_lot's hands the lock from one waiter to the
    /// next, a wake-up each, which left released callers too late to
    /// join the next round. Never held during a commit or an fsync.
    rounds: Mutex<Rounds>,
    /// Signalled when a round ends, and when a mutation is abandoned.
    round_ended: Condvar,
    /// Mutations in the open batch.
    batched: AtomicUsize,
    /// Mutations in the last batch committed.
    last_round: AtomicUsize,
}

/// How many rolled-back batches [`Rounds::rolled_back`] remembers: their
/// callers ask right after the batch ends.
const ROLLED_BACK_KEPT: usize = 64;

/// The generation on disk, the latest one a commit or fsync failed to
/// cover, whether a round is under way and when the last one ended.
#[derive(Debug, Default)]
struct Rounds {
    durable: u64,
    failed_through: u64,
    /// The generations the latest batches rolled back handed out, first
    /// and last: never durable, whatever a later round covers (a caller
    /// may look only after the next batch, from a higher generation, has
    /// committed).
    rolled_back: VecDeque<(u64, u64)>,
    /// The highest generation a caller has waited for.
    highest: u64,
    in_progress: bool,
    ended_at: Option<Instant>,
}

/// Why [`GroupCommit::sync`] could not say a commit is durable.
#[derive(Debug)]
pub(crate) enum Unsynced {
    /// This caller's round failed, with this error.
    Failed(Error),
    /// Another caller's round covering this commit failed.
    Covered,
}

impl GroupCommit {
    /// A mutation joined the open batch, which now holds `mutations`.
    pub fn joined(&self, mutations: usize) {
        self.batched.store(mutations, Ordering::Release);
    }

    /// The open batch, of `mutations`, was committed.
    pub fn batch_committed(&self, mutations: usize) {
        self.last_round.store(mutations, Ordering::Release);
        self.batched.store(0, Ordering::Release);
    }

    /// Every generation up to `generation` failed: never durable.
    pub fn fail_through(&self, generation: u64) {
        let mut rounds = self.lock();
        rounds.failed_through = rounds.failed_through.max(generation);
    }

    /// The batch that handed out `first..=last` was rolled back: those
    /// generations failed, and are never taken for durable.
    pub fn rolled_back(&self, first: u64, last: u64) {
        let mut rounds = self.lock();
        rounds.failed_through = rounds.failed_through.max(last);
        if rounds.rolled_back.len() == ROLLED_BACK_KEPT {
            rounds.rolled_back.pop_front();
        }
        rounds.rolled_back.push_back((first, last));
    }

    /// Whether `generation` was handed out by a batch that was rolled back
    /// (of the latest [`ROLLED_BACK_KEPT`]).
    pub fn was_rolled_back(&self, generation: u64) -> bool {
        self.lock().was_rolled_back(generation)
    }

    /// A mutation counted as under way ended without joining the batch:
    /// callers waiting for it need not wait any longer.
    pub fn abandoned(&self) {
        // Under the lock, so that a caller between looking at the count
        // and waiting cannot miss it.
        drop(self.lock());
        self.round_ended.notify_all();
    }

    /// Returns once `generation` is durable. If no round is under way and
    /// none should be waited for, this caller leads one: `round` commits
    /// the batch and fsyncs, returning the generation its fsync covers and
    /// whether it succeeded. A failure is reported, never retried: after a
    /// failed fsync the kernel may have dropped the pages, and a second one
    /// could succeed without them. Every commit a failed round covered
    /// fails with it.
    pub fn sync(
        &self,
        generation: u64,
        under_way: &AtomicUsize,
        round: impl FnOnce() -> (u64, Result<()>),
    ) -> std::result::Result<(), Unsynced> {
        let arrived = Instant::now();
        let mut rounds = self.lock();
        rounds.highest = rounds.highest.max(generation);
        let mut passed_over = false;
        loop {
            if rounds.was_rolled_back(generation) {
                return Err(Unsynced::Covered);
            }
            if rounds.durable >= generation {
                return Ok(());
            }
            if generation <= rounds.failed_through {
                return Err(Unsynced::Covered);
            }
            if rounds.in_progress {
                // Its end covers this commit, or makes way for the round
                // that will.
                rounds = self.wait(rounds, None);
                passed_over = true;
                continue;
            }
            let lull = Lull {
                now: Instant::now(),
                arrived,
                ended_at: rounds.ended_at,
                passed_over,
                under_way: under_way.load(Ordering::Acquire),
                batched: self.batched.load(Ordering::Acquire),
                last_round: self.last_round.load(Ordering::Acquire),
            };
            match gather_until(lull) {
                // Others will join: the last of them to arrive leads the
                // round, or this caller when time is up.
                Some(until) => rounds = self.wait(rounds, Some(until)),
                None => break,
            }
        }
        rounds.in_progress = true;
        // The commit and the fsync run without the lock: callers arriving
        // meanwhile wait for the round to end, all woken at once when it
        // does.
        drop(rounds);
        // Should the round panic, it ends as a failed one, so that the
        // callers waiting for it are not left waiting for ever.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(round));
        let (covered, result) = match outcome {
            Ok(ended) => ended,
            Err(panic) => {
                // What it covered is unknown: every caller waiting so far.
                self.end_round(None, false);
                std::panic::resume_unwind(panic);
            }
        };
        self.end_round(Some(covered), result.is_ok());
        match result {
            // The batch this commit was in was rolled back before the
            // round (another writer had moved on): the round committed a
            // later batch, or none.
            Ok(()) if self.was_rolled_back(generation) => Err(Unsynced::Covered),
            Ok(()) => Ok(()),
            Err(e) => Err(Unsynced::Failed(e)),
        }
    }

    /// Ends the round under way: every generation up to `covered` (or
    /// that any caller waited for) is durable, or failed; then wakes every
    /// waiter.
    fn end_round(&self, covered: Option<u64>, durable: bool) {
        let mut rounds = self.lock();
        let covered = covered.unwrap_or(rounds.highest);
        rounds.in_progress = false;
        rounds.ended_at = Some(Instant::now());
        if durable {
            rounds.durable = rounds.durable.max(covered);
        } else {
            rounds.failed_through = rounds.failed_through.max(covered);
        }
        drop(rounds);
        // The callers this round covered return (and may come back with
        // their next mutation, for the next round); those it did not cover
        // decide who leads the next.
        self.round_ended.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Rounds> {
        // The state is plain values that every writer leaves consistent;
        // no code panics while holding it.
        self.rounds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Rounds>,
        until: Option<Instant>,
    ) -> MutexGuard<'a, Rounds> {
        match until {
            None => self
                .round_ended
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner),
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                self.round_ended
                    .wait_timeout(guard, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        }
    }
}

impl Rounds {
    fn was_rolled_back(&self, generation: u64) -> bool {
        self.rolled_back
            .iter()
            .any(|&(first, last)| (first..=last).contains(&generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn lull(at: Instant) -> Lull {
        Lull {
            now: at,
            arrived: at,
            ended_at: None,
            passed_over: false,
            under_way: 0,
            batched: 1,
            last_round: 1,
        }
    }

    #[test]
    fn a_caller_alone_leads_at_once() {
        let t = Instant::now();
        assert_eq!(gather_until(lull(t)), None);
        // Long after a busy round, too.
        let late = Lull {
            ended_at: Some(t),
            now: t + Duration::from_secs(1),
            arrived: t + Duration::from_secs(1),
            last_round: 8,
            ..lull(t)
        };
        assert_eq!(gather_until(late), None);
    }

    #[test]
    fn mutations_under_way_are_waited_for_boundedly() {
        let t = Instant::now();
        let busy = Lull {
            under_way: 3,
            ended_at: Some(t),
            arrived: t + Duration::from_micros(30),
            now: t + Duration::from_micros(50),
            ..lull(t)
        };
        assert_eq!(
            gather_until(busy),
            Some(t + Duration::from_micros(30) + GATHER_FOR)
        );
        let too_long = Lull {
            now: t + Duration::from_micros(30) + GATHER_FOR,
            ..busy
        };
        assert_eq!(gather_until(too_long), None);
    }

    #[test]
    fn released_callers_are_given_a_moment_to_come_back() {
        let t = Instant::now();
        let after_eight = Lull {
            ended_at: Some(t),
            last_round: 8,
            batched: 5,
            now: t + Duration::from_micros(20),
            ..lull(t)
        };
        assert_eq!(gather_until(after_eight), Some(t + REJOIN_FOR));
        // All back: lead.
        assert_eq!(
            gather_until(Lull {
                batched: 8,
                ..after_eight
            }),
            None
        );
        // Not back in time: lead without them.
        let late = Lull {
            now: t + REJOIN_FOR,
            ..after_eight
        };
        assert_eq!(gather_until(late), None);
        // One that waited through a round that left it out waits too.
        let passed = Lull {
            passed_over: true,
            last_round: 1,
            batched: 1,
            ..after_eight
        };
        assert_eq!(gather_until(passed), Some(t + REJOIN_FOR));
    }

    #[test]
    fn one_round_covers_every_caller_waiting_in_it() {
        // Eight callers whose mutations are in the batch: exactly one
        // round runs, and all of them return.
        let group = Arc::new(GroupCommit::default());
        let under_way = Arc::new(AtomicUsize::new(0));
        let rounds = Arc::new(AtomicUsize::new(0));
        group.joined(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (group, under_way, rounds) = (&group, &under_way, &rounds);
                s.spawn(move || {
                    group
                        .sync(8, under_way, || {
                            rounds.fetch_add(1, Ordering::SeqCst);
                            group.batch_committed(8);
                            (8, Ok(()))
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_round_fails_every_commit_it_covered() {
        let group = GroupCommit::default();
        let under_way = AtomicUsize::new(0);
        let failed = group.sync(3, &under_way, || {
            (3, Err(Error::InvalidArgument("disk".into())))
        });
        assert!(matches!(failed, Err(Unsynced::Failed(_))));
        // A later caller for a generation it covered is told so, and no
        // round runs again for it.
        let again = group.sync(2, &under_way, || panic!("no second round"));
        assert!(matches!(again, Err(Unsynced::Covered)));
        // A later generation gets its own round.
        assert!(group.sync(4, &under_way, || (4, Ok(()))).is_ok());
    }

    #[test]
    fn a_rolled_back_commit_is_never_taken_for_durable_by_a_later_round() {
        let group = GroupCommit::default();
        let under_way = AtomicUsize::new(0);
        // A batch that handed out 1 and 2 is rolled back (another writer
        // had moved on), and the next one, from 3, commits before the
        // callers for 1 and 2 look.
        group.rolled_back(1, 2);
        assert!(group.sync(3, &under_way, || (3, Ok(()))).is_ok());
        for generation in [1, 2] {
            assert!(matches!(
                group.sync(generation, &under_way, || panic!("no round")),
                Err(Unsynced::Covered)
            ));
        }
        // A caller that leads a round for a generation rolled back while
        // it waited is not told the round's success either.
        let led = group.sync(4, &under_way, || {
            group.rolled_back(4, 4);
            (5, Ok(()))
        });
        assert!(matches!(led, Err(Unsynced::Covered)));
    }

    #[test]
    fn a_round_that_panics_fails_its_waiters_instead_of_hanging_them() {
        let group = GroupCommit::default();
        let under_way = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let leader = s.spawn(|| group.sync(1, &under_way, || panic!("in the round")));
            assert!(leader.join().is_err(), "the panic reaches its caller");
        });
        // What was waited for failed with it; nothing waits for ever, and
        // later commits get rounds of their own.
        assert!(matches!(
            group.sync(1, &under_way, || panic!("no second round")),
            Err(Unsynced::Covered)
        ));
        assert!(group.sync(2, &under_way, || (2, Ok(()))).is_ok());
    }

    #[test]
    fn a_stuck_mutation_delays_a_round_only_boundedly() {
        // A mutation counted as under way that never joins: the caller
        // still leads its round (after GATHER_FOR), rather than waiting
        // for ever.
        let group = GroupCommit::default();
        let under_way = AtomicUsize::new(1);
        assert!(group.sync(1, &under_way, || (1, Ok(()))).is_ok());
    }
}
