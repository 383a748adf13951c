//! The license document: the payload of a `typ: "license"` token.

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ident::is_name;
pub use crate::license::feature::Feature;
use crate::license::{issue, LicenseBuilder};
use crate::time::Timestamp;
use crate::token;

/// The most features one license may carry: a bound on the work one
/// signed file can make the engine do.
pub const MAX_FEATURES: usize = 1024;
pub use crate::ident::MAX_NAME_LEN;
/// The most `assigned_users` one license may name.
pub const MAX_ASSIGNED_USERS: usize = 100_000;
/// The most `channels` one license may list.
pub const MAX_CHANNELS: usize = 64;

/// The schema version this crate writes and reads.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The id a license gets when its vendor gives none: `lic_` and 16 random
/// hex digits. `entitle issue` and [`LicenseBuilder`] both use it.
pub(crate) fn new_license_id() -> String {
    crate::engine::random_id("lic_")
}

/// The default window within which a user counts as active: 365 days.
pub const DEFAULT_ACTIVE_WINDOW_SECS: i64 = 365 * 24 * 3600;

/// A license, as its vendor signed it. Field names are the wire contract
/// (docs/formats.md#license-typ-license); unknown fields are kept in `extra` and ignored.
///
/// Read from bytes ([`License::from_json_slice`], as verification reads
/// it), a document that repeats a key anywhere is refused before `serde`
/// reads it: a `Value` cannot hold such a repeat, and `serde` alone would
/// keep the last of two fields and skip unknown ones unread.
///
/// ```
/// use entitle::license::License;
///
/// let license = License::from_json(&serde_json::json!({
///     "v": 1, "id": "lic_1", "product": "acme", "issued_at": "2026-01-01T00:00:00Z",
///     "seats": {"max": 5, "hard_max": 7},
///     "features": [{"code": "export"}]
/// })).unwrap();
/// assert_eq!(license.seats.unwrap().hard_max(), 7);
/// assert!(license.feature("export").is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct License {
    /// Schema version: 1.
    pub v: u32,
    /// License id, unique per vendor.
    pub id: String,
    /// Re-issue number; an older serial of a known id is refused.
    #[serde(default)]
    pub serial: u64,
    /// The product code; must equal the engine's product.
    pub product: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The customer (a name or any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Value>,
    /// A notice to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// A notice to show once the license has expired (with `on_expiry: keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_on_expire: Option<String>,
    /// Free-form data, carried and shown, never enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Free-form data, carried and shown, never enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Value>,
    /// The informational class.
    #[serde(default)]
    pub kind: Kind,
    /// Whether this is a trial license (reported; the same rules apply).
    #[serde(default)]
    pub trial: bool,
    /// With `trial: true`: valid for this many seconds from its first use
    /// on each install (docs/semantics.md#trials). The install records when it
    /// first added the id, and that record outlives `license remove`: a
    /// trial never restarts, and a higher `serial` with a larger
    /// `trial_secs` extends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_secs: Option<i64>,
    /// `false` suspends every right the license gives.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When the vendor signed it.
    pub issued_at: Timestamp,
    /// Valid from this instant (inclusive); absent = always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// Valid until this instant (exclusive); absent = for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Seconds after `expires_at` during which rights continue, flagged.
    #[serde(default)]
    pub grace_secs: i64,
    /// What happens after expiry and grace.
    #[serde(default)]
    pub on_expiry: OnExpiry,
    /// Builds released after this instant are not licensed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_until: Option<Timestamp>,
    /// The versions of the program the license is for, as a semver
    /// requirement written as Cargo writes them (`">=2.0, <3"`; a bare
    /// `"2.3"` means `^2.3`); absent = any version. A program says its
    /// version with `EngineBuilder::version`; one that says none, or one
    /// outside the requirement, gets `VERSION_NOT_LICENSED` for every
    /// feature of the license. Pre-releases follow semver: `2.4.0-beta.1`
    /// matches only a requirement that names a pre-release of 2.4.0.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "version_requirement"
    )]
    pub versions: Option<semver::VersionReq>,
    /// The release channels the license is for (`["stable", "beta"]`);
    /// absent = any channel. A program says its channel with
    /// `EngineBuilder::channel`; one that says none, or one not listed,
    /// gets `VERSION_NOT_LICENSED` for every feature of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// A user-based license: only these users get its rights in per-user checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_users: Option<Vec<String>>,
    /// Named-user seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<Seats>,
    /// Node-locked device activations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations: Option<Activations>,
    /// Activations from virtual machines are refused.
    #[serde(default)]
    pub prevent_vm: bool,
    /// Concurrent floating seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating: Option<Floating>,
    /// What the license grants.
    #[serde(default)]
    pub features: Vec<Feature>,
    /// Fields this version does not know, kept for forward compatibility.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

/// Reads `versions`, saying what a requirement looks like when it is not
/// one (the path of the field is added by the reader).
fn version_requirement<'de, D>(
    deserializer: D,
) -> std::result::Result<Option<semver::VersionReq>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    semver::VersionReq::parse(&text).map(Some).map_err(|e| {
        let shown: String = text.chars().take(64).collect();
        D::Error::custom(format!(
            "`{shown}` is not a version requirement ({e}); write one as Cargo does, \
             such as \">=2.0, <3\" or \"2.3\" (meaning ^2.3)"
        ))
    })
}

/// The informational class of a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No end.
    #[default]
    Perpetual,
    /// Ends at `expires_at`.
    TimeLimited,
    /// Renewed by re-issue.
    Subscription,
    /// Metered.
    Consumption,
}

impl Kind {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Perpetual => "perpetual",
            Kind::TimeLimited => "time_limited",
            Kind::Subscription => "subscription",
            Kind::Consumption => "consumption",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens once a license is past `expires_at` and its grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// Every right ends (a hard expiration).
    #[default]
    Deny,
    /// Features keep working, flagged `EXPIRED_KEPT`; nothing new is granted.
    Keep,
}

/// Named-user seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seats {
    /// Licensed seats.
    pub max: u32,
    /// Seats allowed as overage; at least `max` (default `max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_max: Option<u32>,
    /// A user holds a seat while active within this window (default 365 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_window_secs: Option<i64>,
}

impl Seats {
    /// `max` licensed seats, no overage, the default active window.
    ///
    /// ```
    /// use entitle::license::Seats;
    ///
    /// let seats = Seats::new(5).with_hard_max(7).with_active_window_secs(30 * 24 * 3600);
    /// assert_eq!((seats.max, seats.hard_max(), seats.active_window_secs()), (5, 7, 2_592_000));
    /// assert_eq!(Seats::new(5).hard_max(), 5);
    /// ```
    pub const fn new(max: u32) -> Self {
        Seats {
            max,
            hard_max: None,
            active_window_secs: None,
        }
    }

    /// Users beyond `max` up to `hard_max` are allowed as overage. See
    /// [`Seats::new`].
    pub const fn with_hard_max(mut self, hard_max: u32) -> Self {
        self.hard_max = Some(hard_max);
        self
    }

    /// A user holds a seat while active within this many seconds. See
    /// [`Seats::new`].
    pub const fn with_active_window_secs(mut self, secs: i64) -> Self {
        self.active_window_secs = Some(secs);
        self
    }

    /// `hard_max`, defaulting to `max`.
    pub fn hard_max(&self) -> u32 {
        self.hard_max.unwrap_or(self.max)
    }
    /// The active window in seconds.
    pub fn active_window_secs(&self) -> i64 {
        self.active_window_secs
            .unwrap_or(DEFAULT_ACTIVE_WINDOW_SECS)
    }
}

/// Who counts device activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountedBy {
    /// This engine counts `activate` calls.
    #[default]
    Install,
    /// Only vendor-signed machine certificates activate a device.
    Vendor,
}

/// Node-locked activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activations {
    /// Most devices at once; absent = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Most deactivations; absent = unlimited, 0 = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_transfers: Option<u32>,
    /// Who counts.
    #[serde(default)]
    pub counted_by: CountedBy,
}

impl Activations {
    /// Node-locked to any number of devices, with any number of
    /// transfers, counted by the install.
    ///
    /// ```
    /// use entitle::license::{Activations, CountedBy};
    ///
    /// let any = Activations::unlimited();
    /// assert_eq!((any.max, any.max_transfers), (None, None));
    /// let two = Activations::up_to(2).with_max_transfers(1).with_counted_by(CountedBy::Vendor);
    /// assert_eq!((two.max, two.max_transfers, two.counted_by), (Some(2), Some(1), CountedBy::Vendor));
    /// ```
    pub const fn unlimited() -> Self {
        Activations {
            max: None,
            max_transfers: None,
            counted_by: CountedBy::Install,
        }
    }

    /// Node-locked to at most `max` devices at once. See
    /// [`Activations::unlimited`].
    pub const fn up_to(max: u32) -> Self {
        Activations {
            max: Some(max),
            ..Activations::unlimited()
        }
    }

    /// At most this many deactivations (0: none). See
    /// [`Activations::unlimited`].
    pub const fn with_max_transfers(mut self, max_transfers: u32) -> Self {
        self.max_transfers = Some(max_transfers);
        self
    }

    /// Who counts the devices. See [`Activations::unlimited`].
    pub const fn with_counted_by(mut self, counted_by: CountedBy) -> Self {
        self.counted_by = counted_by;
        self
    }
}

/// Concurrent floating seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floating {
    /// Seats in the pool.
    pub seats: u32,
    /// A lease not renewed within this many seconds is free again.
    pub lease_secs: i64,
    /// Borrowing allowed up to this many seconds, when present: a lease of
    /// this pool (the license's, or the feature's own) may be borrowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrow_max_secs: Option<i64>,
    /// After a check-in the seat stays with its client for this many
    /// seconds (FlexNet's LINGER): the client gets it back at once,
    /// nobody else does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger_secs: Option<i64>,
}

impl Floating {
    /// A pool of `seats` leased for `lease_secs` at a time, no borrowing.
    ///
    /// ```
    /// use entitle::license::Floating;
    ///
    /// let pool = Floating::new(10, 300).with_borrow_max_secs(7 * 24 * 3600);
    /// assert_eq!((pool.seats, pool.lease_secs, pool.borrow_max_secs), (10, 300, Some(604_800)));
    /// ```
    pub const fn new(seats: u32, lease_secs: i64) -> Self {
        Floating {
            seats,
            lease_secs,
            borrow_max_secs: None,
            linger_secs: None,
        }
    }

    /// Borrowing allowed for up to this many seconds, on a license's pool
    /// or a feature's own. See [`Floating::new`].
    pub const fn with_borrow_max_secs(mut self, secs: i64) -> Self {
        self.borrow_max_secs = Some(secs);
        self
    }

    /// A checked-in seat stays with its client for this many seconds.
    ///
    /// ```
    /// let pool = entitle::license::Floating::new(10, 300).with_linger_secs(120);
    /// assert_eq!(pool.linger_secs, Some(120));
    /// ```
    pub const fn with_linger_secs(mut self, secs: i64) -> Self {
        self.linger_secs = Some(secs);
        self
    }
}

/// A metered feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumption {
    /// Units per period; absent = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// Extra units allowed beyond `max`, flagged as overage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage: Option<u64>,
    /// When the counter resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Reset>,
}

impl Consumption {
    /// Metered without a limit: every use is counted, none refused.
    ///
    /// ```
    /// use entitle::license::{Consumption, Reset};
    ///
    /// assert_eq!(Consumption::unlimited().max, None);
    /// let monthly = Consumption::up_to(1000).with_overage(100).with_reset(Reset::Monthly);
    /// assert_eq!((monthly.max, monthly.overage, monthly.reset), (Some(1000), Some(100), Some(Reset::Monthly)));
    /// ```
    pub const fn unlimited() -> Self {
        Consumption {
            max: None,
            overage: None,
            reset: None,
        }
    }

    /// At most `max` units (per period, with a reset). See
    /// [`Consumption::unlimited`].
    pub const fn up_to(max: u64) -> Self {
        Consumption {
            max: Some(max),
            ..Consumption::unlimited()
        }
    }

    /// Extra units allowed beyond `max`, flagged as overage. See
    /// [`Consumption::unlimited`].
    pub const fn with_overage(mut self, overage: u64) -> Self {
        self.overage = Some(overage);
        self
    }

    /// The counter resets at the start of each such period. See
    /// [`Consumption::unlimited`].
    pub const fn with_reset(mut self, reset: Reset) -> Self {
        self.reset = Some(reset);
        self
    }
}

/// Calendar periods in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// At 00:00 UTC.
    Daily,
    /// Mondays at 00:00 UTC.
    Weekly,
    /// The 1st at 00:00 UTC.
    Monthly,
    /// January 1st at 00:00 UTC.
    Annually,
}

impl License {
    /// Reads and validates a license document from JSON.
    pub fn from_json(value: &Value) -> Result<Self> {
        let license: License = token::from_value(value, "license")?;
        license.validate()?;
        Ok(license)
    }

    /// Reads and validates a license document from JSON bytes, refusing
    /// what [`from_json`](License::from_json) cannot see once a `Value` is
    /// built: duplicate keys, at any depth. The path every verified
    /// license takes.
    ///
    /// ```
    /// use entitle::license::License;
    ///
    /// let json = br#"{"v": 1, "id": "lic_1", "product": "acme", "issued_at": "2026-01-01T00:00:00Z"}"#;
    /// assert_eq!(License::from_json_slice(json).unwrap().id, "lic_1");
    ///
    /// let twice = br#"{"v": 1, "id": "lic_1", "id": "lic_2", "product": "acme", "issued_at": "2026-01-01T00:00:00Z"}"#;
    /// assert_eq!(License::from_json_slice(twice).unwrap_err().code(), "MALFORMED");
    /// ```
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self> {
        let license: License = token::read(bytes, "license")?;
        license.validate()?;
        Ok(license)
    }

    /// The vendor's side: a license spec as a person writes it (one JSON
    /// object, without repeated keys: a repeated `expires_at` would
    /// otherwise silently lose one of its values), completed into the
    /// document to sign (`v`, a random `id` and `issued_at` filled in when
    /// missing, first, then the vendor's fields in the vendor's order) and
    /// checked as every install will read it.
    ///
    /// ```
    /// use entitle::license::License;
    /// use entitle::Timestamp;
    ///
    /// let now = Timestamp::parse("2026-05-01T00:00:00Z").unwrap();
    /// let (license, document) = License::from_spec(r#"{"product": "acme"}"#, now).unwrap();
    /// assert!(license.id.starts_with("lic_"));
    /// assert_eq!(document["issued_at"], "2026-05-01T00:00:00Z");
    /// assert_eq!(License::from_spec(r#"{"product": "a", "product": "b"}"#, now).unwrap_err().code(), "MALFORMED");
    /// ```
    pub fn from_spec(spec: &str, issued_at: Timestamp) -> Result<(Self, Map<String, Value>)> {
        let Value::Object(spec) = token::parse_strict_json(spec.as_bytes(), "license spec")? else {
            return Err(Error::malformed(
                "license spec",
                "it must be a JSON object (the license document)",
            ));
        };
        let mut document = Map::new();
        if !spec.contains_key("v") {
            document.insert("v".into(), Value::from(SCHEMA_VERSION));
        }
        if !spec.contains_key("id") {
            document.insert("id".into(), Value::from(new_license_id()));
        }
        if !spec.contains_key("issued_at") {
            document.insert("issued_at".into(), Value::from(issued_at.to_rfc3339()));
        }
        document.extend(spec);
        let license = License::from_json(&Value::Object(document.clone())).map_err(|error| {
            // A misspelt field is often why a required one is missing:
            // `prodcut` says more than "missing field `product`".
            let unknown = issue::unknown_in(&document, None);
            match error {
                Error::Malformed { what, detail } if !unknown.is_empty() => Error::Malformed {
                    what,
                    detail: format!("{detail}; also {}", issue::list(&unknown)),
                },
                other => other,
            }
        })?;
        Ok((license, document))
    }

    /// A builder of a license to sign, for vendors writing Rust: typed
    /// fields instead of JSON, checked as every install will read them.
    /// See [`LicenseBuilder`].
    ///
    /// ```
    /// use entitle::license::{Feature, License};
    ///
    /// let license = License::builder("acme").feature(Feature::new("export")).build().unwrap();
    /// assert_eq!(license.product, "acme");
    /// assert!(license.id.starts_with("lic_"));
    /// ```
    pub fn builder(product: impl Into<String>) -> LicenseBuilder {
        LicenseBuilder::new(product)
    }

    /// Whether the license is for a program of this version and channel
    /// (`None`: the program gave none): each of `versions` and `channels`
    /// the license has must admit the program's, and a program that gives
    /// none is admitted only where the license sets no such limit.
    ///
    /// ```
    /// use entitle::license::License;
    /// use entitle::semver::{Version, VersionReq};
    ///
    /// let license = License::builder("acme")
    ///     .versions(VersionReq::parse(">=2.0, <3").unwrap())
    ///     .channels(["stable", "beta"])
    ///     .build().unwrap();
    /// let v = |s: &str| Version::parse(s).unwrap();
    /// assert!(license.admits(Some(&v("2.3.1")), Some("beta")));
    /// assert!(!license.admits(Some(&v("3.0.0")), Some("beta")));
    /// assert!(!license.admits(Some(&v("2.3.1")), Some("nightly")));
    /// assert!(!license.admits(None, Some("stable")));
    /// // Pre-releases as semver says: only where the requirement names one.
    /// assert!(!license.admits(Some(&v("2.4.0-beta.1")), Some("beta")));
    ///
    /// let any = License::builder("acme").build().unwrap();
    /// assert!(any.admits(None, None));
    /// ```
    pub fn admits(&self, version: Option<&semver::Version>, channel: Option<&str>) -> bool {
        let version_ok = match (&self.versions, version) {
            (None, _) => true,
            (Some(required), Some(version)) => required.matches(version),
            (Some(_), None) => false,
        };
        let channel_ok = match (&self.channels, channel) {
            (None, _) => true,
            (Some(listed), Some(channel)) => listed.iter().any(|c| c == channel),
            (Some(_), None) => false,
        };
        version_ok && channel_ok
    }

    /// The feature with this code, if the license grants it.
    pub fn feature(&self, code: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.code == code)
    }

    /// Checks the rules a well-formed license follows beyond its types.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, rule: &str| {
            Err(Error::malformed(
                "license",
                format!("field `{field}` {rule}"),
            ))
        };
        if self.v != SCHEMA_VERSION {
            return bad("v", "must be 1 (this version reads schema 1)");
        }
        name_ok("id", &self.id)?;
        name_ok("product", &self.product)?;
        if self.grace_secs < 0 {
            return bad("grace_secs", "must not be negative");
        }
        match self.trial_secs {
            Some(secs) if secs <= 0 => return bad("trial_secs", "must be positive"),
            Some(_) if !self.trial => return bad("trial_secs", "needs `trial: true`"),
            _ => {}
        }
        if let (Some(s), Some(e)) = (self.starts_at, self.expires_at) {
            if s >= e {
                return bad("starts_at", "must be before `expires_at`");
            }
        }
        if let Some(seats) = &self.seats {
            if seats.hard_max() < seats.max {
                return bad("seats.hard_max", "must be at least `seats.max`");
            }
            if seats.active_window_secs() <= 0 {
                return bad("seats.active_window_secs", "must be positive");
            }
        }
        if let Some(users) = &self.assigned_users {
            if users.len() > MAX_ASSIGNED_USERS {
                return Err(Error::TooLarge {
                    what: "assigned_users",
                    size: users.len(),
                    limit: MAX_ASSIGNED_USERS,
                });
            }
        }
        if let Some(floating) = &self.floating {
            floating_ok(|| "floating".to_owned(), floating)?;
        }
        if let Some(channels) = &self.channels {
            if channels.is_empty() {
                return bad(
                    "channels",
                    "must list at least one channel; leave it out to allow any channel",
                );
            }
            if channels.len() > MAX_CHANNELS {
                return Err(Error::TooLarge {
                    what: "channels",
                    size: channels.len(),
                    limit: MAX_CHANNELS,
                });
            }
            for (i, channel) in channels.iter().enumerate() {
                name_ok(&format!("channels[{i}]"), channel)?;
                if channels[..i].contains(channel) {
                    return bad(&format!("channels[{i}]"), &format!("repeats `{channel}`"));
                }
            }
        }
        if self.features.len() > MAX_FEATURES {
            return Err(Error::TooLarge {
                what: "features",
                size: self.features.len(),
                limit: MAX_FEATURES,
            });
        }
        // Few features (the usual case) are checked for a repeated code by
        // a scan of those before; many with a hash set, so that 1024 stay
        // linear.
        let mut codes = FxHashSet::default();
        if self.features.len() > LINEAR_CODES {
            codes.reserve(self.features.len());
        }
        for (i, feature) in self.features.iter().enumerate() {
            // The field name is formatted only for an error: this loop runs
            // on every verification.
            if !is_name(&feature.code) {
                return name_ok(&format!("features[{i}].code"), &feature.code);
            }
            let repeated = if self.features.len() > LINEAR_CODES {
                !codes.insert(feature.code.as_str())
            } else {
                self.features[..i].iter().any(|f| f.code == feature.code)
            };
            if repeated {
                return bad(
                    &format!("features[{i}].code"),
                    &format!(
                        "repeats `{}`; a code appears once per license",
                        feature.code
                    ),
                );
            }
            if feature.metadata.as_ref().is_some_and(|m| !m.is_object()) {
                return bad(&format!("features[{i}].metadata"), "must be a JSON object");
            }
            if feature.limit.is_some_and(|l| l < 0) {
                return bad(&format!("features[{i}].limit"), "must not be negative");
            }
            if let Some(floating) = &feature.floating {
                floating_ok(|| format!("features[{i}].floating"), floating)?;
            }
        }
        Ok(())
    }
}

/// Licenses with at most this many features have their codes checked for
/// repeats by a linear scan.
const LINEAR_CODES: usize = 32;

fn name_ok(field: &str, value: &str) -> Result<()> {
    if !is_name(value) {
        return Err(Error::malformed(
            "license",
            format!("field `{field}` must be 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
    Ok(())
}

/// `field` names the pool in an error, and is only called to make one.
fn floating_ok(field: impl Fn() -> String, floating: &Floating) -> Result<()> {
    if floating.lease_secs <= 0 {
        return Err(Error::malformed(
            "license",
            format!("field `{}.lease_secs` must be positive", field()),
        ));
    }
    if floating.borrow_max_secs.is_some_and(|b| b < 0) {
        return Err(Error::malformed(
            "license",
            format!("field `{}.borrow_max_secs` must not be negative", field()),
        ));
    }
    if floating.linger_secs.is_some_and(|l| l < 0) {
        return Err(Error::malformed(
            "license",
            format!("field `{}.linger_secs` must not be negative", field()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use semver::Version;

    fn license(extra: Value) -> Result<License> {
        let mut document = serde_json::json!({
            "v": 1, "id": "lic_1", "product": "acme", "issued_at": "2026-01-01T00:00:00Z"
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut document, extra) {
            base.extend(extra);
        }
        License::from_json_slice(document.to_string().as_bytes())
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn versions_are_read_as_a_semver_requirement() {
        let l = license(serde_json::json!({"versions": ">=2.0, <3"})).unwrap();
        let required = l.versions.as_ref().unwrap();
        assert_eq!(required.to_string(), ">=2.0, <3");
        for inside in ["2.0.0", "2.3.1", "2.99.0"] {
            assert!(l.admits(Some(&v(inside)), None), "{inside}");
        }
        for outside in ["1.9.9", "3.0.0", "10.0.0"] {
            assert!(!l.admits(Some(&v(outside)), None), "{outside}");
        }
        // A bare version means a caret requirement, as Cargo reads it.
        let caret = license(serde_json::json!({"versions": "2.3"})).unwrap();
        assert!(caret.admits(Some(&v("2.9.0")), None));
        assert!(!caret.admits(Some(&v("2.2.9")), None));
        assert!(!caret.admits(Some(&v("3.0.0")), None));
    }

    #[test]
    fn a_prerelease_matches_only_a_requirement_naming_a_prerelease_of_its_version() {
        let plain = license(serde_json::json!({"versions": ">=2.0, <3"})).unwrap();
        assert!(!plain.admits(Some(&v("2.4.0-beta.1")), None));
        let named = license(serde_json::json!({"versions": ">=2.4.0-beta.1, <3"})).unwrap();
        assert!(named.admits(Some(&v("2.4.0-beta.1")), None));
        assert!(named.admits(Some(&v("2.4.0-beta.2")), None));
        assert!(named.admits(Some(&v("2.4.0")), None));
        // Another version's pre-release is not named by it.
        assert!(!named.admits(Some(&v("2.5.0-beta.1")), None));
        // Build metadata is ignored.
        assert!(plain.admits(Some(&v("2.3.1+build.7")), None));
    }

    #[test]
    fn channels_admit_only_a_listed_channel() {
        let l = license(serde_json::json!({"channels": ["stable", "beta"]})).unwrap();
        assert!(l.admits(None, Some("stable")));
        assert!(l.admits(Some(&v("9.0.0")), Some("beta")));
        assert!(!l.admits(None, Some("nightly")));
        assert!(!l.admits(None, Some("Stable")));
    }

    #[test]
    fn a_program_that_says_nothing_is_admitted_only_without_limits() {
        let any = license(serde_json::json!({})).unwrap();
        assert!(any.admits(None, None));
        assert!(any.admits(Some(&v("0.0.1-alpha")), Some("anything")));
        let versions = license(serde_json::json!({"versions": "*"})).unwrap();
        assert!(!versions.admits(None, None));
        assert!(versions.admits(Some(&v("1.0.0")), None));
        let channels = license(serde_json::json!({"channels": ["stable"]})).unwrap();
        assert!(!channels.admits(Some(&v("1.0.0")), None));
        let both = license(serde_json::json!({"versions": "^2", "channels": ["stable"]})).unwrap();
        assert!(!both.admits(Some(&v("2.0.0")), None));
        assert!(!both.admits(None, Some("stable")));
        assert!(both.admits(Some(&v("2.0.0")), Some("stable")));
    }

    #[test]
    fn bad_versions_and_channels_are_refused_naming_the_field() {
        for bad in [
            serde_json::json!("2.x.q"),
            serde_json::json!(""),
            serde_json::json!(">= two"),
            serde_json::json!(2),
        ] {
            let err = license(serde_json::json!({ "versions": bad })).unwrap_err();
            assert_eq!(err.code(), "MALFORMED", "{bad}");
            assert!(err.to_string().contains("field `versions`"), "{bad}: {err}");
        }
        let err = license(serde_json::json!({"versions": "2.x.q"})).unwrap_err();
        assert!(
            err.to_string().contains(">=2.0, <3"),
            "says what one looks like: {err}"
        );
        for (channels, path) in [
            (serde_json::json!([]), "`channels`"),
            (serde_json::json!(["stable", ""]), "`channels[1]`"),
            (serde_json::json!(["beta", "beta"]), "`channels[1]`"),
            (serde_json::json!(["a\u{7}"]), "`channels[0]`"),
        ] {
            let err = license(serde_json::json!({ "channels": channels })).unwrap_err();
            assert!(err.to_string().contains(path), "{channels}: {err}");
        }
    }

    #[test]
    fn features_carry_a_name_and_an_object_of_metadata() {
        let l = license(serde_json::json!({"features": [
            {"code": "export", "name": "Export to PDF", "metadata": {"tier": "pro", "n": [1]}}
        ]}))
        .unwrap();
        let export = l.feature("export").unwrap();
        assert_eq!(export.name.as_deref(), Some("Export to PDF"));
        assert_eq!(export.metadata.as_ref().unwrap()["tier"], "pro");
        assert!(export.extra.is_empty());
        let err = license(
            serde_json::json!({"features": [{"code": "a"}, {"code": "b", "metadata": [1]}]}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`features[1].metadata`"), "{err}");
    }

    #[test]
    fn versions_and_channels_survive_signing_as_written() {
        let built = License::builder("acme")
            .versions(semver::VersionReq::parse(">=2.0, <3").unwrap())
            .channels(["stable"])
            .feature(
                Feature::new("export")
                    .with_name("Export")
                    .with_metadata(serde_json::json!({"a": 1})),
            )
            .build()
            .unwrap();
        let written = serde_json::to_value(&built).unwrap();
        assert_eq!(written["versions"], ">=2.0, <3");
        assert_eq!(written["channels"], serde_json::json!(["stable"]));
        assert_eq!(written["features"][0]["name"], "Export");
        let read = License::from_json_slice(written.to_string().as_bytes()).unwrap();
        assert_eq!(read, built);
    }
}
