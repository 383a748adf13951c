//! Metered features.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::decision::Reason;
use std::sync::Arc;

use crate::engine::state::{Counters, DeviceActivations, DeviceContext, InstalledLicense};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::license::Consumption;
use crate::policy::consumption::{self, Candidate};
use crate::policy::reports::closed_by;
use crate::policy::validity::{feature_decision, feature_reason, grants_new};
use crate::store::Change;

/// The outcome of a recorded consumption, or the usage of a metered
/// feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Consumed {
    /// The feature.
    pub feature: String,
    /// Always true for a recorded consumption.
    pub allowed: bool,
    /// `OK`, or `OVERAGE` when beyond `max`.
    pub reason: Reason,
    /// Units used in the current period by the license charged.
    pub used: u64,
    /// Its `max` (`None`: unlimited).
    pub max: Option<u64>,
    /// Whether `used` is beyond `max`.
    pub overage: bool,
    /// When the current period ends (`None`: it never resets).
    pub period_ends_at: Option<Timestamp>,
    /// The license charged.
    pub license_id: String,
}

/// The licenses that may be charged for `code` at `now`, in the order
/// they are charged: from the licenses installed, this device's
/// activations and the counters kept (a mutation's state, or a snapshot).
pub(crate) fn candidates<'a>(
    licenses: impl IntoIterator<Item = &'a Arc<InstalledLicense>>,
    activations: &DeviceActivations,
    counters: &Counters,
    device: &DeviceContext,
    code: &str,
    now: i64,
    tampered: bool,
) -> Vec<Candidate> {
    let ctx = &device.ctx;
    let mut found = Vec::new();
    for installed in licenses {
        let view = installed.view(device.activation(installed, activations));
        let Some(feature) = view.license.feature(code) else {
            continue;
        };
        if !grants_new(&view, ctx, now, tampered)
            || !feature_reason(&view, feature, ctx, now, tampered).allows()
        {
            continue;
        }
        let quota = feature.consumption.unwrap_or(Consumption {
            max: None,
            overage: None,
            reset: None,
        });
        let id = installed.verified.id.clone();
        let counter = counters.get(&(id.clone(), code.to_owned()));
        found.push(Candidate {
            used: counter.map_or(0, |c| c.used_at(quota.reset, now)),
            period_start: counter.map_or(consumption::period(quota.reset, now).0, |c| {
                c.period_start_at(quota.reset, now)
            }),
            license_id: id,
            quota,
            // A trial ends when its window does.
            expires_at: view.window().1,
            trial: view.license.trial,
        });
    }
    consumption::charge_order(&mut found);
    found
}

/// Each license's use, in the order they are charged: "10 of 10 units used
/// (license `bought`, overage 0) and 5 of 5 (trial `trial`, overage 0)".
fn usage_list(found: &[Candidate]) -> String {
    let mut text = String::new();
    for (i, c) in found.iter().enumerate() {
        if i > 0 {
            text.push_str(if i + 1 == found.len() { " and " } else { ", " });
        }
        let max = c
            .quota
            .max
            .map_or("unlimited".to_owned(), |m| m.to_string());
        let units = if i == 0 { " units used" } else { "" };
        let kind = if c.trial { "trial" } else { "license" };
        text.push_str(&format!(
            "{} of {max}{units} ({kind} `{}`, overage {})",
            c.used,
            c.license_id,
            c.quota.overage.unwrap_or(0),
        ));
    }
    text
}

fn report(code: &str, c: &Candidate, used: u64) -> Consumed {
    let (license_id, quota) = (c.license_id.clone(), &c.quota);
    let (_, end) = consumption::period(quota.reset, c.period_start);
    let overage = quota.max.is_some_and(|max| used > max);
    Consumed {
        feature: code.to_owned(),
        allowed: true,
        reason: if overage { Reason::Overage } else { Reason::Ok },
        used,
        max: quota.max,
        overage,
        period_ends_at: (end != i64::MAX).then(|| Timestamp::from_unix(end)),
        license_id,
    }
}

impl Engine {
    /// Records `amount` units of a metered feature, all or nothing: either
    /// the whole amount is charged or nothing is (`CONSUMPTION_LIMIT`, whose
    /// message gives every license's count).
    ///
    /// The amount goes to the first license, in charge order, that takes it
    /// within its `max`, else to the first that takes it within its
    /// overage. Purchased licenses come before trials; among each, the one
    /// that ends first comes first, one that never ends last (ties by id).
    /// [`consumption`](Engine::consumption) lists them in that order.
    pub fn consume(&self, code: &str, amount: u64) -> Result<Consumed> {
        if amount == 0 {
            return Err(Error::InvalidArgument("consume at least one unit".into()));
        }
        self.mutate(|plan| {
            let device = &plan.config.device;
            let found = candidates(
                plan.state.licenses.values(),
                &plan.state.device_activations(device),
                &plan.state.counters,
                device,
                code,
                plan.now,
                plan.tampered,
            );
            if found.is_empty() {
                let views = plan.state.views(&plan.config.device);
                let reason = feature_decision(
                    &views,
                    code,
                    &plan.config.device.ctx,
                    plan.now,
                    plan.tampered,
                );
                let reason = if reason.allows() {
                    Reason::Expired
                } else {
                    reason
                };
                let message = if reason == Reason::ClockTampered {
                    format!(
                        "`{code}` cannot be consumed: the system clock ({}) is behind the latest \
                         time this install has seen ({}), and a count that resets by the calendar \
                         holds until the clock is right again; set the clock right, or apply a \
                         fresh token from the vendor (CLOCK_TAMPERED)",
                        Timestamp::from_unix(plan.now),
                        Timestamp::from_unix(plan.state.latest_seen),
                    )
                } else {
                    format!(
                        "no license in force lets `{code}` be consumed ({})",
                        reason.code()
                    )
                };
                return Err(Error::denied(reason, message));
            }
            let (i, _, counter) = consumption::consume(&found, code, amount).map_err(|denial| {
                let retry_at = denial.retry_at.map(Timestamp::from_unix);
                Error::Denied {
                    reason: denial.reason,
                    message: format!(
                        "`{code}` has {}; {amount} more do not fit{}",
                        usage_list(&found),
                        retry_at.map_or(String::new(), |t| format!("; a count resets at {t}")),
                    ),
                    retry_at,
                }
            })?;
            let out = report(code, &found[i], counter.used);
            // The count of a period that has closed is kept until a usage
            // report carries it, not overwritten by the new period's.
            let key = (counter.license_id.clone(), counter.code.clone());
            let before = plan.state.counters.get(&key).copied();
            let kept = |starts_at: i64| {
                let key = (key.0.clone(), key.1.clone(), starts_at);
                plan.state.closed_periods.get(&key).map(|p| p.used)
            };
            let closed = before.and_then(|b| {
                closed_by(
                    found[i].quota.reset,
                    Some(b),
                    &counter,
                    kept(b.period_start),
                )
            });
            let mut changes = Vec::with_capacity(2);
            changes.extend(closed.map(Change::PutClosedPeriod));
            changes.push(Change::PutCounter(counter));
            Ok((changes, out))
        })
    }

    /// The current use of a metered feature, per license that can be
    /// charged for it, first to be charged first. Reads the published
    /// snapshot.
    pub fn consumption(&self, code: &str) -> Vec<Consumed> {
        let now = self.now().unix();
        let snapshot = self.inner.snapshot.load();
        let tampered = now < snapshot.tamper_below;
        candidates(
            snapshot.licenses.iter(),
            &snapshot.device_activations,
            &snapshot.counters,
            &self.inner.config.device,
            code,
            now,
            tampered,
        )
        .into_iter()
        .map(|c| report(code, &c, c.used))
        .collect()
    }
}
