//! What a program can show about its licenses (docs/cli.md#licenses): every
//! field of an installed license, with what this install made of it (its
//! window with trials and grace, seats, activations used, floating seats
//! in use, consumption this period), read from the published snapshot.
//! And the listing of them: filtered, ordered, a page at a time.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

use crate::clock::Timestamp;
use crate::decision::Reason;
use crate::engine::snapshot::Snapshot;
use crate::engine::state::{DeviceContext, InstalledLicense};
use crate::engine::Engine;
use crate::error::Result;
use crate::license::{Kind, LicenseStatus};
use crate::policy::consumption;
use crate::policy::validity;
use crate::query::{self, FieldKind, Fields, Filter, Order, Page, Query, Value};

/// A license as a program shows it: the document's fields and what this
/// install made of them now.
///
/// An "About / License" dialog, built from it:
///
/// ```
/// use entitle::token::{sign, SigningKey, TokenType};
/// use entitle::{Engine, ManualClock, Timestamp};
///
/// let vendor = SigningKey::generate().unwrap();
/// let clock = ManualClock::new(Timestamp::parse("2026-03-01T00:00:00Z").unwrap());
/// let engine = Engine::builder("acme-cad").in_memory()
///     .trust(vendor.public_key().clone())
///     .clock(clock)
///     .build()
///     .unwrap();
/// engine.add_license(&sign(&serde_json::json!({
///     "v": 1, "id": "lic_42", "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
///     "name": "Acme CAD Professional", "customer": "Example Ltd",
///     "expires_at": "2027-01-01T00:00:00Z", "seats": {"max": 5, "hard_max": 6},
///     "features": [{"code": "export"}, {"code": "render", "consumption": {"max": 100, "reset": "monthly"}}]
/// }), &vendor, TokenType::License).unwrap()).unwrap();
/// engine.consume("render", 3).unwrap();
///
/// let mut about = String::new();
/// for license in engine.license_infos() {
///     about.push_str(&format!("{} ({})\n", license.name.as_deref().unwrap_or(&license.id), license.status));
///     if let Some(customer) = &license.customer {
///         about.push_str(&format!("Licensed to {}\n", customer.as_str().unwrap_or("you")));
///     }
///     if let Some(end) = license.expires_at {
///         about.push_str(&format!("Valid until {end}\n"));
///     }
///     if let Some(seats) = &license.seats {
///         about.push_str(&format!("{} seats (+{} overage)\n", seats.max, seats.soft_seats));
///     }
///     for feature in &license.features {
///         match &feature.consumption {
///             Some(c) => about.push_str(&format!("{}: {} of {} used\n", feature.code, c.used,
///                 c.max.map_or("unlimited".into(), |m| m.to_string()))),
///             None => about.push_str(&format!("{}\n", feature.code)),
///         }
///     }
/// }
/// assert!(about.contains("Acme CAD Professional (active)"));
/// assert!(about.contains("Licensed to Example Ltd"));
/// assert!(about.contains("5 seats (+1 overage)"));
/// assert!(about.contains("render: 3 of 100 used"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LicenseInfo {
    /// License id.
    pub id: String,
    /// Its state now: `clock_tampered` while the clock is behind the latest
    /// time seen and the license's rights depend on the time (they are
    /// held, `CLOCK_TAMPERED`), else what its dates say.
    pub status: LicenseStatus,
    /// Product code.
    pub product: String,
    /// Informational class.
    pub kind: Kind,
    /// Display name.
    pub name: Option<String>,
    /// Customer (a name or any JSON).
    pub customer: Option<Json>,
    /// The notice to show now: `notice_on_expire` once expired (if the
    /// license has one), `notice` before.
    pub notice: Option<String>,
    /// The notice the license shows once expired, as signed.
    pub notice_on_expire: Option<String>,
    /// Free-form data, carried and shown.
    pub metadata: Option<Json>,
    /// Free-form data, carried and shown.
    pub custom_fields: Option<Json>,
    /// A trial license.
    pub trial: bool,
    /// Re-issue number.
    pub serial: u64,
    /// When the vendor signed it.
    pub issued_at: Timestamp,
    /// The `kid` of the key that signed it.
    pub kid: String,
    /// Start of validity here (a trial's first use, if later).
    pub starts_at: Option<Timestamp>,
    /// End of validity here (a trial's end, if sooner).
    pub expires_at: Option<Timestamp>,
    /// When its grace ends (`None`: it never expires).
    pub grace_ends_at: Option<Timestamp>,
    /// Builds released after this instant are not licensed.
    pub maintenance_until: Option<Timestamp>,
    /// The versions of the program it is for, as a semver requirement
    /// (`>=2.0, <3`); `None`: any.
    pub versions: Option<String>,
    /// The release channels it is for; `None`: any.
    pub channels: Option<Vec<String>>,
    /// Whether it is for this program's version and channel (as given to
    /// `EngineBuilder::version` and `channel`): `false`, every feature of
    /// it is `VERSION_NOT_LICENSED` here.
    pub version_licensed: bool,
    /// When it was added here.
    pub added_at: Timestamp,
    /// Named-user seats, if it gives any.
    pub seats: Option<SeatsInfo>,
    /// Node-locked activations, if it is node-locked.
    pub activations: Option<ActivationsInfo>,
    /// Floating seats, if it has a pool.
    pub floating: Option<FloatingInfo>,
    /// What it grants.
    pub features: Vec<FeatureInfo>,
}

/// A license's named-user seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SeatsInfo {
    /// Licensed seats.
    pub max: u32,
    /// The hard limit: beyond `max` up to here, users are overage.
    pub hard_max: u32,
    /// Seats allowed as overage: `hard_max - max`.
    pub soft_seats: u32,
}

/// A node-locked license's activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ActivationsInfo {
    /// Devices allowed (`None`: any number).
    pub max: Option<u32>,
    /// Devices activated now.
    pub used: u64,
    /// Deactivations made.
    pub transfers: u32,
    /// Deactivations allowed (`None`: any number).
    pub max_transfers: Option<u32>,
}

/// A floating pool: the license-level one ([`LicenseInfo::floating`]) or
/// a feature's own ([`FeatureInfo::floating`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FloatingInfo {
    /// Seats this license adds to the pool.
    pub seats: u32,
    /// Live leases of the pool now (shared by every license that adds
    /// seats to it).
    pub in_use: u64,
    /// How long a lease of the pool may be borrowed under this license, in
    /// seconds (`None`: borrowing is not allowed).
    pub borrow_max_secs: Option<i64>,
}

/// A feature a license grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FeatureInfo {
    /// The code the application checks.
    pub code: String,
    /// Its display name, if the license gives one.
    pub name: Option<String>,
    /// Free-form data (a JSON object), carried and shown.
    pub metadata: Option<Json>,
    /// The feature ends earlier than the license.
    pub expires_at: Option<Timestamp>,
    /// Its quota, if it has one.
    pub limit: Option<i64>,
    /// Its metering this period, for a metered feature.
    pub consumption: Option<ConsumptionInfo>,
    /// The feature's own floating pool, if this license gives it one (its
    /// leases are taken from it rather than from the license-level pool).
    pub floating: Option<FloatingInfo>,
}

/// A metered feature's use this period, charged to this license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConsumptionInfo {
    /// Units used this period.
    pub used: u64,
    /// Units allowed (`None`: unlimited).
    pub max: Option<u64>,
    /// Units allowed beyond `max`, flagged.
    pub overage: Option<u64>,
    /// When the period ends (`None`: it never resets).
    pub period_ends_at: Option<Timestamp>,
}

/// What license infos are built from: a snapshot, at an instant.
pub(crate) struct Shown<'a> {
    snapshot: &'a Snapshot,
    device: &'a DeviceContext,
    now: i64,
    /// Live leases of the license-level pool.
    in_use: u64,
}

impl<'a> Shown<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, device: &'a DeviceContext, now: i64) -> Self {
        let in_use = snapshot
            .leases
            .values()
            .filter(|l| l.feature.is_none() && l.live_at(now))
            .count() as u64;
        Shown {
            snapshot,
            device,
            now,
            in_use,
        }
    }

    /// The info of one installed license.
    pub(crate) fn info(&self, installed: &InstalledLicense) -> LicenseInfo {
        let (snapshot, now) = (self.snapshot, self.now);
        let view = installed.view(
            self.device
                .activation(installed, &snapshot.device_activations),
        );
        // Under a tampered clock the rights of a time-dependent license are
        // held, whatever its dates say: an About box must not say `active`.
        let tampered = now < snapshot.tamper_below;
        let status = match validity::license_reason(&view, &self.device.ctx, now, tampered) {
            Reason::ClockTampered => LicenseStatus::ClockTampered,
            _ => validity::status(&view, now),
        };
        let l = installed.verified.license();
        let (starts, expires) = view.window();
        let notice = match (status, &l.notice_on_expire) {
            (LicenseStatus::Expired, Some(on_expire)) => Some(on_expire.clone()),
            _ => l.notice.clone(),
        };
        let activations = l.activations.map(|rules| ActivationsInfo {
            max: rules.max,
            used: snapshot
                .activations
                .range((l.id.clone(), String::new())..)
                .take_while(|((id, _), _)| *id == l.id)
                .filter(|(_, r)| r.live_at(now))
                .count() as u64,
            transfers: snapshot.transfers.get(&l.id).copied().unwrap_or(0),
            max_transfers: rules.max_transfers,
        });
        let features = l
            .features
            .iter()
            .map(|f| FeatureInfo {
                code: f.code.clone(),
                name: f.name.clone(),
                metadata: f.metadata.clone(),
                expires_at: f.expires_at,
                limit: f.limit,
                consumption: f.consumption.map(|quota| {
                    let counter = snapshot.counters.get(&(l.id.clone(), f.code.clone()));
                    let used = counter.map_or(0, |c| c.used_at(quota.reset, now));
                    let start = counter.map_or(consumption::period(quota.reset, now).0, |c| {
                        c.period_start_at(quota.reset, now)
                    });
                    let (_, end) = consumption::period(quota.reset, start);
                    ConsumptionInfo {
                        used,
                        max: quota.max,
                        overage: quota.overage,
                        period_ends_at: (end != i64::MAX).then(|| Timestamp::from_unix(end)),
                    }
                }),
                floating: f.floating.map(|pool| FloatingInfo {
                    seats: pool.seats,
                    in_use: snapshot
                        .leases
                        .values()
                        .filter(|l| l.feature.as_deref() == Some(&f.code) && l.live_at(now))
                        .count() as u64,
                    borrow_max_secs: pool.borrow_max_secs,
                }),
            })
            .collect();
        LicenseInfo {
            id: l.id.clone(),
            status,
            product: l.product.clone(),
            kind: l.kind,
            name: l.name.clone(),
            customer: l.customer.clone(),
            notice,
            notice_on_expire: l.notice_on_expire.clone(),
            metadata: l.metadata.clone(),
            custom_fields: l.custom_fields.clone(),
            trial: l.trial,
            serial: l.serial,
            issued_at: l.issued_at,
            kid: installed.verified.kid().to_owned(),
            starts_at: starts.map(Timestamp::from_unix),
            expires_at: expires.map(Timestamp::from_unix),
            grace_ends_at: expires.map(|e| Timestamp::from_unix(e.saturating_add(l.grace_secs))),
            maintenance_until: l.maintenance_until,
            versions: l.versions.as_ref().map(ToString::to_string),
            channels: l.channels.clone(),
            version_licensed: l.admits(
                self.device.ctx.version.as_ref(),
                self.device.ctx.channel.as_deref(),
            ),
            added_at: installed.added_at,
            seats: l.seats.map(|s| SeatsInfo {
                max: s.max,
                hard_max: s.hard_max(),
                soft_seats: s.hard_max().saturating_sub(s.max),
            }),
            activations,
            floating: l.floating.map(|f| FloatingInfo {
                seats: f.seats,
                in_use: self.in_use,
                borrow_max_secs: f.borrow_max_secs,
            }),
            features,
        }
    }
}

impl Engine {
    /// Every installed license with what this install made of it now, by
    /// id. Reads the published snapshot.
    pub fn license_infos(&self) -> Vec<LicenseInfo> {
        let now = self.inner.clock.now().unix();
        let snapshot = self.inner.snapshot.load();
        let shown = Shown::new(&snapshot, &self.inner.config.device, now);
        snapshot.licenses.iter().map(|l| shown.info(l)).collect()
    }

    /// The info of one installed license, if it is installed.
    pub(crate) fn license_info(&self, id: &str) -> Option<LicenseInfo> {
        let now = self.inner.clock.now().unix();
        let snapshot = self.inner.snapshot.load();
        let shown = Shown::new(&snapshot, &self.inner.config.device, now);
        let installed: Option<&Arc<InstalledLicense>> =
            snapshot.licenses.iter().find(|l| l.verified.id == id);
        installed.map(|l| shown.info(l))
    }
}

/// The fields a license listing can filter and order on.
pub(crate) const LICENSE_FIELDS: &[(&str, FieldKind)] = &[
    ("id", FieldKind::Str),
    ("status", FieldKind::Str),
    ("product", FieldKind::Str),
    ("kind", FieldKind::Str),
    ("name", FieldKind::Str),
    ("trial", FieldKind::Bool),
    ("serial", FieldKind::Int),
    ("issued_at", FieldKind::Time),
    ("starts_at", FieldKind::Time),
    ("expires_at", FieldKind::Time),
    ("added_at", FieldKind::Time),
];

impl Fields for LicenseInfo {
    fn field(&self, name: &str) -> Option<Value<'_>> {
        let time = |t: Option<Timestamp>| Some(t.map_or(Value::Null, Value::Time));
        match name {
            "id" => Some(Value::Str(&self.id)),
            "status" => Some(Value::Str(self.status.as_str())),
            "product" => Some(Value::Str(&self.product)),
            "kind" => Some(Value::Str(Kind::as_str(self.kind))),
            "name" => Some(self.name.as_deref().map_or(Value::Null, Value::Str)),
            "trial" => Some(Value::Bool(self.trial)),
            "serial" => Some(Value::Int(i64::try_from(self.serial).unwrap_or(i64::MAX))),
            "issued_at" => time(Some(self.issued_at)),
            "starts_at" => time(self.starts_at),
            "expires_at" => time(self.expires_at),
            "added_at" => time(Some(self.added_at)),
            _ => None,
        }
    }

    fn key(&self) -> &str {
        &self.id
    }
}

/// Builds a license query from its text parts (as the CLI takes them),
/// checking field names and types against the fields a license listing
/// has: `id`, `status`, `product`, `kind`, `name`, `trial`, `serial`,
/// `issued_at`, `starts_at`, `expires_at`, `added_at`.
///
/// ```
/// let q = entitle::engine::license_query(Some(r#"status eq "active""#), Some("-expires_at"), Some(10), None).unwrap();
/// assert_eq!(q.limit, Some(10));
/// assert_eq!(entitle::engine::license_query(Some("colour eq \"red\""), None, None, None).unwrap_err().code(), "MALFORMED");
/// ```
pub fn license_query(
    filter: Option<&str>,
    order: Option<&str>,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<Query> {
    let names: Vec<&str> = LICENSE_FIELDS.iter().map(|(n, _)| *n).collect();
    Ok(Query {
        filter: filter
            .map(|f| Filter::parse_typed(f, LICENSE_FIELDS))
            .transpose()?,
        order: order.map(|o| Order::parse_for(o, &names)).transpose()?,
        limit,
        cursor: cursor.map(str::to_owned),
    })
}

impl Engine {
    /// Lists installed licenses: filtered, ordered, a page at a time.
    /// Cursors resume after the last item seen, so they stay stable when
    /// licenses are added between pages.
    ///
    /// ```
    /// # use entitle::Engine;
    /// let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let query = entitle::engine::license_query(Some(r#"status eq "active""#), None, None, None).unwrap();
    /// assert!(engine.licenses(&query).unwrap().items.is_empty());
    /// ```
    pub fn licenses(&self, query: &Query) -> Result<Page<LicenseInfo>> {
        query::run(self.license_infos(), query)
    }
}
