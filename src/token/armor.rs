//! The armored form of a token: what a person saves, mails or carries.
//!
//! ```text
//! -----BEGIN ENTITLE LICENSE-----
//! <the compact token, wrapped at 64 columns>
//! -----END ENTITLE LICENSE-----
//! ```

use crate::error::{Error, Result};
use crate::token::TokenType;

const BEGIN: &str = "-----BEGIN ENTITLE ";
const END: &str = "-----END ENTITLE ";
const DASHES: &str = "-----";
const COLUMNS: usize = 64;

/// Wraps a compact token in its armor.
///
/// ```
/// use entitle::token::{armor, dearmor, TokenType};
/// let text = armor("aaa.bbb.ccc", TokenType::License);
/// assert!(text.starts_with("-----BEGIN ENTITLE LICENSE-----\n"));
/// assert_eq!(dearmor(&text).unwrap(), ("aaa.bbb.ccc".to_string(), Some(TokenType::License)));
/// ```
pub fn armor(token: &str, typ: TokenType) -> String {
    let label = typ.armor_label();
    let mut out = String::with_capacity(token.len() + token.len() / COLUMNS + 80);
    out.push_str(BEGIN);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    // Tokens are ASCII (base64url and dots), so byte chunks are char chunks.
    for line in token.as_bytes().chunks(COLUMNS) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(END);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    out
}

/// Reads an armored token or a bare one (surrounding whitespace allowed).
/// Returns the compact token and, when armored, the type its label names.
pub fn dearmor(text: &str) -> Result<(String, Option<TokenType>)> {
    let text = text.trim();
    let Some(rest) = text.strip_prefix(BEGIN) else {
        if text.starts_with("-----") {
            return Err(Error::malformed(
                "armor",
                "the file starts with `-----` but not with `-----BEGIN ENTITLE <TYPE>-----`",
            ));
        }
        if has_whitespace(text) {
            return Err(Error::malformed(
                "token",
                "a bare token must be a single line (header.payload.signature)",
            ));
        }
        return Ok((text.to_owned(), None));
    };
    // The label holds no dash: the first one starts the closing dashes.
    let (label, body) = rest
        .find('-')
        .map(|at| rest.split_at(at))
        .and_then(|(label, tail)| Some((label, tail.strip_prefix(DASHES)?)))
        .ok_or_else(|| Error::malformed("armor", "the BEGIN line is not closed by `-----`"))?;
    let typ = TokenType::from_armor_label(label).ok_or_else(|| {
        Error::malformed(
            "armor",
            format!(
                "unknown armor label `{label}`; expected LICENSE, MACHINE, REVOCATIONS, KEYS, RECEIPT, REPORT or LEASE"
            ),
        )
    })?;
    let body = body
        .strip_suffix(DASHES)
        .and_then(|b| b.strip_suffix(label))
        .and_then(|b| b.strip_suffix(END))
        .ok_or_else(|| {
            Error::malformed(
                "armor",
                format!("the file does not end with `{END}{label}{DASHES}`; was it cut short?"),
            )
        })?;
    if let Some(token) = as_armor_writes(body) {
        return Ok((token, Some(typ)));
    }
    let mut token = String::with_capacity(body.len());
    for line in body.lines() {
        let line = line.trim();
        if has_whitespace(line) {
            return Err(Error::malformed(
                "armor",
                "a token line contains whitespace",
            ));
        }
        token.push_str(line);
    }
    if token.is_empty() {
        return Err(Error::malformed("armor", "the armor holds no token"));
    }
    Ok((token, Some(typ)))
}

/// The token in an armor body laid out exactly as [`armor`] writes it: a
/// line break, then lines of 64 token characters (the last one 1 to 64),
/// each ended by a line break. `None` for any other body, which the
/// general path reads (and explains, if it is wrong). This is the path of
/// every license file, so it copies whole lines and checks the characters
/// eight bytes at a time.
fn as_armor_writes(body: &str) -> Option<String> {
    let lines = body.strip_prefix('\n')?.strip_suffix('\n')?;
    let bytes = lines.as_bytes();
    let mut token = String::with_capacity(lines.len());
    let mut start = 0;
    while bytes.len() - start > COLUMNS {
        if bytes[start + COLUMNS] != b'\n' {
            return None;
        }
        token.push_str(lines.get(start..start + COLUMNS)?);
        start += COLUMNS + 1;
    }
    if start == bytes.len() {
        return None; // no last line, or an empty one
    }
    token.push_str(lines.get(start..)?);
    // Characters that are not a token's are refused when its parts are
    // decoded; whitespace inside a line takes the general path, which
    // says so.
    visible_ascii(token.as_bytes()).then_some(token)
}

/// Whether `text` holds a whitespace character. Tokens are ASCII, so
/// their bytes are checked directly, which is several times faster than
/// decoding characters and matters on the path of every verification.
fn has_whitespace(text: &str) -> bool {
    // Only visible ASCII, the whole alphabet of a token, means no
    // whitespace. Anything else takes the exact, slower test.
    !visible_ascii(text.as_bytes()) && text.contains(char::is_whitespace)
}

/// Whether every byte is visible ASCII (`!` to `~`, plus DEL, which no
/// token holds either and which the decoder refuses): eight bytes at a
/// time, since every license file passes through here.
fn visible_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    // A byte below `!` borrows into its high bit; one from 0x80 up has it
    // set already. A borrow only passes upwards from such a byte.
    let invisible = words
        .by_ref()
        .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
        .fold(0, |seen, w| {
            seen | ((w.wrapping_sub(ONES * 0x21) | w) & HIGH)
        });
    invisible == 0 && words.remainder().iter().all(|&b| b > b' ' && b < 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_64_columns() {
        let token = "x".repeat(150);
        let text = armor(&token, TokenType::Machine);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN ENTITLE MACHINE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[3].len(), 150 - 128);
        assert_eq!(dearmor(&format!("\n\n  {text}  \n")).unwrap().0, token);
    }

    #[test]
    fn the_fast_path_reads_what_armor_writes_and_nothing_else() {
        for len in [1, 63, 64, 65, 127, 128, 129, 1000] {
            let token: String = "ab-_.9".chars().cycle().take(len).collect();
            let text = armor(&token, TokenType::License);
            let body = text
                .strip_prefix("-----BEGIN ENTITLE LICENSE-----")
                .and_then(|t| t.strip_suffix("-----END ENTITLE LICENSE-----\n"))
                .unwrap();
            assert_eq!(
                as_armor_writes(body).as_deref(),
                Some(token.as_str()),
                "{len}"
            );
        }
        // Short lines, an empty line, a stray character: the general path.
        for body in ["\nab\ncd\n", "\n\n", "\n", "", "\nab cd\n", "\nab\n\n"] {
            assert_eq!(as_armor_writes(body), None, "{body:?}");
        }
        let long = format!("\n{}\n{}\n", "a".repeat(64), "b".repeat(65));
        assert_eq!(as_armor_writes(&long), None);
        let wide = format!("\n{}\n", "é".repeat(40));
        assert_eq!(as_armor_writes(&wide), None);
    }

    #[test]
    fn visible_ascii_is_found_byte_by_byte_at_every_offset() {
        for b in 0..=255u8 {
            let expected = (b'!'..0x80).contains(&b);
            for at in 0..20 {
                let mut bytes = vec![b'A'; 20];
                bytes[at] = b;
                assert_eq!(visible_ascii(&bytes), expected, "{b} at {at}");
                // A refused byte before another must not hide it, nor
                // one after it make it look refused.
                bytes[19 - at] = b' ';
                assert!(!visible_ascii(&bytes), "{b} at {at}");
            }
        }
        assert!(visible_ascii(b""));
    }

    #[test]
    fn whitespace_is_found_as_char_is_whitespace_finds_it() {
        for c in (0..=0x3000u32).filter_map(char::from_u32) {
            let text = format!("ab{c}cd");
            assert_eq!(has_whitespace(&text), c.is_whitespace(), "{:?}", c);
        }
        assert!(!has_whitespace("eyJhbGciOiJFZERTQSJ9.e30.AA-_"));
    }

    #[test]
    fn mismatched_or_truncated_armor_is_refused() {
        let text =
            armor("abc", TokenType::License).replace("END ENTITLE LICENSE", "END ENTITLE MACHINE");
        assert_eq!(dearmor(&text).unwrap_err().code(), "MALFORMED");
        assert!(dearmor("-----BEGIN ENTITLE LICENSE-----\nabc").is_err());
        assert!(dearmor("-----BEGIN ENTITLE LICENSE-----\n-----END ENTITLE LICENSE-----").is_err());
        assert!(dearmor("-----BEGIN PUBLIC KEY-----").is_err());
        assert!(dearmor("a b").is_err());
    }
}
