//! [`Timestamp`], the instant every document and decision speaks in.
//!
//! It imports nothing of the crate, so that any module (errors, documents,
//! clocks) can use it without a cycle; a time that does not read is a
//! [`ParseTimestampError`], which converts into the crate's error.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in whole seconds since the Unix epoch (UTC).
///
/// Licenses speak in RFC 3339 and whole seconds; so does the engine.
/// Serialises as an RFC 3339 string.
///
/// ```
/// use entitle::Timestamp;
///
/// let t = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
/// assert_eq!(t.to_string(), "2026-03-01T00:00:00Z");
/// assert_eq!(t.plus_secs(60).unix(), t.unix() + 60);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The latest representable second we accept (year 9999), so that adding
/// any license duration never overflows.
const MAX_UNIX: i64 = 253_402_300_799;
const MIN_UNIX: i64 = -62_135_596_800;

impl Timestamp {
    /// The instant `secs` seconds after the Unix epoch (clamped to years 1..=9999).
    pub const fn from_unix(secs: i64) -> Self {
        let secs = if secs > MAX_UNIX {
            MAX_UNIX
        } else if secs < MIN_UNIX {
            MIN_UNIX
        } else {
            secs
        };
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    #[inline]
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time (`2026-03-01T00:00:00Z`, or with an offset
    /// such as `+02:00`), ignoring surrounding whitespace; a fraction of a
    /// second is dropped.
    ///
    /// ```
    /// use entitle::Timestamp;
    ///
    /// let t = Timestamp::parse("2026-03-01T12:00:00.5+02:00").unwrap();
    /// assert_eq!(t.to_string(), "2026-03-01T10:00:00Z");
    /// let err = Timestamp::parse("yesterday").unwrap_err();
    /// assert!(err.to_string().contains("`yesterday` is not an RFC 3339 time"));
    /// ```
    pub fn parse(text: &str) -> Result<Self, ParseTimestampError> {
        Timestamp::from_rfc3339(text.trim())
    }

    /// The one reading of a time, for [`parse`](Timestamp::parse) and for
    /// documents alike.
    fn from_rfc3339(text: &str) -> Result<Self, ParseTimestampError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Timestamp::from_unix(t.timestamp()))
            .map_err(|e| ParseTimestampError {
                text: text.to_owned(),
                reason: e.to_string(),
            })
    }

    /// This instant plus `secs` seconds, saturating at the ends of time.
    #[inline]
    pub const fn plus_secs(self, secs: i64) -> Self {
        Timestamp::from_unix(self.0.saturating_add(secs))
    }

    /// As a chrono `DateTime<Utc>`.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// RFC 3339 in UTC, whole seconds: `2026-03-01T00:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

/// A time that is not RFC 3339. Converts into
/// [`Error::Malformed`](crate::Error::Malformed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 time ({reason}); write e.g. 2026-03-01T00:00:00Z")]
pub struct ParseTimestampError {
    text: String,
    reason: String,
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp::from_unix(t.timestamp())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TimestampVisitor)
    }
}

/// Reads a time from a string, borrowed where the input allows, so that
/// reading one allocates nothing.
struct TimestampVisitor;

impl serde::de::Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 time such as 2026-03-01T00:00:00Z")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
        Timestamp::from_rfc3339(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_clamp_instead_of_overflowing() {
        assert_eq!(
            Timestamp::from_unix(i64::MAX).plus_secs(i64::MAX).unix(),
            MAX_UNIX
        );
        assert_eq!(Timestamp::from_unix(i64::MIN).unix(), MIN_UNIX);
    }

    #[test]
    fn utc_and_offsets_read_and_a_fraction_is_dropped() {
        for (text, utc) in [
            ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"),
            (" 2026-03-01T12:00:00.999+02:00\n", "2026-03-01T10:00:00Z"),
            ("2026-03-01T05:30:00-04:30", "2026-03-01T10:00:00Z"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ] {
            assert_eq!(Timestamp::parse(text).unwrap().to_string(), utc, "{text}");
        }
        for text in ["yesterday", "2026-02-29T00:00:00Z", "2026-03-01", ""] {
            let err = Timestamp::parse(text).unwrap_err();
            assert!(err.to_string().contains("not an RFC 3339 time"), "{err}");
        }
    }

    #[test]
    fn documents_read_times_as_parse_does_but_untrimmed() {
        let read = |json: &str| serde_json::from_str::<Timestamp>(json).ok();
        assert_eq!(
            read(r#""2026-03-01T12:00:00+02:00""#),
            Timestamp::parse("2026-03-01T10:00:00Z").ok()
        );
        assert_eq!(read(r#"" 2026-03-01T10:00:00Z""#), None);
        assert_eq!(read("1772359200"), None);
    }
}
