//! Failed authentications per client address: after
//! [`MAX_FAILURES`] in [`WINDOW`], an address is refused (`429
//! RATE_LIMITED`) until the oldest of them is a window old. A guess at
//! a license key or a password costs the guesser a minute per ten.
//!
//! Bounded: at most [`MAX_ADDRESSES`] addresses are remembered; past
//! that, the address whose last failure is oldest is forgotten first
//! (an attacker with that many addresses is bounded by them anyway).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures an address may have within [`WINDOW`] before it is refused.
pub(crate) const MAX_FAILURES: usize = 10;

/// The window failures are counted over.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Addresses remembered at most.
pub(crate) const MAX_ADDRESSES: usize = 65_536;

/// The failures of each address within the window.
#[derive(Debug, Default)]
pub(crate) struct FailedLogins {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailedLogins {
    /// `Err(seconds to wait)` when `ip` has had [`MAX_FAILURES`] within
    /// the window before `now`.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut failures = self.failures.lock();
        let Some(times) = failures.get_mut(&ip) else {
            return Ok(());
        };
        forget_old(times, now);
        if times.len() < MAX_FAILURES {
            if times.is_empty() {
                failures.remove(&ip);
            }
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        let free_at = oldest + WINDOW;
        Err(free_at.saturating_duration_since(now).as_secs().max(1))
    }

    /// Counts a failure of `ip` at `now`.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_ADDRESSES && !failures.contains_key(&ip) {
            failures.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
            if failures.len() >= MAX_ADDRESSES {
                let stalest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(stalest) = stalest {
                    failures.remove(&stalest);
                }
            }
        }
        let times = failures.entry(ip).or_default();
        forget_old(times, now);
        times.push_back(now);
        // Only the last MAX_FAILURES matter.
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }
}

/// Drops the failures older than the window.
fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn the_eleventh_failure_in_a_minute_is_refused_until_the_first_is_a_minute_old() {
        let limits = FailedLogins::default();
        let start = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(limits.check(ip(1), start), Ok(()), "failure {i}");
            limits.failed(ip(1), start + Duration::from_secs(i as u64));
        }
        let after = start + Duration::from_secs(15);
        assert_eq!(limits.check(ip(1), after), Err(45));
        // Another address is not affected.
        assert_eq!(limits.check(ip(2), after), Ok(()));
        // Once the first failure is a minute old, one more try.
        assert_eq!(limits.check(ip(1), start + WINDOW), Ok(()));
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_are_never_refused() {
        let limits = FailedLogins::default();
        let start = Instant::now();
        for i in 0..100u64 {
            let now = start + Duration::from_secs(i * 7);
            assert_eq!(limits.check(ip(1), now), Ok(()), "failure {i}");
            limits.failed(ip(1), now);
        }
    }

    #[test]
    fn the_table_of_addresses_stays_bounded() {
        let limits = FailedLogins::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            limits.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(limits.failures.lock().len() <= MAX_ADDRESSES);
    }
}
