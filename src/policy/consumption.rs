//! Metered features: calendar periods and the all-or-nothing charge.

use chrono::{Datelike, NaiveDate, TimeZone, Utc};

use crate::decision::Reason;
use crate::license::{Consumption, Reset};
use crate::policy::Denial;
use crate::store::CounterRecord;

const DAY: i64 = 24 * 3600;

/// The period containing `now`, as `[start, end)` in Unix seconds. Without
/// a reset the period is all of time.
///
/// ```
/// use entitle::license::Reset;
/// use entitle::policy::consumption::period;
/// use entitle::Timestamp;
/// let now = Timestamp::parse("2026-03-04T15:00:00Z").unwrap().unix(); // a Wednesday
/// let (start, end) = period(Some(Reset::Weekly), now);
/// assert_eq!(Timestamp::from_unix(start).to_string(), "2026-03-02T00:00:00Z");
/// assert_eq!(Timestamp::from_unix(end).to_string(), "2026-03-09T00:00:00Z");
/// ```
pub fn period(reset: Option<Reset>, now: i64) -> (i64, i64) {
    let Some(reset) = reset else {
        return (i64::MIN, i64::MAX);
    };
    // `now` may come from an edited row: a period that would not fit in
    // the range of a timestamp is all of time (a counter that never
    // resets, which gives nothing back).
    const ALL_TIME: (i64, i64) = (i64::MIN, i64::MAX);
    let days = |start: i64, n: i64| -> Option<(i64, i64)> {
        Some((start, start.checked_add(n.checked_mul(DAY)?)?))
    };
    let Some(day_start) = now.div_euclid(DAY).checked_mul(DAY) else {
        return ALL_TIME;
    };
    match reset {
        Reset::Daily => days(day_start, 1).unwrap_or(ALL_TIME),
        Reset::Weekly => {
            // 1970-01-01 was a Thursday: weekday 3 counting from Monday.
            let weekday = (now.div_euclid(DAY) + 3).rem_euclid(7);
            day_start
                .checked_sub(weekday * DAY)
                .and_then(|start| days(start, 7))
                .unwrap_or(ALL_TIME)
        }
        Reset::Monthly | Reset::Annually => {
            let Some(date) = Utc.timestamp_opt(now, 0).single().map(|t| t.date_naive()) else {
                return ALL_TIME;
            };
            let (start, end) = if reset == Reset::Monthly {
                let start = NaiveDate::from_ymd_opt(date.year(), date.month(), 1);
                let end = if date.month() == 12 {
                    NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
                };
                (start, end)
            } else {
                (
                    NaiveDate::from_ymd_opt(date.year(), 1, 1),
                    NaiveDate::from_ymd_opt(date.year() + 1, 1, 1),
                )
            };
            let secs = |d: Option<NaiveDate>| {
                d.and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc().timestamp())
            };
            match (secs(start), secs(end)) {
                (Some(start), Some(end)) => (start, end),
                _ => ALL_TIME,
            }
        }
    }
}

/// A counter as stored: units used in the period that starts at
/// `period_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Start of the period the count belongs to.
    pub period_start: i64,
    /// Units used in it.
    pub used: u64,
}

impl Counter {
    /// The start of the period a charge at `now` belongs to. A counter
    /// never moves back to an earlier period: a clock set back across a
    /// boundary keeps charging the latest period, so it cannot reopen a
    /// quota that was already used.
    pub fn period_start_at(&self, reset: Option<Reset>, now: i64) -> i64 {
        period(reset, now).0.max(self.period_start)
    }

    /// Units used in the period a charge at `now` belongs to (a count from
    /// an earlier period has reset).
    pub fn used_at(&self, reset: Option<Reset>, now: i64) -> u64 {
        if self.period_start >= period(reset, now).0 {
            self.used
        } else {
            0
        }
    }
}

/// The largest count a counter holds.
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// How one license would take a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Within `max` (or unlimited).
    Within,
    /// Beyond `max`, within `max + overage`.
    Overage,
    /// Beyond `max + overage`.
    Refused,
}

/// Whether `amount` more units fit, given `used` in the period.
///
/// ```
/// use entitle::license::Consumption;
/// use entitle::policy::consumption::{charge, Charge};
/// let c = Consumption { max: Some(10), overage: Some(2), reset: None };
/// assert_eq!(charge(&c, 9, 1), Charge::Within);
/// assert_eq!(charge(&c, 10, 2), Charge::Overage);
/// assert_eq!(charge(&c, 10, 3), Charge::Refused);
/// ```
pub fn charge(consumption: &Consumption, used: u64, amount: u64) -> Charge {
    // A count is stored as a signed 64-bit integer: one that would not
    // fit is refused, never clamped (a clamp would record less than was
    // used, and make room that was never given back).
    let Some(after) = used.checked_add(amount).filter(|&a| a <= MAX_COUNT) else {
        return Charge::Refused;
    };
    let Some(max) = consumption.max else {
        return Charge::Within;
    };
    if after <= max {
        Charge::Within
    } else if after <= max.saturating_add(consumption.overage.unwrap_or(0)) {
        Charge::Overage
    } else {
        Charge::Refused
    }
}

/// A license that may be charged for a feature: its quota, when it
/// expires, whether it is a trial, and its use in the period a charge now
/// belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The license.
    pub license_id: String,
    /// Its quota for the feature.
    pub quota: Consumption,
    /// When the license ends here (`None`: never); a trial's end is that
    /// of its window on this install.
    pub expires_at: Option<i64>,
    /// The license is a trial (`trial: true`).
    pub trial: bool,
    /// Units used in the current period.
    pub used: u64,
    /// The start of the period a charge now belongs to.
    pub period_start: i64,
}

/// The place of a candidate in the charge order: purchased licenses before
/// trials, then the first to end first, one that never ends last, then by
/// id. Units bought with the license that ends soonest are used before
/// they are lost; and a trial is the last resort once a license has been
/// bought, so the purchase's count is the one that moves (an About box
/// that says "0 of 100 used" while units are being used would be wrong).
fn charge_key(candidate: &Candidate) -> (bool, bool, Option<i64>, &str) {
    (
        candidate.trial,
        candidate.expires_at.is_none(),
        candidate.expires_at,
        &candidate.license_id,
    )
}

/// Sorts candidates into the order they are charged in (see
/// [`Candidate`]): purchased before trial, then first to end first, one
/// that never ends last, ties by license id.
///
/// ```
/// use entitle::license::Consumption;
/// use entitle::policy::consumption::{charge_order, Candidate};
///
/// let candidate = |id: &str, trial, expires_at| Candidate {
///     license_id: id.into(),
///     quota: Consumption::up_to(100),
///     expires_at,
///     trial,
///     used: 0,
///     period_start: 0,
/// };
/// let mut found = vec![
///     candidate("trial", true, Some(10)),
///     candidate("perpetual", false, None),
///     candidate("yearly", false, Some(1_000)),
/// ];
/// charge_order(&mut found);
/// let ids: Vec<&str> = found.iter().map(|c| c.license_id.as_str()).collect();
/// assert_eq!(ids, ["yearly", "perpetual", "trial"]);
/// ```
pub fn charge_order(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| charge_key(a).cmp(&charge_key(b)));
}

/// Charges `amount` units of `code`, all or nothing, to the first
/// candidate (in [`charge_order`]) that takes it within `max`, else the
/// first that takes it within its overage: the candidate charged, the
/// reason (`OK` or `OVERAGE`) and the counter to store. Refused with
/// `CONSUMPTION_LIMIT`, retry at the first period end after which some
/// candidate could take the amount (none when no count resets).
pub fn consume(
    candidates: &[Candidate],
    code: &str,
    amount: u64,
) -> Result<(usize, Reason, CounterRecord), Denial> {
    let pick = |wanted: Charge| {
        candidates
            .iter()
            .position(|c| charge(&c.quota, c.used, amount) == wanted)
    };
    let (i, reason) = pick(Charge::Within)
        .map(|i| (i, Reason::Ok))
        .or_else(|| pick(Charge::Overage).map(|i| (i, Reason::Overage)))
        .ok_or_else(|| Denial {
            reason: Reason::ConsumptionLimit,
            retry_at: retry_at(candidates, amount),
        })?;
    let chosen = &candidates[i];
    let counter = CounterRecord {
        license_id: chosen.license_id.clone(),
        code: code.to_owned(),
        period_start: chosen.period_start,
        used: chosen.used.saturating_add(amount),
    };
    Ok((i, reason, counter))
}

/// The first instant a refused charge of `amount` could be taken: the
/// earliest end of a candidate's period whose fresh count would take it.
fn retry_at(candidates: &[Candidate], amount: u64) -> Option<i64> {
    candidates
        .iter()
        .filter(|c| charge(&c.quota, 0, amount) != Charge::Refused)
        .map(|c| period(c.quota.reset, c.period_start).1)
        .filter(|&end| end != i64::MAX)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn at(text: &str) -> i64 {
        Timestamp::parse(text).unwrap().unix()
    }

    #[test]
    fn a_period_is_defined_for_every_instant_a_row_can_hold() {
        // A counter's period start is read from a row an attacker can edit.
        let resets = [
            None,
            Some(Reset::Daily),
            Some(Reset::Weekly),
            Some(Reset::Monthly),
            Some(Reset::Annually),
        ];
        for reset in resets {
            for now in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
                let (start, end) = period(reset, now);
                assert!(start <= now && now < end || (start, end) == (i64::MIN, i64::MAX));
            }
        }
    }

    #[test]
    fn periods_start_on_utc_calendar_boundaries() {
        let cases = [
            (
                Reset::Daily,
                "2026-03-04T00:00:00Z",
                "2026-03-04T00:00:00Z",
                "2026-03-05T00:00:00Z",
            ),
            (
                Reset::Daily,
                "2026-03-04T23:59:59Z",
                "2026-03-04T00:00:00Z",
                "2026-03-05T00:00:00Z",
            ),
            (
                Reset::Weekly,
                "2026-03-02T00:00:00Z",
                "2026-03-02T00:00:00Z",
                "2026-03-09T00:00:00Z",
            ),
            (
                Reset::Weekly,
                "2026-03-01T23:59:59Z",
                "2026-02-23T00:00:00Z",
                "2026-03-02T00:00:00Z",
            ),
            (
                Reset::Monthly,
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
                "2026-04-01T00:00:00Z",
            ),
            (
                Reset::Monthly,
                "2026-12-31T23:59:59Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                Reset::Monthly,
                "2028-02-29T12:00:00Z",
                "2028-02-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
            ),
            (
                Reset::Annually,
                "2027-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "2028-01-01T00:00:00Z",
            ),
            (
                Reset::Annually,
                "2026-12-31T23:59:59Z",
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ];
        for (reset, now, start, end) in cases {
            assert_eq!(
                period(Some(reset), at(now)),
                (at(start), at(end)),
                "{reset:?} at {now}"
            );
        }
    }

    #[test]
    fn the_first_license_within_max_wins_before_any_overage() {
        let tight = Consumption {
            max: Some(5),
            overage: Some(5),
            reset: None,
        };
        let roomy = Consumption {
            max: Some(100),
            overage: None,
            reset: None,
        };
        let at = |quota, used, expires_at, id: &str| Candidate {
            license_id: id.into(),
            quota,
            expires_at,
            trial: false,
            used,
            period_start: 0,
        };
        let charged = |candidates: &[Candidate]| {
            consume(candidates, "api", 3).map(|(i, reason, counter)| (i, reason, counter.used))
        };
        let mut order = vec![at(roomy, 0, None, "a"), at(tight, 5, Some(10), "b")];
        charge_order(&mut order);
        assert_eq!(
            order[0].license_id, "b",
            "the first to expire is charged first"
        );
        assert_eq!(charged(&order), Ok((1, Reason::Ok, 3)));
        order[1].used = 99;
        assert_eq!(charged(&order), Ok((0, Reason::Overage, 8)));
        order[0].used = 9;
        assert_eq!(
            charged(&order).unwrap_err().reason,
            Reason::ConsumptionLimit
        );
    }

    fn candidate(id: &str, trial: bool, expires_at: Option<i64>) -> Candidate {
        Candidate {
            license_id: id.into(),
            quota: Consumption::up_to(100),
            expires_at,
            trial,
            used: 0,
            period_start: 0,
        }
    }

    fn ordered(mut found: Vec<Candidate>) -> Vec<String> {
        charge_order(&mut found);
        found.into_iter().map(|c| c.license_id).collect()
    }

    #[test]
    fn a_purchased_license_is_charged_before_a_trial_that_ends_sooner() {
        // The trial ends first, yet the license bought is the one charged.
        assert_eq!(
            ordered(vec![
                candidate("trial", true, Some(10)),
                candidate("bought", false, Some(1_000)),
            ]),
            ["bought", "trial"]
        );
        assert_eq!(
            ordered(vec![
                candidate("trial", true, Some(10)),
                candidate("perpetual", false, None),
            ]),
            ["perpetual", "trial"]
        );
    }

    #[test]
    fn among_purchases_and_among_trials_the_first_to_end_is_charged_first() {
        assert_eq!(
            ordered(vec![
                candidate("forever", false, None),
                candidate("late", false, Some(2_000)),
                candidate("b_soon", false, Some(1_000)),
                candidate("a_soon", false, Some(1_000)),
                candidate("trial_late", true, Some(500)),
                candidate("trial_never", true, None),
                candidate("trial_soon", true, Some(100)),
            ]),
            [
                "a_soon",
                "b_soon",
                "late",
                "forever",
                "trial_soon",
                "trial_late",
                "trial_never"
            ]
        );
    }

    #[test]
    fn a_trial_is_charged_once_every_purchase_is_full() {
        let mut found = vec![
            candidate("trial", true, Some(10)),
            candidate("bought", false, Some(1_000)),
        ];
        charge_order(&mut found);
        let (i, reason, counter) = consume(&found, "api", 100).unwrap();
        assert_eq!(
            (found[i].license_id.as_str(), reason),
            ("bought", Reason::Ok)
        );
        found[0].used = counter.used;
        let (i, _, counter) = consume(&found, "api", 1).unwrap();
        assert_eq!((counter.license_id.as_str(), counter.used), ("trial", 1));
        assert_eq!(i, 1);
    }

    #[test]
    fn a_refusal_retries_when_the_first_count_that_could_take_it_resets() {
        let day = |id: &str, reset, max| Candidate {
            quota: Consumption {
                max: Some(max),
                overage: None,
                reset,
            },
            used: max,
            ..candidate(id, false, None)
        };
        let now = at("2026-03-04T15:00:00Z");
        let mut found = vec![
            day("forever", None, 10),
            day("monthly", Some(Reset::Monthly), 10),
            day("daily_small", Some(Reset::Daily), 1),
        ];
        for c in &mut found {
            c.period_start = period(c.quota.reset, now).0;
        }
        let refused = |found: &[Candidate], amount| consume(found, "api", amount).unwrap_err();
        // Two units never fit the daily count of one: the monthly reset is
        // the first that helps.
        assert_eq!(
            refused(&found, 2).retry_at,
            Some(at("2026-04-01T00:00:00Z"))
        );
        assert_eq!(
            refused(&found, 1).retry_at,
            Some(at("2026-03-05T00:00:00Z"))
        );
        assert_eq!(refused(&found[..1], 1).retry_at, None);
    }
}
