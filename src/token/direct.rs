//! Direct JSON reading: the bytes walked once, straight into the fields
//! of a known document, for JSON as programs write it.
//!
//! Reading a small document through `serde` costs more in its layers than
//! in the JSON, and verification reads two on every license (the header
//! and the license itself). A [`Reader`] takes the plain forms only:
//! strings without escapes or control characters, integers of at most 18
//! digits without fraction or exponent, `true`, `false`, `null`, objects
//! and arrays. On anything else each method returns `None`, and so does
//! the document reader built from them, whose caller then reads the
//! document through `serde`: a direct reader decides nothing on its own,
//! it either reads what `serde` would read, the same way, or gives up.
//! Each reader built on this one is held to `serde`'s answer by property
//! tests.

use serde_json::{Map, Number, Value};

use crate::time::Timestamp;

/// How deep free-form values (a license's `customer`, `metadata`...) may
/// nest here; deeper ones go to `serde` (whose own limit is 128).
const MAX_DEPTH: u32 = 16;

/// A position in the document.
pub(crate) struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// The fields of one object read so far, to refuse a repeated one.
#[derive(Default)]
pub(crate) struct Seen(u32);

impl Seen {
    /// Marks field `bit`; `None` if the object already had it.
    pub(crate) fn once(&mut self, bit: u32) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }

    pub(crate) fn has(&self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }
}

/// A word whose lowest set bit is the high bit of the first of `word`'s
/// eight bytes (little-endian) that is a quote, a backslash or a control
/// character, zero if there is none. Bits above the lowest may be set by
/// carries and mean nothing (the classic has-zero-byte test).
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | below_space
}

/// An integer as JSON writes it: sign and magnitude.
struct Integer {
    negative: bool,
    magnitude: u64,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    /// Whether only whitespace is left.
    pub(crate) fn finished(&mut self) -> bool {
        self.skip_whitespace();
        self.pos == self.bytes.len()
    }

    fn skip_whitespace(&mut self) {
        // Most documents are written without any.
        if self.bytes.get(self.pos).is_some_and(|&b| b > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte`, the next one that is not whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Consumes `word` (`null`, `true`, `false`) if it comes next.
    fn eat_word(&mut self, word: &[u8]) -> bool {
        self.skip_whitespace();
        let found = self.bytes[self.pos..].starts_with(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    /// A string without escapes or control characters, borrowed.
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        // Eight bytes at a time up to the first that may end the string,
        // then byte by byte from there.
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let special = special_bytes(u64::from_le_bytes(chunk.try_into().ok()?));
            if special != 0 {
                self.pos += special.trailing_zeros() as usize / 8;
                break;
            }
            self.pos += 8;
        }
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        // Both ends are ASCII quotes, so this is a whole UTF-8 string.
        let text = self.text.get(start..self.pos)?;
        self.pos += 1;
        Some(text)
    }

    pub(crate) fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    /// An integer of at most 18 digits (so that it fits `i64` and `u64`
    /// either way), without fraction or exponent; `-0` is left to `serde`,
    /// which reads it as a float.
    fn integer(&mut self) -> Option<Integer> {
        self.skip_whitespace();
        let negative = self.bytes.get(self.pos) == Some(&b'-');
        self.pos += usize::from(negative);
        let start = self.pos;
        let mut magnitude = 0u64;
        while let Some(&digit @ b'0'..=b'9') = self.bytes.get(self.pos) {
            magnitude = magnitude * 10 + u64::from(digit - b'0');
            self.pos += 1;
            if self.pos - start > 18 {
                return None;
            }
        }
        let digits = self.pos - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        let fraction = matches!(self.bytes.get(self.pos), Some(b'.' | b'e' | b'E'));
        if digits == 0 || leading_zero || fraction || (negative && magnitude == 0) {
            return None;
        }
        Some(Integer {
            negative,
            magnitude,
        })
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.u64().and_then(|n| u32::try_from(n).ok())
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let n = self.integer()?;
        (!n.negative).then_some(n.magnitude)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        let n = self.integer()?;
        // At most 18 digits: the magnitude fits.
        let magnitude = i64::try_from(n.magnitude).ok()?;
        Some(if n.negative { -magnitude } else { magnitude })
    }

    pub(crate) fn bool(&mut self) -> Option<bool> {
        if self.eat_word(b"true") {
            Some(true)
        } else if self.eat_word(b"false") {
            Some(false)
        } else {
            None
        }
    }

    pub(crate) fn timestamp(&mut self) -> Option<Timestamp> {
        Timestamp::from_rfc3339(self.str()?).ok()
    }

    /// `null` as `None`, anything else read by `read`.
    pub(crate) fn nullable<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        if self.eat_word(b"null") {
            Some(None)
        } else {
            read(self).map(Some)
        }
    }

    /// An object: `member` reads the value of each key in turn.
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.sequence(b'{', b'}', |r| {
            let key = r.str()?;
            r.eat(b':')?;
            member(r, key)
        })
    }

    /// An array: `item` reads each element in turn.
    pub(crate) fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.sequence(b'[', b']', item)
    }

    /// `open`, then items separated by commas, then `close`.
    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.pos += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b if b == close => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A free-form value, as `strict_value` reads it: `null` is `None`.
    pub(crate) fn free_form(&mut self) -> Option<Option<Value>> {
        self.nullable(|r| r.value(MAX_DEPTH))
    }

    fn value(&mut self, depth: u32) -> Option<Value> {
        Some(match self.peek()? {
            b'{' => {
                let depth = depth.checked_sub(1)?;
                let mut map = Map::new();
                self.object(|r, key| {
                    if map.contains_key(key) {
                        return None;
                    }
                    let value = r.value(depth)?;
                    map.insert(key.to_owned(), value);
                    Some(())
                })?;
                Value::Object(map)
            }
            b'[' => {
                let depth = depth.checked_sub(1)?;
                let mut items = Vec::new();
                self.array(|r| {
                    items.push(r.value(depth)?);
                    Some(())
                })?;
                Value::Array(items)
            }
            b'"' => Value::String(self.string()?),
            b't' | b'f' => Value::Bool(self.bool()?),
            b'n' => self.eat_word(b"null").then_some(Value::Null)?,
            _ => {
                let n = self.integer()?;
                Value::Number(if n.negative {
                    // Nonzero and at most 18 digits: a negative i64.
                    Number::from(-i64::try_from(n.magnitude).ok()?)
                } else {
                    Number::from(n.magnitude)
                })
            }
        })
    }
}
