//! The protected header as verification reads it: `alg`, `kid`, `typ` and
//! whether there is a `crit`, borrowed from the header's JSON, which is
//! checked as strictly as any signed JSON (no repeated key at any depth)
//! but never built into a map. A verified token builds its map only when
//! asked ([`VerifiedToken::header`](crate::token::VerifiedToken::header)).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};
use crate::token::direct::{Reader, Seen};
use crate::token::json::{CheckVisitor, Checked, Key, KeySet};

const WHAT: &str = "token header";

/// What verification needs of a header.
#[derive(Debug, Default)]
pub(crate) struct Header<'a> {
    alg: Member<'a>,
    kid: Member<'a>,
    typ: Member<'a>,
    /// A `crit` member is present (whatever its value).
    pub(crate) crit: bool,
}

/// One of the string members.
#[derive(Debug, Default)]
enum Member<'a> {
    #[default]
    Missing,
    Text(Cow<'a, str>),
    NotText,
}

impl<'a> Header<'a> {
    /// Reads a header's JSON: one strict JSON object.
    pub(crate) fn read(bytes: &'a [u8]) -> Result<Header<'a>> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::malformed(WHAT, "it is not valid UTF-8"))?;
        if let Some(header) = Header::read_direct(text) {
            return Ok(header);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let read = Read::deserialize(&mut de).and_then(|read| de.end().map(|()| read));
        match read {
            Ok(Read::Object(header)) => Ok(header),
            Ok(Read::Other) => Err(Error::malformed(WHAT, "it must be a JSON object")),
            Err(e) => Err(Error::malformed(WHAT, format!("it is not valid JSON: {e}"))),
        }
    }

    /// The header as JWT libraries write it: `alg`, `kid` and `typ`, each
    /// at most once, plain strings. `None` for any other, which `serde`
    /// reads (see [`direct`](crate::token::direct)).
    fn read_direct(text: &'a str) -> Option<Header<'a>> {
        let mut reader = Reader::new(text);
        let mut header = Header::default();
        let mut seen = Seen::default();
        reader.object(|r, key| {
            let (bit, member) = match key {
                "alg" => (0, &mut header.alg),
                "kid" => (1, &mut header.kid),
                "typ" => (2, &mut header.typ),
                _ => return None,
            };
            seen.once(bit)?;
            *member = Member::Text(Cow::Borrowed(r.str()?));
            Some(())
        })?;
        reader.finished().then_some(header)
    }

    /// `alg`, which must be a string.
    pub(crate) fn alg(&self) -> Result<&str> {
        self.alg.text("alg")
    }
    /// `kid`, which must be a string.
    pub(crate) fn kid(&self) -> Result<&str> {
        self.kid.text("kid")
    }
    /// `typ`, which must be a string.
    pub(crate) fn typ(&self) -> Result<&str> {
        self.typ.text("typ")
    }
}

impl Member<'_> {
    fn text(&self, name: &str) -> Result<&str> {
        match self {
            Member::Text(text) => Ok(text),
            Member::NotText => Err(Error::malformed(WHAT, format!("`{name}` must be a string"))),
            Member::Missing => Err(Error::malformed(WHAT, format!("`{name}` is required"))),
        }
    }
}

/// A header's JSON read: an object, or any other value (refused).
enum Read<'a> {
    Object(Header<'a>),
    Other,
}

impl<'de> Deserialize<'de> for Read<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Read<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Read<'de>, A::Error> {
        let mut header = Header::default();
        let mut keys = KeySet::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let member = match key.as_str() {
                "alg" => Some(&mut header.alg),
                "kid" => Some(&mut header.kid),
                "typ" => Some(&mut header.typ),
                "crit" => {
                    header.crit = true;
                    None
                }
                _ => None,
            };
            match member {
                Some(member) => *member = map.next_value::<Value<'de>>()?.0,
                None => {
                    map.next_value::<Checked>()?;
                }
            }
            if !keys.insert(key) {
                return Err(keys.repeated());
            }
        }
        Ok(Read::Object(header))
    }

    // Any other value is read (strictly) and refused by `Header::read`.
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Read<'de>, E> {
        Ok(Read::Other)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Read<'de>, E> {
        Ok(Read::Other)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Read<'de>, E> {
        Ok(Read::Other)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Read<'de>, E> {
        CheckVisitor.visit_f64(v).map(|_| Read::Other)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Read<'de>, E> {
        Ok(Read::Other)
    }
    fn visit_unit<E>(self) -> std::result::Result<Read<'de>, E> {
        Ok(Read::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Read<'de>, A::Error> {
        CheckVisitor.visit_seq(seq).map(|_| Read::Other)
    }
}

/// A member's value: its text when it is a string, else checked and noted.
struct Value<'a>(Member<'a>);

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Value<'de>, E> {
        Ok(Value(Member::Text(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value<'de>, E> {
        Ok(Value(Member::Text(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value<'de>, E> {
        Ok(Value(Member::Text(Cow::Owned(v))))
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Value<'de>, E> {
        Ok(Value(Member::NotText))
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Value<'de>, E> {
        Ok(Value(Member::NotText))
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Value<'de>, E> {
        Ok(Value(Member::NotText))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value<'de>, E> {
        CheckVisitor.visit_f64(v).map(|_| Value(Member::NotText))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value<'de>, E> {
        Ok(Value(Member::NotText))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Value<'de>, A::Error> {
        CheckVisitor.visit_seq(seq).map(|_| Value(Member::NotText))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Value<'de>, A::Error> {
        CheckVisitor.visit_map(map).map(|_| Value(Member::NotText))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::json::parse_strict;

    /// The typed reader refuses exactly what the strict parser refuses (or
    /// what is not an object), and reads the members it reads alike.
    #[test]
    fn the_reader_agrees_with_the_strict_parser() {
        let inputs: [&[u8]; 16] = [
            br#"{"alg":"EdDSA","kid":"k","typ":"license"}"#,
            br#"{"alg":"EdDSA","alg":"none","kid":"k","typ":"license"}"#,
            br#"{"alg":"EdDSA","\u0061lg":"none"}"#,
            br#"{"alg":"Ed\u0044SA","kid":"k","typ":"license"}"#,
            br#"{"alg":1,"kid":["k"],"typ":{"a":1,"a":2}}"#,
            br#"{"alg":1,"kid":["k"],"typ":{"a":1}}"#,
            br#"{"x":{"y":[{"z":1,"z":1}]}}"#,
            br#"{"crit":["exp"],"alg":"EdDSA"}"#,
            br#"{"alg":"EdDSA"} x"#,
            br#"{"alg":1e400}"#,
            b"{\"alg\":\"\xff\"}",
            br#"["alg"]"#,
            br#""alg""#,
            br#"{}"#,
            b"",
            &[b'{'; 1000],
        ];
        for input in inputs {
            agrees(input);
        }
    }

    /// Reads `input` both ways and panics where they differ.
    fn agrees(input: &[u8]) {
        let strict = parse_strict(input, WHAT);
        let read = Header::read(input);
        assert_eq!(
            read.is_ok(),
            matches!(strict, Ok(serde_json::Value::Object(_))),
            "{}",
            String::from_utf8_lossy(input)
        );
        let (Ok(header), Ok(serde_json::Value::Object(map))) = (read, strict) else {
            return;
        };
        for (name, member) in [
            ("alg", &header.alg),
            ("kid", &header.kid),
            ("typ", &header.typ),
        ] {
            match (map.get(name), member) {
                (Some(serde_json::Value::String(s)), Member::Text(t)) => assert_eq!(s, t),
                (Some(serde_json::Value::String(_)), other) => panic!("{name}: {other:?}"),
                (Some(_), Member::NotText) | (None, Member::Missing) => {}
                (value, member) => panic!("{name}: {value:?} read as {member:?}"),
            }
        }
        assert_eq!(header.crit, map.contains_key("crit"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Headers of the members verification reads, and others, with
        /// plain, escaped, repeated and non-string values, in any order
        /// and spacing: the direct path and `serde` read them alike.
        #[test]
        fn headers_read_alike_either_way(
            members in proptest::collection::vec(
                (
                    proptest::sample::select(&["alg", "kid", "typ", "crit", "x", "\\u0061lg"][..]),
                    proptest::sample::select(&[
                        "\"EdDSA\"", "\"license\"", "\"k1\"", "\"Ed\\u0044SA\"", "\"\"",
                        "1", "-0", "1.5", "null", "true", "[\"k\"]", "{\"a\":1}", "{\"a\":1,\"a\":2}",
                        "\"é\"", "\"tab\tin\"",
                    ][..]),
                ),
                0..5,
            ),
            space in proptest::sample::select(&["", " ", "\n\t", "\r\n  "][..]),
            tail in proptest::sample::select(&["", " ", "x", ",", "}"][..]),
        ) {
            let body: Vec<String> = members
                .iter()
                .map(|(key, value)| format!("{space}\"{key}\"{space}:{space}{value}{space}"))
                .collect();
            let text = format!("{space}{{{}}}{tail}", body.join(","));
            agrees(text.as_bytes());
        }
    }
}
