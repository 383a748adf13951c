//! A license's features, and how they are read from its JSON.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::license::{Consumption, Floating};
use crate::time::Timestamp;
use crate::token::{Key, StrictValue};

/// A feature the license grants.
///
/// Read by hand rather than by `#[derive(Deserialize)]`: serde's
/// `flatten`, which the derive needs to keep unknown fields, buffers every
/// feature through an intermediate form, and a license's features are
/// read on every verification. The reader refuses a repeated key, as the
/// rest of a license does.
///
/// ```
/// use entitle::license::Feature;
///
/// let feature: Feature = serde_json::from_str(r#"{"code": "export", "limit": 3, "since": "v2"}"#).unwrap();
/// assert_eq!((feature.code.as_str(), feature.limit), ("export", Some(3)));
/// assert_eq!(feature.extra["since"], "v2");
/// assert!(serde_json::from_str::<Feature>(r#"{"code": "a", "code": "b"}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
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

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FeatureVisitor)
    }
}

struct FeatureVisitor;

impl<'de> Visitor<'de> for FeatureVisitor {
    type Value = Feature;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a feature object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Feature, A::Error> {
        let mut code = None;
        let mut expires_at = None;
        let mut limit = None;
        let mut consumption = None;
        let mut floating = None;
        let mut extra = Map::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.as_str() {
                "code" => once(&mut code, "code", &mut map)?,
                "expires_at" => once(&mut expires_at, "expires_at", &mut map)?,
                "limit" => once(&mut limit, "limit", &mut map)?,
                "consumption" => once(&mut consumption, "consumption", &mut map)?,
                "floating" => once(&mut floating, "floating", &mut map)?,
                other => {
                    if extra.contains_key(other) {
                        return Err(de::Error::custom(format!("duplicate key `{other}`")));
                    }
                    let StrictValue(value) = map.next_value()?;
                    extra.insert(other.to_owned(), value);
                }
            }
        }
        Ok(Feature {
            code: code.ok_or_else(|| de::Error::missing_field("code"))?,
            expires_at: expires_at.flatten(),
            limit: limit.flatten(),
            consumption: consumption.flatten(),
            floating: floating.flatten(),
            extra,
        })
    }
}

/// Reads the value of a field into its slot, refusing a second one.
fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}
