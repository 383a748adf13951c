//! Strict JSON: RFC 8259 as `serde_json` reads it, plus a refusal of
//! duplicate object keys at any depth.
//!
//! Duplicate keys are where two parsers of the same signed bytes can
//! disagree (first wins in one, last wins in the other), which turns a
//! signature into a lie; so a signed document with one is refused outright.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

/// Parses `bytes` as one JSON value, refusing duplicate keys, invalid
/// UTF-8 and trailing data. `what` names the input in the error.
pub(crate) fn parse_strict(bytes: &[u8], what: &'static str) -> Result<Value> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::malformed(what, "it is not valid UTF-8"))?;
    serde_json::from_str::<Strict>(text)
        .map(|s| s.0)
        .map_err(|e| Error::malformed(what, format!("it is not valid JSON: {e}")))
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let Strict(v) = map.next_value()?;
            object.insert(key, v);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#, "t").is_err());
        assert!(parse_strict(br#"{"a":{"b":1,"b":1}}"#, "t").is_err());
        assert!(parse_strict(br#"[{"b":1},{"b":1}]"#, "t").is_ok());
    }

    #[test]
    fn trailing_data_and_bad_utf8_are_refused() {
        assert!(parse_strict(br#"{"a":1} x"#, "t").is_err());
        assert!(parse_strict(b"\"\xff\"", "t").is_err());
        assert!(parse_strict(&[b'['; 10_000], "t").is_err());
    }
}
