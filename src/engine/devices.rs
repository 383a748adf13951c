//! Node-locked activations, transfers, and offline machine certificates.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::decision::Reason;
use crate::device::Device;
use crate::engine::licenses::{still_trusted, way_out};
use crate::engine::state::InstalledLicense;
use crate::engine::{Engine, Plan};
use crate::error::{Error, Result};
use crate::license::{CountedBy, MachineCertificate};
use crate::policy::activation::{self, Request};
use crate::policy::validity::{best, license_reason, Activation};
use crate::store::{ActivationKind, ActivationRecord, Change};
use crate::token::{self, TokenType};

/// One device activated for one license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ActivationInfo {
    /// The license.
    pub license_id: String,
    /// The device.
    pub fingerprint: String,
    /// Its host name.
    pub hostname: String,
    /// When it was activated.
    pub activated_at: Timestamp,
    /// When a certificate's activation ends.
    pub expires_at: Option<Timestamp>,
    /// Activated by a vendor-signed machine certificate.
    pub certificate: bool,
    /// A virtual machine.
    pub vm: bool,
    /// Its certificate has ended: the device counts no longer.
    pub lapsed: bool,
    /// The install key bound to the device (base64url of 32 bytes): in
    /// the vendor's books, what its receipts and reports are checked
    /// against.
    pub install_key: Option<String>,
}

/// An offline activation request, as a person carries it to the vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ActivationRequest {
    /// Schema version: 1.
    pub v: u32,
    /// The license to activate.
    pub license_id: String,
    /// This device.
    pub fingerprint: String,
    /// Its host name.
    pub hostname: String,
    /// A random value, so two requests never look alike.
    pub nonce: String,
    /// When the request was made.
    pub created_at: Timestamp,
    /// The public key of the install making the request (base64url of its
    /// 32 bytes): the vendor binds the device to it in the certificate and
    /// checks the install's receipts and reports against it. Absent from
    /// requests made before installs had keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_key: Option<String>,
    /// The machine the install runs on (its computed fingerprint), when
    /// the install named its device something else: the vendor repeats it
    /// in the certificate, which then holds only on that machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The install runs on a virtual machine (as its engine detected or
    /// was told, [`EngineBuilder::virtual_machine`](crate::EngineBuilder::virtual_machine)):
    /// the vendor refuses a license with `prevent_vm` before counting the
    /// device (docs/formats.md#activation-request). Read as `false` from
    /// requests made before installs said so.
    #[serde(default)]
    pub vm: bool,
}

/// Between a fingerprint and an install key in the key under which the
/// vendor's books keep a second device claiming a fingerprint they hold
/// already: a control character, which no fingerprint may contain.
const DEVICE_KEY_SEPARATOR: char = '\u{1f}';

/// The key under which the books keep the device `fingerprint` of the
/// install whose key is `install_key`, when another install holds the
/// plain fingerprint.
fn books_device_key(fingerprint: &str, install_key: &str) -> String {
    format!("{fingerprint}{DEVICE_KEY_SEPARATOR}{install_key}")
}

/// The fingerprint a stored activation key names.
pub(crate) fn device_of(key: &str) -> &str {
    key.split(DEVICE_KEY_SEPARATOR).next().unwrap_or(key)
}

fn unlocked(installed: &InstalledLicense) -> crate::policy::LicenseView<'_> {
    installed.view(Activation::NotLocked)
}

fn denied_activation(reason: Reason, license: &str, plan: &Plan<'_>) -> Error {
    let message = match reason {
        Reason::ActivationLimit => {
            let max = plan.state.licenses[license]
                .verified
                .activations
                .and_then(|a| a.max)
                .unwrap_or(0);
            format!("license `{license}` is already activated on its {max} allowed devices; deactivate one first")
        }
        Reason::VmNotAllowed => format!("license `{license}` may not be activated on a virtual machine"),
        Reason::CertificateRequired => format!("license `{license}` is activated only by the vendor: send an activation request to the vendor and apply the certificate they return"),
        Reason::TransferLimit => format!("license `{license}` has no transfers left: the device cannot be deactivated; ask the vendor"),
        other => format!("license `{license}` cannot activate a device now ({})", other.code()),
    };
    Error::denied(reason, message)
}

impl Engine {
    /// This engine's device fingerprint: the one the builder was given, or
    /// this machine's. `None` where the system gives no machine id: then
    /// every node-locked right is denied (`DEVICE_UNKNOWN`).
    pub fn fingerprint(&self) -> Option<&str> {
        self.inner.config.device.fingerprint.as_deref()
    }

    /// Activates this engine's own device (its [`fingerprint`](Self::fingerprint),
    /// host name and virtual-machine flag) for every node-locked license in
    /// force that this install counts: what a desktop application calls.
    /// `DEVICE_UNKNOWN` where this machine has no machine id; otherwise as
    /// [`activate`](Self::activate).
    pub fn activate_this_device(&self) -> Result<Vec<String>> {
        let fingerprint = self.fingerprint().ok_or_else(crate::device::unknown)?;
        self.activate(&Device {
            fingerprint: fingerprint.to_owned(),
            hostname: crate::device::hostname(),
            vm: self.inner.config.device.vm,
        })
    }

    /// Whether this engine's device is activated for `license_id` now (by
    /// a counted activation, or a certificate that has not ended).
    pub fn is_activated(&self, license_id: &str) -> bool {
        let now = self.inner.clock.now().unix();
        self.inner
            .snapshot
            .load()
            .device_activations
            .get(license_id)
            .is_some_and(|&until| now < until)
    }

    /// Activates `device` for every node-locked license in force that this
    /// install counts. Idempotent per fingerprint. Returns the license ids.
    ///
    /// This records a device in this install's count (a site server or a
    /// shared install activating a client, for licenses it counts): it
    /// activates this engine
    /// only when `device` is this engine's own device. A desktop
    /// application activates itself with
    /// [`activate_this_device`](Self::activate_this_device).
    ///
    /// Refused with `ACTIVATION_LIMIT`, `VM_NOT_ALLOWED`,
    /// `CERTIFICATE_REQUIRED` (only the vendor activates), or why no
    /// license can (`NOT_LICENSED`, `EXPIRED`, ...). All or nothing.
    pub fn activate(&self, device: &Device) -> Result<Vec<String>> {
        crate::ident::check("a device fingerprint", &device.fingerprint)?;
        self.mutate(|plan| {
            let ctx = &plan.config.device.ctx;
            let request = Request {
                vm: device.vm,
                certificate: false,
            };
            let mut changes = Vec::new();
            let mut ids = Vec::new();
            let mut reason = Reason::NotLicensed;
            let mut vendor_only = false;
            for installed in plan.state.licenses.values() {
                let Some(rules) = installed.verified.activations else {
                    continue;
                };
                let id = &installed.verified.id;
                let view = unlocked(installed);
                let in_force = license_reason(&view, ctx, plan.now, plan.tampered);
                if !matches!(in_force, Reason::Ok | Reason::InGrace) {
                    reason = best(reason, if in_force.allows() { Reason::Expired } else { in_force });
                    continue;
                }
                if rules.counted_by == CountedBy::Vendor {
                    vendor_only = true;
                    continue;
                }
                let machine = plan.config.device.machine_for(&device.fingerprint);
                // This named device, activated on another machine (a state
                // copied here): the other machine keeps its slot, so this
                // one needs a slot of its own, and takes the record over.
                let elsewhere = machine.is_some()
                    && plan
                        .state
                        .activations
                        .get(&(id.clone(), device.fingerprint.clone()))
                        .is_some_and(|r| {
                            r.live_at(plan.now) && !plan.config.device.on_this_machine(r)
                        });
                let devices = if elsewhere {
                    Some(plan.state.devices_for(id, plan.now).count() as u64)
                } else {
                    plan.state
                        .devices_besides(id, &device.fingerprint, plan.now)
                };
                if let Some(devices) = devices {
                    activation::activate(&view, ctx, plan.now, plan.tampered, request, devices)
                        .map_err(|r| denied_activation(r, id, plan))?;
                    changes.push(Change::PutActivation(ActivationRecord {
                        license_id: id.clone(),
                        fingerprint: device.fingerprint.clone(),
                        activated_at: plan.now,
                        expires_at: None,
                        kind: ActivationKind::Counted,
                        hostname: device.hostname.clone(),
                        vm: device.vm,
                        install_key: None,
                        machine,
                    }));
                }
                ids.push(id.clone());
            }
            if ids.is_empty() {
                if vendor_only {
                    return Err(Error::denied(
                        Reason::CertificateRequired,
                        "the node-locked license here is activated only by the vendor: send an activation request to the vendor and apply the certificate they return",
                    ));
                }
                return Err(Error::denied(
                    reason,
                    format!(
                        "no node-locked license in force can activate this device ({}); add a license with `activations`",
                        reason.code()
                    ),
                ));
            }
            Ok((changes, ids))
        })
    }

    /// Deactivates a device everywhere it is activated, counting one
    /// transfer per license (`TRANSFER_LIMIT` when none are left).
    pub fn deactivate(&self, fingerprint: &str) -> Result<Vec<String>> {
        self.mutate(|plan| {
            let mut changes = Vec::new();
            let mut ids = Vec::new();
            for ((license_id, f), _) in plan.state.activations.iter() {
                if f != fingerprint {
                    continue;
                }
                let used = plan.state.transfers.get(license_id).copied().unwrap_or(0);
                if let Some(rules) = plan
                    .state
                    .licenses
                    .get(license_id)
                    .and_then(|l| l.verified.activations)
                {
                    activation::deactivate(&rules, used)
                        .map_err(|r| denied_activation(r, license_id, plan))?;
                }
                changes.push(Change::DeleteActivation {
                    license_id: license_id.clone(),
                    fingerprint: f.clone(),
                });
                changes.push(Change::Transfers(
                    license_id.clone(),
                    used.saturating_add(1),
                ));
                ids.push(license_id.clone());
            }
            if ids.is_empty() {
                return Err(Error::denied(
                    Reason::NotActivated,
                    format!("device `{fingerprint}` is not activated here"),
                ));
            }
            Ok((changes, ids))
        })
    }

    /// Every activation, live or lapsed.
    pub fn activations(&self) -> Vec<ActivationInfo> {
        let now = self.inner.clock.now().unix();
        self.inner
            .snapshot
            .load()
            .activations
            .values()
            .map(|r| ActivationInfo {
                license_id: r.license_id.clone(),
                fingerprint: device_of(&r.fingerprint).to_owned(),
                hostname: r.hostname.clone(),
                activated_at: Timestamp::from_unix(r.activated_at),
                expires_at: r.expires_at.map(Timestamp::from_unix),
                certificate: r.kind != ActivationKind::Counted,
                vm: r.vm,
                lapsed: !r.live_at(now),
                install_key: r.install_key.clone(),
            })
            .collect()
    }

    /// This device's offline activation request for `license_id` (or the
    /// only node-locked license installed).
    pub fn activation_request(&self, license_id: Option<&str>) -> Result<ActivationRequest> {
        let license_id = match license_id {
            Some(id) => id.to_owned(),
            None => {
                let snapshot = self.inner.snapshot.load();
                let locked: Vec<_> = snapshot
                    .licenses
                    .iter()
                    .filter(|l| l.verified.activations.is_some())
                    .map(|l| l.verified.id.clone())
                    .collect();
                match locked.as_slice() {
                    [only] => only.clone(),
                    [] => {
                        return Err(Error::InvalidArgument(
                            "no node-locked license is installed: add the license first".into(),
                        ))
                    }
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "several node-locked licenses are installed ({}); name one",
                            locked.join(", ")
                        )))
                    }
                }
            }
        };
        self.request_for(license_id)
    }

    /// This device's activation request naming no license (`"license_id":
    /// ""`), for the vendor's service to pick one: the license a key
    /// opens, the one assigned to a user, or a trial
    /// (docs/http.md#the-vendors-service). Never a file a person carries:
    /// the vendor's books refuse a request without a license.
    #[cfg(feature = "client")]
    pub(crate) fn activation_request_for_any_license(&self) -> Result<ActivationRequest> {
        self.request_for(String::new())
    }

    fn request_for(&self, license_id: String) -> Result<ActivationRequest> {
        let fingerprint = self
            .inner
            .config
            .device
            .fingerprint
            .clone()
            .ok_or_else(crate::device::unknown)?;
        let install_key = self
            .inner
            .snapshot
            .load()
            .install_key
            .as_ref()
            .map(|key| key.public_key().to_base64url());
        let machine = self.inner.config.device.machine_for(&fingerprint);
        Ok(ActivationRequest {
            v: 1,
            license_id,
            fingerprint,
            hostname: crate::device::hostname(),
            nonce: crate::engine::random_id(""),
            created_at: self.now(),
            install_key,
            machine,
            vm: self.inner.config.device.vm,
        })
    }

    /// Applies a vendor-signed machine certificate: this device counts as
    /// activated for its license, offline, until its `expires_at`. The
    /// certificate itself is kept and verified again on every open.
    pub fn apply_certificate(&self, text: &str) -> Result<MachineCertificate> {
        let verified = token::verify(
            text,
            &self.inner.snapshot.load().keyring,
            TokenType::Machine,
        )?;
        let kid = verified.kid().to_owned();
        let cert =
            MachineCertificate::from_json(&serde_json::Value::Object(verified.payload().clone()))?;
        self.record_certificate(&cert, &kid, verified.into_compact())?;
        Ok(cert)
    }

    /// Whether a verified certificate from the vendor's service is this
    /// install's own: for this device, on this machine, and bound to this
    /// install's key. Stricter than a file applied by hand, which may
    /// predate install keys: the online service always binds the key it
    /// was sent, so a certificate without it was not made for this
    /// request.
    #[cfg(feature = "client")]
    pub(crate) fn certificate_is_ours(&self, cert: &MachineCertificate) -> Result<()> {
        let device = &self.inner.config.device;
        let own = device
            .fingerprint
            .as_deref()
            .ok_or_else(crate::device::unknown)?;
        if own != cert.fingerprint {
            return Err(Error::FingerprintMismatch {
                expected: own.to_owned(),
                found: cert.fingerprint.clone(),
            });
        }
        let made_for = cert.machine.as_deref().unwrap_or(&cert.fingerprint);
        if device.machine.as_deref() != Some(made_for) {
            return Err(Error::FingerprintMismatch {
                expected: device.machine.clone().unwrap_or_default(),
                found: made_for.to_owned(),
            });
        }
        let ours = self
            .inner
            .snapshot
            .load()
            .install_key
            .as_ref()
            .map(|key| key.public_key().to_base64url());
        if ours.is_none() || cert.install_key != ours {
            return Err(Error::InstallKeyMismatch {
                fingerprint: cert.fingerprint.clone(),
            });
        }
        Ok(())
    }

    /// Deletes the activations whose machine certificate has one of `ids`
    /// ([`certificate_id`](crate::license::certificate_id)): the vendor
    /// freed their slots (a lost machine), so they stop granting here.
    /// Counts no transfer (the vendor counted it) and signs no receipt.
    /// Returns the `(license, device)` pairs withdrawn; an id this install
    /// holds no certificate for is ignored.
    #[cfg(feature = "client")]
    pub(crate) fn withdraw_certificates(&self, ids: &[String]) -> Result<Vec<(String, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.mutate(|plan| {
            let mut changes = Vec::new();
            let mut withdrawn = Vec::new();
            for ((license_id, fingerprint), record) in plan.state.activations.iter() {
                let ActivationKind::Certificate(token) = &record.kind else {
                    continue;
                };
                let id = crate::license::certificate_id(token);
                if !ids.contains(&id) {
                    continue;
                }
                changes.push(Change::DeleteActivation {
                    license_id: license_id.clone(),
                    fingerprint: fingerprint.clone(),
                });
                withdrawn.push((license_id.clone(), device_of(fingerprint).to_owned()));
            }
            Ok((changes, withdrawn))
        })
    }

    /// Records a verified certificate (`token`, signed by `kid`).
    pub(crate) fn record_certificate(
        &self,
        cert: &MachineCertificate,
        kid: &str,
        token: String,
    ) -> Result<()> {
        let device = &self.inner.config.device;
        let own = device.fingerprint.as_deref();
        if let Some(own) = own {
            if own != cert.fingerprint {
                return Err(Error::FingerprintMismatch {
                    expected: own.to_owned(),
                    found: cert.fingerprint.clone(),
                });
            }
            // The device named here, on another machine: the certificate
            // was made for that machine's request.
            let made_for = cert.machine.as_deref().unwrap_or(&cert.fingerprint);
            if device.machine.as_deref() != Some(made_for) {
                return Err(Error::FingerprintMismatch {
                    expected: device.machine.clone().unwrap_or_default(),
                    found: made_for.to_owned(),
                });
            }
        }
        self.mutate(|plan| {
            let installed = plan.state.licenses.get(&cert.license_id).ok_or_else(|| {
                Error::LicenseNotFound {
                    id: cert.license_id.clone(),
                }
            })?;
            // A certificate binds the device to the install that asked for
            // it: one bound to another install's key (a state made again
            // since the request went out) would have its receipts and
            // reports refused by the vendor's books.
            if let (Some(own), Some(bound), Some(key)) =
                (own, &cert.install_key, &plan.state.install_key)
            {
                if own == cert.fingerprint && *bound != key.public_key().to_base64url() {
                    return Err(Error::InstallKeyMismatch {
                        fingerprint: cert.fingerprint.clone(),
                    });
                }
            }
            // A certificate this install gave up with a receipt (the
            // vendor freed its slot) never activates again; a newer one
            // the vendor signs since does (docs/semantics.md#what-stored-state-is-trusted).
            let key = (cert.license_id.clone(), cert.fingerprint.clone());
            if let Some(receipt) = plan.state.issued_receipts.get(&key) {
                if cert.issued_at.unix() < receipt.deactivated_at {
                    return Err(Error::denied(
                        Reason::CertificateDeactivated,
                        format!(
                            "this machine certificate for license `{}` was given up when device \
                             `{}` was deactivated at {} (a receipt was made for it); ask the \
                             vendor for a new certificate",
                            cert.license_id,
                            cert.fingerprint,
                            Timestamp::from_unix(receipt.deactivated_at)
                        ),
                    ));
                }
            }
            if cert.expires_at.is_some_and(|end| end.unix() <= plan.now) {
                return Err(Error::denied(
                    Reason::Expired,
                    format!(
                        "this machine certificate expired at {}; ask the vendor for a new one",
                        cert.expires_at.map(|t| t.to_string()).unwrap_or_default()
                    ),
                ));
            }
            still_trusted(plan, kid)?;
            let mut changes = Vec::new();
            // Only a certificate for this very device is a token for this
            // install, and may lower the clock guard.
            if own.is_some() {
                changes.extend(way_out(plan, cert.issued_at));
            }
            if let Some(devices) =
                plan.state
                    .devices_besides(&cert.license_id, &cert.fingerprint, plan.now)
            {
                let request = Request {
                    vm: plan.config.device.vm,
                    certificate: true,
                };
                activation::activate(
                    &unlocked(installed),
                    &plan.config.device.ctx,
                    plan.now,
                    plan.tampered,
                    request,
                    devices,
                )
                .map_err(|r| denied_activation(r, &cert.license_id, plan))?;
            }
            changes.push(Change::PutActivation(ActivationRecord {
                license_id: cert.license_id.clone(),
                fingerprint: cert.fingerprint.clone(),
                activated_at: plan.now,
                expires_at: cert.expires_at.map(Timestamp::unix),
                kind: ActivationKind::Certificate(token.clone()),
                hostname: crate::device::hostname(),
                vm: plan.config.device.vm,
                install_key: cert.install_key.clone(),
                machine: cert.machine.clone(),
            }));
            Ok((changes, ()))
        })
    }
}

impl Engine {
    /// The vendor side of an offline activation, behind
    /// [`Books::record_issued_certificate`](crate::books::Books::record_issued_certificate):
    /// records that a certificate is being issued for the request's device
    /// in this (vendor) state, refusing a virtual machine when the license
    /// has `prevent_vm` (`VM_NOT_ALLOWED`, nothing recorded) and a device
    /// over the license's `max` activations. The license must be installed
    /// in the vendor's state. This engine is the authority here, whatever `counted_by` says. The
    /// record counts toward `max` and grants nothing here.
    pub(crate) fn record_issued_certificate(
        &self,
        request: &ActivationRequest,
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        self.mutate(|plan| Ok((plan_record_certificate(plan, request, expires_at)?.0, ())))
    }
}

/// Plans the books' record of a certificate issued for `request`'s device
/// (see [`Engine::record_issued_certificate`]); `true` when the device is
/// counted now, `false` when it was counted already (a re-issue).
pub(crate) fn plan_record_certificate(
    plan: &Plan<'_>,
    request: &ActivationRequest,
    expires_at: Option<Timestamp>,
) -> Result<(Vec<Change>, bool)> {
    let installed = plan
        .state
        .licenses
        .get(&request.license_id)
        .ok_or_else(|| Error::LicenseNotFound {
            id: request.license_id.clone(),
        })?;
    let rules = installed.verified.activations.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "license `{}` is not node-locked (it has no `activations`); it needs no certificate",
            request.license_id
        ))
    })?;
    // Before anything is counted: a refused virtual machine takes
    // no slot (docs/formats.md#activation-request).
    if installed.verified.prevent_vm && request.vm {
        return Err(denied_activation(
            Reason::VmNotAllowed,
            &request.license_id,
            plan,
        ));
    }
    // The books count a device by (fingerprint, install key): the
    // same pair again is a re-issue that counts nothing; a known
    // fingerprint with another install key (a second install
    // claiming the first one's fingerprint) is another device,
    // kept under a key of its own (docs/semantics.md#what-stored-state-is-trusted).
    let license = &request.license_id;
    let same_device = plan
        .state
        .devices_for(license, plan.now)
        .find(|(_, r)| {
            device_of(&r.fingerprint) == request.fingerprint
                && (r.install_key == request.install_key || r.install_key.is_none())
        })
        .map(|(key, _)| key.to_owned());
    let created = same_device.is_none();
    let key = match same_device {
        Some(key) => key,
        None => {
            let devices = plan.state.devices_for(license, plan.now).count() as u64;
            if rules.max.is_some_and(|max| devices >= u64::from(max)) {
                return Err(denied_activation(Reason::ActivationLimit, license, plan));
            }
            let taken = plan
                .state
                .activations
                .contains_key(&(license.clone(), request.fingerprint.clone()));
            match (&request.install_key, taken) {
                (Some(install_key), true) => books_device_key(&request.fingerprint, install_key),
                _ => request.fingerprint.clone(),
            }
        }
    };
    let mut changes = recorded(request, plan.now, expires_at);
    if let Some(Change::PutActivation(record)) = changes.first_mut() {
        record.fingerprint = key;
    }
    Ok((changes, created))
}

/// The books' record of a device activated for `request`'s license, made
/// at `now`: it counts toward `max` and grants nothing on the books.
pub(crate) fn recorded(
    request: &ActivationRequest,
    now: i64,
    expires_at: Option<Timestamp>,
) -> Vec<Change> {
    vec![Change::PutActivation(ActivationRecord {
        license_id: request.license_id.clone(),
        fingerprint: request.fingerprint.clone(),
        activated_at: now,
        expires_at: expires_at.map(Timestamp::unix),
        kind: ActivationKind::Recorded,
        hostname: request.hostname.clone(),
        vm: request.vm,
        install_key: request.install_key.clone(),
        machine: request.machine.clone(),
    })]
}

/// Plans freeing device `fingerprint`'s slot on `license_id` by hand (a
/// machine the customer lost): every activation the books keep of it for
/// that license (under its plain fingerprint, or under another install's
/// key), counting one transfer. `NOT_ACTIVATED` when there is none;
/// `TRANSFER_LIMIT` when no transfer is left.
// Used by the vendor's service (`server`).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn plan_free(
    plan: &Plan<'_>,
    license_id: &str,
    fingerprint: &str,
) -> Result<Vec<Change>> {
    let held: Vec<String> = plan
        .state
        .activations
        .range((license_id.to_owned(), String::new())..)
        .take_while(|((l, _), _)| l == license_id)
        .filter(|((_, f), _)| device_of(f) == fingerprint)
        .map(|((_, f), _)| f.clone())
        .collect();
    if held.is_empty() {
        return Err(Error::denied(
            Reason::NotActivated,
            format!("device `{fingerprint}` is not activated for license `{license_id}`"),
        ));
    }
    let used = plan.state.transfers.get(license_id).copied().unwrap_or(0);
    if let Some(rules) = plan
        .state
        .licenses
        .get(license_id)
        .and_then(|l| l.verified.activations)
    {
        activation::deactivate(&rules, used).map_err(|r| denied_activation(r, license_id, plan))?;
    }
    let mut changes: Vec<Change> = held
        .into_iter()
        .map(|f| Change::DeleteActivation {
            license_id: license_id.to_owned(),
            fingerprint: f,
        })
        .collect();
    changes.push(Change::Transfers(
        license_id.to_owned(),
        used.saturating_add(1),
    ));
    Ok(changes)
}

impl ActivationRequest {
    /// Reads a request as a person carried it (JSON), checking its shape.
    pub fn from_json_text(text: &str) -> Result<Self> {
        if text.len() > 16 * 1024 {
            return Err(Error::TooLarge {
                what: "activation request",
                size: text.len(),
                limit: 16 * 1024,
            });
        }
        let value = crate::token::parse_strict_json(text.as_bytes(), "activation request")?;
        let request: ActivationRequest = serde_path_to_error::deserialize(&value).map_err(|e| {
            Error::malformed(
                "activation request",
                format!("field `{}`: {}", e.path(), e.inner()),
            )
        })?;
        if request.v != 1 || request.license_id.is_empty() || request.fingerprint.is_empty() {
            return Err(Error::malformed(
                "activation request",
                "it needs `v: 1`, a `license_id` and a `fingerprint`",
            ));
        }
        for (field, value) in [
            ("license_id", &request.license_id),
            ("fingerprint", &request.fingerprint),
            ("hostname", &request.hostname),
            ("nonce", &request.nonce),
            (
                "machine",
                request.machine.as_ref().unwrap_or(&request.fingerprint),
            ),
        ] {
            if !crate::ident::is_name(value) {
                return Err(Error::malformed(
                    "activation request",
                    format!("field `{field}` must be 1 to 256 printable characters"),
                ));
            }
        }
        if let Some(key) = &request.install_key {
            crate::token::PublicKey::from_base64url(key).map_err(|_| {
                Error::malformed(
                    "activation request",
                    "field `install_key` must be the base64url of a 32-byte Ed25519 public key",
                )
            })?;
        }
        Ok(request)
    }
}
