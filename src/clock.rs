//! Time: the [`Timestamp`] type, the injected [`Clock`], and the clocks
//! that come with the crate.
//!
//! No code outside this module reads the system time. The engine asks its
//! clock two ways: [`Clock::now`] for mutations (exact) and
//! [`Clock::now_coarse`] for the hot path, where a clock read must cost
//! next to nothing.
//!
//! The system clock's hot-path reading is one atomic load: a thread (one
//! per process, started by the first engine on the system clock) reads the
//! coarse clock every [`TICK`] (100 ms) and publishes it, and every exact
//! read moves it forward too, so a check made after a mutation never sees
//! a time before that mutation's. Staleness: at most one tick plus however
//! long the scheduler keeps that thread waiting, far inside the one second
//! the engine promises. Without the thread (it could not be started, or no
//! engine asked for it) the reading is `CLOCK_REALTIME_COARSE` from the
//! vDSO: at most one kernel tick (1 to 10 ms) behind, about 3.5 ns.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// An instant, in whole seconds since the Unix epoch (UTC).
///
/// Licenses speak in RFC 3339 and whole seconds; so does the engine.
/// Serialises as an RFC 3339 string.
///
/// ```
/// use entitle::Timestamp;
///
/// let t = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
/// assert_eq!(t.to_string(), "2026-03-01T00:00:00Z");
/// assert_eq!(t.plus_secs(60).unix(), t.unix() + 60);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The latest representable second we accept (year 9999), so that adding
/// any license duration never overflows.
const MAX_UNIX: i64 = 253_402_300_799;
const MIN_UNIX: i64 = -62_135_596_800;

impl Timestamp {
    /// The instant `secs` seconds after the Unix epoch (clamped to years 1..=9999).
    pub const fn from_unix(secs: i64) -> Self {
        let secs = if secs > MAX_UNIX {
            MAX_UNIX
        } else if secs < MIN_UNIX {
            MIN_UNIX
        } else {
            secs
        };
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    #[inline]
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time (`2026-03-01T00:00:00Z`); a fraction of a
    /// second is dropped.
    pub fn parse(text: &str) -> Result<Self> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Timestamp::from_unix(t.timestamp()))
            .map_err(|e| {
                Error::malformed(
                    "time",
                    format!(
                        "`{text}` is not an RFC 3339 time ({e}); write e.g. 2026-03-01T00:00:00Z"
                    ),
                )
            })
    }

    /// This instant plus `secs` seconds, saturating at the ends of time.
    #[inline]
    pub const fn plus_secs(self, secs: i64) -> Self {
        Timestamp::from_unix(self.0.saturating_add(secs))
    }

    /// As a chrono `DateTime<Utc>`.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// RFC 3339 in UTC, whole seconds: `2026-03-01T00:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp::from_unix(t.timestamp())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl Timestamp {
    /// Reads an RFC 3339 time exactly as chrono's `parse_from_rfc3339`
    /// does, `None` where it refuses. Licenses write times one way,
    /// `2026-03-01T00:00:00Z`, and every verification reads several, so
    /// that form is read directly and any other goes to chrono.
    pub(crate) fn from_rfc3339(text: &str) -> Option<Timestamp> {
        if let Some(t) = Timestamp::from_canonical(text.as_bytes()) {
            return Some(t);
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Timestamp::from_unix(t.timestamp()))
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` with a valid date and time (no leap
    /// second); `None` for anything else, valid or not.
    fn from_canonical(text: &[u8]) -> Option<Timestamp> {
        let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', n0, n1, b':', s0, s1, b'Z'] =
            *text
        else {
            return None;
        };
        let digits = |ds: &[u8]| {
            ds.iter().try_fold(0i64, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
            })
        };
        let year = digits(&[y0, y1, y2, y3])?;
        let month = digits(&[m0, m1])?;
        let day = digits(&[d0, d1])?;
        let (hour, minute, second) = (digits(&[h0, h1])?, digits(&[n0, n1])?, digits(&[s0, s1])?);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let month_days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if year == 0 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        Some(Timestamp::from_unix(
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second,
        ))
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(TimestampVisitor)
    }
}

/// Reads a time from a string, borrowed where the input allows, so that
/// reading one allocates nothing.
struct TimestampVisitor;

impl serde::de::Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 time such as 2026-03-01T00:00:00Z")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<Timestamp, E> {
        Timestamp::from_rfc3339(text).ok_or_else(|| {
            E::custom(format!(
                "`{text}` is not an RFC 3339 time such as 2026-03-01T00:00:00Z"
            ))
        })
    }
}

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

/// The operating system's wall clock.
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

    #[inline]
    fn now_coarse(&self) -> Timestamp {
        match TICKED.load(Ordering::Relaxed) {
            NOT_TICKING => coarse_system_now(),
            ticked => Timestamp::from_unix(ticked),
        }
    }
}

/// How often the clock thread reads the system clock for the hot path.
pub const TICK: Duration = Duration::from_millis(100);

/// [`TICKED`] while no clock thread runs.
const NOT_TICKING: i64 = i64::MIN;

/// The system clock's hot-path reading, kept by the clock thread.
static TICKED: AtomicI64 = AtomicI64::new(NOT_TICKING);

/// Starts, once per process, the thread that keeps the system clock's
/// hot-path reading fresh (see the module documentation). Should the
/// thread not start, the hot path reads the coarse clock itself.
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
        Timestamp(self.secs.load(Ordering::Acquire))
    }
}

/// The clock-rollback guard: the pure rule that decides whether the clock
/// has been set back.
///
/// `latest_seen` is the latest time the engine has ever seen (persisted);
/// a clock more than `tolerance_secs` behind it is tampered.
///
/// ```
/// use entitle::{clock::is_tampered, Timestamp};
/// let seen = Timestamp::from_unix(10_000);
/// assert!(!is_tampered(Timestamp::from_unix(9_500), seen, 600));
/// assert!(is_tampered(Timestamp::from_unix(9_399), seen, 600));
/// ```
#[inline]
pub const fn is_tampered(now: Timestamp, latest_seen: Timestamp, tolerance_secs: i64) -> bool {
    now.0 < latest_seen.0.saturating_sub(tolerance_secs)
}

/// The default tolerance of the rollback guard: ten minutes.
pub const DEFAULT_ROLLBACK_TOLERANCE_SECS: i64 = 600;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The direct reading of `YYYY-MM-DDTHH:MM:SSZ` agrees with chrono
        /// on valid and invalid dates alike, and takes the valid ones.
        #[test]
        fn canonical_times_read_as_chrono_reads_them(
            year in 0u32..10_000, month in 0u32..14, day in 0u32..33,
            hour in 0u32..26, minute in 0u32..62, second in 0u32..62,
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| Timestamp::from_unix(t.timestamp()));
            prop_assert_eq!(Timestamp::from_rfc3339(&text), chrono);
            let direct = Timestamp::from_canonical(text.as_bytes());
            prop_assert!(direct.is_none() || direct == chrono);
            prop_assert_eq!(direct.is_some(), chrono.is_some() && year > 0 && second < 60);
        }

        /// Any other text reads as chrono reads it.
        #[test]
        fn other_times_read_as_chrono_reads_them(text in "[0-9T:Z.+ -]{0,26}") {
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| Timestamp::from_unix(t.timestamp()));
            prop_assert_eq!(Timestamp::from_rfc3339(&text), chrono);
        }
    }

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
        assert!(SystemClock.now_coarse().unix() >= precise);
        // The thread itself catches up within a few ticks.
        TICKED.store(coarse_system_now().unix() - 30, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + 50 * TICK;
        while SystemClock.now_coarse().unix() < coarse_system_now().unix() - 1 {
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
        assert!(SystemClock.now_coarse().unix() >= ahead);
        // A clock set back (here: a reading far ahead of it) shows within
        // a few ticks, for the rollback guard.
        TICKED.store(coarse_system_now().unix() + 600, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + 50 * TICK;
        while SystemClock.now_coarse().unix() > coarse_system_now().unix() + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "a clock set back never showed"
            );
            std::thread::sleep(TICK / 4);
        }
    }

    #[test]
    fn timestamps_clamp_instead_of_overflowing() {
        assert_eq!(
            Timestamp::from_unix(i64::MAX).plus_secs(i64::MAX).unix(),
            MAX_UNIX
        );
        assert_eq!(Timestamp::from_unix(i64::MIN).unix(), MIN_UNIX);
    }

    #[test]
    fn rfc3339_round_trip_and_fraction_dropped() {
        let t = Timestamp::parse("2026-03-01T12:00:00.999+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-01T10:00:00Z");
        assert_eq!(
            Timestamp::parse("yesterday").unwrap_err().code(),
            "MALFORMED"
        );
    }
}
