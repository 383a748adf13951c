//! Installing, replacing, removing and revoking licenses.

use std::sync::Arc;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::engine::info::{LicenseInfo, Shown};
use crate::engine::state::{InstalledLicense, State};
use crate::engine::{Engine, Plan};
use crate::error::{Error, Result};
use crate::license::{KeyRotation, RevocationList, VerifiedLicense};
use crate::policy::guard;
use crate::policy::validity::{self, feature_decision};
use crate::store::{Change, IssueMark, LicenseRecord, SignedKind, SignedRecord};
use crate::token::{self, Keyring, TokenType, VerifiedToken};

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
    /// A key rotation changed the keys this install trusts.
    Keys {
        /// The `kid`s of the keys trusted from now on.
        trusted: Vec<String>,
        /// The `kid`s trusted no longer.
        retired: Vec<String>,
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

/// The clock guard's way out for a token for this install signed at
/// `issued_at` ([`guard::way_out`]).
pub(crate) fn way_out(plan: &Plan<'_>, issued_at: Timestamp) -> Vec<Change> {
    guard::way_out(
        issued_at.unix(),
        plan.state.max_issued_at,
        plan.tampered,
        plan.now,
    )
}

/// Refuses a token verified (outside the writer lock) with a key a
/// rotation has since retired.
pub(crate) fn still_trusted(plan: &Plan<'_>, kid: &str) -> Result<()> {
    if plan.state.keyring.get(kid).is_none() {
        return Err(Error::UnknownKey {
            kid: kid.to_owned(),
        });
    }
    Ok(())
}

/// Refuses a revocation list or key rotation that names another product.
fn for_this_product(plan: &Plan<'_>, product: Option<&str>, what: &str) -> Result<()> {
    match product {
        Some(found) if found != plan.config.product => Err(Error::ProductMismatch {
            what: what.to_owned(),
            expected: plan.config.product.clone(),
            found: found.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Plans the installation of a verified license.
pub(crate) fn plan_add(plan: &Plan<'_>, verified: VerifiedLicense) -> Result<Vec<Change>> {
    let state: &State = plan.state;
    let id = verified.id.clone();
    if verified.product != plan.config.product {
        return Err(Error::ProductMismatch {
            what: format!("license `{id}`"),
            expected: plan.config.product.clone(),
            found: verified.product.clone(),
        });
    }
    still_trusted(plan, verified.kid())?;
    if state.tombstones.contains_key(&id) {
        return Err(Error::LicenseRevoked { id });
    }
    let issued_at = verified.issued_at.unix();
    let known = state.serials.get(&id).copied();
    if let Some(known) = known {
        // An older serial, or the same serial signed earlier than one
        // seen: installed now or removed since (docs/semantics.md#what-stored-state-is-trusted).
        if known.supersedes(verified.serial, issued_at) {
            return Err(Error::LicenseReplayed {
                id,
                offered: verified.serial,
                known: known.serial,
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
    let mut changes = way_out(plan, verified.issued_at);
    // A trial's clock starts at its first use here, once for good.
    if verified.trial_secs.is_some() && !state.first_use.contains_key(&id) {
        changes.push(Change::FirstUse(id.clone(), plan.now));
    }
    let mark = IssueMark::new(verified.serial, issued_at);
    // Not older than the mark (refused above): it is the mark now.
    if known != Some(mark) {
        changes.push(Change::Serial(id.clone(), mark));
    }
    changes.push(Change::PutLicense(LicenseRecord {
        id: Arc::from(id),
        token: Arc::from(verified.token()),
        added_at: plan.now,
        revoked: false,
        verified: Some(Arc::new(verified)),
    }));
    Ok(changes)
}

/// Plans a verified revocation list: kept as signed, and each id
/// tombstoned and its license marked revoked.
pub(crate) fn plan_revocations(
    plan: &Plan<'_>,
    list: &RevocationList,
    token: &str,
) -> Result<Vec<Change>> {
    for_this_product(plan, list.product.as_deref(), "this revocation list")?;
    let mut changes = Vec::new();
    if list.product.is_some() {
        changes.extend(way_out(plan, list.issued_at));
    }
    changes.push(Change::PutSigned(SignedRecord {
        kind: SignedKind::Revocations,
        token: token.to_owned(),
        added_at: plan.now,
    }));
    for id in &list.ids {
        changes.push(Change::Tombstone(id.clone(), plan.now));
        if let Some(installed) = plan.state.licenses.get(id) {
            if !installed.revoked {
                changes.push(Change::PutLicense(LicenseRecord {
                    id: Arc::from(id.as_str()),
                    token: Arc::clone(&installed.stored),
                    added_at: installed.added_at.unix(),
                    revoked: true,
                    verified: Some(Arc::clone(&installed.verified)),
                }));
            }
        }
    }
    Ok(changes)
}

/// Plans a verified key rotation: kept as signed, and the keyring it
/// leads to trusted from now on. Rotations apply in the order they were
/// signed, so an older one than the last applied is refused.
fn plan_rotation(plan: &Plan<'_>, rotation: &KeyRotation, token: &str) -> Result<Vec<Change>> {
    for_this_product(plan, rotation.product.as_deref(), "this key rotation")?;
    let issued_at = rotation.issued_at.unix();
    if let Some(last) = plan.state.rotated_at {
        if issued_at <= last {
            return Err(Error::InvalidArgument(format!(
                "this key rotation was signed at {}, not after the last one applied here ({}); \
                 apply the vendor's newest rotation",
                rotation.issued_at,
                Timestamp::from_unix(last)
            )));
        }
    }
    // Refused here if it would leave no key; applied by the state.
    rotation.applied_to(&plan.state.keyring)?;
    let mut changes = Vec::new();
    if rotation.product.is_some() {
        changes.extend(way_out(plan, rotation.issued_at));
    }
    changes.push(Change::PutSigned(SignedRecord {
        kind: SignedKind::Keys,
        token: token.to_owned(),
        added_at: plan.now,
    }));
    Ok(changes)
}

impl Engine {
    /// The keys trusted now: the builder's, with the signed key rotations
    /// applied to this state over them.
    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.inner.snapshot.load().keyring)
    }

    /// The token of the license installed under `id`, if any: what a
    /// sync compares a token from the vendor's service with.
    #[cfg(feature = "client")]
    pub(crate) fn installed_license_token(&self, id: &str) -> Option<String> {
        self.inner
            .snapshot
            .load()
            .licenses
            .iter()
            .find(|l| l.verified.id == id)
            .map(|l| l.verified.token().to_owned())
    }

    /// Verifies and installs a license (armored or a bare token).
    /// Re-adding the same token does nothing and succeeds.
    ///
    /// Refused with `PRODUCT_MISMATCH`, `LICENSE_REVOKED` (the id was
    /// revoked or hard-removed), `LICENSE_REPLAYED` (an older serial), or
    /// the verification errors.
    pub fn add_license(&self, token: &str) -> Result<String> {
        let verified = VerifiedLicense::verify(token, &self.keyring())
            .map_err(|e| install_signed_instead(token, e))?;
        let id = verified.id.clone();
        self.mutate(|plan| Ok((plan_add(plan, verified.clone())?, ())))?;
        Ok(id)
    }

    /// Removes a license, returning what it was (`None` for a hard removal
    /// of an id that is not installed, which buries it all the same). A
    /// `hard` removal leaves a tombstone: the id can never be added again
    /// (`LICENSE_REVOKED`). A soft removal remembers the serial, so an
    /// older copy cannot come back either; a trial's first use is
    /// remembered too, so adding it again does not restart it.
    pub fn remove_license(&self, id: &str, hard: bool) -> Result<Option<LicenseInfo>> {
        let removed = self.license_info(id);
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
        })?;
        Ok(removed)
    }

    /// Applies a signed revocation list: each id is revoked for good.
    /// Refused with `PRODUCT_MISMATCH` if the list names another product.
    pub fn apply_revocations(&self, token: &str) -> Result<Vec<String>> {
        let verified = token::verify(token, &self.keyring(), TokenType::Revocations)?;
        match self.apply_verified(verified)? {
            Applied::Revocations { ids } => Ok(ids),
            // Cannot happen: `verify` checked the type.
            _ => Ok(Vec::new()),
        }
    }

    /// Applies whatever signed file it is given: a license, a revocation
    /// list, a machine certificate or a key rotation, and says which.
    /// Receipts and reports go the other way (to the vendor's books) and
    /// are refused with `WRONG_TYPE`.
    pub fn apply(&self, text: &str) -> Result<Applied> {
        match token::verify_any(text, &self.keyring(), None) {
            Ok(verified) => self.apply_verified(verified),
            Err(e) => Err(install_signed_instead(text, e)),
        }
    }

    fn apply_verified(&self, verified: VerifiedToken) -> Result<Applied> {
        let kid = verified.kid().to_owned();
        match verified.typ() {
            TokenType::License => {
                let license = VerifiedLicense::from_token(verified)?;
                let id = license.id.clone();
                self.mutate(|plan| Ok((plan_add(plan, license.clone())?, ())))?;
                Ok(Applied::License { id })
            }
            TokenType::Revocations => {
                let list = RevocationList::from_json(&serde_json::Value::Object(
                    verified.payload().clone(),
                ))?;
                let compact = verified.into_compact();
                self.mutate(|plan| {
                    still_trusted(plan, &kid)?;
                    Ok((plan_revocations(plan, &list, &compact)?, ()))
                })?;
                Ok(Applied::Revocations { ids: list.ids })
            }
            TokenType::Machine => {
                let cert = crate::license::MachineCertificate::from_json(
                    &serde_json::Value::Object(verified.payload().clone()),
                )?;
                self.record_certificate(&cert, &kid, verified.into_compact())?;
                Ok(Applied::Machine {
                    license_id: cert.license_id,
                    fingerprint: cert.fingerprint,
                    expires_at: cert.expires_at,
                })
            }
            TokenType::Keys => {
                let rotation =
                    KeyRotation::from_json(&serde_json::Value::Object(verified.payload().clone()))?;
                let compact = verified.into_compact();
                self.mutate(|plan| {
                    still_trusted(plan, &kid)?;
                    Ok((plan_rotation(plan, &rotation, &compact)?, ()))
                })?;
                Ok(Applied::Keys {
                    trusted: rotation.keys.iter().map(|k| k.kid().to_owned()).collect(),
                    retired: rotation.retire,
                })
            }
            other => Err(not_for_an_install(other.as_str())),
        }
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
        let shown = Shown::new(&snapshot, device, now);
        snapshot
            .licenses
            .iter()
            .filter(|l| assigned_to(l, user))
            .filter(|l| {
                let view = l.view(device.activation(l, &snapshot.device_activations));
                validity::license_reason(&view, &device.ctx, now, tampered).allows()
            })
            .map(|l| shown.info(l))
            .collect()
    }
}

/// `error`, or `WRONG_TYPE` when `text` is a receipt or report: signed by
/// an install's key, which no install trusts, it would otherwise be
/// refused for its key, with advice about the vendor's keys.
fn install_signed_instead(text: &str, error: Error) -> Error {
    if !matches!(error, Error::UnknownKey { .. }) {
        return error;
    }
    token::decode_unverified(text)
        .ok()
        .and_then(|t| t.header.get("typ")?.as_str().and_then(TokenType::parse))
        .filter(|typ| {
            matches!(
                typ,
                TokenType::Receipt | TokenType::Report | TokenType::Lease
            )
        })
        .map_or(error, |typ| not_for_an_install(typ.as_str()))
}

/// A receipt or report offered to an install: they are read by the
/// vendor's books (`entitle --state BOOKS receipt|ingest FILE`).
fn not_for_an_install(found: &str) -> Error {
    Error::WrongType {
        expected: "license, machine, revocations or keys",
        found: found.to_owned(),
    }
}

fn assigned_to(license: &InstalledLicense, user: &str) -> bool {
    license
        .verified
        .assigned_users
        .as_ref()
        .is_none_or(|users| users.iter().any(|u| u == user))
}
