//! Announcing commits to other processes: the `NOTIFY` that tells their
//! listeners a namespace moved on, at most one per namespace per
//! [`ANNOUNCE_EVERY`] from each store.
//!
//! A notification costs the server as much as a fifth of a one-row commit
//! (`examples/pg_store_sql.rs`, `benches/pg.rs`): the queue it goes
//! through is shared, and every listening backend is woken to read it.
//! A store writing in a loop has no need to announce each commit: the
//! generation a notification carries covers every commit before it. So a
//! commit carries its notification only if none was sent in the last
//! [`ANNOUNCE_EVERY`]; the others are announced together at the end of
//! that period, by the pool's scheduler thread, and when the store is
//! dropped (a command-line run ends). Other engines see a change within
//! that period and a round trip, and a process that dies before it
//! announces is covered by the listeners' poll (once a second).
//!
//! Limits never depend on notifications: a writer either reads under the
//! namespace's lock or commits only from the generation it planned on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::database::Database;

/// How often a store announces its commits at most, per namespace.
pub(super) const ANNOUNCE_EVERY: Duration = Duration::from_millis(100);

/// What one store has announced, and what it has yet to.
#[derive(Debug)]
pub(super) struct Announcer {
    namespace: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When a notification was last sent, or is being sent with a commit.
    last_sent: Option<Instant>,
    /// The latest generation committed and not yet announced.
    unannounced: Option<u64>,
    /// A job to announce it is scheduled.
    scheduled: bool,
}

impl Announcer {
    pub(super) fn new(namespace: &str) -> Arc<Self> {
        Arc::new(Announcer {
            namespace: namespace.to_owned(),
            state: Mutex::new(State::default()),
        })
    }

    /// The payload of a notification that the namespace reached
    /// `generation`: `"<generation> <namespace>"`.
    pub(super) fn payload(&self, generation: u64) -> String {
        format!("{generation} {}", self.namespace)
    }

    /// Whether the commit about to be sent should carry its notification:
    /// yes unless one was sent in the last [`ANNOUNCE_EVERY`] (then call
    /// [`Announcer::later`] once it has committed).
    pub(super) fn with_commit(&self) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock();
        let due = state
            .last_sent
            .is_none_or(|sent| now.duration_since(sent) >= ANNOUNCE_EVERY);
        if due {
            state.last_sent = Some(now);
        }
        due
    }

    /// A commit reached `generation` without a notification: announces it
    /// at the end of the period, with any others committed meanwhile.
    pub(super) fn later(self: &Arc<Self>, database: &Arc<Database>, generation: u64) {
        let mut state = self.state.lock();
        state.unannounced = state.unannounced.max(Some(generation));
        if state.scheduled {
            return;
        }
        state.scheduled = true;
        let due = state.last_sent.map_or(Duration::ZERO, |sent| {
            (sent + ANNOUNCE_EVERY).saturating_duration_since(Instant::now())
        });
        drop(state);
        let (announcer, on) = (Arc::clone(self), Arc::clone(database));
        database.schedule(due, move || announcer.flush(&on, false));
    }

    /// Sends the announcement pending, if any. On the scheduler's thread
    /// (`waiting` false) only an idle connection is used: that thread is
    /// also the one that makes new connections. A failure is left to the
    /// listeners' poll.
    pub(super) fn flush(&self, database: &Database, waiting: bool) {
        let generation = {
            let mut state = self.state.lock();
            state.scheduled = false;
            state.unannounced.take()
        };
        if let Some(generation) = generation {
            if database.notify(&self.payload(generation), waiting) {
                self.state.lock().last_sent = Some(Instant::now());
            }
        }
    }
}
