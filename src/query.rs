//! Listing: SCIM-style filter expressions, a sort order, and stable cursors,
//! independent of what is listed.
//!
//! Anything that implements [`Fields`] can be listed with [`run`]: it is
//! filtered by a [`Filter`], sorted by an [`Order`] (ties broken by the
//! item's [`key`](Fields::key)), and cut into [`Page`]s joined by opaque
//! cursors.
//!
//! # Filter grammar
//!
//! ```text
//! expr    := term   ('or'  term)*
//! term    := factor ('and' factor)*
//! factor  := 'not'? ( '(' expr ')' | attr op literal | attr 'pr' )
//! op      := 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'co' | 'sw' | 'ew'
//! attr    := [A-Za-z_][A-Za-z0-9_.]*
//! literal := '"' ( [^"\\] | '\"' | '\\' )* '"'  |  '-'? [0-9]+  |  'true' | 'false' | 'null'
//! ```
//!
//! * `and` binds tighter than `or`; `not` applies to the one factor after it;
//!   keywords and operators are case-insensitive (`AND`, `Eq`), field names
//!   and string comparisons are not.
//! * `co`, `sw`, `ew` (contains, starts with, ends with) apply to strings.
//! * A time field compared with a string literal reads the literal as
//!   RFC 3339 (`expires_at lt "2026-01-01T00:00:00Z"`); with an integer, as
//!   Unix seconds. [`Filter::parse_typed`] refuses a string that is not a
//!   time; an untyped filter simply does not match it.
//! * An absent field and a [`Value::Null`] are the same: `eq null` matches
//!   them, `ne null` and `pr` match everything else, and every ordering
//!   comparison (`lt`, `ge`, ...) with them is false. `ne` is always the
//!   negation of `eq`.
//! * A filter is at most [`MAX_FILTER_BYTES`] bytes and
//!   [`MAX_FILTER_DEPTH`] parentheses deep; beyond that it is
//!   [`Error::TooLarge`]. Parsing never recurses deeper than that, so no
//!   input can overflow the stack.
//!
//! # Pages and cursors
//!
//! A page holds at most [`Query::limit`] items ([`DEFAULT_LIMIT`] by
//! default, larger values clamped to [`MAX_LIMIT`]). Its
//! [`next_cursor`](Page::next_cursor) names the position of its last item
//! (the sort value and the key), not an offset, so items added or removed
//! between two requests never make a page skip or repeat one of the items
//! that were there all along. A cursor remembers the order it was made for
//! and is refused under another.
//!
//! ```
//! use entitle::query::{run, Fields, Filter, Order, Query, Value};
//!
//! #[derive(Clone)]
//! struct Seat { id: String, user: String, active: bool }
//!
//! impl Fields for Seat {
//!     fn field(&self, name: &str) -> Option<Value<'_>> {
//!         match name {
//!             "id" => Some(Value::Str(&self.id)),
//!             "user" => Some(Value::Str(&self.user)),
//!             "active" => Some(Value::Bool(self.active)),
//!             _ => None,
//!         }
//!     }
//!     fn key(&self) -> &str { &self.id }
//! }
//!
//! let seats: Vec<Seat> = (0..5)
//!     .map(|i| Seat { id: format!("s{i}"), user: format!("u{}", 9 - i), active: i % 2 == 0 })
//!     .collect();
//! let query = Query::default()
//!     .filter(Filter::parse("active eq true")?)
//!     .order(Order::parse("user")?)
//!     .limit(2);
//! let first = run(seats.clone(), &query)?;
//! assert_eq!(first.items.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s4", "s2"]);
//! let second = run(seats, &query.cursor(first.next_cursor.unwrap()))?;
//! assert_eq!(second.items.len(), 1);
//! assert_eq!(second.next_cursor, None);
//! # Ok::<(), entitle::Error>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// The deepest nesting of parentheses accepted in a filter.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The page size when [`Query::limit`] is `None`.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page; a larger [`Query::limit`] is clamped to it.
pub const MAX_LIMIT: usize = 1000;
/// The longest cursor accepted, in bytes.
const MAX_CURSOR_BYTES: usize = 16 * 1024;

/// Shown with every filter error, so the reader sees what a good one looks like.
const FILTER_EXAMPLE: &str =
    r#"status eq "active" and (expires_at gt "2026-01-01T00:00:00Z" or expires_at eq null)"#;

/// The value of one field of a listed item.
///
/// ```
/// use entitle::{query::Value, Timestamp};
/// let v = Value::Time(Timestamp::from_unix(0));
/// assert_ne!(v, Value::Null);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string, compared byte-wise.
    Str(&'a str),
    /// An instant; compared with string literals read as RFC 3339.
    Time(Timestamp),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// No value; the same as an absent field.
    Null,
}

/// What can be listed: named fields and a unique key.
///
/// ```
/// use entitle::query::{Fields, Value};
///
/// struct User { id: String, seats: i64 }
/// impl Fields for User {
///     fn field(&self, name: &str) -> Option<Value<'_>> {
///         match name {
///             "id" => Some(Value::Str(&self.id)),
///             "seats" => Some(Value::Int(self.seats)),
///             _ => None,
///         }
///     }
///     fn key(&self) -> &str { &self.id }
/// }
/// let u = User { id: "u1".into(), seats: 2 };
/// assert_eq!(u.field("seats"), Some(Value::Int(2)));
/// ```
pub trait Fields {
    /// The value of field `name`, or `None` when the item has no such field.
    fn field(&self, name: &str) -> Option<Value<'_>>;

    /// The item's unique id: the tie-breaker of every order and the anchor
    /// of cursors. Two items with the same key are treated as one position.
    fn key(&self) -> &str;
}

/// The type of a field, for [`Filter::parse_typed`].
///
/// ```
/// use entitle::query::{FieldKind, Filter};
/// let schema = [("expires_at", FieldKind::Time)];
/// assert!(Filter::parse_typed(r#"expires_at lt "tomorrow""#, &schema).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Holds [`Value::Str`].
    Str,
    /// Holds [`Value::Time`].
    Time,
    /// Holds [`Value::Int`].
    Int,
    /// Holds [`Value::Bool`].
    Bool,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Co,
    Sw,
    Ew,
}

impl Op {
    const ALL: [(&'static str, Op); 9] = [
        ("eq", Op::Eq),
        ("ne", Op::Ne),
        ("lt", Op::Lt),
        ("le", Op::Le),
        ("gt", Op::Gt),
        ("ge", Op::Ge),
        ("co", Op::Co),
        ("sw", Op::Sw),
        ("ew", Op::Ew),
    ];

    fn from_word(word: &str) -> Option<Op> {
        Op::ALL
            .iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map(|&(_, op)| op)
    }

    fn name(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("eq", |(name, _)| name)
    }

    fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }

    fn is_string_match(self) -> bool {
        matches!(self, Op::Co | Op::Sw | Op::Ew)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    /// `time` is the text read as RFC 3339, once, at parse time.
    Str {
        text: String,
        time: Option<Timestamp>,
    },
    Int(i64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Compare {
        attr: String,
        op: Op,
        literal: Literal,
    },
    Present(String),
}

/// A parsed filter expression (see the [module docs](self) for the grammar).
///
/// Displays in a canonical form that parses back to an equal filter.
///
/// ```
/// use entitle::query::Filter;
/// let f = Filter::parse(r#"NOT (status eq "revoked") AND trial Eq false"#)?;
/// assert_eq!(f.to_string(), r#"not status eq "revoked" and trial eq false"#);
/// # Ok::<(), entitle::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    root: Node,
}

/// Which field names a parse accepts.
#[derive(Clone, Copy)]
enum Schema<'s> {
    Any,
    Names(&'s [&'s str]),
    Typed(&'s [(&'s str, FieldKind)]),
}

impl Filter {
    /// Parses a filter over any field names.
    ///
    /// ```
    /// use entitle::query::Filter;
    /// let f = Filter::parse(r#"product eq "cad" or (kind eq "trial" and not expires_at pr)"#)?;
    /// # let _ = f;
    /// assert_eq!(Filter::parse("status eq").unwrap_err().code(), "MALFORMED");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Filter> {
        parse_filter(text, Schema::Any)
    }

    /// Parses a filter that may name only `known_fields`; any other name is
    /// [`Error::Malformed`].
    ///
    /// ```
    /// use entitle::query::Filter;
    /// let known = ["status", "expires_at"];
    /// assert!(Filter::parse_for(r#"status eq "active""#, &known).is_ok());
    /// let err = Filter::parse_for(r#"colour eq "red""#, &known).unwrap_err();
    /// assert!(err.to_string().contains("unknown field `colour`"));
    /// ```
    pub fn parse_for(text: &str, known_fields: &[&str]) -> Result<Filter> {
        parse_filter(text, Schema::Names(known_fields))
    }

    /// Parses a filter that may name only the fields of `schema`, and checks
    /// each comparison against the field's kind: a time field takes an
    /// RFC 3339 string (or Unix seconds), a boolean only `eq`/`ne`, and so on.
    ///
    /// ```
    /// use entitle::query::{FieldKind, Filter};
    /// let schema = [("status", FieldKind::Str), ("expires_at", FieldKind::Time)];
    /// assert!(Filter::parse_typed(r#"expires_at ge "2026-01-01T00:00:00Z""#, &schema).is_ok());
    /// assert!(Filter::parse_typed("status gt 3", &schema).is_err());
    /// ```
    pub fn parse_typed(text: &str, schema: &[(&str, FieldKind)]) -> Result<Filter> {
        parse_filter(text, Schema::Typed(schema))
    }

    /// Whether `item` satisfies the filter.
    ///
    /// ```
    /// use entitle::query::{Fields, Filter, Value};
    /// struct Lic(&'static str);
    /// impl Fields for Lic {
    ///     fn field(&self, name: &str) -> Option<Value<'_>> {
    ///         (name == "status").then_some(Value::Str(self.0))
    ///     }
    ///     fn key(&self) -> &str { self.0 }
    /// }
    /// let f = Filter::parse(r#"status eq "active" and expires_at eq null"#)?;
    /// assert!(f.matches(&Lic("active")));
    /// assert!(!f.matches(&Lic("expired")));
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn matches<F: Fields + ?Sized>(&self, item: &F) -> bool {
        eval(&self.root, item)
    }
}

impl FromStr for Filter {
    type Err = Error;

    /// Same as [`Filter::parse`].
    fn from_str(text: &str) -> Result<Filter> {
        Filter::parse(text)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_node(f, &self.root)
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, node: &Node) -> fmt::Result {
    // Parentheses only where precedence needs them, so the text parses back
    // to the same tree (and never deeper than the original).
    let write_group = |f: &mut fmt::Formatter<'_>, children: &[Node], sep: &str| {
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                f.write_str(sep)?;
            }
            let wrap = match child {
                Node::Or(_) => true,
                Node::And(_) => sep == " and ",
                _ => false,
            };
            if wrap {
                f.write_str("(")?;
                write_node(f, child)?;
                f.write_str(")")?;
            } else {
                write_node(f, child)?;
            }
        }
        Ok(())
    };
    match node {
        Node::Or(children) => write_group(f, children, " or "),
        Node::And(children) => write_group(f, children, " and "),
        Node::Not(inner) => match **inner {
            Node::Compare { .. } | Node::Present(_) => {
                f.write_str("not ")?;
                write_node(f, inner)
            }
            _ => {
                f.write_str("not (")?;
                write_node(f, inner)?;
                f.write_str(")")
            }
        },
        Node::Present(attr) => write!(f, "{attr} pr"),
        Node::Compare { attr, op, literal } => {
            write!(f, "{attr} {} ", op.name())?;
            match literal {
                Literal::Str { text, .. } => {
                    f.write_str("\"")?;
                    for c in text.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")
                }
                Literal::Int(n) => write!(f, "{n}"),
                Literal::Bool(b) => write!(f, "{b}"),
                Literal::Null => f.write_str("null"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing

fn filter_error(at: usize, what: impl fmt::Display) -> Error {
    Error::Malformed {
        what: "filter",
        detail: format!("{what} at byte {at}; a valid filter looks like: {FILTER_EXAMPLE}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'t> {
    Open,
    Close,
    Word(&'t str),
    Str(String),
    Int(i64),
    End,
}

#[derive(Debug)]
struct Token<'t> {
    tok: Tok<'t>,
    at: usize,
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Int(n) => format!("the number {n}"),
        Tok::End => "the end of the filter".into(),
    }
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn tokenize(text: &str) -> Result<Vec<Token<'_>>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let at = i;
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match b {
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b'"' => {
                i += 1;
                let mut value = String::new();
                let mut run_start = i;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(filter_error(
                                at,
                                "unterminated string (no closing `\"`) starting",
                            ))
                        }
                        Some(b'"') => {
                            value.push_str(&text[run_start..i]);
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            value.push_str(&text[run_start..i]);
                            match bytes.get(i + 1) {
                                Some(&e @ (b'"' | b'\\')) => value.push(e as char),
                                _ => return Err(filter_error(
                                    i,
                                    "unknown escape in string (only `\\\"` and `\\\\` are allowed)",
                                )),
                            }
                            i += 2;
                            run_start = i;
                        }
                        Some(_) => i += 1,
                    }
                }
                Tok::Str(value)
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let digits = &text[at..i];
                if digits == "-" {
                    return Err(filter_error(at, "`-` must be followed by digits"));
                }
                let n = digits.parse::<i64>().map_err(|_| {
                    filter_error(at, format!("the integer {digits} is out of range"))
                })?;
                Tok::Int(n)
            }
            b if is_word_start(b) => {
                i += 1;
                while bytes.get(i).copied().is_some_and(is_word_byte) {
                    i += 1;
                }
                Tok::Word(&text[at..i])
            }
            _ => {
                let c = text[at..].chars().next().unwrap_or('?');
                return Err(filter_error(at, format!("unexpected character `{c}`")));
            }
        };
        tokens.push(Token { tok, at });
    }
    tokens.push(Token {
        tok: Tok::End,
        at: text.len(),
    });
    Ok(tokens)
}

fn parse_filter(text: &str, schema: Schema<'_>) -> Result<Filter> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(Error::TooLarge {
            what: "filter",
            size: text.len(),
            limit: MAX_FILTER_BYTES,
        });
    }
    let tokens = tokenize(text)?;
    // Measure the nesting before the recursive descent starts, so that the
    // recursion depth is bounded whatever the input.
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for token in &tokens {
        match token.tok {
            Tok::Open => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Tok::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_FILTER_DEPTH {
        return Err(Error::TooLarge {
            what: "filter nesting (parentheses)",
            size: deepest,
            limit: MAX_FILTER_DEPTH,
        });
    }
    if tokens.len() == 1 {
        return Err(filter_error(0, "the filter is empty"));
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        schema,
    };
    let root = parser.expr()?;
    let last = parser.peek();
    if last.tok != Tok::End {
        let message = if last.tok == Tok::Close {
            "unbalanced `)`".to_string()
        } else {
            format!(
                "expected `and`, `or` or the end, found {}",
                describe(&last.tok)
            )
        };
        return Err(filter_error(last.at, message));
    }
    Ok(Filter { root })
}

struct Parser<'t, 's> {
    tokens: Vec<Token<'t>>,
    pos: usize,
    schema: Schema<'s>,
}

const KEYWORDS: [&str; 6] = ["and", "or", "not", "true", "false", "null"];

impl<'t> Parser<'t, '_> {
    fn peek(&self) -> &Token<'t> {
        // The token list always ends with `End`, and `pos` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> &Token<'t> {
        let i = self.pos.min(self.tokens.len() - 1);
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        &self.tokens[i]
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if matches!(self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(keyword)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Node> {
        let mut terms = vec![self.term()?];
        while self.eat_keyword("or") {
            terms.push(self.term()?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            Node::Or(terms)
        })
    }

    fn term(&mut self) -> Result<Node> {
        let mut factors = vec![self.factor()?];
        while self.eat_keyword("and") {
            factors.push(self.factor()?);
        }
        Ok(if factors.len() == 1 {
            factors.swap_remove(0)
        } else {
            Node::And(factors)
        })
    }

    fn factor(&mut self) -> Result<Node> {
        let negate = self.eat_keyword("not");
        let token = self.next();
        let at = token.at;
        let node = match token.tok {
            Tok::Open => {
                let inner = self.expr()?;
                let close = self.next();
                if close.tok != Tok::Close {
                    let found = describe(&close.tok);
                    return Err(filter_error(
                        close.at,
                        format!("expected `)` to close the `(` at byte {at}, found {found}"),
                    ));
                }
                inner
            }
            Tok::Word(attr) if !KEYWORDS.iter().any(|k| attr.eq_ignore_ascii_case(k)) => {
                self.comparison(attr, at)?
            }
            ref other => {
                let found = describe(other);
                return Err(filter_error(
                    at,
                    format!("expected a field name or `(`, found {found}"),
                ));
            }
        };
        Ok(if negate {
            Node::Not(Box::new(node))
        } else {
            node
        })
    }

    fn comparison(&mut self, attr: &'t str, attr_at: usize) -> Result<Node> {
        let kind = self.check_field(attr, attr_at)?;
        let op_token = self.next();
        let op_at = op_token.at;
        let op = match op_token.tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("pr") => {
                return Ok(Node::Present(attr.to_string()))
            }
            Tok::Word(w) => Op::from_word(w).ok_or_else(|| {
                filter_error(
                    op_at,
                    format!(
                        "unknown operator `{w}` (use eq, ne, lt, le, gt, ge, co, sw, ew or pr)"
                    ),
                )
            })?,
            ref other => {
                let found = describe(other);
                return Err(filter_error(
                    op_at,
                    format!("expected an operator after `{attr}` (eq, ne, lt, le, gt, ge, co, sw, ew or pr), found {found}"),
                ));
            }
        };
        let lit_token = self.next();
        let lit_at = lit_token.at;
        let literal = match &lit_token.tok {
            Tok::Str(text) => Literal::Str {
                time: Timestamp::parse(text).ok(),
                text: text.clone(),
            },
            Tok::Int(n) => Literal::Int(*n),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            other => {
                let found = describe(other);
                return Err(filter_error(
                    lit_at,
                    format!("expected a value after `{attr} {}` (a \"string\", an integer, true, false or null), found {found}", op.name()),
                ));
            }
        };
        check_comparison(attr, op, &literal, kind, lit_at)?;
        Ok(Node::Compare {
            attr: attr.to_string(),
            op,
            literal,
        })
    }

    fn check_field(&self, attr: &str, at: usize) -> Result<Option<FieldKind>> {
        let found = match self.schema {
            Schema::Any => return Ok(None),
            Schema::Names(names) => names.contains(&attr).then_some(None),
            Schema::Typed(fields) => fields
                .iter()
                .find(|(name, _)| *name == attr)
                .map(|&(_, kind)| Some(kind)),
        };
        found.ok_or_else(|| {
            let names: Vec<&str> = match self.schema {
                Schema::Any => Vec::new(),
                Schema::Names(names) => names.to_vec(),
                Schema::Typed(fields) => fields.iter().map(|(name, _)| *name).collect(),
            };
            filter_error(
                at,
                format!("unknown field `{attr}` (known: {})", names.join(", ")),
            )
        })
    }
}

fn check_comparison(
    attr: &str,
    op: Op,
    literal: &Literal,
    kind: Option<FieldKind>,
    at: usize,
) -> Result<()> {
    let op_name = op.name();
    match literal {
        Literal::Null | Literal::Bool(_) if op.is_ordering() || op.is_string_match() => {
            return Err(filter_error(
                at,
                format!("`{op_name}` cannot compare with true, false or null (use eq or ne)"),
            ));
        }
        Literal::Int(_) if op.is_string_match() => {
            return Err(filter_error(at, format!("`{op_name}` takes a \"string\"")));
        }
        _ => {}
    }
    let Some(kind) = kind else { return Ok(()) };
    let fits = match (kind, literal) {
        (_, Literal::Null) => true,
        (FieldKind::Str, Literal::Str { .. }) => true,
        (FieldKind::Time, Literal::Str { time: None, text }) => {
            return Err(filter_error(
                at,
                format!("`{attr}` is a time, and \"{text}\" is not an RFC 3339 time such as \"2026-01-01T00:00:00Z\""),
            ));
        }
        (FieldKind::Time, Literal::Str { time: Some(_), .. } | Literal::Int(_)) => {
            !op.is_string_match()
        }
        (FieldKind::Int, Literal::Int(_)) => true,
        (FieldKind::Bool, Literal::Bool(_)) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        let expected = match kind {
            FieldKind::Str => "a \"string\"",
            FieldKind::Time => {
                "an RFC 3339 time such as \"2026-01-01T00:00:00Z\" with eq, ne, lt, le, gt or ge"
            }
            FieldKind::Int => "an integer",
            FieldKind::Bool => "true or false",
        };
        Err(filter_error(
            at,
            format!("`{attr} {op_name}` needs {expected}"),
        ))
    }
}

// ---------------------------------------------------------------------------
// Evaluation

fn eval<F: Fields + ?Sized>(node: &Node, item: &F) -> bool {
    match node {
        Node::Or(children) => children.iter().any(|c| eval(c, item)),
        Node::And(children) => children.iter().all(|c| eval(c, item)),
        Node::Not(inner) => !eval(inner, item),
        Node::Present(attr) => present(item.field(attr)).is_some(),
        Node::Compare { attr, op, literal } => compare(present(item.field(attr)), *op, literal),
    }
}

/// Absent and `Null` are one thing.
fn present(value: Option<Value<'_>>) -> Option<Value<'_>> {
    value.filter(|v| *v != Value::Null)
}

fn compare(value: Option<Value<'_>>, op: Op, literal: &Literal) -> bool {
    let equal = || match value {
        None => *literal == Literal::Null,
        Some(v) => against(v, literal) == Some(Ordering::Equal),
    };
    match op {
        Op::Eq => equal(),
        Op::Ne => !equal(),
        Op::Co | Op::Sw | Op::Ew => match (value, literal) {
            (Some(Value::Str(s)), Literal::Str { text, .. }) => match op {
                Op::Co => s.contains(text.as_str()),
                Op::Sw => s.starts_with(text.as_str()),
                _ => s.ends_with(text.as_str()),
            },
            _ => false,
        },
        Op::Lt | Op::Le | Op::Gt | Op::Ge => match value.and_then(|v| against(v, literal)) {
            None => false,
            Some(o) => match op {
                Op::Lt => o.is_lt(),
                Op::Le => o.is_le(),
                Op::Gt => o.is_gt(),
                _ => o.is_ge(),
            },
        },
    }
}

/// How a present value compares with a literal; `None` when they are of
/// kinds that do not compare.
fn against(value: Value<'_>, literal: &Literal) -> Option<Ordering> {
    match (value, literal) {
        (Value::Str(s), Literal::Str { text, .. }) => Some(s.cmp(text.as_str())),
        (Value::Time(t), Literal::Str { time, .. }) => time.map(|lit| t.cmp(&lit)),
        (Value::Time(t), Literal::Int(n)) => Some(t.unix().cmp(n)),
        (Value::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Order

/// A sort order: one field, ascending or (with a leading `-`) descending.
///
/// Items without the field (or with [`Value::Null`]) come last in either
/// direction; equal values are ordered by [`Fields::key`] ascending. Values
/// of different kinds in one field (which a well-typed listing never has)
/// order as booleans, integers, times, strings.
///
/// ```
/// use entitle::query::Order;
/// let o = Order::parse("-expires_at")?;
/// assert!(o.descending);
/// assert_eq!(o.field, "expires_at");
/// assert_eq!(o.to_string(), "-expires_at");
/// # Ok::<(), entitle::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The field sorted on.
    pub field: String,
    /// Largest first.
    pub descending: bool,
}

impl Order {
    /// Parses `field`, `+field` or `-field`.
    ///
    /// ```
    /// use entitle::query::Order;
    /// assert!(!Order::parse("issued_at")?.descending);
    /// assert_eq!(Order::parse("-").unwrap_err().code(), "MALFORMED");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Order> {
        let (descending, field) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let bytes = field.as_bytes();
        let valid = bytes.first().copied().is_some_and(is_word_start)
            && bytes.iter().copied().all(is_word_byte)
            && field.len() <= 256;
        if !valid {
            return Err(Error::Malformed {
                what: "order",
                detail: format!(
                    "`{}` is not a field name with an optional leading `-`; write e.g. `expires_at` or `-expires_at`",
                    text.chars().take(64).collect::<String>()
                ),
            });
        }
        Ok(Order {
            field: field.to_string(),
            descending,
        })
    }

    /// Parses an order on one of `known_fields`.
    ///
    /// ```
    /// use entitle::query::Order;
    /// assert!(Order::parse_for("-issued_at", &["issued_at"]).is_ok());
    /// assert!(Order::parse_for("colour", &["issued_at"]).is_err());
    /// ```
    pub fn parse_for(text: &str, known_fields: &[&str]) -> Result<Order> {
        let order = Order::parse(text)?;
        if !known_fields.contains(&order.field.as_str()) {
            return Err(Error::Malformed {
                what: "order",
                detail: format!(
                    "unknown field `{}`; order by one of: {}",
                    order.field,
                    known_fields.join(", ")
                ),
            });
        }
        Ok(order)
    }

    /// Compares two items under this order (then by key).
    ///
    /// ```
    /// use entitle::query::{Fields, Order, Value};
    /// struct N(i64, &'static str);
    /// impl Fields for N {
    ///     fn field(&self, _: &str) -> Option<Value<'_>> { Some(Value::Int(self.0)) }
    ///     fn key(&self) -> &str { self.1 }
    /// }
    /// let o = Order::parse("-n")?;
    /// assert!(o.compare(&N(2, "a"), &N(1, "b")).is_lt());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn compare<A: Fields + ?Sized, B: Fields + ?Sized>(&self, a: &A, b: &B) -> Ordering {
        compare_positions(
            Some(self),
            present(a.field(&self.field)),
            a.key(),
            present(b.field(&self.field)),
            b.key(),
        )
    }
}

impl FromStr for Order {
    type Err = Error;

    /// Same as [`Order::parse`].
    fn from_str(text: &str) -> Result<Order> {
        Order::parse(text)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.descending {
            f.write_str("-")?;
        }
        f.write_str(&self.field)
    }
}

fn kind_rank(v: &Value<'_>) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Int(_) => 1,
        Value::Time(_) => 2,
        Value::Str(_) => 3,
        Value::Null => 4,
    }
}

fn total_cmp(a: Value<'_>, b: Value<'_>) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(&y),
        (Value::Int(x), Value::Int(y)) => x.cmp(&y),
        (Value::Time(x), Value::Time(y)) => x.cmp(&y),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        _ => kind_rank(&a).cmp(&kind_rank(&b)),
    }
}

/// The one ordering used for sorting and for resuming after a cursor.
/// Values are already normalised by [`present`].
fn compare_positions(
    order: Option<&Order>,
    a: Option<Value<'_>>,
    a_key: &str,
    b: Option<Value<'_>>,
    b_key: &str,
) -> Ordering {
    let by_value = match order {
        None => Ordering::Equal,
        Some(order) => match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) if order.descending => total_cmp(x, y).reverse(),
            (Some(x), Some(y)) => total_cmp(x, y),
        },
    };
    by_value.then_with(|| a_key.cmp(b_key))
}

// ---------------------------------------------------------------------------
// Queries, pages, cursors

/// What to list: a filter and an order (made from their text by
/// [`license_query`](crate::engine::license_query)), a page size and a
/// cursor.
///
/// Without an order, items are listed by key. `limit` defaults to 100; a
/// value above 1000 is clamped to it (the cursor then fetches the rest),
/// and `Some(0)` is [`Error::InvalidArgument`].
///
/// ```
/// let q = entitle::engine::license_query(Some(r#"status eq "active""#), Some("-expires_at"), None, None)?
///     .limit(20);
/// assert_eq!(q.limit, Some(20));
/// assert!(q.cursor.is_none());
/// # Ok::<(), entitle::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only items matching this filter.
    #[doc(hidden)]
    pub filter: Option<Filter>,
    /// Sort order; by key when `None`.
    #[doc(hidden)]
    pub order: Option<Order>,
    /// Page size (default 100, clamped to 1000).
    pub limit: Option<usize>,
    /// Resume after the position named by a previous [`Page::next_cursor`].
    pub cursor: Option<String>,
}

impl Query {
    /// This query with `filter`.
    #[doc(hidden)]
    pub fn filter(mut self, filter: Filter) -> Query {
        self.filter = Some(filter);
        self
    }

    /// This query with `order`.
    #[doc(hidden)]
    pub fn order(mut self, order: Order) -> Query {
        self.order = Some(order);
        self
    }

    /// This query with page size `limit`.
    ///
    /// ```
    /// # use entitle::engine::Query;
    /// assert_eq!(Query::default().limit(5).limit, Some(5));
    /// ```
    pub fn limit(mut self, limit: usize) -> Query {
        self.limit = Some(limit);
        self
    }

    /// This query resuming after `cursor`.
    ///
    /// ```
    /// # use entitle::engine::Query;
    /// let q = Query::default().cursor("abc");
    /// assert_eq!(q.cursor.as_deref(), Some("abc"));
    /// ```
    pub fn cursor(mut self, cursor: impl Into<String>) -> Query {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One page of a listing.
///
/// Serialises as `{"items": [...], "next_cursor": "..." | null}`.
///
/// ```
/// use entitle::engine::Page;
/// let page = Page { items: vec![1, 2], next_cursor: None };
/// assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"items":[1,2],"next_cursor":null}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The items of this page, in order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this is the last page.
    pub next_cursor: Option<String>,
}

/// A field value as stored in a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum CursorValue {
    #[serde(rename = "s")]
    Str(String),
    #[serde(rename = "t")]
    Time(i64),
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "b")]
    Bool(bool),
}

impl CursorValue {
    fn from_value(value: Value<'_>) -> Option<CursorValue> {
        Some(match value {
            Value::Str(s) => CursorValue::Str(s.to_string()),
            Value::Time(t) => CursorValue::Time(t.unix()),
            Value::Int(n) => CursorValue::Int(n),
            Value::Bool(b) => CursorValue::Bool(b),
            Value::Null => return None,
        })
    }

    fn as_value(&self) -> Value<'_> {
        match self {
            CursorValue::Str(s) => Value::Str(s),
            CursorValue::Time(t) => Value::Time(Timestamp::from_unix(*t)),
            CursorValue::Int(n) => Value::Int(*n),
            CursorValue::Bool(b) => Value::Bool(*b),
        }
    }
}

/// The position of the last item of a page: what it was sorted by and its key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    /// The order spec (`-expires_at`), or empty when listed by key.
    o: String,
    /// The sort value of the last item; null when it had none.
    v: Option<CursorValue>,
    /// The key of the last item.
    k: String,
}

fn order_spec(order: Option<&Order>) -> String {
    order.map(Order::to_string).unwrap_or_default()
}

fn bad_cursor(why: &str) -> Error {
    Error::Malformed {
        what: "cursor",
        detail: format!(
            "{why}; pass back the `next_cursor` of the previous page unchanged, or start again without a cursor"
        ),
    }
}

fn encode_cursor<T: Fields>(order: Option<&Order>, last: &T) -> String {
    let cursor = Cursor {
        o: order_spec(order),
        v: order
            .and_then(|o| present(last.field(&o.field)))
            .and_then(CursorValue::from_value),
        k: last.key().to_string(),
    };
    // Serialising plain strings and numbers cannot fail.
    let json = serde_json::to_vec(&cursor).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(text: &str, order: Option<&Order>) -> Result<Cursor> {
    if text.len() > MAX_CURSOR_BYTES {
        return Err(Error::TooLarge {
            what: "cursor",
            size: text.len(),
            limit: MAX_CURSOR_BYTES,
        });
    }
    let json = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| bad_cursor("the cursor is not base64url"))?;
    let cursor: Cursor = serde_json::from_slice(&json)
        .map_err(|_| bad_cursor("the cursor was not issued by this program"))?;
    let expected = order_spec(order);
    if cursor.o != expected {
        let shown = |spec: &str| {
            if spec.is_empty() {
                "no --order (by key)".to_string()
            } else {
                format!("--order {spec}")
            }
        };
        return Err(bad_cursor(&format!(
            "the cursor was issued for {}, but this listing uses {}",
            shown(&cursor.o),
            shown(&expected)
        )));
    }
    if order.is_none() && cursor.v.is_some() {
        return Err(bad_cursor("the cursor was not issued by this program"));
    }
    Ok(cursor)
}

fn sort_value<'i, T: Fields>(order: Option<&Order>, item: &'i T) -> Option<Value<'i>> {
    order.and_then(|o| present(item.field(&o.field)))
}

/// Lists one page of `items`: those matching the filter, in order, strictly
/// after the cursor's position, at most `limit` of them.
///
/// Errors: [`Error::Malformed`] for a cursor that was not issued by `run` or
/// was issued for another order, [`Error::TooLarge`] for an oversized
/// cursor, [`Error::InvalidArgument`] for `limit: Some(0)`. Items with equal
/// keys are treated as one position, so keys should be unique.
///
/// ```
/// use entitle::query::{run, Fields, Query, Value};
/// #[derive(Clone, Debug, PartialEq)]
/// struct K(String);
/// impl Fields for K {
///     fn field(&self, _: &str) -> Option<Value<'_>> { None }
///     fn key(&self) -> &str { &self.0 }
/// }
/// let items: Vec<K> = ["c", "a", "b"].iter().map(|s| K(s.to_string())).collect();
/// let page = run(items.clone(), &Query::default().limit(2))?;
/// assert_eq!(page.items, [K("a".into()), K("b".into())]);
/// let rest = run(items, &Query::default().limit(2).cursor(page.next_cursor.unwrap()))?;
/// assert_eq!(rest.items, [K("c".into())]);
/// assert!(rest.next_cursor.is_none());
/// # Ok::<(), entitle::Error>(())
/// ```
pub fn run<T: Fields>(items: impl IntoIterator<Item = T>, query: &Query) -> Result<Page<T>> {
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(0) => {
            return Err(Error::InvalidArgument(
                "the page limit must be at least 1".into(),
            ))
        }
        Some(n) => n.min(MAX_LIMIT),
    };
    let order = query.order.as_ref();
    let after = match &query.cursor {
        None => None,
        Some(text) => Some(decode_cursor(text, order)?),
    };
    let mut kept: Vec<T> = items
        .into_iter()
        .filter(|item| match &query.filter {
            None => true,
            Some(f) => f.matches(item),
        })
        .filter(|item| match &after {
            None => true,
            Some(c) => compare_positions(
                order,
                sort_value(order, item),
                item.key(),
                c.v.as_ref().map(CursorValue::as_value),
                &c.k,
            )
            .is_gt(),
        })
        .collect();
    let by_position = |a: &T, b: &T| {
        compare_positions(
            order,
            sort_value(order, a),
            a.key(),
            sort_value(order, b),
            b.key(),
        )
    };
    // Only the page itself needs sorting: select it first.
    let has_more = kept.len() > limit;
    if has_more {
        kept.select_nth_unstable_by(limit, by_position);
        kept.truncate(limit);
    }
    kept.sort_unstable_by(by_position);
    let next_cursor = match kept.last() {
        Some(last) if has_more => Some(encode_cursor(order, last)),
        _ => None,
    };
    Ok(Page {
        items: kept,
        next_cursor,
    })
}
