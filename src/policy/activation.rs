//! Node-locked activations and transfers.

use crate::decision::Reason;
use crate::error::Error;
use crate::license::{Activations, CountedBy, DeactivationReceipt};
use crate::policy::validity::{grants_new, license_reason, Context, LicenseView};
use crate::store::{AcceptedReceiptRecord, ActivationRecord, Change};
use crate::time::Timestamp;
use crate::token::{self, Keyring, PublicKey, TokenType};

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
pub fn deactivate(rules: &Activations, transfers: u32) -> Result<(), Reason> {
    match rules.max_transfers {
        Some(max) if transfers >= max => Err(Reason::TransferLimit),
        _ => Ok(()),
    }
}

/// What the vendor's books hold about the license and device a receipt
/// names, for [`accept_receipt`].
#[derive(Debug, Clone, Default)]
pub struct ReceiptBooks<'a> {
    /// The activation the receipt would free, if the books hold one.
    pub activation: Option<&'a ActivationRecord>,
    /// Receipts accepted before for the same license and device.
    pub accepted: Vec<&'a AcceptedReceiptRecord>,
    /// The license's activation rules, when the books hold the license.
    pub rules: Option<Activations>,
    /// Transfers counted for the license so far.
    pub transfers: u32,
}

/// A receipt the books accept: the verified receipt, the key that signed
/// it, and the changes that free its activation.
#[derive(Debug, Clone)]
pub struct ReceiptAccepted {
    /// The receipt, as verified.
    pub receipt: DeactivationReceipt,
    /// The `kid` of the install key that signed it.
    pub kid: String,
    /// Transfers counted for the license once it is accepted.
    pub transfers: u32,
    /// Delete the activation, count a transfer, remember the receipt.
    pub changes: Vec<Change>,
}

/// Whether the vendor's books accept a deactivation receipt (`text`, a
/// token) at `now`, and what accepting it changes.
///
/// The receipt must verify against the install key the books recorded for
/// its license and device (from the request they answered); a receipt
/// accepted before is `RECEIPT_REPLAYED`, one that is forged, altered,
/// signed by another install or for a device the books do not hold
/// activated is `RECEIPT_INVALID`, and one beyond `max_transfers` is
/// `TRANSFER_LIMIT`. Pure: verification is arithmetic, not I/O.
pub fn accept_receipt(
    text: &str,
    books: &ReceiptBooks<'_>,
    now: i64,
) -> Result<ReceiptAccepted, Error> {
    let claimed = DeactivationReceipt::read_unverified(text)?;
    let (license, device) = (&claimed.license_id, &claimed.fingerprint);
    // The keys this device's receipts may be signed with: the one bound to
    // its activation, and those of receipts accepted before (so that a
    // replay is recognised once the activation is gone).
    let live_key = books
        .activation
        .and_then(|a| a.install_key.as_deref())
        .and_then(|x| PublicKey::from_base64url(x).ok());
    let mut keys = Keyring::new();
    for key in live_key.iter().cloned().chain(
        books
            .accepted
            .iter()
            .filter_map(|r| PublicKey::from_base64url(&r.install_key).ok()),
    ) {
        keys.add(key);
    }
    if keys.is_empty() {
        let detail = match books.activation {
            Some(_) => format!(
                "the books recorded no install key for device `{device}` and license `{license}` \
                 (its certificate was issued before installs had keys), so its receipts cannot be \
                 checked; if the customer did deactivate it, free the slot by hand with \
                 `entitle --state BOOKS deactivate --fingerprint {device}`"
            ),
            None => format!(
                "these books never activated device `{device}` for license `{license}` (no \
                 certificate for it was issued with `entitle --state BOOKS respond`); check that \
                 these are the books that answered its request"
            ),
        };
        return Err(Error::ReceiptInvalid { detail });
    }
    let verified = token::verify(text, &keys, TokenType::Receipt).map_err(|e| match e {
        Error::SignatureInvalid | Error::UnknownKey { .. } => Error::ReceiptInvalid {
            detail: format!(
                "it does not verify against the install key recorded for device `{device}`: it \
                 was altered, forged, or signed by another install (a state made again since \
                 the device was activated); ask the customer for the receipt that install wrote"
            ),
        },
        other => other,
    })?;
    let receipt =
        DeactivationReceipt::from_json(&serde_json::Value::Object(verified.payload().clone()))?;
    if let Some(earlier) = books.accepted.iter().find(|r| r.nonce == receipt.nonce) {
        return Err(Error::ReceiptReplayed {
            license_id: receipt.license_id,
            fingerprint: receipt.fingerprint,
            nonce: receipt.nonce,
            accepted_at: Timestamp::from_unix(earlier.accepted_at),
        });
    }
    let activation = match (books.activation, &live_key) {
        (Some(activation), Some(key)) if key.kid() == verified.kid() => activation,
        _ => {
            let freed = books.accepted.iter().map(|r| r.accepted_at).max();
            return Err(Error::ReceiptInvalid {
                detail: format!(
                    "device `{device}` is not activated for license `{license}` in these books \
                     now{}, so this receipt has no slot to free",
                    freed.map_or(String::new(), |at| format!(
                        " (a receipt freed it at {})",
                        Timestamp::from_unix(at)
                    ))
                ),
            });
        }
    };
    if let Some(rules) = &books.rules {
        deactivate(rules, books.transfers).map_err(|reason| {
            Error::denied(
                reason,
                format!(
                    "license `{license}` has no transfers left ({} of {} used): the books keep \
                     device `{device}` activated; raise `max_transfers` with a new serial of the \
                     license to free it",
                    books.transfers,
                    rules.max_transfers.unwrap_or(0)
                ),
            )
        })?;
    }
    let transfers = books.transfers.saturating_add(1);
    let changes = vec![
        Change::DeleteActivation {
            license_id: activation.license_id.clone(),
            fingerprint: activation.fingerprint.clone(),
        },
        Change::Transfers(activation.license_id.clone(), transfers),
        Change::PutAcceptedReceipt(AcceptedReceiptRecord {
            license_id: receipt.license_id.clone(),
            fingerprint: receipt.fingerprint.clone(),
            nonce: receipt.nonce.clone(),
            install_key: activation.install_key.clone().unwrap_or_default(),
            deactivated_at: receipt.deactivated_at.unix(),
            accepted_at: now,
            token: verified.compact().to_owned(),
        }),
    ];
    Ok(ReceiptAccepted {
        receipt,
        kid: verified.kid().to_owned(),
        transfers,
        changes,
    })
}
