//! Strict JSON: RFC 8259 as `serde_json` reads it, plus a refusal of
//! duplicate object keys at any depth.
//!
//! Duplicate keys are where two parsers of the same signed bytes can
//! disagree (first wins in one, last wins in the other), which turns a
//! signature into a lie; so a signed document with one is refused outright.

use std::borrow::Cow;
use std::fmt;

use rustc_hash::FxHashSet;
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

/// Parses `bytes` as one JSON value, refusing duplicate keys, invalid
/// UTF-8 and trailing data. `what` names the input in the error.
pub(crate) fn parse_strict(bytes: &[u8], what: &'static str) -> Result<Value> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::malformed(what, "it is not valid UTF-8"))?;
    serde_json::from_str::<StrictValue>(text)
        .map(|s| s.0)
        .map_err(|e| Error::malformed(what, format!("it is not valid JSON: {e}")))
}

/// Checks that `bytes` are one strict JSON object (as [`parse_strict`]
/// reads it) without building it: no allocation but for escaped or
/// numerous keys. Verification runs this on every payload, so that typed
/// readers can then deserialize straight from the bytes.
pub(crate) fn check_object(bytes: &[u8], what: &'static str) -> Result<()> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::malformed(what, "it is not valid UTF-8"))?;
    match serde_json::from_str::<Checked>(text) {
        Ok(Checked::Object) => Ok(()),
        Ok(Checked::Other) => Err(Error::malformed(what, "it must be a JSON object")),
        Err(e) => Err(Error::malformed(what, format!("it is not valid JSON: {e}"))),
    }
}

/// Reads a `T` straight from JSON bytes, naming the offending field in the
/// error. Repeated keys are refused only if the bytes passed
/// [`check_object`] or `T`'s `Deserialize` refuses them itself.
pub(crate) fn read_slice<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    // Validating UTF-8 once up front lets serde_json skip it per string.
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::malformed(what, "it is not valid UTF-8"))?;
    // Tracking the path of every value costs as much as the parse itself,
    // and only a refusal needs it: parse plainly, and again with the path
    // only to explain a failure.
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                Error::malformed(what, inner.to_string())
            } else {
                Error::malformed(what, format!("field `{path}`: {inner}"))
            }
        })
        .and_then(|value| {
            de.end()
                .map_err(|e| Error::malformed(what, format!("it is not valid JSON: {e}")))?;
            Ok(value)
        })
}

/// Deserializes one JSON value refusing duplicate keys at any depth: for
/// the free-form fields of a typed document (`customer`, `metadata`...),
/// so that the document's `Deserialize` is strict on its own and needs no
/// [`check_object`] pass first. `null` is `None`, as for any `Option`.
pub(crate) fn strict_value<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Value>, D::Error> {
    match d.deserialize_any(StrictVisitor)? {
        Value::Null => Ok(None),
        value => Ok(Some(value)),
    }
}

/// Like [`strict_value`], for the `#[serde(flatten)]` map that keeps a
/// document's unknown fields: a repeated unknown field is refused, where
/// `serde` alone would keep the last.
pub(crate) fn strict_object<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Map<String, Value>, D::Error> {
    match d.deserialize_map(StrictVisitor)? {
        Value::Object(map) => Ok(map),
        _ => Err(de::Error::custom("expected a JSON object")),
    }
}

/// What [`check_object`] learns of a value: only whether it is an object.
pub(super) enum Checked {
    Object,
    Other,
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

/// Objects this small are checked for repeated keys by a linear scan;
/// larger ones with a hash set ([`KeySet`]).
const LINEAR_KEYS: usize = 32;

/// Reads any JSON value strictly (no repeated key at any depth, finite
/// numbers) without building it.
pub(super) struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<Checked, E> {
        Ok(Checked::Other)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Checked, E> {
        Ok(Checked::Other)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Checked, E> {
        Ok(Checked::Other)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Checked, E> {
        if v.is_finite() {
            Ok(Checked::Other)
        } else {
            Err(E::custom("a number that is not finite"))
        }
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Checked, E> {
        Ok(Checked::Other)
    }
    fn visit_unit<E>(self) -> std::result::Result<Checked, E> {
        Ok(Checked::Other)
    }
    fn visit_none<E>(self) -> std::result::Result<Checked, E> {
        Ok(Checked::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Checked, A::Error> {
        let mut keys = KeySet::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if !keys.insert(key) {
                return Err(keys.repeated());
            }
            map.next_value::<Checked>()?;
        }
        Ok(Checked::Object)
    }
}

/// The keys of one object read so far: a list while they are few, a hash
/// set once they are many, so that a 64 KiB object of short keys stays
/// linear.
#[derive(Default)]
pub(super) struct KeySet<'de> {
    few: Vec<Key<'de>>,
    many: FxHashSet<Key<'de>>,
    /// The key `insert` last refused.
    repeated: Option<Key<'de>>,
}

impl<'de> KeySet<'de> {
    /// Adds `key`; `false` if the object already had it.
    pub(super) fn insert(&mut self, key: Key<'de>) -> bool {
        if self.many.is_empty() && self.few.len() == LINEAR_KEYS {
            self.many.extend(self.few.drain(..));
        }
        let repeated = if self.many.is_empty() {
            self.few.contains(&key)
        } else {
            self.many.contains(&key)
        };
        if repeated {
            self.repeated = Some(key);
        } else if self.many.is_empty() {
            self.few.push(key);
        } else {
            self.many.insert(key);
        }
        !repeated
    }

    /// The error for the key `insert` refused.
    pub(super) fn repeated<E: de::Error>(&self) -> E {
        let key = self.repeated.as_ref().map_or("", Key::as_str);
        E::custom(format!("duplicate key `{key}`"))
    }
}

/// An object key, borrowed from the input unless it had escapes.
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct Key<'de>(Cow<'de, str>);

impl Key<'_> {
    /// The key's text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// One JSON value, read strictly (no repeated key at any depth).
pub(crate) struct StrictValue(pub(crate) Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
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
        while let Some(StrictValue(v)) = seq.next_element()? {
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
            let StrictValue(v) = map.next_value()?;
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
    fn the_check_agrees_with_the_strict_parser() {
        let many: String = (0..100).map(|i| format!("\"k{i}\":{i},")).collect();
        let inputs: [&[u8]; 14] = [
            br#"{"a":1,"a":2}"#,
            br#"{"a":{"b":1,"b":1}}"#,
            br#"[{"b":1},{"b":1}]"#,
            br#"{"a":[{"b":1,"c":[{"d":1,"d":2}]}]}"#,
            br#"{"\u0061":1,"a":2}"#,
            br#"{"a":1,"b":{"a":1}}"#,
            br#"{"a":1} x"#,
            b"{\"a\":\"\xff\"}",
            b"",
            b"1e400",
            br#"{"a":1e400}"#,
            br#"{}"#,
            br#"[]"#,
            &[b'['; 10_000],
        ];
        let many_ok = format!("{{{many}\"end\":0}}");
        let many_dup = format!("{{{many}\"k7\":0}}");
        for input in inputs
            .iter()
            .copied()
            .chain([many_ok.as_bytes(), many_dup.as_bytes()])
        {
            let parsed = parse_strict(input, "t");
            let checked = check_object(input, "t");
            assert_eq!(
                checked.is_ok(),
                matches!(parsed, Ok(Value::Object(_))),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(check_object(many_ok.as_bytes(), "t").is_ok());
        let err = check_object(many_dup.as_bytes(), "t").unwrap_err();
        assert!(err.to_string().contains("duplicate key `k7`"), "{err}");
        let err = check_object(br#"{"\u0061":1,"a":2}"#, "t").unwrap_err();
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
    }

    #[test]
    fn trailing_data_and_bad_utf8_are_refused() {
        assert!(parse_strict(br#"{"a":1} x"#, "t").is_err());
        assert!(parse_strict(b"\"\xff\"", "t").is_err());
        assert!(parse_strict(&[b'['; 10_000], "t").is_err());
    }
}
