//! The air-gapped lifecycle's way back (docs/semantics.md#activations-and-transfers): the install's
//! own key, the receipts it signs for devices it deactivates offline and
//! the usage reports it signs; and the vendor's books, which accept those
//! receipts (freeing the slots) and ingest those reports.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::clock::Timestamp;
use crate::decision::Reason;
use crate::engine::{random_id, Engine};
use crate::error::{Error, Result};
use crate::license::{ClosedPeriod, DeactivationReceipt, ReportClock, UsageReport};
use crate::policy::activation::{self, ReceiptBooks};
use crate::policy::reports::{self, Carried, PeriodBudget, ReportBooks};
use crate::store::{Change, CounterRecord, InstallKeySeed, IssuedReceiptRecord, Setting};
use crate::token::{self, PublicKey, SigningKey, TokenType, MAX_TOKEN_BYTES};

pub use crate::policy::reports::SequenceGap;

/// A new install key's secret seed, from the operating system's generator.
pub(crate) fn new_seed() -> Result<InstallKeySeed> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| {
        Error::io(
            "reading the system random generator for the install key",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(InstallKeySeed::new(URL_SAFE_NO_PAD.encode(seed.as_ref())))
}

/// The signing key a stored seed stands for.
pub(crate) fn signing_key(seed: &InstallKeySeed) -> Result<SigningKey> {
    let unreadable = || Error::malformed("install key", "it is not the base64url of 32 bytes");
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(seed.expose())
            .map_err(|_| unreadable())?,
    );
    let mut secret = Zeroizing::new([0u8; 32]);
    if bytes.len() != secret.len() {
        return Err(unreadable());
    }
    secret.copy_from_slice(&bytes);
    Ok(SigningKey::from_seed(&secret))
}

/// A deactivation receipt this install signed, to be carried to the
/// vendor's books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IssuedReceipt {
    /// What it says.
    pub receipt: DeactivationReceipt,
    /// The armored token, as the file holds it.
    pub token: String,
    /// The `kid` of the install key that signed it.
    pub kid: String,
    /// The device had been deactivated already: this is the receipt kept
    /// then, given again (after a crash before its file was written, or a
    /// lost file).
    pub again: bool,
}

/// A usage report this install signed, to be carried to the vendor's
/// books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SignedReport {
    /// What it says.
    pub report: UsageReport,
    /// The armored token, as the file holds it.
    pub token: String,
    /// The `kid` of the install key that signed it.
    pub kid: String,
}

/// A receipt the vendor's books accepted: its slot is free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AcceptedReceipt {
    /// What it says.
    pub receipt: DeactivationReceipt,
    /// The `kid` of the install key that signed it.
    pub kid: String,
    /// Transfers counted for the license, this one included.
    pub transfers: u32,
    /// The license's `max_transfers`, when the books hold the license and
    /// it sets one.
    pub max_transfers: Option<u32>,
}

/// A usage report the vendor's books ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IngestedReport {
    /// What it says.
    pub report: UsageReport,
    /// The `kid` of the install key that signed it.
    pub kid: String,
    /// The highest sequence ingested from the device before.
    pub previous_sequence: Option<u64>,
    /// Sequences no report has come for yet, up to the highest ingested.
    pub missing: Vec<SequenceGap>,
    /// Its `previous` does not match the last report ingested from the
    /// device: the install was restored from a backup or copied
    /// (docs/formats.md#usage-report-typ-report). Recorded all the same.
    pub fork: bool,
    /// It is dated more than a day after the books' clock: the install's
    /// clock was set forward.
    pub clock_ahead: bool,
}

/// The armored form of a token an install signed, refused when too large
/// for the books to read.
fn armored(compact: &str, typ: TokenType, what: &'static str) -> Result<String> {
    let text = token::armor(compact, typ);
    if text.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge {
            what,
            size: text.len(),
            limit: MAX_TOKEN_BYTES,
        });
    }
    Ok(text)
}

fn no_install_key() -> Error {
    // Every engine makes its key when it is built: only a state edited by
    // hand lacks one.
    Error::InvalidArgument(
        "this install has no install key; open it again (the key is made when the state is \
         opened) and retry"
            .into(),
    )
}

impl Engine {
    /// This install's own public key: what its activation requests carry,
    /// and what the vendor's books check its receipts and reports against.
    /// Made the first time the state was opened; its secret half stays in
    /// the state and is never shown.
    pub fn install_key(&self) -> Option<PublicKey> {
        self.inner
            .snapshot
            .load()
            .install_key
            .as_ref()
            .map(|key| key.public_key().clone())
    }

    /// This install's own signing key: what a license server signs its
    /// lease tokens with when it is given no lease key of its own.
    #[cfg(feature = "server")]
    pub(crate) fn install_signing_key(&self) -> Option<std::sync::Arc<SigningKey>> {
        self.inner.snapshot.load().install_key.clone()
    }

    /// Deactivates `fingerprint` for one license (`license_id`, or the one
    /// license it is activated for) and signs a receipt for the vendor's
    /// books with the install key, counting one transfer
    /// (`TRANSFER_LIMIT` when none are left).
    ///
    /// The receipt is kept in the state, in the same transaction as the
    /// deactivation: asked again for a device already deactivated, this
    /// gives the kept receipt again (`again: true`), so a crash before its
    /// file was written loses nothing. A device neither activated nor with
    /// a kept receipt is `NOT_ACTIVATED`.
    pub fn deactivate_with_receipt(
        &self,
        fingerprint: &str,
        license_id: Option<&str>,
    ) -> Result<IssuedReceipt> {
        crate::ident::check("a device fingerprint", fingerprint)?;
        let nonce = random_id("");
        let location = self.inner.store.store().location();
        self.mutate(|plan| {
            let state = plan.state;
            let key = state.install_key.clone().ok_or_else(no_install_key)?;
            let named = |license: &str| license_id.is_none_or(|id| id == license);
            let active: Vec<&String> = state
                .activations
                .keys()
                .filter(|(license, device)| device == fingerprint && named(license))
                .map(|(license, _)| license)
                .collect();
            let license = match active.as_slice() {
                [] => {
                    let kept = kept_receipt(state, &key, fingerprint, license_id, &location)?;
                    return Ok((Vec::new(), kept));
                }
                [one] => (*one).clone(),
                several => {
                    return Err(Error::InvalidArgument(format!(
                        "device `{fingerprint}` is activated for several licenses ({}); a receipt \
                         covers one: name it (`--license ID`)",
                        several.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ")
                    )))
                }
            };
            let used = state.transfers.get(&license).copied().unwrap_or(0);
            if let Some(rules) = state.licenses.get(&license).and_then(|l| l.verified.activations) {
                activation::deactivate(&rules, used).map_err(|reason| {
                    Error::denied(
                        reason,
                        format!("license `{license}` has no transfers left: the device cannot be deactivated; ask the vendor"),
                    )
                })?;
            }
            let receipt = DeactivationReceipt {
                v: 1,
                license_id: license.clone(),
                fingerprint: fingerprint.to_owned(),
                deactivated_at: Timestamp::from_unix(plan.now),
                nonce: nonce.clone(),
                extra: Default::default(),
            };
            let compact = receipt.sign(&key)?;
            let token = armored(&compact, TokenType::Receipt, "deactivation receipt")?;
            // Every certificate signed before this instant is given up
            // with the device (docs/semantics.md#what-stored-state-is-trusted): never before the one
            // it held was signed, whatever the clock says now.
            let given_up_from = state
                .activations
                .get(&(license.clone(), fingerprint.to_owned()))
                .and_then(|record| match &record.kind {
                    crate::store::ActivationKind::Certificate(token) => {
                        crate::license::MachineCertificate::verify(token, &state.keyring).ok()
                    }
                    _ => None,
                })
                .map_or(plan.now, |cert| {
                    plan.now.max(cert.issued_at.unix().saturating_add(1))
                });
            let changes = vec![
                Change::DeleteActivation {
                    license_id: license.clone(),
                    fingerprint: fingerprint.to_owned(),
                },
                Change::Transfers(license.clone(), used.saturating_add(1)),
                Change::PutIssuedReceipt(IssuedReceiptRecord {
                    license_id: license,
                    fingerprint: fingerprint.to_owned(),
                    deactivated_at: given_up_from,
                    nonce: receipt.nonce.clone(),
                    token: compact,
                }),
            ];
            Ok((
                changes,
                IssuedReceipt {
                    receipt,
                    token,
                    kid: key.kid().to_owned(),
                    again: false,
                },
            ))
        })
    }

    /// Signs a usage report of this install with the install key: per
    /// license, its active users, activations and metered features, each
    /// with its current period and every period closed since the previous
    /// report; the install's clock; and the hash of the previous report
    /// (docs/formats.md#usage-report-typ-report). Each report's `sequence` is one
    /// higher than the last, durably, so the vendor sees a missing or
    /// replayed one, and the closed periods it carries are forgotten in
    /// the same transaction, so each reaches the books once.
    ///
    /// A sequence that would pass 2^63 - 1 (only an edited state holds
    /// one) is `STATE_CORRUPT`, never clamped.
    pub fn usage_report(&self) -> Result<SignedReport> {
        let location = self.inner.store.store().location();
        self.mutate(|plan| {
            let state = plan.state;
            let key = state.install_key.clone().ok_or_else(no_install_key)?;
            let fingerprint = plan.config.device.fingerprint.clone().ok_or_else(|| {
                Error::InvalidArgument(
                    "this engine was built without a device fingerprint, and a report names its \
                     device; give it one (EngineBuilder::fingerprint)"
                        .into(),
                )
            })?;
            let sequence = state
                .report_sequence
                .checked_add(1)
                .filter(|&next| i64::try_from(next).is_ok())
                .ok_or_else(|| Error::StateCorrupt {
                    path: location.clone(),
                    detail: format!(
                        "its last usage report was number {}, the largest a sequence counts: \
                         no install gets there by reporting, so the state was edited; the next \
                         report cannot be numbered (a repeated number would be refused by the \
                         vendor); restore the state from a backup or ask the vendor",
                        state.report_sequence
                    ),
                })?;
            let mut budget = PeriodBudget {
                left: crate::license::MAX_REPORTED_PERIODS,
                pending: 0,
            };
            let mut changes = vec![Change::Set(Setting::ReportSequence(sequence))];
            let mut licenses = Vec::with_capacity(state.licenses.len());
            for installed in state.licenses.values() {
                let license = installed.verified.license();
                let users = state.users.iter().map(|(id, u)| (&**id, u.last_active_at));
                let devices = state.devices_for(&license.id, plan.now).count() as u64;
                let counter = |code: &str| {
                    state
                        .counters
                        .get(&(license.id.clone(), code.to_owned()))
                        .copied()
                };
                let closed = |code: &str| {
                    let from = (license.id.clone(), code.to_owned(), i64::MIN);
                    state
                        .closed_periods
                        .range(from..)
                        .take_while(|((l, c, _), _)| *l == license.id && c == code)
                        .map(|(_, p)| ClosedPeriod {
                            starts_at: Timestamp::from_unix(p.starts_at),
                            ends_at: Timestamp::from_unix(p.ends_at),
                            used: p.used,
                        })
                        .collect()
                };
                let (usage, carried) = reports::license_usage(
                    license,
                    users,
                    devices,
                    counter,
                    closed,
                    &mut budget,
                    plan.now,
                );
                licenses.push(usage);
                // What the report carries is forgotten with it: a closed
                // period reaches the books once.
                changes.extend(carried.into_iter().map(|carried| match carried {
                    Carried::Kept { code, starts_at } => Change::DeleteClosedPeriod {
                        license_id: license.id.clone(),
                        code,
                        starts_at,
                    },
                    Carried::Counter { code, period_start } => Change::PutCounter(CounterRecord {
                        license_id: license.id.clone(),
                        code,
                        period_start,
                        used: 0,
                    }),
                }));
            }
            let report = UsageReport {
                v: 1,
                fingerprint,
                created_at: Timestamp::from_unix(plan.now),
                sequence,
                previous: state.last_report.as_deref().map(UsageReport::hash),
                clock: Some(ReportClock {
                    latest_seen: Timestamp::from_unix(state.latest_seen.max(plan.now)),
                    tampered: plan.tampered,
                }),
                periods_pending: budget.pending,
                licenses,
                extra: Default::default(),
            };
            let compact = report.sign(&key)?;
            let token = armored(&compact, TokenType::Report, "usage report")?;
            changes.push(Change::Set(Setting::LastReport(compact)));
            Ok((
                changes,
                SignedReport {
                    report,
                    token,
                    kid: key.kid().to_owned(),
                },
            ))
        })
    }

    /// The vendor's books take a deactivation receipt (armored or bare),
    /// behind [`Books::accept_receipt`](crate::books::Books::accept_receipt):
    /// verified against the install key recorded for its device when the
    /// books answered its request, it frees that activation and counts a
    /// transfer, so the license's slot can go to another device.
    ///
    /// Refused with `RECEIPT_INVALID` (forged, altered, another install's,
    /// or for a device these books do not hold activated),
    /// `RECEIPT_REPLAYED` (accepted before) or `TRANSFER_LIMIT`.
    pub(crate) fn accept_receipt(&self, text: &str) -> Result<AcceptedReceipt> {
        let claimed = DeactivationReceipt::read_unverified(text)?;
        let (license, device) = (&claimed.license_id, &claimed.fingerprint);
        self.mutate(|plan| {
            let state = plan.state;
            let rules = state
                .licenses
                .get(license)
                .and_then(|l| l.verified.activations);
            // The device's activations in these books: one per install
            // key that claimed its fingerprint (the receipt frees the one
            // whose key signed it).
            let mut candidates: Vec<_> = state
                .activations
                .range((license.clone(), device.clone())..)
                .take_while(|((l, key), _)| l == license && key.starts_with(device.as_str()))
                .filter(|((_, key), _)| crate::engine::devices::device_of(key) == device)
                .map(|(_, record)| Some(record))
                .collect();
            if candidates.is_empty() {
                candidates.push(None);
            }
            let mut outcome = None;
            for activation in candidates {
                let books = ReceiptBooks {
                    activation,
                    accepted: state
                        .accepted_receipts
                        .range((license.clone(), device.clone(), String::new())..)
                        .take_while(|((l, d, _), _)| l == license && d == device)
                        .map(|(_, r)| r)
                        .collect(),
                    rules,
                    transfers: state.transfers.get(license).copied().unwrap_or(0),
                };
                let attempt = activation::accept_receipt(text, &books, plan.now);
                let done = attempt.is_ok();
                if outcome.is_none() || done {
                    outcome = Some(attempt);
                }
                if done {
                    break;
                }
            }
            let accepted = outcome.unwrap_or_else(|| {
                Err(Error::ReceiptInvalid {
                    detail: format!("these books hold no activation of device `{device}`"),
                })
            })?;
            Ok((
                accepted.changes,
                AcceptedReceipt {
                    receipt: accepted.receipt,
                    kid: accepted.kid,
                    transfers: accepted.transfers,
                    max_transfers: rules.and_then(|r| r.max_transfers),
                },
            ))
        })
    }

    /// The vendor's books take a usage report (armored or bare), behind
    /// [`Books::ingest_report`](crate::books::Books::ingest_report): verified
    /// against an install key recorded for its device, and kept.
    ///
    /// Refused with `REPORT_INVALID` (forged, altered, another install's,
    /// or from a device whose key these books never recorded) or
    /// `REPORT_REPLAYED` (a sequence at or below the last one ingested
    /// from the device: a stored report is never overwritten). A gap in
    /// the sequence is no refusal: it is in [`IngestedReport::missing`]. A
    /// report that does not chain to the last one ingested from its
    /// device is recorded and flagged [`IngestedReport::fork`]; one dated
    /// more than a day ahead of the books' clock,
    /// [`IngestedReport::clock_ahead`].
    pub(crate) fn ingest_report(&self, text: &str) -> Result<IngestedReport> {
        let claimed = UsageReport::read_unverified(text)?;
        let device = &claimed.fingerprint;
        self.mutate(|plan| {
            let state = plan.state;
            // Every install the books activated under this fingerprint
            // (a second one claiming it is kept under a key of its own).
            let mut keys: Vec<&str> = state
                .activations
                .values()
                .filter(|a| crate::engine::devices::device_of(&a.fingerprint) == device.as_str())
                .filter_map(|a| a.install_key.as_deref())
                .collect();
            keys.extend(
                state
                    .accepted_receipts
                    .values()
                    .filter(|r| r.fingerprint == *device)
                    .map(|r| r.install_key.as_str()),
            );
            let ingested: Vec<_> = state
                .reports
                .range((device.clone(), 0)..=(device.clone(), u64::MAX))
                .map(|(_, r)| r)
                .collect();
            keys.extend(ingested.iter().map(|r| r.install_key.as_str()));
            keys.sort_unstable();
            keys.dedup();
            let books = ReportBooks { keys, ingested };
            let taken = reports::ingest_report(text, &books, plan.now)?;
            Ok((
                taken.changes,
                IngestedReport {
                    report: taken.report,
                    kid: taken.kid,
                    previous_sequence: taken.previous,
                    missing: taken.missing,
                    fork: taken.flags.fork,
                    clock_ahead: taken.flags.clock_ahead,
                },
            ))
        })
    }
}

/// The receipt kept for a device already deactivated here, given again.
fn kept_receipt(
    state: &crate::engine::state::State,
    key: &SigningKey,
    fingerprint: &str,
    license_id: Option<&str>,
    location: &str,
) -> Result<IssuedReceipt> {
    let kept: Vec<&IssuedReceiptRecord> = state
        .issued_receipts
        .values()
        .filter(|r| r.fingerprint == fingerprint)
        .filter(|r| license_id.is_none_or(|id| id == r.license_id))
        .collect();
    let record = match kept.as_slice() {
        [] => {
            return Err(Error::denied(
                Reason::NotActivated,
                format!(
                    "device `{fingerprint}` is not activated here{}, and no receipt was kept for \
                     it",
                    license_id.map_or(String::new(), |id| format!(" for license `{id}`"))
                ),
            ))
        }
        [one] => *one,
        several => {
            return Err(Error::InvalidArgument(format!(
                "receipts were kept for device `{fingerprint}` and several licenses ({}); name \
                 one (`--license ID`)",
                several
                    .iter()
                    .map(|r| r.license_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let receipt = DeactivationReceipt::verify(&record.token, key.public_key()).map_err(|e| {
        Error::StateCorrupt {
            path: location.to_owned(),
            detail: format!(
                "the receipt kept for device `{fingerprint}` does not verify against this \
                 install's key ({e})"
            ),
        }
    })?;
    Ok(IssuedReceipt {
        receipt,
        token: armored(&record.token, TokenType::Receipt, "deactivation receipt")?,
        kid: key.kid().to_owned(),
        again: true,
    })
}
