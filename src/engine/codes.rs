//! The table `check_feature` probes: feature code to decision entry.
//!
//! A general-purpose hash map hashes a code byte by byte and confirms a
//! match with `memcmp`; on the hot path those were most of the probe. Codes
//! are short, so this table reads a code of up to 16 bytes as two machine
//! words (two overlapping loads), hashes the words with one multiply, and
//! confirms a match by comparing the words: no loop, no call. The words
//! determine such a code exactly (they cover every byte, and the length is
//! compared too). Longer codes are hashed and compared whole.
//!
//! Feature codes come from signed licenses, so no adversary chooses the
//! keys; the hash needs to spread, not to resist flooding.

use std::fmt;
use std::hash::Hasher;

use hashbrown::hash_table::{Entry, HashTable};
use rustc_hash::FxHasher;

/// A code read as words: for up to 16 bytes, the code itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Words {
    first: u64,
    last: u64,
    len: usize,
}

impl Words {
    #[inline]
    fn of(code: &[u8]) -> Words {
        let len = code.len();
        let (first, last) = if len >= 8 {
            (word(&code[..8]), word(&code[len - 8..len]))
        } else if len >= 4 {
            (half(&code[..4]), half(&code[len - 4..len]))
        } else if len > 0 {
            let bytes =
                u64::from(code[0]) | u64::from(code[len / 2]) << 8 | u64::from(code[len - 1]) << 16;
            (bytes, 0)
        } else {
            (0, 0)
        };
        Words { first, last, len }
    }

    /// Whether equal words mean equal codes.
    #[inline]
    fn exact(&self) -> bool {
        self.len <= 16
    }

    #[inline]
    fn hash(&self, code: &[u8]) -> u64 {
        let mut h = fold(
            self.first ^ 0x243f_6a88_85a3_08d3,
            self.last ^ 0x1319_8a2e_0370_7344 ^ self.len as u64,
        );
        if !self.exact() {
            let mut whole = FxHasher::default();
            whole.write(code);
            h ^= whole.finish();
        }
        h
    }
}

#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

#[inline]
fn half(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(bytes);
    u64::from(u32::from_le_bytes(w))
}

/// The high and low halves of a 128-bit product, folded: one multiply that
/// mixes every input bit into the high bits hashbrown tags with and the
/// low bits it indexes with.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Feature codes to values, probed without a loop or a call for codes of
/// up to 16 bytes.
#[derive(Clone)]
pub(crate) struct CodeTable<V> {
    table: HashTable<(Words, Box<str>, V)>,
}

impl<V> Default for CodeTable<V> {
    fn default() -> Self {
        CodeTable {
            table: HashTable::new(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for CodeTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.table.iter().map(|(_, code, v)| (code, v)))
            .finish()
    }
}

impl<V> CodeTable<V> {
    /// Sets the value of `code`, replacing any it had.
    pub(crate) fn insert(&mut self, code: &str, value: V) {
        let bytes = code.as_bytes();
        let words = Words::of(bytes);
        let hash = words.hash(bytes);
        let same = |(w, key, _): &(Words, Box<str>, V)| *w == words && key.as_bytes() == bytes;
        let rehash = |(w, key, _): &(Words, Box<str>, V)| w.hash(key.as_bytes());
        match self.table.entry(hash, same, rehash) {
            Entry::Occupied(mut slot) => slot.get_mut().2 = value,
            Entry::Vacant(slot) => {
                slot.insert((words, code.into(), value));
            }
        }
    }

    /// The value of `code`, if any.
    #[inline]
    pub(crate) fn get(&self, code: &str) -> Option<&V> {
        let bytes = code.as_bytes();
        let words = Words::of(bytes);
        self.table
            .find(words.hash(bytes), |(w, key, _)| {
                *w == words && (words.exact() || key.as_bytes() == bytes)
            })
            .map(|(_, _, value)| value)
    }

    /// How many codes the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn codes_that_share_words_but_not_bytes_stay_apart() {
        // Same first and last eight bytes, different middles (long path);
        // lengths 1 to 3 share first, middle and last byte positions.
        let codes = [
            "feature.alpha.middle.one.end-12345678",
            "feature.alpha.middle.two.end-12345678",
            "",
            "a",
            "ab",
            "aab",
            "abb",
            "abcd",
            "abcde",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "ünïcödé",
        ];
        let mut table = CodeTable::default();
        for (i, code) in codes.iter().enumerate() {
            table.insert(code, i);
        }
        assert_eq!(table.len(), codes.len());
        for (i, code) in codes.iter().enumerate() {
            assert_eq!(table.get(code), Some(&i), "{code:?}");
        }
        for absent in [
            "b",
            "ba",
            "abc",
            "abcdefghijklmno",
            "feature.alpha.middle.six.end-12345678",
        ] {
            assert_eq!(table.get(absent), None, "{absent:?}");
        }
        table.insert("a", 99);
        assert_eq!(table.get("a"), Some(&99));
        assert_eq!(table.len(), codes.len());
    }

    proptest! {
        /// The table answers exactly as a standard map of the same codes.
        #[test]
        fn the_table_agrees_with_a_standard_map(
            codes in proptest::collection::vec("[a-c.]{0,20}", 0..60),
            probes in proptest::collection::vec("[a-c.]{0,20}", 0..60),
        ) {
            let mut table = CodeTable::default();
            let mut model = HashMap::new();
            for (i, code) in codes.iter().enumerate() {
                table.insert(code, i);
                model.insert(code.clone(), i);
            }
            prop_assert_eq!(table.len(), model.len());
            for code in codes.iter().chain(&probes) {
                prop_assert_eq!(table.get(code), model.get(code));
            }
        }
    }
}
