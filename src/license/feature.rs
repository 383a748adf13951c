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
