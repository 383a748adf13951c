//! Installing, replacing, removing and revoking licenses.

use std::sync::Arc;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::engine::state::{Change, InstalledLicense, State};
use crate::engine::{Engine, Plan};
use crate::error::{Error, Result};
use crate::license::{Kind, License, RevocationList, VerifiedLicense};
use crate::policy::validity::{self, feature_decision, LicenseStatus};
use crate::query::{self, FieldKind, Fields, Filter, Order, Page, Query, Value};
use crate::token::{self, TokenType};

/// What [`Engine::apply`] did with a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "applied", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Applied {
    /// A license was installed (or was already).
    License {
        /// Its id.
        id: String,
    },
    /// License ids were revoked.
    Revocations {
        /// The revoked ids.
        ids: Vec<String>,
    },
    /// A machine certificate activated this device.
    Machine {
        /// The license.
        license_id: String,
        /// The device.
        fingerprint: String,
        /// When the activation ends, if it does.
        expires_at: Option<Timestamp>,
    },
}

/// A license as listed: the document's main fields and its state now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenseInfo {
    /// License id.
    pub id: String,
    /// Its state now.
    pub status: &'static str,
    /// Product code.
    pub product: String,
    /// Informational class.
    pub kind: &'static str,
    /// Display name.
    pub name: Option<String>,
    /// Customer.
    pub customer: Option<serde_json::Value>,
    /// Trial license.
    pub trial: bool,
    /// Re-issue number.
    pub serial: u64,
    /// When the vendor signed it.
    pub issued_at: Timestamp,
    /// Start of validity.
    pub starts_at: Option<Timestamp>,
    /// End of validity.
    pub expires_at: Option<Timestamp>,
    /// When it was added here.
    pub added_at: Timestamp,
    /// Codes of the features it grants.
    pub features: Vec<String>,
    /// The notice to show now (`notice_on_expire` once expired).
    pub notice: Option<String>,
}

impl LicenseInfo {
    pub(crate) fn of(installed: &InstalledLicense, status: LicenseStatus) -> Self {
        let l: &License = installed.verified.license();
        let notice = if status == LicenseStatus::Expired && l.notice_on_expire.is_some() {
            l.notice_on_expire.clone()
        } else {
            l.notice.clone()
        };
        LicenseInfo {
            id: l.id.clone(),
            status: status.as_str(),
            product: l.product.clone(),
            kind: Kind::as_str(l.kind),
            name: l.name.clone(),
            customer: l.customer.clone(),
            trial: l.trial,
            serial: l.serial,
            issued_at: l.issued_at,
            starts_at: l.starts_at,
            expires_at: l.expires_at,
            added_at: installed.added_at,
            features: l.features.iter().map(|f| f.code.clone()).collect(),
            notice,
        }
    }
}

/// The clock's way out of a false alarm: a vendor token newer than every
/// token seen lowers the guard to its `issued_at` (or now, if later). No old
/// token can ever do it again, so the way out is not a way around.
pub(crate) fn note_issued_at(plan: &Plan<'_>, issued_at: Timestamp, changes: &mut Vec<Change>) {
    let issued_at = issued_at.unix();
    if issued_at > plan.state.max_issued_at {
        changes.push(Change::MaxIssuedAt(issued_at));
        if plan.tampered {
            changes.push(Change::LatestSeen(issued_at.max(plan.now)));
        }
    }
}

/// Plans the installation of a verified license.
pub(crate) fn plan_add(plan: &Plan<'_>, verified: VerifiedLicense) -> Result<Vec<Change>> {
    let state: &State = plan.state;
    let id = verified.id.clone();
    if verified.product != plan.config.product {
        return Err(Error::ProductMismatch {
            id,
            expected: plan.config.product.clone(),
            found: verified.product.clone(),
        });
    }
    if state.tombstones.contains_key(&id) {
        return Err(Error::LicenseRevoked { id });
    }
    let known = state.serials.get(&id).copied();
    if let Some(known) = known {
        if verified.serial < known {
            return Err(Error::LicenseReplayed {
                id,
                offered: verified.serial,
                known,
            });
        }
    }
    if let Some(installed) = state.licenses.get(&id) {
        if installed.verified.token() == verified.token() {
            return Ok(Vec::new()); // the same token again: nothing to do
        }
        let old = installed.verified.license();
        if verified.serial == old.serial && verified.issued_at < old.issued_at {
            return Err(Error::LicenseReplayed {
                id,
                offered: verified.serial,
                known: old.serial,
            });
        }
    }
    let mut changes = Vec::new();
    note_issued_at(plan, verified.issued_at, &mut changes);
    if known.is_none_or(|k| verified.serial > k) {
        changes.push(Change::Serial(id.clone(), verified.serial));
    }
    changes.push(Change::PutLicense(Arc::new(InstalledLicense {
        verified,
        added_at: Timestamp::from_unix(plan.now),
        revoked: false,
    })));
    Ok(changes)
}

fn plan_revocations(plan: &Plan<'_>, list: &RevocationList) -> Vec<Change> {
    let mut changes = Vec::new();
    note_issued_at(plan, list.issued_at, &mut changes);
    for id in &list.ids {
        changes.push(Change::Tombstone(id.clone(), plan.now));
        if let Some(installed) = plan.state.licenses.get(id) {
            if !installed.revoked {
                changes.push(Change::PutLicense(Arc::new(InstalledLicense {
                    revoked: true,
                    ..InstalledLicense::clone(installed)
                })));
            }
        }
    }
    changes
}

impl Engine {
    /// Verifies and installs a license (armored or a bare token).
    /// Re-adding the same token does nothing and succeeds.
    ///
    /// Refused with `PRODUCT_MISMATCH`, `LICENSE_REVOKED` (the id was
    /// revoked or hard-removed), `LICENSE_REPLAYED` (an older serial), or
    /// the verification errors.
    pub fn add_license(&self, token: &str) -> Result<String> {
        let verified = VerifiedLicense::verify(token, &self.inner.config.keyring)?;
        let id = verified.id.clone();
        self.mutate(|plan| Ok((plan_add(plan, verified)?, ())))?;
        Ok(id)
    }

    /// Removes a license. A `hard` removal leaves a tombstone: the id can
    /// never be added again (`LICENSE_REVOKED`). A soft removal remembers
    /// the serial, so an older copy cannot come back either.
    pub fn remove_license(&self, id: &str, hard: bool) -> Result<()> {
        self.mutate(|plan| {
            let installed = plan.state.licenses.contains_key(id);
            if !installed && !hard {
                return Err(Error::LicenseNotFound { id: id.to_owned() });
            }
            let mut changes = Vec::new();
            if hard {
                changes.push(Change::Tombstone(id.to_owned(), plan.now));
            }
            if installed {
                changes.push(Change::DeleteLicense(id.to_owned()));
            }
            Ok((changes, ()))
        })
    }

    /// Applies a signed revocation list: each id is revoked for good.
    pub fn apply_revocations(&self, token: &str) -> Result<Vec<String>> {
        let list = RevocationList::verify(token, &self.inner.config.keyring)?;
        self.mutate(|plan| Ok((plan_revocations(plan, &list), ())))?;
        Ok(list.ids)
    }

    /// Applies whatever signed file it is given: a license, a revocation
    /// list or a machine certificate, and says which.
    pub fn apply(&self, text: &str) -> Result<Applied> {
        let verified = token::verify_any(text, &self.inner.config.keyring, None)?;
        match verified.typ() {
            TokenType::License => {
                let license = VerifiedLicense::from_token(verified)?;
                let id = license.id.clone();
                self.mutate(|plan| Ok((plan_add(plan, license)?, ())))?;
                Ok(Applied::License { id })
            }
            TokenType::Revocations => {
                let list = RevocationList::from_json(&serde_json::Value::Object(
                    verified.payload().clone(),
                ))?;
                self.mutate(|plan| Ok((plan_revocations(plan, &list), ())))?;
                Ok(Applied::Revocations { ids: list.ids })
            }
            TokenType::Machine => {
                let cert = crate::license::MachineCertificate::from_json(
                    &serde_json::Value::Object(verified.payload().clone()),
                )?;
                self.record_certificate(&cert)?;
                Ok(Applied::Machine {
                    license_id: cert.license_id,
                    fingerprint: cert.fingerprint,
                    expires_at: cert.expires_at,
                })
            }
        }
    }

    /// Every installed license with its state now, by id.
    pub fn license_infos(&self) -> Vec<LicenseInfo> {
        let now = self.inner.clock.now().unix();
        let snapshot = self.inner.snapshot.load();
        snapshot
            .licenses
            .iter()
            .map(|l| {
                let view = l.view(
                    self.inner
                        .config
                        .device
                        .activation(l, &snapshot.device_activations),
                );
                LicenseInfo::of(l, validity::status(&view, now))
            })
            .collect()
    }

    /// The per-user check: like [`check_feature`](Engine::check_feature),
    /// but a license with `assigned_users` only counts for those users.
    pub fn check_feature_for(&self, user: &str, code: &str) -> Decision {
        let now = self.inner.clock.now().unix();
        let snapshot = self.inner.snapshot.load();
        let tampered = now < snapshot.tamper_below;
        let device = &self.inner.config.device;
        let views: Vec<_> = snapshot
            .licenses
            .iter()
            .filter(|l| assigned_to(l, user))
            .map(|l| l.view(device.activation(l, &snapshot.device_activations)))
            .collect();
        let reason = feature_decision(&views, code, &device.ctx, now, tampered);
        Decision::new(reason, None)
    }

    /// The licenses that give `user` rights now: those assigned to the
    /// user, or to no one in particular, that are in force.
    pub fn licenses_for_user(&self, user: &str) -> Vec<LicenseInfo> {
        let now = self.inner.clock.now().unix();
        let snapshot = self.inner.snapshot.load();
        let tampered = now < snapshot.tamper_below;
        let device = &self.inner.config.device;
        snapshot
            .licenses
            .iter()
            .filter(|l| assigned_to(l, user))
            .filter_map(|l| {
                let view = l.view(device.activation(l, &snapshot.device_activations));
                validity::license_reason(&view, &device.ctx, now, tampered)
                    .allows()
                    .then(|| LicenseInfo::of(l, validity::status(&view, now)))
            })
            .collect()
    }
}

fn assigned_to(license: &InstalledLicense, user: &str) -> bool {
    license
        .verified
        .assigned_users
        .as_ref()
        .is_none_or(|users| users.iter().any(|u| u == user))
}

/// The fields a license listing can filter and order on.
pub const LICENSE_FIELDS: &[(&str, FieldKind)] = &[
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
            "status" => Some(Value::Str(self.status)),
            "product" => Some(Value::Str(&self.product)),
            "kind" => Some(Value::Str(self.kind)),
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
/// checking field names and types against [`LICENSE_FIELDS`].
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
    /// let engine = Engine::builder("acme").build().unwrap();
    /// let query = entitle::engine::license_query(Some(r#"status eq "active""#), None, None, None).unwrap();
    /// assert!(engine.licenses(&query).unwrap().items.is_empty());
    /// ```
    pub fn licenses(&self, query: &Query) -> Result<Page<LicenseInfo>> {
        query::run(self.license_infos(), query)
    }
}
