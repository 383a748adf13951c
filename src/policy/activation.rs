//! Node-locked activations and transfers.

use crate::decision::Reason;
use crate::license::CountedBy;
use crate::policy::validity::{grants_new, license_reason, Context, LicenseView};

/// How a device asks to be activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The device is a virtual machine.
    pub vm: bool,
    /// The activation comes with a vendor-signed machine certificate.
    pub certificate: bool,
}

/// Whether a device may be activated for a license that has `activations`,
/// when `devices` other devices are activated for it.
pub fn activate(
    view: &LicenseView<'_>,
    ctx: &Context,
    now: i64,
    tampered: bool,
    request: Request,
    devices: u64,
) -> Result<(), Reason> {
    let license = view.license;
    let Some(rules) = license.activations else {
        return Ok(());
    };
    // The device context is irrelevant to whether it may be activated.
    let unlocked = LicenseView {
        activation: crate::policy::validity::Activation::NotLocked,
        ..*view
    };
    if !grants_new(&unlocked, ctx, now, tampered) {
        let reason = license_reason(&unlocked, ctx, now, tampered);
        return Err(if reason.allows() {
            Reason::Expired
        } else {
            reason
        });
    }
    if license.prevent_vm && request.vm {
        return Err(Reason::VmNotAllowed);
    }
    let counts_here = match rules.counted_by {
        CountedBy::Install => true,
        CountedBy::Vendor if request.certificate => false,
        CountedBy::Vendor => return Err(Reason::CertificateRequired),
    };
    if counts_here && rules.max.is_some_and(|max| devices >= u64::from(max)) {
        return Err(Reason::ActivationLimit);
    }
    Ok(())
}

/// Whether a device may be deactivated when `transfers` deactivations have
/// been made already.
///
/// ```
/// use entitle::license::{Activations, CountedBy};
/// use entitle::policy::activation::deactivate;
/// let rules = Activations { max: Some(1), max_transfers: Some(1), counted_by: CountedBy::Install };
/// assert!(deactivate(&rules, 0).is_ok());
/// assert!(deactivate(&rules, 1).is_err());
/// ```
pub fn deactivate(rules: &crate::license::Activations, transfers: u32) -> Result<(), Reason> {
    match rules.max_transfers {
        Some(max) if transfers >= max => Err(Reason::TransferLimit),
        _ => Ok(()),
    }
}
