//! Usage reports: an install's signed account of its use (users,
//! activations, metered features), carried to the vendor's books for an
//! offline true-up (docs/formats.md#usage-report-typ-report).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ident::is_name;
use crate::license::receipt::{unverified_payload, verify_by_install};
use crate::license::MAX_FEATURES;
use crate::time::Timestamp;
use crate::token::{self, PublicKey, SigningKey, TokenType};

const WHAT: &str = "usage report";

/// The most licenses one report may account for.
pub const MAX_REPORTED_LICENSES: usize = 1024;

/// The most closed periods one report carries, all features together: a
/// report must stay a token the books read (64 KiB). An install that kept
/// more (years of daily counts between two reports) carries the oldest and
/// says how many wait for the next report (`periods_pending`).
pub const MAX_REPORTED_PERIODS: usize = 256;

/// The payload of a `typ: "report"` token, signed by the install key:
/// `{"v": 1, "fingerprint", "created_at", "sequence", "previous",
/// "clock": {"latest_seen", "tampered"}, "licenses": [{"id",
/// "active_users", "activations", "features": [{"code", "used",
/// "period_starts_at", "periods": [{"starts_at", "ends_at", "used"}]}]}]}`
/// (docs/formats.md#usage-report-typ-report). `sequence` grows by one per report, so
/// the vendor sees one missing or replayed; `previous` chains each report
/// to the one before, so the vendor sees an install restored or copied;
/// `periods` carries every period closed since the previous report, so
/// no count is lost at a period's end.
///
/// ```
/// use entitle::license::UsageReport;
/// let report = UsageReport::from_json(&serde_json::json!({"v": 1, "fingerprint": "desk-1",
///     "created_at": "2026-05-01T00:00:00Z", "sequence": 1, "licenses": [{"id": "lic_1",
///     "active_users": 3, "activations": 1, "features": [{"code": "api", "used": 40,
///     "period_starts_at": "2026-05-01T00:00:00Z"}]}]})).unwrap();
/// assert_eq!(report.licenses[0].features[0].used, 40);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Schema version: 1.
    pub v: u32,
    /// The device that reports.
    pub fingerprint: String,
    /// When the install made it, by the install's clock.
    pub created_at: Timestamp,
    /// One more than the install's previous report (the first is 1).
    pub sequence: u64,
    /// The hash of the install's previous report ([`UsageReport::hash`]
    /// of its token); absent in the first, and in reports made before
    /// reports chained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The install's clock as it made the report; absent in reports made
    /// before reports said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ReportClock>,
    /// Closed periods the install keeps beyond [`MAX_REPORTED_PERIODS`],
    /// which the next report carries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods_pending: u64,
    /// The use of each license installed there.
    pub licenses: Vec<LicenseUsage>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One license's use, as a report accounts for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseUsage {
    /// The license id.
    pub id: String,
    /// Users active within the license's seat window (among its
    /// `assigned_users`, when it names them).
    pub active_users: u64,
    /// Devices activated for it on the install.
    pub activations: u64,
    /// Its metered features.
    #[serde(default)]
    pub features: Vec<FeatureUsage>,
}

/// A metered feature's use: in its current period, and in each period
/// that closed since the previous report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureUsage {
    /// The feature code.
    pub code: String,
    /// Units used in the period.
    pub used: u64,
    /// When the period started (`null`: the count never resets).
    #[serde(default)]
    pub period_starts_at: Option<Timestamp>,
    /// The periods that closed since the previous report, oldest first,
    /// each with the units used in it.
    #[serde(default)]
    pub periods: Vec<ClosedPeriod>,
}

/// A period of a metered feature that has ended, and its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedPeriod {
    /// When the period started.
    pub starts_at: Timestamp,
    /// When it ended.
    pub ends_at: Timestamp,
    /// Units used in it.
    pub used: u64,
}

/// The install's clock when it made a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportClock {
    /// The latest time the install had seen (its clock guard's reference):
    /// a clock set forward shows here.
    pub latest_seen: Timestamp,
    /// The clock was behind that by more than the tolerance
    /// (`CLOCK_TAMPERED`): set back.
    pub tampered: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl UsageReport {
    /// Reads and checks a report payload.
    pub fn from_json(value: &Value) -> Result<Self> {
        let report: UsageReport = token::from_value(value, WHAT)?;
        if report.v != 1 {
            return Err(Error::malformed(WHAT, "field `v` must be 1"));
        }
        if !is_name(&report.fingerprint) {
            return Err(Error::malformed(
                WHAT,
                "field `fingerprint` must be 1 to 256 printable characters",
            ));
        }
        if report.sequence == 0 || i64::try_from(report.sequence).is_err() {
            return Err(Error::malformed(
                WHAT,
                "field `sequence` starts at 1 and grows by one per report, up to 2^63 - 1",
            ));
        }
        if report.previous.as_deref().is_some_and(|p| !is_name(p)) {
            return Err(Error::malformed(
                WHAT,
                "field `previous` must be 1 to 256 printable characters (the base64url \
                 SHA-256 of the previous report)",
            ));
        }
        if report.licenses.len() > MAX_REPORTED_LICENSES {
            return Err(Error::TooLarge {
                what: "usage report licenses",
                size: report.licenses.len(),
                limit: MAX_REPORTED_LICENSES,
            });
        }
        for (i, license) in report.licenses.iter().enumerate() {
            if !is_name(&license.id) {
                return Err(Error::malformed(
                    WHAT,
                    format!("field `licenses[{i}].id` must be 1 to 256 printable characters"),
                ));
            }
            if license.features.len() > MAX_FEATURES {
                return Err(Error::TooLarge {
                    what: "usage report features",
                    size: license.features.len(),
                    limit: MAX_FEATURES,
                });
            }
            if let Some(j) = license
                .features
                .iter()
                .position(|f| f.periods.len() > MAX_REPORTED_PERIODS)
            {
                return Err(Error::TooLarge {
                    what: "usage report periods",
                    size: license.features[j].periods.len(),
                    limit: MAX_REPORTED_PERIODS,
                });
            }
            if let Some(j) = license.features.iter().position(|f| !is_name(&f.code)) {
                return Err(Error::malformed(
                    WHAT,
                    format!(
                        "field `licenses[{i}].features[{j}].code` must be 1 to 256 printable characters"
                    ),
                ));
            }
        }
        Ok(report)
    }

    /// Verifies a report token (armored or bare) against the install key
    /// that must have signed it, and reads its payload. A token signed by
    /// any other key is `SIGNATURE_INVALID`.
    ///
    /// ```
    /// use entitle::license::UsageReport;
    /// use entitle::token::{sign, SigningKey, TokenType};
    ///
    /// let install = SigningKey::from_seed(&[3; 32]);
    /// let token = sign(&serde_json::json!({"v": 1, "fingerprint": "desk-1",
    ///     "created_at": "2026-05-01T00:00:00Z", "sequence": 2, "licenses": []}),
    ///     &install, TokenType::Report).unwrap();
    /// assert_eq!(UsageReport::verify(&token, install.public_key()).unwrap().sequence, 2);
    /// ```
    pub fn verify(text: &str, install_key: &PublicKey) -> Result<Self> {
        let token = verify_by_install(text, install_key, TokenType::Report)?;
        Self::from_json(&Value::Object(token.payload().clone()))
    }

    /// What a report token claims, read WITHOUT checking its signature:
    /// the vendor's books need the device it names to find the install key
    /// to verify it with. Nothing read here may be trusted until
    /// [`verify`](Self::verify) agrees.
    pub fn read_unverified(text: &str) -> Result<Self> {
        let payload = unverified_payload(text, TokenType::Report)?;
        Self::from_json(&Value::Object(payload))
    }

    /// What a report's successor names as `previous`: the base64url (no
    /// padding) SHA-256 of this report's compact token, as signed (the
    /// ASCII of `header.payload.signature`, without armor or whitespace).
    ///
    /// ```
    /// use entitle::license::UsageReport;
    /// assert_eq!(UsageReport::hash("a.b.c"), "hF4wRIgJ4ryJWOsCW_x5UjXROwd6U9DDq70jhRcNybg");
    /// ```
    pub fn hash(compact: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(compact.as_bytes()))
    }

    /// Signs this report with the install's key: the compact token.
    pub(crate) fn sign(&self, key: &SigningKey) -> Result<String> {
        let payload = serde_json::to_value(self)
            .map_err(|e| Error::malformed(WHAT, format!("it does not serialize: {e}")))?;
        token::sign(&payload, key, TokenType::Report)
    }
}
