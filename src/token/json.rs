//! Strict JSON: RFC 8259 as `serde_json` reads it, plus a refusal of
//! duplicate object keys at any depth.
//!
//! Duplicate keys are where two parsers of the same signed bytes can
//! disagree (first wins in one, last wins in the other), which turns a
//! signature into a lie; so a signed document with one is refused outright.
//! [`read`] is the one place that refuses them: every header, payload and
//! document read from bytes goes through it.

use std::borrow::Cow;
use std::fmt;

use rustc_hash::FxHashSet;
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::{Error, Result};

/// Reads a `T` from JSON bytes, refusing invalid UTF-8, trailing data and
/// a key repeated in any object, however deep (unknown fields included,
/// which `T` would skip unread). `what` names the input in errors, which
/// name the offending field.
pub(crate) fn read<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    // Validating UTF-8 once up front lets serde_json skip it per string.
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::malformed(what, "it is not valid UTF-8"))?;
    serde_json::from_str::<Unique>(text)
        .map_err(|e| Error::malformed(what, format!("it is not valid JSON: {e}")))?;
    // Tracking the path of every value costs as much as the parse itself,
    // and only a refusal needs it: parse plainly, and again with the path
    // only to explain a failure.
    serde_json::from_str(text)
        .or_else(|_| {
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
        })
        .map_err(|e| path_error(what, e))
}

/// Reads a `T` from a JSON value (which cannot hold a repeated key),
/// naming the offending field in errors.
pub(crate) fn from_value<T: DeserializeOwned>(value: &Value, what: &'static str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(what, e))
}

fn path_error(what: &'static str, e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if path == "." {
        Error::malformed(what, inner.to_string())
    } else {
        Error::malformed(what, format!("field `{path}`: {inner}"))
    }
}

/// Objects this small are checked for repeated keys by a linear scan;
/// larger ones with a hash set, so that a 64 KiB object of short keys
/// stays linear.
const LINEAR_KEYS: usize = 32;

/// Any JSON value in which no object repeats a key, read and dropped.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Unique, A::Error> {
        let mut few = Vec::new();
        let mut many = FxHashSet::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if few.len() == LINEAR_KEYS {
                many.extend(few.drain(..));
            }
            if few.contains(&key) || (!many.is_empty() && many.contains(&key)) {
                return Err(de::Error::custom(format!("duplicate key `{}`", key.0)));
            }
            if many.is_empty() {
                few.push(key);
            } else {
                many.insert(key);
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

/// An object key, borrowed from the input unless it had escapes (so that
/// `"\u0061"` and `"a"` are the same key).
#[derive(PartialEq, Eq, Hash)]
struct Key<'de>(Cow<'de, str>);

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(bytes: &[u8]) -> Result<Value> {
        read(bytes, "t")
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let many: String = (0..100).map(|i| format!("\"k{i}\":{i},")).collect();
        for (input, repeated) in [
            (r#"{"a":1,"a":2}"#.to_owned(), "a"),
            (r#"{"a":{"b":1,"b":1}}"#.to_owned(), "b"),
            (r#"{"a":[{"b":1,"c":[{"d":1,"d":2}]}]}"#.to_owned(), "d"),
            (r#"{"\u0061":1,"a":2}"#.to_owned(), "a"),
            (format!("{{{many}\"k7\":0}}"), "k7"),
            (format!("{{{many}\"k99\":0}}"), "k99"),
        ] {
            let err = strict(input.as_bytes()).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("duplicate key `{repeated}`")),
                "{input}: {err}"
            );
        }
        for input in [
            r#"[{"b":1},{"b":1}]"#.to_owned(),
            r#"{"a":1,"b":{"a":1}}"#.to_owned(),
            format!("{{{many}\"end\":0}}"),
        ] {
            assert!(strict(input.as_bytes()).is_ok(), "{input}");
        }
    }

    #[test]
    fn trailing_data_bad_utf8_and_deep_nesting_are_refused() {
        for input in [
            &br#"{"a":1} x"#[..],
            b"\"\xff\"",
            b"{\"a\":\"\xff\"}",
            b"",
            b"1e400",
            &[b'['; 10_000],
        ] {
            assert!(strict(input).is_err(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_typed_refusal_names_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            seats: Seats,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Seats {
            max: u32,
        }
        let err = read::<Doc>(br#"{"seats":{"max":-1}}"#, "doc").unwrap_err();
        assert!(err.to_string().contains("field `seats.max`"), "{err}");
    }
}
