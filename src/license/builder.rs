//! Issuing from Rust: a typed builder of the license document and its
//! signature, for vendors who would otherwise write JSON by hand (where a
//! misspelt field is silently ignored by every install).

use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::license::document::{new_license_id, SCHEMA_VERSION};
use crate::license::{Activations, Feature, Floating, Kind, License, OnExpiry, Seats};
use crate::time::Timestamp;
use crate::token::{self, SigningKey, TokenType, MAX_TOKEN_BYTES};

/// Builds a license and signs it, without free-form JSON: every field of
/// the document (docs/formats.md#license-typ-license) is a typed method, so a typo does not
/// compile. [`build`](LicenseBuilder::build) fills in what `entitle issue`
/// fills in (`v`, a random `lic_` id, `issued_at` = now) and checks the
/// document as every install will read it; [`sign`](LicenseBuilder::sign)
/// returns the compact token an engine adds.
///
/// ```
/// use entitle::license::{Consumption, Feature, Kind, License, Reset, Seats};
/// use entitle::token::{armor, SigningKey, TokenType};
/// use entitle::{Engine, Timestamp};
///
/// let vendor = SigningKey::generate()?;
/// let token = License::builder("acme-cad")
///     .id("lic_42")
///     .customer("Example Ltd")
///     .kind(Kind::Subscription)
///     .expires_at(Timestamp::parse("2099-01-01T00:00:00Z")?)
///     .seats(Seats::new(5).with_hard_max(7))
///     .feature(Feature::new("export").with_limit(3))
///     .feature(Feature::new("render").with_consumption(Consumption::up_to(100).with_reset(Reset::Monthly)))
///     .sign(&vendor)?;
/// let file = armor(&token, TokenType::License); // what the customer gets
///
/// let engine = Engine::builder("acme-cad").in_memory().trust(vendor.public_key().clone()).build()?;
/// assert_eq!(engine.add_license(&file)?, "lic_42");
/// assert!(engine.check_feature("export").allowed());
/// assert_eq!(engine.limit("export"), Some(3));
/// # Ok::<(), entitle::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` or `sign`"]
pub struct LicenseBuilder {
    /// The document; its `id` and `issued_at` are placeholders until
    /// `build`, which fills them from the two below.
    license: License,
    id: Option<String>,
    issued_at: Option<Timestamp>,
}

impl LicenseBuilder {
    /// A license of `product` granting nothing yet; the same as
    /// [`License::builder`].
    ///
    /// ```
    /// use entitle::license::LicenseBuilder;
    ///
    /// let license = LicenseBuilder::new("acme").build().unwrap();
    /// assert_eq!((license.product.as_str(), license.v), ("acme", 1));
    /// ```
    pub fn new(product: impl Into<String>) -> Self {
        LicenseBuilder {
            license: License {
                v: SCHEMA_VERSION,
                id: String::new(),
                serial: 0,
                product: product.into(),
                name: None,
                customer: None,
                notice: None,
                notice_on_expire: None,
                metadata: None,
                custom_fields: None,
                kind: Kind::default(),
                trial: false,
                trial_secs: None,
                enabled: true,
                issued_at: Timestamp::from_unix(0),
                starts_at: None,
                expires_at: None,
                grace_secs: 0,
                on_expiry: OnExpiry::default(),
                maintenance_until: None,
                versions: None,
                channels: None,
                assigned_users: None,
                seats: None,
                activations: None,
                prevent_vm: false,
                floating: None,
                features: Vec::new(),
                extra: Map::new(),
            },
            id: None,
            issued_at: None,
        }
    }

    /// The license id, unique per vendor [default: `lic_` and 16 random
    /// hex digits].
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").id("lic_42").build().unwrap();
    /// assert_eq!(license.id, "lic_42");
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The re-issue number [default: 0]: installs refuse an older serial
    /// of an id they have seen.
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").serial(2).build().unwrap();
    /// assert_eq!(license.serial, 2);
    /// ```
    pub fn serial(mut self, serial: u64) -> Self {
        self.license.serial = serial;
        self
    }

    /// A display name.
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").name("Acme CAD Pro").build().unwrap();
    /// assert_eq!(license.name.as_deref(), Some("Acme CAD Pro"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.license.name = Some(name.into());
        self
    }

    /// The customer: a name, or any JSON.
    ///
    /// ```
    /// use entitle::serde_json::json;
    ///
    /// let license = entitle::license::License::builder("acme")
    ///     .customer(json!({"name": "Example Ltd", "vat": "GB123"}))
    ///     .build().unwrap();
    /// assert_eq!(license.customer.unwrap()["name"], "Example Ltd");
    /// ```
    pub fn customer(mut self, customer: impl Into<Value>) -> Self {
        self.license.customer = Some(customer.into());
        self
    }

    /// A notice to show.
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").notice("Educational use only").build().unwrap();
    /// assert_eq!(license.notice.as_deref(), Some("Educational use only"));
    /// ```
    pub fn notice(mut self, notice: impl Into<String>) -> Self {
        self.license.notice = Some(notice.into());
        self
    }

    /// A notice to show once the license has expired (with
    /// [`OnExpiry::Keep`]).
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").notice_on_expire("Renew at acme.example").build().unwrap();
    /// assert_eq!(license.notice_on_expire.as_deref(), Some("Renew at acme.example"));
    /// ```
    pub fn notice_on_expire(mut self, notice: impl Into<String>) -> Self {
        self.license.notice_on_expire = Some(notice.into());
        self
    }

    /// Free-form data, carried and shown, never enforced.
    ///
    /// ```
    /// use entitle::serde_json::json;
    ///
    /// let license = entitle::license::License::builder("acme").metadata(json!({"order": 1234})).build().unwrap();
    /// assert_eq!(license.metadata.unwrap()["order"], 1234);
    /// ```
    pub fn metadata(mut self, metadata: impl Into<Value>) -> Self {
        self.license.metadata = Some(metadata.into());
        self
    }

    /// Free-form data, carried and shown, never enforced.
    ///
    /// ```
    /// use entitle::serde_json::json;
    ///
    /// let license = entitle::license::License::builder("acme").custom_fields(json!({"region": "eu"})).build().unwrap();
    /// assert_eq!(license.custom_fields.unwrap()["region"], "eu");
    /// ```
    pub fn custom_fields(mut self, custom_fields: impl Into<Value>) -> Self {
        self.license.custom_fields = Some(custom_fields.into());
        self
    }

    /// The informational class [default: perpetual]. A kind at odds with
    /// the license's end is not an error, but
    /// [`License::issue_warnings`] says so.
    ///
    /// ```
    /// use entitle::license::{Kind, License};
    ///
    /// let license = License::builder("acme").kind(Kind::Consumption).build().unwrap();
    /// assert_eq!(license.kind, Kind::Consumption);
    /// ```
    pub fn kind(mut self, kind: Kind) -> Self {
        self.license.kind = kind;
        self
    }

    /// Marks a trial license (reported; the same rules apply). For a
    /// trial that runs from its first use, see
    /// [`trial_secs`](LicenseBuilder::trial_secs).
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").trial(true).build().unwrap();
    /// assert!(license.trial);
    /// ```
    pub fn trial(mut self, trial: bool) -> Self {
        self.license.trial = trial;
        self
    }

    /// A trial valid for this many seconds from its first use on each
    /// install (docs/semantics.md#trials); marks the license a trial.
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").trial_secs(30 * 24 * 3600).build().unwrap();
    /// assert!(license.trial);
    /// assert_eq!(license.trial_secs, Some(2_592_000));
    /// ```
    pub fn trial_secs(mut self, secs: i64) -> Self {
        self.license.trial = true;
        self.license.trial_secs = Some(secs);
        self
    }

    /// Whether the license gives its rights [default: true]; `false`
    /// suspends them.
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").enabled(false).build().unwrap();
    /// assert!(!license.enabled);
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.license.enabled = enabled;
        self
    }

    /// When it is signed [default: now, by the system clock].
    ///
    /// ```
    /// use entitle::Timestamp;
    ///
    /// let now = Timestamp::parse("2026-05-01T00:00:00Z").unwrap();
    /// let license = entitle::license::License::builder("acme").issued_at(now).build().unwrap();
    /// assert_eq!(license.issued_at, now);
    /// ```
    pub fn issued_at(mut self, issued_at: impl Into<Timestamp>) -> Self {
        self.issued_at = Some(issued_at.into());
        self
    }

    /// Valid from this instant [default: always].
    ///
    /// ```
    /// use entitle::Timestamp;
    ///
    /// let start = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    /// let license = entitle::license::License::builder("acme").starts_at(start).build().unwrap();
    /// assert_eq!(license.starts_at, Some(start));
    /// ```
    pub fn starts_at(mut self, starts_at: impl Into<Timestamp>) -> Self {
        self.license.starts_at = Some(starts_at.into());
        self
    }

    /// Valid until this instant, exclusive [default: for ever].
    ///
    /// ```
    /// use entitle::license::Kind;
    /// use entitle::Timestamp;
    ///
    /// let end = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    /// let license = entitle::license::License::builder("acme")
    ///     .kind(Kind::TimeLimited).expires_at(end).build().unwrap();
    /// assert_eq!(license.expires_at, Some(end));
    /// ```
    pub fn expires_at(mut self, expires_at: impl Into<Timestamp>) -> Self {
        self.license.expires_at = Some(expires_at.into());
        self
    }

    /// Seconds after `expires_at` during which rights continue, flagged
    /// as grace [default: 0].
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").grace_secs(7 * 24 * 3600).build().unwrap();
    /// assert_eq!(license.grace_secs, 604_800);
    /// ```
    pub fn grace_secs(mut self, secs: i64) -> Self {
        self.license.grace_secs = secs;
        self
    }

    /// What happens after expiry and grace [default: every right ends].
    ///
    /// ```
    /// use entitle::license::{License, OnExpiry};
    ///
    /// let license = License::builder("acme").on_expiry(OnExpiry::Keep).build().unwrap();
    /// assert_eq!(license.on_expiry, OnExpiry::Keep);
    /// ```
    pub fn on_expiry(mut self, on_expiry: OnExpiry) -> Self {
        self.license.on_expiry = on_expiry;
        self
    }

    /// Builds of the application released after this instant are not
    /// licensed; older ones keep working.
    ///
    /// ```
    /// use entitle::Timestamp;
    ///
    /// let until = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    /// let license = entitle::license::License::builder("acme").maintenance_until(until).build().unwrap();
    /// assert_eq!(license.maintenance_until, Some(until));
    /// ```
    pub fn maintenance_until(mut self, until: impl Into<Timestamp>) -> Self {
        self.license.maintenance_until = Some(until.into());
        self
    }

    /// The versions of the program the license is for [default: any]: a
    /// program outside them, or one that does not say its version
    /// (`EngineBuilder::version`), gets `VERSION_NOT_LICENSED` for every
    /// feature of the license. Pre-releases follow semver: `2.4.0-rc.1`
    /// matches `>=2.4.0-rc.1`, never `>=2.0, <3`.
    ///
    /// ```
    /// use entitle::license::License;
    /// use entitle::semver::VersionReq;
    ///
    /// let license = License::builder("acme").versions(VersionReq::parse(">=2.0, <3").unwrap()).build().unwrap();
    /// assert_eq!(license.versions.unwrap().to_string(), ">=2.0, <3");
    /// ```
    pub fn versions(mut self, requirement: semver::VersionReq) -> Self {
        self.license.versions = Some(requirement);
        self
    }

    /// The release channels the license is for [default: any]; repeated
    /// calls add channels. A program on another channel, or one that does
    /// not say its channel (`EngineBuilder::channel`), gets
    /// `VERSION_NOT_LICENSED` for every feature of the license.
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme")
    ///     .channels(["stable"]).channels(["beta"]).build().unwrap();
    /// assert_eq!(license.channels.unwrap(), ["stable", "beta"]);
    ///
    /// let none: [&str; 0] = [];
    /// let err = entitle::license::License::builder("acme").channels(none).build().unwrap_err();
    /// assert!(err.to_string().contains("`channels`"));
    /// ```
    pub fn channels<C: Into<String>>(mut self, channels: impl IntoIterator<Item = C>) -> Self {
        self.license
            .channels
            .get_or_insert_with(Vec::new)
            .extend(channels.into_iter().map(Into::into));
        self
    }

    /// A user-based license: only these users get its rights in per-user
    /// checks. Repeated calls add users.
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme")
    ///     .assigned_users(["ann", "bob"]).assigned_users(["cy"]).build().unwrap();
    /// assert_eq!(license.assigned_users.unwrap(), ["ann", "bob", "cy"]);
    /// ```
    pub fn assigned_users<U: Into<String>>(mut self, users: impl IntoIterator<Item = U>) -> Self {
        self.license
            .assigned_users
            .get_or_insert_with(Vec::new)
            .extend(users.into_iter().map(Into::into));
        self
    }

    /// Named-user seats.
    ///
    /// ```
    /// use entitle::license::{License, Seats};
    ///
    /// let license = License::builder("acme").seats(Seats::new(5).with_hard_max(7)).build().unwrap();
    /// assert_eq!(license.seats.unwrap().hard_max(), 7);
    /// ```
    pub fn seats(mut self, seats: Seats) -> Self {
        self.license.seats = Some(seats);
        self
    }

    /// Node-locked device activations. A `max` that each install counts
    /// (`counted_by: install`, the default) binds only what one state
    /// sees: [`License::issue_warnings`] says so.
    ///
    /// ```
    /// use entitle::license::{Activations, License};
    ///
    /// let license = License::builder("acme").activations(Activations::up_to(2)).build().unwrap();
    /// assert_eq!(license.activations.unwrap().max, Some(2));
    /// ```
    pub fn activations(mut self, activations: Activations) -> Self {
        self.license.activations = Some(activations);
        self
    }

    /// Activations from virtual machines are refused [default: allowed].
    ///
    /// ```
    /// let license = entitle::license::License::builder("acme").prevent_vm(true).build().unwrap();
    /// assert!(license.prevent_vm);
    /// ```
    pub fn prevent_vm(mut self, prevent_vm: bool) -> Self {
        self.license.prevent_vm = prevent_vm;
        self
    }

    /// Concurrent floating seats.
    ///
    /// ```
    /// use entitle::license::{Floating, License};
    ///
    /// let license = License::builder("acme").floating(Floating::new(10, 300)).build().unwrap();
    /// assert_eq!(license.floating.unwrap().seats, 10);
    /// ```
    pub fn floating(mut self, floating: Floating) -> Self {
        self.license.floating = Some(floating);
        self
    }

    /// A feature the license grants; repeated calls add features, each
    /// code once.
    ///
    /// ```
    /// use entitle::license::{Feature, License};
    ///
    /// let license = License::builder("acme")
    ///     .feature(Feature::new("export"))
    ///     .feature(Feature::new("render").with_limit(4))
    ///     .build().unwrap();
    /// assert_eq!(license.feature("render").unwrap().limit, Some(4));
    ///
    /// let twice = License::builder("acme").feature(Feature::new("export")).feature(Feature::new("export"));
    /// assert_eq!(twice.build().unwrap_err().code(), "MALFORMED");
    /// ```
    pub fn feature(mut self, feature: Feature) -> Self {
        self.license.features.push(feature);
        self
    }

    /// The license, completed and checked: `id` and `issued_at` filled in
    /// when not given, as `entitle issue` fills them, and refused
    /// (`MALFORMED`, `TOO_LARGE`) where an install would refuse it.
    ///
    /// ```
    /// use entitle::license::{License, Seats};
    ///
    /// let license = License::builder("acme").seats(Seats::new(5)).build().unwrap();
    /// assert!(license.id.starts_with("lic_"));
    ///
    /// let err = License::builder("acme").seats(Seats::new(5).with_hard_max(3)).build().unwrap_err();
    /// assert_eq!(err.code(), "MALFORMED");
    /// assert!(err.to_string().contains("seats.hard_max"));
    /// ```
    pub fn build(self) -> Result<License> {
        let mut license = self.license;
        license.id = self.id.unwrap_or_else(new_license_id);
        license.issued_at = self.issued_at.unwrap_or_else(|| SystemClock.now());
        license.document()?;
        Ok(license)
    }

    /// Builds the license and signs it with `key`: the compact token
    /// (`Engine::add_license` takes it as it is; [`token::armor`] makes
    /// the file a customer saves). Fails where [`build`](Self::build)
    /// fails, or when the token would be too large for an install to read.
    ///
    /// ```
    /// use entitle::license::{License, VerifiedLicense};
    /// use entitle::token::{Keyring, SigningKey};
    ///
    /// let key = SigningKey::generate()?;
    /// let token = License::builder("acme").id("lic_1").sign(&key)?;
    /// let mut keyring = Keyring::new();
    /// keyring.add(key.public_key().clone());
    /// assert_eq!(VerifiedLicense::verify(&token, &keyring)?.id, "lic_1");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn sign(self, key: &SigningKey) -> Result<String> {
        self.build()?.sign(key)
    }
}

impl License {
    /// Signs this license with `key` into a compact token, after checking
    /// it as every install will read it: its rules, the JSON it is
    /// written as (where a field of `extra` that repeats a known one
    /// would leave only one of the two), and the size of the token.
    ///
    /// ```
    /// use entitle::license::License;
    /// use entitle::token::{Keyring, SigningKey};
    /// use entitle::Engine;
    ///
    /// let key = SigningKey::generate()?;
    /// let license = License::builder("acme").id("lic_1").build()?;
    /// let token = license.sign(&key)?;
    /// let engine = Engine::builder("acme").in_memory().trust(key.public_key().clone()).build()?;
    /// assert_eq!(engine.add_license(&token)?, "lic_1");
    ///
    /// let mut shadowed = license.clone();
    /// shadowed.extra.insert("id".into(), "lic_2".into());
    /// assert_eq!(shadowed.sign(&key).unwrap_err().code(), "MALFORMED");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn sign(&self, key: &SigningKey) -> Result<String> {
        let document = self.document()?;
        let compact = token::sign(&document, key, TokenType::License)?;
        let armored = token::armor(&compact, TokenType::License);
        if armored.len() > MAX_TOKEN_BYTES {
            return Err(Error::TooLarge {
                what: "signed license",
                size: armored.len(),
                limit: MAX_TOKEN_BYTES,
            });
        }
        Ok(compact)
    }

    /// The JSON document to sign, checked as every install will read it.
    fn document(&self) -> Result<Value> {
        self.validate()?;
        let document = serde_json::to_value(self).map_err(|e| {
            Error::malformed("license", format!("it cannot be written as JSON: {e}"))
        })?;
        // Read back as installs read it: refused where they would refuse
        // it, and different from this license where a field of `extra`
        // repeats a known one (the JSON keeps one of the two).
        let read = License::from_json_slice(document.to_string().as_bytes())?;
        if read != self.as_read() {
            return Err(Error::malformed(
                "license",
                "a field in `extra` repeats a field the document has: installs would read only \
                 one of the two; remove it from `extra`",
            ));
        }
        Ok(document)
    }

    /// This license as an install reads it back: a free-form value given
    /// as `null` is absent.
    fn as_read(&self) -> License {
        let mut license = self.clone();
        for value in [
            &mut license.customer,
            &mut license.metadata,
            &mut license.custom_fields,
        ] {
            if value.as_ref().is_some_and(Value::is_null) {
                *value = None;
            }
        }
        license
    }
}
