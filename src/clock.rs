//! Time: the injected [`Clock`], and the clocks that come with the crate.
//!
//! No code outside this module reads the system time. The engine asks its
//! clock two ways: [`Clock::now`] for mutations (exact) and
//! [`Clock::now_coarse`] for the hot path, where a clock read must cost
//! next to nothing. An engine on the [`SystemClock`] reads the first from
//! it and the second from the [`CoarseClock`].

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::time::{ParseTimestampError, Timestamp};

/// A source of time, injected into the engine.
///
/// Implement it to drive the engine from your own time source; use
/// [`SystemClock`] in production and [`ManualClock`] in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time, exactly (used by mutations).
    fn now(&self) -> Timestamp;

    /// The current time for the hot path: may be up to one second stale,
    /// must be cheap. Defaults to [`now`](Clock::now).
    #[inline]
    fn now_coarse(&self) -> Timestamp {
        self.now()
    }
}

/// The operating system's wall clock, read exactly. An engine on it reads
/// the hot path's time from the [`CoarseClock`].
///
/// ```
/// use entitle::{Clock, SystemClock};
/// let now = SystemClock.now();
/// assert!(now.unix() > 1_700_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(before) => -(before.duration().as_secs() as i64),
        };
        // The ticked reading never lags an exact one already taken.
        let _ = TICKED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ticked| {
            (ticked != NOT_TICKING && secs > ticked).then_some(secs)
        });
        Timestamp::from_unix(secs)
    }
}

/// The operating system's wall clock as the hot path reads it: one atomic
/// load, and up to a fraction of a second stale.
///
/// What it reads: the second that a thread (one per process, started by
/// the first engine built on [`SystemClock`]) takes from the coarse clock
/// every 100 ms and publishes; every exact read by
/// [`SystemClock::now`] moves it forward too, so a check made after a
/// mutation never sees a time before that mutation's. How stale it can
/// be: one tick plus however long the scheduler keeps that thread waiting,
/// far inside the one second that [`Clock::now_coarse`] allows. Without
/// the thread (it could not be started, or no engine asked for it) it reads
/// `CLOCK_REALTIME_COARSE` from the vDSO itself: at most one kernel tick
/// (1 to 10 ms) behind, about 3.5 ns.
///
/// ```
/// use entitle::clock::CoarseClock;
/// use entitle::{Clock, SystemClock};
/// assert!((CoarseClock.now().unix() - SystemClock.now().unix()).abs() <= 1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CoarseClock;

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(coarse_unix())
    }
}

/// [`CoarseClock`]'s reading in Unix seconds, without the range check a
/// [`Timestamp`] makes (a gate only compares it).
#[inline(always)]
pub(crate) fn coarse_unix() -> i64 {
    match TICKED.load(Ordering::Relaxed) {
        NOT_TICKING => coarse_system_now().unix(),
        ticked => ticked,
    }
}

/// How often the clock thread reads the system clock for [`CoarseClock`].
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// [`TICKED`] while no clock thread runs.
const NOT_TICKING: i64 = i64::MIN;

/// [`CoarseClock`]'s reading, kept by the clock thread.
static TICKED: AtomicI64 = AtomicI64::new(NOT_TICKING);

/// Starts, once per process, the thread that keeps [`CoarseClock`]'s
/// reading fresh. Should the thread not start, [`CoarseClock`] reads the
/// coarse clock itself.
pub(crate) fn start_clock_thread() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        TICKED.store(coarse_system_now().unix(), Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("entitle-clock".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                // Not a plain maximum: a clock set back must show on the
                // hot path (the rollback guard reads it there). But the
                // coarse clock lags an exact read by up to a kernel tick,
                // so one second back is that lag, not a clock set back,
                // and must not take the reading behind a mutation made.
                let coarse = coarse_system_now().unix();
                let _ = TICKED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ticked| {
                    (coarse != ticked && coarse != ticked - 1).then_some(coarse)
                });
            });
        if spawned.is_err() {
            TICKED.store(NOT_TICKING, Ordering::Relaxed);
        }
    });
}

#[cfg(target_os = "linux")]
#[inline]
fn coarse_system_now() -> Timestamp {
    // The coarse clock is the kernel's last tick, read from the vDSO without
    // a system call: a few nanoseconds instead of ~25 for the precise one.
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    Timestamp::from_unix(t.tv_sec)
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn coarse_system_now() -> Timestamp {
    SystemClock.now()
}

/// A clock that moves only when told to. Clones share one time, so a test
/// can hand one clone to the engine and keep another to move it.
///
/// ```
/// use entitle::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap());
/// let engine_side = clock.clone();
/// clock.advance(3600);
/// assert_eq!(engine_side.now().to_string(), "2026-01-01T01:00:00Z");
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    secs: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            secs: Arc::new(AtomicI64::new(start.unix())),
        }
    }

    /// Moves the clock by `secs` seconds (negative moves it back).
    pub fn advance(&self, secs: i64) {
        let now = self.secs.load(Ordering::Acquire);
        self.secs.store(
            Timestamp::from_unix(now.saturating_add(secs)).unix(),
            Ordering::Release,
        );
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.secs.store(t.unix(), Ordering::Release);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.secs.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_is_within_a_second_of_the_precise_one() {
        // One test for everything that touches the process-wide reading,
        // so that no other test sees it made stale on purpose.
        let precise = SystemClock.now().unix();
        let coarse = SystemClock.now_coarse().unix();
        assert!((precise - coarse).abs() <= 1, "{precise} vs {coarse}");

        start_clock_thread();
        assert_ne!(TICKED.load(Ordering::Relaxed), NOT_TICKING);
        // A tick that lags (the thread kept waiting): an exact read moves
        // the hot path's reading up to it, never back.
        TICKED.store(coarse_system_now().unix() - 30, Ordering::Relaxed);
        let precise = SystemClock.now().unix();
        assert!(CoarseClock.now().unix() >= precise);
        // The thread itself catches up within a few ticks.
        TICKED.store(coarse_system_now().unix() - 30, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + 50 * TICK;
        while CoarseClock.now().unix() < coarse_system_now().unix() - 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the clock thread stopped ticking"
            );
            std::thread::sleep(TICK / 4);
        }
        // An exact read a second ahead of the coarse clock (its lag at a
        // second's turn) is not a clock set back: the thread keeps it.
        let ahead = coarse_system_now().unix() + 1;
        TICKED.store(ahead, Ordering::Relaxed);
        std::thread::sleep(3 * TICK);
        assert!(CoarseClock.now().unix() >= ahead);
        // A clock set back (here: a reading far ahead of it) shows within
        // a few ticks, for the rollback guard.
        TICKED.store(coarse_system_now().unix() + 600, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + 50 * TICK;
        while CoarseClock.now().unix() > coarse_system_now().unix() + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "a clock set back never showed"
            );
            std::thread::sleep(TICK / 4);
        }
    }
}
