//! What a vendor is told when issuing a license: the fields a spec names
//! that this version does not read (a typo such as `expire_at` would
//! otherwise issue a license that never expires), and what a valid
//! document says that its vendor probably did not mean.
//!
//! Installs run none of this: they keep and ignore fields they do not know
//! (docs/formats.md#license-typ-license), so that a license issued for a newer version still
//! installs on an older one.

use std::fmt;

use serde_json::{Map, Value};

use crate::license::{
    Activations, Consumption, CountedBy, Feature, Floating, Kind, License, OnExpiry, Reset, Seats,
};
use crate::time::Timestamp;

/// A field of a license spec that this version of `entitle` does not read.
///
/// ```
/// use entitle::license::License;
/// use entitle::Timestamp;
///
/// let now = Timestamp::parse("2026-05-01T00:00:00Z").unwrap();
/// let spec = r#"{"product": "acme", "expire_at": "2027-01-01T00:00:00Z", "seats": {"max": 5, "hardmax": 7}}"#;
/// let (license, document) = License::from_spec(spec, now).unwrap();
/// let unknown: Vec<String> = license.unknown_fields(&document).iter().map(|f| f.to_string()).collect();
/// assert_eq!(unknown, [
///     "unknown field `expire_at` (did you mean `expires_at`?)",
///     "unknown field `seats.hardmax` (did you mean `seats.hard_max`?)",
/// ]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownField {
    /// Where it is, as a path into the document: `expire_at`,
    /// `seats.hardmax`, `features[0].limt`.
    pub path: String,
    /// The path of the known field whose name is closest, when one is near.
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown field `{}`", self.path)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean `{suggestion}`?)")?;
        }
        Ok(())
    }
}

/// Something a valid license says that its vendor probably did not mean,
/// found when it is issued. The license is still valid and may be signed.
///
/// ```
/// use entitle::license::{IssueWarning, Kind, License};
/// use entitle::Timestamp;
///
/// let end = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
/// let license = License::builder("acme").expires_at(end).build().unwrap();
/// assert_eq!(license.issue_warnings(), [IssueWarning::PerpetualWithExpiry { expires_at: end }]);
/// assert_eq!(license.issue_warnings()[0].code(), "PERPETUAL_WITH_EXPIRY");
///
/// let fixed = License::builder("acme").kind(Kind::TimeLimited).expires_at(end).build().unwrap();
/// assert!(fixed.issue_warnings().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueWarning {
    /// `kind` is `perpetual` (also the default when it is absent), but the
    /// license has an `expires_at`: it ends, yet every listing calls it
    /// perpetual.
    PerpetualWithExpiry {
        /// When it ends.
        expires_at: Timestamp,
    },
    /// `kind` is `time_limited` or `subscription`, but nothing ends the
    /// license (no `expires_at`, no `trial_secs`).
    KindWithoutEnd {
        /// The kind that says the license ends.
        kind: Kind,
    },
    /// `trial: true`, but nothing ends the trial (no `expires_at`, no
    /// `trial_secs`).
    TrialWithoutEnd,
    /// `kind` is `consumption`, but no feature has `consumption`: nothing
    /// is metered.
    ConsumptionWithoutMeter,
    /// `activations.max` limits the devices, but each install counts them
    /// (`counted_by: install`, the default): such a limit binds only what
    /// one state or one site server sees, and a copy of the license on
    /// another install counts afresh.
    ///
    /// ```
    /// use entitle::license::{Activations, CountedBy, IssueWarning, License};
    ///
    /// let license = License::builder("acme").activations(Activations::up_to(3)).build().unwrap();
    /// assert_eq!(license.issue_warnings(), [IssueWarning::ActivationsCountedByInstall { max: 3 }]);
    /// assert_eq!(license.issue_warnings()[0].code(), "ACTIVATIONS_COUNTED_BY_INSTALL");
    ///
    /// let counted = Activations::up_to(3).with_counted_by(CountedBy::Vendor);
    /// let license = License::builder("acme").activations(counted).build().unwrap();
    /// assert!(license.issue_warnings().is_empty());
    /// ```
    ActivationsCountedByInstall {
        /// The most devices at once, as `activations.max` says.
        max: u32,
    },
}

impl IssueWarning {
    /// A stable code in SCREAMING_SNAKE_CASE, for programs.
    ///
    /// ```
    /// assert_eq!(entitle::license::IssueWarning::TrialWithoutEnd.code(), "TRIAL_WITHOUT_END");
    /// ```
    pub const fn code(&self) -> &'static str {
        match self {
            IssueWarning::PerpetualWithExpiry { .. } => "PERPETUAL_WITH_EXPIRY",
            IssueWarning::KindWithoutEnd { .. } => "KIND_WITHOUT_END",
            IssueWarning::TrialWithoutEnd => "TRIAL_WITHOUT_END",
            IssueWarning::ConsumptionWithoutMeter => "CONSUMPTION_WITHOUT_METER",
            IssueWarning::ActivationsCountedByInstall { .. } => "ACTIVATIONS_COUNTED_BY_INSTALL",
        }
    }
}

impl fmt::Display for IssueWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueWarning::PerpetualWithExpiry { expires_at } => write!(
                f,
                "`kind` is `perpetual` (the default when `kind` is absent), but the license \
                 expires at {expires_at}: it will be listed as perpetual although it ends; set \
                 `kind` to `time_limited` or `subscription`, or remove `expires_at`"
            ),
            IssueWarning::KindWithoutEnd { kind } => write!(
                f,
                "`kind` is `{kind}`, but the license has no `expires_at` (nor `trial_secs`): it \
                 never ends; set `expires_at`, or `kind` to `perpetual`"
            ),
            IssueWarning::TrialWithoutEnd => f.write_str(
                "`trial` is true, but the license has no `expires_at` or `trial_secs`: the trial \
                 never ends; set `trial_secs` (counted from its first use on each install) or \
                 `expires_at`",
            ),
            IssueWarning::ConsumptionWithoutMeter => f.write_str(
                "`kind` is `consumption`, but no feature has `consumption`: nothing is metered; \
                 give the metered features a `consumption`, or choose another `kind`",
            ),
            IssueWarning::ActivationsCountedByInstall { max } => write!(
                f,
                "`activations.max` is {max}, but each install counts its own activations \
                 (`counted_by: install`, the default): such a limit binds only what one state or \
                 one site server sees, and the same license on another install activates {max} \
                 more devices; set `activations.counted_by` to `vendor` so that only machine \
                 certificates from your books activate a device"
            ),
        }
    }
}

impl License {
    /// The fields of `document` that this license does not hold: the JSON
    /// it was read from (as [`License::from_spec`] returns it), compared
    /// with what the typed license writes back. A field the types drop, or
    /// keep only as an unknown extra, is unknown, at any depth; free-form
    /// values (`customer`, `metadata`, `custom_fields`) are kept whole, so
    /// their keys are never unknown. Each comes with the closest known
    /// name at its place when one is near.
    ///
    /// Installs keep and ignore unknown fields (forward compatibility), so
    /// a misspelt field is silently without effect: `entitle issue` refuses
    /// a spec with any unless told to allow them.
    ///
    /// ```
    /// use entitle::license::License;
    /// use entitle::Timestamp;
    ///
    /// let now = Timestamp::parse("2026-05-01T00:00:00Z").unwrap();
    /// let spec = r#"{"product": "acme", "metadata": {"anything": 1},
    ///                "features": [{"code": "export", "limt": 3}]}"#;
    /// let (license, document) = License::from_spec(spec, now).unwrap();
    /// let unknown = license.unknown_fields(&document);
    /// assert_eq!(unknown.len(), 1);
    /// assert_eq!(unknown[0].path, "features[0].limt");
    /// assert_eq!(unknown[0].suggestion.as_deref(), Some("features[0].limit"));
    /// ```
    pub fn unknown_fields(&self, document: &Map<String, Value>) -> Vec<UnknownField> {
        // Serialising plain data into a `Value` cannot fail; were it to,
        // every field would count as dropped and only the names of the
        // known ones (below) would tell them apart.
        let written = serde_json::to_value(self.without_unknown_fields()).unwrap_or(Value::Null);
        unknown_in(document, written.as_object())
    }

    /// What issuing this license would warn about: a `kind` at odds with
    /// its end, a trial that never ends, a device limit that each install
    /// counts for itself. None of these makes it invalid.
    /// See [`IssueWarning`] for an example.
    pub fn issue_warnings(&self) -> Vec<IssueWarning> {
        let ends = self.expires_at.is_some() || self.trial_secs.is_some();
        let mut warnings = Vec::new();
        match (self.kind, self.expires_at) {
            (Kind::Perpetual, Some(expires_at)) => {
                warnings.push(IssueWarning::PerpetualWithExpiry { expires_at });
            }
            // A trial without an end says so below, more precisely.
            (Kind::TimeLimited | Kind::Subscription, _) if !ends && !self.trial => {
                warnings.push(IssueWarning::KindWithoutEnd { kind: self.kind });
            }
            _ => {}
        }
        if self.trial && !ends {
            warnings.push(IssueWarning::TrialWithoutEnd);
        }
        if self.kind == Kind::Consumption && self.features.iter().all(|f| f.consumption.is_none()) {
            warnings.push(IssueWarning::ConsumptionWithoutMeter);
        }
        // An install counts only the devices it sees itself
        // (docs/semantics.md#activations-and-transfers): a vendor who sets
        // a `max` most likely means every machine of the customer.
        if let Some(Activations {
            max: Some(max),
            counted_by: CountedBy::Install,
            ..
        }) = self.activations
        {
            warnings.push(IssueWarning::ActivationsCountedByInstall { max });
        }
        warnings
    }

    /// This license without the fields it kept unread: every type of the
    /// document with an `extra` map has it emptied here.
    fn without_unknown_fields(&self) -> License {
        let mut license = self.clone();
        license.extra.clear();
        for feature in &mut license.features {
            feature.extra.clear();
        }
        license
    }
}

/// The unknown fields of a spec `document`, given what the typed license
/// wrote back (`None` when there is no typed license: a spec that did not
/// read, where only the names of the known fields can tell).
pub(crate) fn unknown_in(
    document: &Map<String, Value>,
    written: Option<&Map<String, Value>>,
) -> Vec<UnknownField> {
    let known = serde_json::to_value(every_field()).unwrap_or(Value::Null);
    let mut found = Vec::new();
    walk(document, written, known.as_object(), "", &mut found);
    found
}

/// Compares one object of the spec with what the types wrote back of it.
/// A key they dropped is unknown unless it is a known name: a known
/// optional field given as `null` is written back as absent, and nothing
/// of it was lost.
fn walk(
    given: &Map<String, Value>,
    written: Option<&Map<String, Value>>,
    known: Option<&Map<String, Value>>,
    path: &str,
    found: &mut Vec<UnknownField>,
) {
    for (key, value) in given {
        let here = join(path, key);
        let known_value = known.and_then(|k| k.get(key));
        match written.and_then(|w| w.get(key)) {
            Some(written_value) => descend(value, written_value, known_value, &here, found),
            None if known_value.is_some() => {
                // Without a typed license (a spec that did not read),
                // look inside the known objects all the same.
                if written.is_none() {
                    descend_unread(value, known_value, &here, found);
                }
            }
            None => found.push(UnknownField {
                suggestion: known
                    .and_then(|k| closest(key, k.keys()))
                    .map(|name| join(path, name)),
                path: here,
            }),
        }
    }
}

fn descend(
    given: &Value,
    written: &Value,
    known: Option<&Value>,
    path: &str,
    found: &mut Vec<UnknownField>,
) {
    match (given, written) {
        (Value::Object(given), Value::Object(written)) => {
            walk(
                given,
                Some(written),
                known.and_then(Value::as_object),
                path,
                found,
            );
        }
        (Value::Array(given), Value::Array(written)) => {
            let element = known.and_then(|k| k.get(0));
            for (i, (given, written)) in given.iter().zip(written).enumerate() {
                descend(given, written, element, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

fn descend_unread(given: &Value, known: Option<&Value>, path: &str, found: &mut Vec<UnknownField>) {
    match (given, known) {
        // A free-form value is known as `null` (below): nothing inside it
        // is unknown.
        (Value::Object(given), Some(Value::Object(known))) => {
            walk(given, None, Some(known), path, found);
        }
        (Value::Array(given), Some(Value::Array(known))) => {
            for (i, given) in given.iter().enumerate() {
                descend_unread(given, known.first(), &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The unknown fields as one phrase, for a message.
pub(crate) fn list(fields: &[UnknownField]) -> String {
    let phrases: Vec<String> = fields.iter().map(ToString::to_string).collect();
    phrases.join("; ")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A license with every field set, so that its JSON names every field
/// this version reads. The struct literals list every field, without
/// `..`: a field added to any of these types does not compile until it
/// is added here, so the names cannot drift from the types. Free-form
/// values are `null`, which has no fields.
fn every_field() -> License {
    let t = Timestamp::from_unix(0);
    let floating = Floating {
        seats: 1,
        lease_secs: 1,
        borrow_max_secs: Some(1),
        linger_secs: Some(1),
    };
    License {
        v: 1,
        id: String::new(),
        serial: 1,
        product: String::new(),
        name: Some(String::new()),
        customer: Some(Value::Null),
        notice: Some(String::new()),
        notice_on_expire: Some(String::new()),
        metadata: Some(Value::Null),
        custom_fields: Some(Value::Null),
        kind: Kind::Perpetual,
        trial: true,
        trial_secs: Some(1),
        enabled: true,
        issued_at: t,
        starts_at: Some(t),
        expires_at: Some(t),
        grace_secs: 1,
        on_expiry: OnExpiry::Deny,
        maintenance_until: Some(t),
        versions: Some(semver::VersionReq::STAR),
        channels: Some(Vec::new()),
        assigned_users: Some(Vec::new()),
        seats: Some(Seats {
            max: 1,
            hard_max: Some(1),
            active_window_secs: Some(1),
        }),
        activations: Some(Activations {
            max: Some(1),
            max_transfers: Some(1),
            counted_by: CountedBy::Install,
        }),
        prevent_vm: true,
        floating: Some(floating),
        features: vec![Feature {
            code: String::new(),
            name: Some(String::new()),
            metadata: Some(Value::Null),
            expires_at: Some(t),
            limit: Some(1),
            consumption: Some(Consumption {
                max: Some(1),
                overage: Some(1),
                reset: Some(Reset::Daily),
            }),
            floating: Some(floating),
            extra: Map::new(),
        }],
        extra: Map::new(),
    }
}

/// The known name nearest to `key`, if it is near: the same name up to
/// case, `_` and `-`, or a few letters apart (one in three at most, and
/// never every letter: `x` is not a misspelt `v`).
fn closest<'a>(key: &str, names: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    let key = normalized(key);
    let most = (key.len() / 3).max(1).min(key.len().saturating_sub(1));
    names
        .map(|name| (edit_distance(&key, &normalized(name)), name.as_str()))
        .filter(|&(distance, _)| distance <= most)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

fn normalized(name: &str) -> Vec<char> {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    // Rows i-2, i-1 and i of the optimal string alignment table.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(spec: Value) -> Vec<String> {
        let now = Timestamp::from_unix(0);
        let (license, document) = License::from_spec(&spec.to_string(), now).unwrap();
        license
            .unknown_fields(&document)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_known_field_is_known() {
        let mut document = serde_json::to_value(every_field()).unwrap();
        document["metadata"] = serde_json::json!({"any": {"thing": null}});
        document["customer"] = serde_json::json!({"name": "Acme"});
        document["custom_fields"] = serde_json::json!({"x": [1, {"y": 2}]});
        let license: License = serde_json::from_value(document.clone()).unwrap();
        assert!(license.extra.is_empty() && license.features[0].extra.is_empty());
        assert!(license
            .unknown_fields(document.as_object().unwrap())
            .is_empty());
        assert!(unknown_in(document.as_object().unwrap(), None).is_empty());
    }

    #[test]
    fn known_fields_given_as_null_or_default_are_not_unknown() {
        assert!(unknown(serde_json::json!({
            "product": "acme", "name": null, "expires_at": null, "serial": 0,
            "seats": {"max": 1, "hard_max": null}, "features": [{"code": "a", "limit": null}]
        }))
        .is_empty());
    }

    #[test]
    fn unknown_fields_at_every_depth_are_named_with_a_suggestion() {
        let found = unknown(serde_json::json!({
            "product": "acme",
            "expiresAt": "2027-01-01T00:00:00Z",
            "x_vendor": {"nested": 1},
            "activations": {"max": 2, "max_transfer": 1},
            "floating": {"seats": 2, "lease_secs": 60, "borow_max_secs": 10},
            "features": [
                {"code": "a"},
                {"code": "b", "consumption": {"max": 5, "rest": "daily"}, "floating": {"seats": 1, "lease_secs": 9, "seat": 1}}
            ]
        }));
        assert_eq!(
            found,
            [
                "unknown field `expiresAt` (did you mean `expires_at`?)",
                "unknown field `x_vendor`",
                "unknown field `activations.max_transfer` (did you mean `activations.max_transfers`?)",
                "unknown field `floating.borow_max_secs` (did you mean `floating.borrow_max_secs`?)",
                "unknown field `features[1].consumption.rest` (did you mean `features[1].consumption.reset`?)",
                "unknown field `features[1].floating.seat` (did you mean `features[1].floating.seats`?)",
            ]
        );
    }

    #[test]
    fn without_a_typed_license_the_names_alone_tell() {
        let document = serde_json::json!({"prodcut": "acme", "seats": {"max": 1, "hardmax": 2},
            "metadata": {"free": 1}, "features": [{"cod": "a"}]});
        let found: Vec<String> = unknown_in(document.as_object().unwrap(), None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "unknown field `prodcut` (did you mean `product`?)",
                "unknown field `seats.hardmax` (did you mean `seats.hard_max`?)",
                "unknown field `features[0].cod` (did you mean `features[0].code`?)",
            ]
        );
    }

    #[test]
    fn only_near_names_are_suggested() {
        let names: Vec<String> = ["expires_at", "starts_at", "max", "hard_max"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(closest("expire_at", names.iter()), Some("expires_at"));
        assert_eq!(closest("EXPIRES-AT", names.iter()), Some("expires_at"));
        assert_eq!(closest("mxa", names.iter()), Some("max"));
        assert_eq!(closest("hardmax", names.iter()), Some("hard_max"));
        assert_eq!(closest("colour", names.iter()), None);
        assert_eq!(closest("x", ["v".to_owned()].iter()), None);
        assert_eq!(closest("V", ["v".to_owned()].iter()), Some("v"));
        assert_eq!(closest("", names.iter()), None);
    }

    #[test]
    fn kinds_at_odds_with_their_end_are_warned_about() {
        let license = |spec: Value| {
            License::from_spec(&spec.to_string(), Timestamp::from_unix(0))
                .unwrap()
                .0
                .issue_warnings()
        };
        let end = "2027-01-01T00:00:00Z";
        assert_eq!(
            license(serde_json::json!({"product": "a", "expires_at": end})),
            [IssueWarning::PerpetualWithExpiry {
                expires_at: Timestamp::parse(end).unwrap()
            }]
        );
        assert!(license(serde_json::json!({"product": "a"})).is_empty());
        for kind in [Kind::TimeLimited, Kind::Subscription] {
            assert_eq!(
                license(serde_json::json!({"product": "a", "kind": kind})),
                [IssueWarning::KindWithoutEnd { kind }]
            );
            assert!(
                license(serde_json::json!({"product": "a", "kind": kind, "expires_at": end}))
                    .is_empty()
            );
        }
        assert_eq!(
            license(serde_json::json!({"product": "a", "kind": "time_limited", "trial": true})),
            [IssueWarning::TrialWithoutEnd]
        );
        assert!(license(
            serde_json::json!({"product": "a", "kind": "time_limited", "trial": true, "trial_secs": 60})
        )
        .is_empty());
        assert_eq!(
            license(serde_json::json!({"product": "a", "kind": "consumption",
                                       "features": [{"code": "f"}]})),
            [IssueWarning::ConsumptionWithoutMeter]
        );
        assert!(license(serde_json::json!({"product": "a", "kind": "consumption",
                                            "features": [{"code": "f", "consumption": {"max": 1}}]}))
        .is_empty());
    }

    #[test]
    fn a_device_limit_each_install_counts_is_warned_about() {
        let warnings = |activations: Value| {
            let spec = serde_json::json!({"product": "a", "activations": activations});
            License::from_spec(&spec.to_string(), Timestamp::from_unix(0))
                .unwrap()
                .0
                .issue_warnings()
        };
        let warned = [IssueWarning::ActivationsCountedByInstall { max: 3 }];
        // `install` is the default: said or not, the same warning.
        assert_eq!(warnings(serde_json::json!({"max": 3})), warned);
        assert_eq!(
            warnings(serde_json::json!({"max": 3, "counted_by": "install", "max_transfers": 1})),
            warned
        );
        // Counted by the vendor, or no limit to count: nothing to say.
        assert!(warnings(serde_json::json!({"max": 3, "counted_by": "vendor"})).is_empty());
        assert!(warnings(serde_json::json!({})).is_empty());
        assert!(warnings(serde_json::json!({"max_transfers": 2})).is_empty());

        let message = warned[0].to_string();
        assert_eq!(warned[0].code(), "ACTIVATIONS_COUNTED_BY_INSTALL");
        assert!(
            message.contains("binds only what one state or one site server sees")
                && message.contains("`vendor`")
                && message.contains('3'),
            "{message}"
        );
    }
}
