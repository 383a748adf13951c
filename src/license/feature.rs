//! A license's features.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::license::{Consumption, Floating};
use crate::time::Timestamp;

/// A feature the license grants.
///
/// ```
/// use entitle::license::Feature;
///
/// let feature: Feature = serde_json::from_str(r#"{"code": "export", "limit": 3, "since": "v2"}"#).unwrap();
/// assert_eq!((feature.code.as_str(), feature.limit), ("export", Some(3)));
/// assert_eq!(feature.extra["since"], "v2");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// The name the application checks.
    pub code: String,
    /// A display name ("Export to PDF"), carried and shown, never enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form data (a JSON object), carried and shown, never enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The feature ends earlier than the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// A quota, summed over valid licenses by `Engine::limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// A metered feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumption: Option<Consumption>,
    /// The feature's own pool of concurrent seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating: Option<Floating>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Feature {
    /// A feature granted as such: no end of its own, no quota, no meter,
    /// no pool. The `with_` methods add them, for
    /// [`LicenseBuilder::feature`](crate::license::LicenseBuilder::feature).
    ///
    /// ```
    /// use entitle::license::{Consumption, Feature, Floating, Reset};
    /// use entitle::Timestamp;
    ///
    /// let end = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    /// let export = Feature::new("export")
    ///     .with_limit(3)
    ///     .with_expires_at(end)
    ///     .with_consumption(Consumption::up_to(100).with_reset(Reset::Daily))
    ///     .with_floating(Floating::new(2, 600));
    /// assert_eq!((export.code.as_str(), export.limit, export.expires_at), ("export", Some(3), Some(end)));
    /// assert_eq!(export.consumption.unwrap().max, Some(100));
    /// assert_eq!(export.floating.unwrap().seats, 2);
    /// ```
    pub fn new(code: impl Into<String>) -> Self {
        Feature {
            code: code.into(),
            name: None,
            metadata: None,
            expires_at: None,
            limit: None,
            consumption: None,
            floating: None,
            extra: Map::new(),
        }
    }

    /// A display name, carried and shown.
    ///
    /// ```
    /// use entitle::license::Feature;
    /// use entitle::serde_json::json;
    ///
    /// let export = Feature::new("export")
    ///     .with_name("Export to PDF")
    ///     .with_metadata(json!({"tier": "pro"}));
    /// assert_eq!(export.name.as_deref(), Some("Export to PDF"));
    /// assert_eq!(export.metadata.unwrap()["tier"], "pro");
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Free-form data, carried and shown; it must be a JSON object (a
    /// license with anything else is refused when built). See
    /// [`Feature::with_name`].
    pub fn with_metadata(mut self, metadata: impl Into<Value>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }

    /// The feature ends at this instant, before the license. See
    /// [`Feature::new`].
    pub fn with_expires_at(mut self, expires_at: impl Into<Timestamp>) -> Self {
        self.expires_at = Some(expires_at.into());
        self
    }

    /// A quota, summed over valid licenses by `Engine::limit`. See
    /// [`Feature::new`].
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// A metered feature. See [`Feature::new`].
    pub fn with_consumption(mut self, consumption: Consumption) -> Self {
        self.consumption = Some(consumption);
        self
    }

    /// The feature's own pool of concurrent seats. See [`Feature::new`].
    pub fn with_floating(mut self, floating: Floating) -> Self {
        self.floating = Some(floating);
        self
    }
}
