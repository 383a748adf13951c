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
        if text.chars().any(char::is_whitespace) {
            return Err(Error::malformed(
                "token",
                "a bare token must be a single line (header.payload.signature)",
            ));
        }
        return Ok((text.to_owned(), None));
    };
    let (label, body) = rest
        .split_once(DASHES)
        .ok_or_else(|| Error::malformed("armor", "the BEGIN line is not closed by `-----`"))?;
    let typ = TokenType::from_armor_label(label).ok_or_else(|| {
        Error::malformed(
            "armor",
            format!("unknown armor label `{label}`; expected LICENSE, MACHINE or REVOCATIONS"),
        )
    })?;
    let end_line = format!("{END}{label}{DASHES}");
    let body = body.strip_suffix(end_line.as_str()).ok_or_else(|| {
        Error::malformed(
            "armor",
            format!("the file does not end with `{end_line}`; was it cut short?"),
        )
    })?;
    let mut token = String::with_capacity(body.len());
    for line in body.lines() {
        let line = line.trim();
        if line.contains(char::is_whitespace) {
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
