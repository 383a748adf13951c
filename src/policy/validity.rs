//! Validity: what state a license is in at an instant, and what reason it
//! gives for a feature it grants.

use crate::clock::Timestamp;
use crate::decision::Reason;
use crate::license::{Feature, License, OnExpiry};

/// The state of a license, computed from the clock (docs/semantics.md#licenses).
/// Serialised, and shown, in lower case: `pending`, `active`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LicenseStatus {
    /// Before `starts_at`.
    Pending,
    /// In force.
    Active,
    /// Past `expires_at`, within `grace_secs`.
    Grace,
    /// Past expiry and grace.
    Expired,
    /// `enabled: false`.
    Suspended,
    /// Revoked or hard-removed.
    Revoked,
    /// The clock is behind the latest time this install has seen, and the
    /// license's rights depend on the time: they are held
    /// (`CLOCK_TAMPERED`) until the clock is right again. Only
    /// [`LicenseInfo`](crate::engine::LicenseInfo) says it, as it knows the
    /// clock's history; a status read from the dates alone never is.
    ClockTampered,
}

impl std::fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LicenseStatus {
    /// The name used in filters and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Pending => "pending",
            LicenseStatus::Active => "active",
            LicenseStatus::Grace => "grace",
            LicenseStatus::Expired => "expired",
            LicenseStatus::Suspended => "suspended",
            LicenseStatus::Revoked => "revoked",
            LicenseStatus::ClockTampered => "clock_tampered",
        }
    }
}

/// A license as the policies see it: the document, plus what the install
/// knows about it.
#[derive(Debug, Clone, Copy)]
pub struct LicenseView<'a> {
    /// The signed document.
    pub license: &'a License,
    /// Revoked by a revocation list.
    pub revoked: bool,
    /// Whether this device is activated for it, for node-locked licenses.
    pub activation: Activation,
    /// When this install first added it: where a trial's window starts.
    pub first_used: Option<i64>,
}

impl<'a> LicenseView<'a> {
    /// A view of `license` on an install that knows nothing more of it.
    pub fn of(license: &'a License) -> Self {
        LicenseView {
            license,
            revoked: false,
            activation: Activation::NotLocked,
            first_used: None,
        }
    }

    /// The window the license is valid in here, `[starts, expires)` in
    /// Unix seconds (`None`: open). A trial (`trial_secs`) runs from its
    /// first use on this install (docs/semantics.md#trials):
    /// `[max(starts_at, first use), min(expires_at, first use + trial_secs))`.
    pub fn window(&self) -> (Option<i64>, Option<i64>) {
        let license = self.license;
        let starts = license.starts_at.map(Timestamp::unix);
        let expires = license.expires_at.map(Timestamp::unix);
        match (license.trial_secs, self.first_used) {
            (Some(secs), Some(first)) => {
                let trial_end = first.saturating_add(secs);
                (
                    Some(starts.map_or(first, |s| s.max(first))),
                    Some(expires.map_or(trial_end, |e| e.min(trial_end))),
                )
            }
            _ => (starts, expires),
        }
    }
}

/// Whether the device an engine runs on may use a node-locked license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// The license is not node-locked (no `activations`).
    NotLocked,
    /// The license is node-locked, and the engine has no device to lock
    /// it to (no machine id): it fails closed.
    Unknown,
    /// This device is not activated for the license.
    Missing,
    /// Activated until this instant (`i64::MAX`: for good).
    Until(i64),
}

impl Activation {
    fn holds_at(self, now: i64) -> bool {
        match self {
            Activation::NotLocked => true,
            Activation::Unknown | Activation::Missing => false,
            Activation::Until(end) => now < end,
        }
    }

    /// Whether the activation ends at some instant (a machine certificate
    /// with an `expires_at`): then the license's rights on this device
    /// change with time.
    fn ends(self) -> bool {
        matches!(self, Activation::Until(end) if end < i64::MAX)
    }
}

/// What the install itself contributes to validity.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The release date of the running build, for `maintenance_until`.
    pub release_date: Option<Timestamp>,
    /// The version of the running program, for `versions`.
    pub version: Option<semver::Version>,
    /// The release channel of the running program, for `channels`.
    pub channel: Option<String>,
}

/// The license's state at `now`.
pub fn status(view: &LicenseView<'_>, now: i64) -> LicenseStatus {
    let license = view.license;
    if view.revoked {
        return LicenseStatus::Revoked;
    }
    if !license.enabled {
        return LicenseStatus::Suspended;
    }
    let (starts, expires) = view.window();
    if starts.is_some_and(|s| now < s) {
        return LicenseStatus::Pending;
    }
    match expires {
        Some(e) if now >= e => {
            if now < e.saturating_add(license.grace_secs) {
                LicenseStatus::Grace
            } else {
                LicenseStatus::Expired
            }
        }
        _ => LicenseStatus::Active,
    }
}

/// Whether anything about the license depends on the time of day: the
/// rights of such a license are held while the clock is tampered with.
pub fn depends_on_time(license: &License) -> bool {
    license.starts_at.is_some()
        || license.expires_at.is_some()
        || license.trial_secs.is_some()
        || license.features.iter().any(|f| f.expires_at.is_some())
}

/// Every instant at which the reasons of a license on this device may change.
pub fn view_breakpoints(view: &LicenseView<'_>, out: &mut Vec<i64>) {
    let license = view.license;
    let (starts, expires) = view.window();
    out.extend(starts);
    if let Some(e) = expires {
        out.push(e);
        out.push(e.saturating_add(license.grace_secs));
    }
    out.extend(
        license
            .features
            .iter()
            .filter_map(|f| f.expires_at.map(Timestamp::unix)),
    );
    if let Activation::Until(end) = view.activation {
        out.push(end);
    }
}

/// The reason the license gives for its own rights at `now`, before any
/// feature is considered. `tampered`: the clock is behind the latest time
/// seen.
pub fn license_reason(view: &LicenseView<'_>, ctx: &Context, now: i64, tampered: bool) -> Reason {
    let license = view.license;
    let status = status(view, now);
    match status {
        LicenseStatus::Revoked => return Reason::Revoked,
        LicenseStatus::Suspended => return Reason::Suspended,
        _ => {}
    }
    // Time cannot change this answer: it is taken once per snapshot, with
    // the rest of the license's reasons, never per check.
    if !license.admits(ctx.version.as_ref(), ctx.channel.as_deref()) {
        return Reason::VersionNotLicensed;
    }
    if let (Some(until), Some(release)) = (license.maintenance_until, ctx.release_date) {
        if release > until {
            return Reason::MaintenanceExpired;
        }
    }
    // Every answer that changes with time is held on a tampered clock,
    // an activation that ends included (docs/semantics.md#clock-rollback): a decision
    // taken then is not re-taken as time passes.
    if tampered && (depends_on_time(license) || view.activation.ends()) {
        return Reason::ClockTampered;
    }
    let reason = match status {
        LicenseStatus::Pending => Reason::NotYetValid,
        LicenseStatus::Active => Reason::Ok,
        LicenseStatus::Grace => Reason::InGrace,
        _ => match license.on_expiry {
            OnExpiry::Keep => Reason::ExpiredKept,
            OnExpiry::Deny => Reason::Expired,
        },
    };
    if reason.allows() && !view.activation.holds_at(now) {
        return match view.activation {
            Activation::Unknown => Reason::DeviceUnknown,
            _ => Reason::NotActivated,
        };
    }
    reason
}

/// Whether a feature's answers change with time of their own: a metered
/// feature whose count resets (`consumption.reset`) gives its units back
/// at every period boundary, so a clock set forward and back again would
/// reopen periods that never came (docs/semantics.md#consumption). Such a feature
/// is held while the clock is tampered with, whatever its license.
pub fn feature_depends_on_time(feature: &Feature) -> bool {
    feature.consumption.is_some_and(|c| c.reset.is_some())
}

/// The reason the license gives for one of its features at `now`.
pub fn feature_reason(
    view: &LicenseView<'_>,
    feature: &Feature,
    ctx: &Context,
    now: i64,
    tampered: bool,
) -> Reason {
    let reason = license_reason(view, ctx, now, tampered);
    if tampered && reason.allows() && feature_depends_on_time(feature) {
        return Reason::ClockTampered;
    }
    match feature.expires_at {
        Some(end) if reason.allows() && now >= end.unix() => Reason::Expired,
        _ => reason,
    }
}

/// Whether the license grants *new* rights at `now` (new users, devices,
/// leases, consumption): only while active or in grace. An expired license
/// kept by `on_expiry: keep` keeps its features but grants nothing new.
pub fn grants_new(view: &LicenseView<'_>, ctx: &Context, now: i64, tampered: bool) -> bool {
    matches!(
        license_reason(view, ctx, now, tampered),
        Reason::Ok | Reason::InGrace
    )
}

/// Keeps the better of two reasons (see `Reason::rank`).
pub fn best(a: Reason, b: Reason) -> Reason {
    if b.rank() > a.rank() {
        b
    } else {
        a
    }
}

/// The decision for `code` over several licenses: a feature is allowed if
/// any license grants it; otherwise the most helpful denial wins.
pub fn feature_decision<'a>(
    views: impl IntoIterator<Item = &'a LicenseView<'a>>,
    code: &str,
    ctx: &Context,
    now: i64,
    tampered: bool,
) -> Reason {
    let mut reason = Reason::NotLicensed;
    for view in views {
        if let Some(feature) = view.license.feature(code) {
            reason = best(reason, feature_reason(view, feature, ctx, now, tampered));
        }
    }
    reason
}

/// The quota for `code`: the sum of `limit` over licenses whose feature is
/// allowed at `now`; `None` when none sets one.
pub fn limit<'a>(
    views: impl IntoIterator<Item = &'a LicenseView<'a>>,
    code: &str,
    ctx: &Context,
    now: i64,
    tampered: bool,
) -> Option<i64> {
    let mut total: Option<i64> = None;
    for view in views {
        if let Some(feature) = view.license.feature(code) {
            if let Some(limit) = feature.limit {
                if feature_reason(view, feature, ctx, now, tampered).allows() {
                    total = Some(total.unwrap_or(0).saturating_add(limit));
                }
            }
        }
    }
    total
}
