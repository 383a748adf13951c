//! License keys: what a person types to activate a license online
//! (`XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`), and how the vendor's books keep them
//! (a SHA-256, never the key).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Crockford's base32 alphabet: digits and upper-case letters without
/// `I`, `L`, `O` (read as `1`, `1`, `0`) and `U`.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Symbols in a key.
const SYMBOLS: usize = 25;

/// Symbols in each of its groups.
const GROUP: usize = 5;

/// What a key looks like, for every message about one that is not.
const SHAPE: &str = "a license key is 25 letters and digits in five groups of five, \
                     XXXXX-XXXXX-XXXXX-XXXXX-XXXXX (hyphens and spaces optional, any case; \
                     letters of Crockford's base32, which has no U)";

/// A license key a person types: 25 symbols of Crockford's base32 (125
/// random bits) in five groups of five, `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`.
///
/// Read case-insensitively, with hyphens and spaces anywhere or nowhere,
/// and with the letters people confuse for digits read as those digits
/// (`O` as `0`; `I` and `L` as `1`). Displayed in its canonical form:
/// grouped, upper case. The vendor's books keep only its
/// [`hash`](Self::hash); `Debug` shows only its first group, so a key
/// does not end up in a log whole.
///
/// ```
/// use entitle::license::LicenseKey;
///
/// let key = LicenseKey::generate().unwrap();
/// let typed = key.to_string().to_lowercase().replace('-', " ");
/// assert_eq!(LicenseKey::parse(&typed).unwrap(), key);
///
/// let key: LicenseKey = "0ab1c-defgh-jkmnp-qrstv-wxyz9".parse().unwrap();
/// assert_eq!(key.to_string(), "0AB1C-DEFGH-JKMNP-QRSTV-WXYZ9");
/// assert_eq!(format!("{key:?}"), "LicenseKey(0AB1C-…)");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LicenseKey {
    /// The canonical symbols (upper-case ASCII of [`ALPHABET`]), without
    /// separators.
    symbols: [u8; SYMBOLS],
}

impl LicenseKey {
    /// A new key of 125 bits from the operating system's random generator.
    /// `IO_ERROR` when the generator cannot be read.
    ///
    /// ```
    /// use entitle::license::LicenseKey;
    ///
    /// let key = LicenseKey::generate().unwrap();
    /// assert_eq!(key.to_string().len(), 29);
    /// assert_ne!(key, LicenseKey::generate().unwrap());
    /// ```
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; SYMBOLS]);
        getrandom::getrandom(bytes.as_mut()).map_err(|e| {
            Error::io(
                "reading the system random generator for a license key",
                std::io::Error::other(e.to_string()),
            )
        })?;
        // Five bits of each byte: 256 is a multiple of 32, so every
        // symbol is uniform and the key holds 25 × 5 = 125 random bits.
        Ok(Self::from_values(bytes.map(|b| b & 0x1f)))
    }

    /// Reads a key as a person typed it. Case does not matter; hyphens and
    /// whitespace are ignored wherever they are; `O` reads as `0`, `I` and
    /// `L` as `1`. `INVALID_ARGUMENT`, saying what is wrong and what a key
    /// looks like, for anything but 25 symbols (a `U`, another character,
    /// too few or too many). The message never repeats the key.
    ///
    /// ```
    /// use entitle::license::LicenseKey;
    ///
    /// let key = LicenseKey::parse(" 0ab1c defgh-jkmnp qrstv-wxyz9\n").unwrap();
    /// assert_eq!(LicenseKey::parse("OABIC-DEFGH-JKMNP-QRSTV-WXYZ9").unwrap(), key);
    /// assert_eq!(LicenseKey::parse("0AB1CDEFGHJKMNPQRSTVWXYZ9").unwrap(), key);
    ///
    /// let wrong = LicenseKey::parse("0AB1C-DEFGH-JKMNP-QRSTV-WXYZ").unwrap_err();
    /// assert_eq!(wrong.code(), "INVALID_ARGUMENT");
    /// assert!(wrong.to_string().contains("has 24 letters and digits"), "{wrong}");
    /// assert!(LicenseKey::parse("0AB1C-DEFGH-JKMNP-QRSTU-WXYZ9").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let mut values = Zeroizing::new([0u8; SYMBOLS]);
        let mut count = 0usize;
        for (position, c) in text.chars().enumerate() {
            if c == '-' || c.is_ascii_whitespace() {
                continue;
            }
            let value = value_of(c).ok_or_else(|| not_a_symbol(c, position + 1))?;
            if let Some(slot) = values.get_mut(count) {
                *slot = value;
            }
            count += 1;
        }
        if count != SYMBOLS {
            return Err(Error::InvalidArgument(if count == 0 {
                format!("the license key is empty: {SHAPE}")
            } else {
                format!("the license key has {count} letters and digits, not 25: {SHAPE}")
            }));
        }
        Ok(Self::from_values(*values))
    }

    /// The SHA-256 of the key's canonical form (as [`Display`](fmt::Display)
    /// writes it), in lower-case hex: what the vendor's books keep, and
    /// look a typed key up by, instead of the key.
    ///
    /// ```
    /// use entitle::license::LicenseKey;
    ///
    /// let typed = LicenseKey::parse("0ab1c defgh jkmnp qrstv wxyz9").unwrap();
    /// let issued = LicenseKey::parse("0AB1C-DEFGH-JKMNP-QRSTV-WXYZ9").unwrap();
    /// assert_eq!(typed.hash(), issued.hash());
    /// assert_eq!(issued.hash().len(), 64);
    /// ```
    pub fn hash(&self) -> String {
        let canonical = Zeroizing::new(self.to_string());
        Sha256::digest(canonical.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The key whose symbols have these values (each below 32).
    fn from_values(values: [u8; SYMBOLS]) -> Self {
        LicenseKey {
            symbols: values.map(|v| ALPHABET[usize::from(v & 0x1f)]),
        }
    }

    /// The canonical symbols of group `index` (0 to 4).
    fn group(&self, index: usize) -> &str {
        let symbols = &self.symbols[index * GROUP..(index + 1) * GROUP];
        // Only ALPHABET's ASCII is ever stored.
        std::str::from_utf8(symbols).unwrap_or("?????")
    }
}

/// The value of one typed symbol, reading Crockford's confusables as the
/// digits they look like; `None` for anything else (`U` included).
fn value_of(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    if !c.is_ascii() {
        return None;
    }
    ALPHABET
        .iter()
        .position(|&symbol| char::from(symbol) == c)
        .and_then(|i| u8::try_from(i).ok())
}

/// Why `c`, the `position`th character typed, is not part of a key. Names
/// the one character, never the key around it.
fn not_a_symbol(c: char, position: usize) -> Error {
    let (shown, why) = if c.eq_ignore_ascii_case(&'u') {
        ("`U`".to_owned(), "a letter license keys do not use")
    } else if c.is_ascii_graphic() {
        (format!("`{c}`"), "which is not part of a license key")
    } else {
        (
            format!("the character {}", c.escape_unicode()),
            "which is not part of a license key",
        )
    };
    Error::InvalidArgument(format!(
        "the license key has {shown} at position {position}, {why}: {SHAPE}"
    ))
}

impl fmt::Display for LicenseKey {
    /// The canonical form: upper case, five groups joined by hyphens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for index in 0..SYMBOLS / GROUP {
            if index > 0 {
                f.write_str("-")?;
            }
            f.write_str(self.group(index))?;
        }
        Ok(())
    }
}

impl fmt::Debug for LicenseKey {
    /// Only the first group: enough to tell keys apart in a log, too
    /// little to use one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LicenseKey({}-…)", self.group(0))
    }
}

impl FromStr for LicenseKey {
    type Err = Error;

    /// As [`LicenseKey::parse`].
    fn from_str(text: &str) -> Result<Self> {
        LicenseKey::parse(text)
    }
}

impl Drop for LicenseKey {
    // A key grants a license to whoever types it: no copy of it outlives
    // its value in memory.
    fn drop(&mut self) {
        self.symbols.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "0AB1C-DEFGH-JKMNP-QRSTV-WXYZ9";

    fn message(text: &str) -> String {
        let error = LicenseKey::parse(text).unwrap_err();
        assert_eq!(error.code(), "INVALID_ARGUMENT", "{text:?}: {error}");
        let message = error.to_string();
        assert!(
            message.contains("XXXXX-XXXXX-XXXXX-XXXXX-XXXXX"),
            "says what a key looks like: {message}"
        );
        message
    }

    #[test]
    fn a_generated_key_displays_and_parses_back() {
        for _ in 0..100 {
            let key = LicenseKey::generate().unwrap();
            let shown = key.to_string();
            assert_eq!(shown.len(), 29, "{shown}");
            for (i, c) in shown.chars().enumerate() {
                if i % 6 == 5 {
                    assert_eq!(c, '-', "{shown}");
                } else {
                    assert!(ALPHABET.contains(&(c as u8)), "{shown}");
                }
            }
            assert_eq!(LicenseKey::parse(&shown).unwrap(), key);
            assert_eq!(shown.parse::<LicenseKey>().unwrap(), key);
        }
    }

    #[test]
    fn generated_keys_use_every_symbol_and_differ() {
        let keys: Vec<LicenseKey> = (0..64).map(|_| LicenseKey::generate().unwrap()).collect();
        let mut seen = [false; 32];
        for key in &keys {
            for &symbol in &key.symbols {
                if let Some(i) = ALPHABET.iter().position(|&s| s == symbol) {
                    seen[i] = true;
                }
            }
        }
        // 1600 uniform symbols miss one of 32 with probability ~1e-21.
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        let distinct: std::collections::HashSet<String> =
            keys.iter().map(ToString::to_string).collect();
        assert_eq!(distinct.len(), keys.len());
    }

    #[test]
    fn case_separators_and_confusables_do_not_matter() {
        let key = LicenseKey::parse(KEY).unwrap();
        assert_eq!(key.to_string(), KEY);
        for typed in [
            "0ab1c-defgh-jkmnp-qrstv-wxyz9",
            "0AB1CDEFGHJKMNPQRSTVWXYZ9",
            "0AB1C DEFGH JKMNP QRSTV WXYZ9",
            "  0AB1C--DEFGH - JKMNP\tQRSTV\r\nWXYZ9\n",
            "0-A-B-1-C-D-E-F-G-H-J-K-M-N-P-Q-R-S-T-V-W-X-Y-Z-9",
            "OAB1C-DEFGH-JKMNP-QRSTV-WXYZ9",
            "oABIC-DEFGH-JKMNP-QRSTV-WXYZ9",
            "0ABiC-DEFGH-JKMNP-QRSTV-WXYZ9",
            "0ABLC-DEFGH-JKMNP-QRSTV-WXYZ9",
            "0ABlC-DEFGH-JKMNP-QRSTV-WXYZ9",
        ] {
            assert_eq!(LicenseKey::parse(typed).unwrap(), key, "{typed:?}");
            assert_eq!(LicenseKey::parse(typed).unwrap().hash(), key.hash());
        }
        assert_ne!(
            LicenseKey::parse("1AB1C-DEFGH-JKMNP-QRSTV-WXYZ9").unwrap(),
            key
        );
    }

    #[test]
    fn every_wrong_length_is_refused_with_its_count() {
        let symbols: String = KEY.chars().filter(|&c| c != '-').collect();
        assert!(message("").contains("empty"));
        assert!(message(" - -\n").contains("empty"));
        for n in 1..=60 {
            if n == SYMBOLS {
                continue;
            }
            let typed: String = symbols.chars().cycle().take(n).collect();
            let said = message(&typed);
            assert!(
                said.contains(&format!("has {n} letters and digits,")),
                "{n}: {said}"
            );
        }
    }

    #[test]
    fn u_is_refused_by_name() {
        for typed in [
            "UAB1C-DEFGH-JKMNP-QRSTV-WXYZ9",
            "0AB1C-DEFGH-JKMNP-QRSTV-WXYZu",
        ] {
            let said = message(typed);
            assert!(said.contains("a letter license keys do not use"), "{said}");
        }
        assert!(message("UAB1C-DEFGH-JKMNP-QRSTV-WXYZ9").contains("`U` at position 1,"));
        assert!(message("0AB1C-DEFGH-JKMNP-QRSTV-WXYZu").contains("`U` at position 29,"));
    }

    #[test]
    fn other_characters_and_non_ascii_are_refused_by_name() {
        let said = message("0AB1C_DEFGH-JKMNP-QRSTV-WXYZ9");
        assert!(
            said.contains("`_` at position 6, which is not part"),
            "{said}"
        );
        for (typed, shown) in [
            ("0AB1C\u{2013}DEFGH-JKMNP-QRSTV-WXYZ9", "\\u{2013}"),
            ("0AB1C-DEFGH-JKMNP-QRSTV-WXYZ\u{0669}", "\\u{669}"),
            ("\u{FF10}AB1C-DEFGH-JKMNP-QRSTV-WXYZ9", "\\u{ff10}"),
            ("0AB1C-DEFGH-JKMNP-QRSTV-WXYZ9\0", "\\u{0}"),
            ("0AB1C-DEFGH-JKMNP-QRSTV-WXYZ9\u{a0}", "\\u{a0}"),
        ] {
            let said = message(typed);
            assert!(said.contains(shown), "{typed:?}: {said}");
        }
    }

    #[test]
    fn a_very_long_input_is_refused_without_repeating_it() {
        let long = "A".repeat(1_000_000);
        let said = message(&long);
        assert!(
            said.contains("has 1000000 letters and digits"),
            "{}",
            &said[..200]
        );
        assert!(said.len() < 400, "{} bytes", said.len());
        let long_wrong = format!("{}!", "B".repeat(100_000));
        let said = message(&long_wrong);
        assert!(!said.contains("BBBBB"), "{said}");
        assert!(said.contains("position 100001"), "{said}");
    }

    #[test]
    fn messages_never_repeat_the_key() {
        for typed in [
            "0AB1C-DEFGH-JKMNP-QRSTV-WXYZ",
            "0AB1C-DEFGH-JKMNP-QRSTV-WXYZ99",
            "0AB1C-DEFGH-JKMNP-QRSTV-WXYZU",
        ] {
            let said = message(typed);
            assert!(!said.contains("0AB1C") && !said.contains("DEFGH"), "{said}");
        }
    }

    #[test]
    fn debug_shows_only_the_first_group() {
        let key = LicenseKey::parse(KEY).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "LicenseKey(0AB1C-…)");
        assert!(!shown.contains("DEFGH"));
        assert_eq!(format!("{:?}", Some(&key)), "Some(LicenseKey(0AB1C-…))");
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_canonical_form() {
        let key = LicenseKey::parse(&KEY.to_lowercase()).unwrap();
        let hash = key.hash();
        assert_eq!(hash.len(), 64);
        assert!(hash
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        let expected: String = Sha256::digest(KEY.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash, expected);
        // A vector computed outside: `printf %s 0AB1C-DEFGH-JKMNP-QRSTV-WXYZ9 | sha256sum`.
        assert_eq!(hash, KEY_SHA256);
        assert_ne!(LicenseKey::generate().unwrap().hash(), hash);
    }

    const KEY_SHA256: &str = "5ee1d957cf0169dce9395f5be09c621eb4eb7819e1162d1b42c86bc77d4d9bc8";

    proptest! {
        #[test]
        fn display_then_parse_is_the_same_key(values in proptest::array::uniform25(0u8..32)) {
            let key = LicenseKey::from_values(values);
            prop_assert_eq!(LicenseKey::parse(&key.to_string()).unwrap(), key.clone());
            prop_assert_eq!(LicenseKey::parse(&key.to_string().to_lowercase()).unwrap(), key);
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = LicenseKey::parse(&text);
        }

        #[test]
        fn parse_never_panics_near_a_key(text in "[0-9A-Za-z \\-_\u{2013}\u{FF10}]{0,40}") {
            match LicenseKey::parse(&text) {
                Ok(key) => prop_assert_eq!(LicenseKey::parse(&key.to_string()).unwrap(), key),
                Err(e) => prop_assert_eq!(e.code(), "INVALID_ARGUMENT"),
            }
        }
    }
}
