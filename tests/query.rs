//! Listing: filter expressions, order and cursors (`entitle::query`).

use entitle::query::{
    run, FieldKind, Fields, Filter, Order, Page, Query, Value, DEFAULT_LIMIT, MAX_LIMIT,
};
use entitle::Timestamp;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: String,
    status: Option<String>,
    n: Option<i64>,
    expires_at: Option<Timestamp>,
    trial: Option<bool>,
    name: Option<String>,
}

impl Fields for Item {
    fn field(&self, name: &str) -> Option<Value<'_>> {
        match name {
            "id" => Some(Value::Str(&self.id)),
            "status" => self.status.as_deref().map(Value::Str),
            "n" => self.n.map(Value::Int),
            "expires_at" => Some(self.expires_at.map_or(Value::Null, Value::Time)),
            "trial" => self.trial.map(Value::Bool),
            "name" => self.name.as_deref().map(Value::Str),
            _ => None,
        }
    }

    fn key(&self) -> &str {
        &self.id
    }
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn item(
    id: &str,
    status: Option<&str>,
    n: Option<i64>,
    expires_at: Option<&str>,
    trial: Option<bool>,
    name: Option<&str>,
) -> Item {
    Item {
        id: id.into(),
        status: status.map(Into::into),
        n,
        expires_at: expires_at.map(t),
        trial,
        name: name.map(Into::into),
    }
}

fn fixture() -> Vec<Item> {
    vec![
        item(
            "l1",
            Some("active"),
            Some(1),
            Some("2026-01-01T00:00:00Z"),
            Some(false),
            Some(r#"Acme "Big" Co"#),
        ),
        item(
            "l2",
            Some("expired"),
            Some(2),
            Some("2025-01-01T00:00:00Z"),
            Some(true),
            Some(r"back\slash"),
        ),
        item(
            "l3",
            Some("active"),
            Some(3),
            None,
            Some(true),
            Some("Zeta"),
        ),
        item(
            "l4",
            Some("revoked"),
            None,
            Some("2027-06-01T00:00:00Z"),
            None,
            Some("acme small"),
        ),
        item(
            "l5",
            None,
            Some(5),
            Some("2026-01-01T00:00:00Z"),
            Some(false),
            None,
        ),
    ]
}

fn ids(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

fn matching(filter: &str) -> Vec<String> {
    let f = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    fixture()
        .into_iter()
        .filter(|i| f.matches(i))
        .map(|i| i.id)
        .collect()
}

#[test]
fn filters_select_the_expected_items() {
    let table: &[(&str, &[&str])] = &[
        (r#"status eq "active""#, &["l1", "l3"]),
        (r#"status ne "active""#, &["l2", "l4", "l5"]),
        ("status eq null", &["l5"]),
        ("status ne null", &["l1", "l2", "l3", "l4"]),
        ("status pr", &["l1", "l2", "l3", "l4"]),
        ("not status pr", &["l5"]),
        ("expires_at eq null", &["l3"]),
        ("expires_at pr", &["l1", "l2", "l4", "l5"]),
        ("n gt 2", &["l3", "l5"]),
        ("n ge 2", &["l2", "l3", "l5"]),
        ("n lt 2", &["l1"]),
        ("n le -1", &[]),
        ("n eq 5", &["l5"]),
        ("n lt 100", &["l1", "l2", "l3", "l5"]), // absent n is never ordered
        ("not n lt 100", &["l4"]),
        ("trial eq true", &["l2", "l3"]),
        ("trial eq FALSE", &["l1", "l5"]),
        ("trial ne true", &["l1", "l4", "l5"]),
        // Precedence: and binds tighter than or.
        (
            r#"status eq "revoked" or n gt 1 and trial eq true"#,
            &["l2", "l3", "l4"],
        ),
        (
            r#"(status eq "revoked" or n gt 1) and trial eq true"#,
            &["l2", "l3"],
        ),
        (
            r#"n gt 1 and trial eq true or status eq "revoked""#,
            &["l2", "l3", "l4"],
        ),
        // not applies to one factor.
        (r#"not status eq "active" and n pr"#, &["l2", "l5"]),
        (r#"not (status eq "active" and n pr)"#, &["l2", "l4", "l5"]),
        (r#"not (not (status eq "active"))"#, &["l1", "l3"]),
        // Case-insensitive keywords and operators.
        (r#"STATUS eq "active""#, &[]),
        (r#"status EQ "active" AnD n Pr"#, &["l1", "l3"]),
        (
            r#"NOT status Eq "active" OR n eQ 1"#,
            &["l1", "l2", "l4", "l5"],
        ),
        // Quoting and escapes.
        (r#"name eq "Acme \"Big\" Co""#, &["l1"]),
        (r#"name eq "back\\slash""#, &["l2"]),
        (r#"name co "\"""#, &["l1"]),
        (r#"name sw "acme""#, &["l4"]),
        (r#"name sw "Acme""#, &["l1"]),
        (r#"name ew "Co""#, &["l1"]),
        (r#"name co "e""#, &["l1", "l3", "l4"]),
        (r#"name eq "and or not""#, &[]),
        // Time comparisons read the literal as RFC 3339.
        (r#"expires_at lt "2026-01-01T00:00:00Z""#, &["l2"]),
        (
            r#"expires_at le "2026-01-01T00:00:00Z""#,
            &["l1", "l2", "l5"],
        ),
        (
            r#"expires_at eq "2026-01-01T01:00:00+01:00""#,
            &["l1", "l5"],
        ),
        (r#"expires_at gt "2026-01-01T00:00:00.5Z""#, &["l4"]),
        (r#"expires_at gt "not a time""#, &[]),
        (
            r#"expires_at ne "not a time""#,
            &["l1", "l2", "l3", "l4", "l5"],
        ),
        ("expires_at lt 1767225600", &["l2"]), // Unix seconds of 2026-01-01
        // Type mismatches never match.
        (r#"n eq "1""#, &[]),
        ("status eq 1", &[]),
        // Whitespace is free.
        ("  (n\teq\n1)  ", &["l1"]),
        ("(((n eq 1)))or(n eq 2)", &["l1", "l2"]),
        ("id pr", &["l1", "l2", "l3", "l4", "l5"]),
        ("unknown.field eq null", &["l1", "l2", "l3", "l4", "l5"]),
    ];
    for (filter, expected) in table {
        assert_eq!(matching(filter), *expected, "filter: {filter}");
    }
}

#[test]
fn display_is_canonical_and_parses_back() {
    for text in [
        r#"status eq "active" or n gt 1 and trial eq true"#,
        r#"(status eq "revoked" or n gt 1) and trial eq true"#,
        r#"not (a eq 1 or b eq 2) and not c pr"#,
        r#"name eq "Acme \"Big\" \\ Co""#,
        "(a eq 1 and b eq 2) and c eq null",
        "(a eq 1 or b eq 2) or c eq -3",
    ] {
        let f = Filter::parse(text).unwrap();
        let again = Filter::parse(&f.to_string()).unwrap();
        assert_eq!(f, again, "{text} -> {f}");
    }
    let f = Filter::parse("NOT (A Eq 1) AND (b PR)").unwrap();
    assert_eq!(f.to_string(), "not A eq 1 and b pr");
}

fn filter_error(text: &str) -> String {
    let err = Filter::parse(text).unwrap_err();
    assert_eq!(err.code(), "MALFORMED", "{text}: {err}");
    let message = err.to_string();
    assert!(message.contains("a valid filter looks like"), "{message}");
    message
}

#[test]
fn malformed_filters_say_what_and_where() {
    let cases: &[(&str, &str)] = &[
        (
            r#"status eq "active"#,
            "unterminated string (no closing `\"`) starting at byte 10",
        ),
        ("status eq", "expected a value after `status eq`"),
        ("status eq", "at byte 9"),
        ("status is 1", "unknown operator `is`"),
        ("status is 1", "at byte 7"),
        ("status", "expected an operator after `status`"),
        ("", "the filter is empty"),
        ("   ", "the filter is empty"),
        ("(n eq 1", "expected `)` to close the `(` at byte 0"),
        ("n eq 1)", "unbalanced `)` at byte 6"),
        ("n eq 1 n eq 2", "expected `and`, `or` or the end"),
        ("n eq 1 and", "expected a field name or `(`"),
        ("and eq 1", "expected a field name or `(`, found `and`"),
        ("not not n pr", "found `not`"),
        ("n eq 1 or or n eq 2", "found `or`"),
        (r#"n eq "a\n""#, "unknown escape"),
        ("n eq 99999999999999999999", "out of range"),
        ("n eq -", "`-` must be followed by digits"),
        ("n € 1", "unexpected character `€` at byte 2"),
        ("n eq 'x'", "unexpected character `'`"),
        ("n lt null", "cannot compare with true, false or null"),
        ("trial gt true", "cannot compare with true, false or null"),
        ("n co 1", "`co` takes a \"string\""),
        ("n eq abc", "expected a value after `n eq`"),
        ("1 eq 1", "expected a field name"),
    ];
    for (text, needle) in cases {
        let message = filter_error(text);
        assert!(message.contains(needle), "{text:?}: {message}");
    }
}

#[test]
fn known_fields_are_enforced_only_when_given() {
    let known = ["status", "expires_at"];
    assert!(Filter::parse("colour eq 1").is_ok());
    assert!(Filter::parse_for(r#"status eq "active""#, &known).is_ok());
    let err = Filter::parse_for(r#"status eq "a" and colour eq 1"#, &known).unwrap_err();
    assert_eq!(err.code(), "MALFORMED");
    let message = err.to_string();
    assert!(
        message.contains("unknown field `colour`") && message.contains("at byte 18"),
        "{message}"
    );
    assert!(message.contains("status, expires_at"), "{message}");
}

#[test]
fn typed_filters_check_literals_against_field_kinds() {
    let schema = [
        ("status", FieldKind::Str),
        ("expires_at", FieldKind::Time),
        ("n", FieldKind::Int),
        ("trial", FieldKind::Bool),
    ];
    for ok in [
        r#"status eq "active""#,
        r#"expires_at lt "2026-01-01T00:00:00Z""#,
        "expires_at lt 0",
        "expires_at eq null",
        "n ge 3",
        "trial eq true",
        "trial ne null",
        "status pr",
    ] {
        Filter::parse_typed(ok, &schema).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, needle) in [
        (r#"expires_at lt "2026-13-01""#, "is not an RFC 3339 time"),
        (r#"expires_at lt "yesterday""#, "at byte 14"),
        (r#"expires_at co "2026""#, "is not an RFC 3339 time"),
        (
            r#"expires_at sw "2026-01-01T00:00:00Z""#,
            "needs an RFC 3339 time",
        ),
        ("status eq 3", "`status eq` needs a \"string\""),
        (r#"n eq "3""#, "needs an integer"),
        (r#"trial eq "yes""#, "needs true or false"),
        ("other eq 1", "unknown field `other`"),
    ] {
        let err = Filter::parse_typed(bad, &schema).unwrap_err();
        assert_eq!(err.code(), "MALFORMED");
        assert!(err.to_string().contains(needle), "{bad}: {err}");
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let ok = format!("{}n eq 1{}", "(".repeat(32), ")".repeat(32));
    assert!(Filter::parse(&ok).is_ok());
    let too_deep = format!("{}n eq 1{}", "(".repeat(33), ")".repeat(33));
    assert_eq!(Filter::parse(&too_deep).unwrap_err().code(), "TOO_LARGE");

    let deep = format!("{}n eq 1{}", "(".repeat(1000), ")".repeat(1000));
    assert_eq!(Filter::parse(&deep).unwrap_err().code(), "TOO_LARGE");
    let unbalanced = "(".repeat(2000);
    assert_eq!(Filter::parse(&unbalanced).unwrap_err().code(), "TOO_LARGE");
    let nots = "not (".repeat(800);
    assert!(Filter::parse(&nots).is_err());
    // Long flat chains are not nesting and evaluate without recursion depth.
    let chain = vec!["n eq 1"; 300].join(" or ");
    assert!(chain.len() < 4096);
    assert!(Filter::parse(&chain).unwrap().matches(&fixture()[0]));
}

#[test]
fn oversized_filters_are_too_large() {
    let huge = format!(r#"name eq "{}""#, "x".repeat(1 << 20));
    let err = Filter::parse(&huge).unwrap_err();
    assert_eq!(err.code(), "TOO_LARGE");
    assert!(err.to_string().contains("4096"), "{err}");
    let at_limit = format!(r#"name eq "{}""#, "x".repeat(4096 - 10));
    assert_eq!(at_limit.len(), 4096);
    assert!(Filter::parse(&at_limit).is_ok());
}

#[test]
fn orders_parse_and_refuse_bad_names() {
    assert_eq!(
        Order::parse("-expires_at").unwrap(),
        Order {
            field: "expires_at".into(),
            descending: true
        }
    );
    assert!(!Order::parse("+n").unwrap().descending);
    for bad in ["", "-", "--n", "1n", "n m", "n;", "é"] {
        assert_eq!(Order::parse(bad).unwrap_err().code(), "MALFORMED", "{bad}");
    }
    assert!(Order::parse_for("n", &["n"]).is_ok());
    assert_eq!(
        Order::parse_for("-m", &["n"]).unwrap_err().code(),
        "MALFORMED"
    );
}

fn numbered(count: usize) -> Vec<Item> {
    (0..count)
        .map(|i| Item {
            id: format!("k{i:04}"),
            status: Some(["active", "expired", "revoked"][i % 3].into()),
            // Many ties and some absent values, so key tie-breaking matters.
            n: (i % 7 != 0).then_some((i % 5) as i64),
            expires_at: (i % 4 != 0).then(|| Timestamp::from_unix(1_700_000_000 + (i as i64 % 9))),
            trial: Some(i % 2 == 0),
            name: None,
        })
        .collect()
}

/// The reference: filter, then sort by (value with nulls last, key).
fn reference(items: &[Item], filter: Option<&Filter>, order: Option<&Order>) -> Vec<Item> {
    let mut out: Vec<Item> = items
        .iter()
        .filter(|i| match filter {
            None => true,
            Some(f) => f.matches(*i),
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| match order {
        None => a.id.cmp(&b.id),
        Some(o) => {
            let key = |i: &Item| -> (bool, Option<i64>) {
                match o.field.as_str() {
                    "n" => (i.n.is_none(), i.n),
                    "expires_at" => (i.expires_at.is_none(), i.expires_at.map(|t| t.unix())),
                    "trial" => (i.trial.is_none(), i.trial.map(i64::from)),
                    _ => (true, None),
                }
            };
            let (an, av) = key(a);
            let (bn, bv) = key(b);
            let by_value = an.cmp(&bn).then_with(|| {
                if o.descending {
                    bv.cmp(&av)
                } else {
                    av.cmp(&bv)
                }
            });
            by_value.then_with(|| a.id.cmp(&b.id))
        }
    });
    out
}

fn walk(items: &[Item], query: &Query) -> (Vec<Item>, usize) {
    let mut all = Vec::new();
    let mut query = query.clone();
    let mut pages = 0;
    loop {
        let Page {
            items: page,
            next_cursor,
        } = run(items.to_vec(), &query).unwrap();
        pages += 1;
        assert!(page.len() <= query.limit.unwrap_or(DEFAULT_LIMIT));
        all.extend(page);
        match next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return (all, pages),
        }
        assert!(pages < 10_000, "pagination does not terminate");
    }
}

#[test]
fn walking_all_pages_gives_the_sorted_whole() {
    let items = numbered(103);
    for order in [
        None,
        Some("n"),
        Some("-n"),
        Some("expires_at"),
        Some("-expires_at"),
        Some("-trial"),
    ] {
        let order = order.map(|o| Order::parse(o).unwrap());
        for limit in [1, 2, 7, 10, 103, 500] {
            let mut query = Query::default().limit(limit);
            query.order = order.clone();
            let (all, pages) = walk(&items, &query);
            assert_eq!(
                all,
                reference(&items, None, order.as_ref()),
                "{order:?} {limit}"
            );
            assert_eq!(pages, 103usize.div_ceil(limit).max(1), "{order:?} {limit}");
        }
    }
}

#[test]
fn descending_order_puts_absent_values_last_and_breaks_ties_by_key() {
    let page = run(
        fixture(),
        &Query::default().order(Order::parse("-n").unwrap()),
    )
    .unwrap();
    assert_eq!(ids(&page.items), ["l5", "l3", "l2", "l1", "l4"]);
    let page = run(
        fixture(),
        &Query::default().order(Order::parse("expires_at").unwrap()),
    )
    .unwrap();
    assert_eq!(ids(&page.items), ["l2", "l1", "l5", "l4", "l3"]);
    let page = run(
        fixture(),
        &Query::default().order(Order::parse("-expires_at").unwrap()),
    )
    .unwrap();
    assert_eq!(ids(&page.items), ["l4", "l1", "l5", "l2", "l3"]);
    assert_eq!(page.next_cursor, None);
}

#[test]
fn filter_and_order_combine() {
    let query = Query::default()
        .filter(Filter::parse(r#"status eq "active" or status eq null"#).unwrap())
        .order(Order::parse("-n").unwrap())
        .limit(2);
    let first = run(fixture(), &query).unwrap();
    assert_eq!(ids(&first.items), ["l5", "l3"]);
    let second = run(fixture(), &query.clone().cursor(first.next_cursor.unwrap())).unwrap();
    assert_eq!(ids(&second.items), ["l1"]);
    assert_eq!(second.next_cursor, None);
}

#[test]
fn cursors_are_stable_when_items_are_added_between_pages() {
    for order in ["n", "-n", "expires_at", "-expires_at"] {
        let order = Order::parse(order).unwrap();
        let mut items = numbered(60);
        let originals = reference(&items, None, Some(&order));
        let mut query = Query::default().order(order.clone()).limit(7);
        let mut seen: Vec<Item> = Vec::new();
        let mut round = 0;
        loop {
            let page = run(items.clone(), &query).unwrap();
            seen.extend(page.items);
            // Insert new items everywhere in the order, including before
            // and exactly at the cursor's position, and drop one.
            for j in 0..3 {
                let mut extra = numbered(60)[(round * 3 + j) % 60].clone();
                extra.id = format!("new{round:03}{j}");
                items.push(extra);
            }
            items.push(Item {
                id: format!("k0000new{round}"),
                ..numbered(1)[0].clone()
            });
            round += 1;
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        let seen_originals: Vec<&Item> = seen
            .iter()
            .filter(|i| i.id.starts_with('k') && !i.id.contains("new"))
            .collect();
        assert_eq!(
            seen_originals,
            originals.iter().collect::<Vec<_>>(),
            "{order}: originals skipped, repeated or out of order"
        );
        let mut keys: Vec<&str> = seen.iter().map(|i| i.id.as_str()).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "{order}: an item was listed twice");
    }
}

#[test]
fn cursors_survive_removal_of_the_last_item_seen() {
    let mut items = numbered(20);
    let query = Query::default().order(Order::parse("n").unwrap()).limit(5);
    let first = run(items.clone(), &query).unwrap();
    let last = first.items.last().unwrap().id.clone();
    items.retain(|i| i.id != last);
    let rest = walk(&items, &query.clone().cursor(first.next_cursor.unwrap())).0;
    let mut all = first.items;
    all.extend(rest);
    assert_eq!(all, reference(&numbered(20), None, query.order.as_ref()));
}

#[test]
fn a_cursor_from_another_order_is_refused() {
    let items = numbered(30);
    let by_n = Query::default().order(Order::parse("n").unwrap()).limit(5);
    let cursor = run(items.clone(), &by_n).unwrap().next_cursor.unwrap();
    for other in [
        Query::default().order(Order::parse("-n").unwrap()),
        Query::default().order(Order::parse("expires_at").unwrap()),
        Query::default(),
    ] {
        let err = run(items.clone(), &other.limit(5).cursor(cursor.clone())).unwrap_err();
        assert_eq!(err.code(), "MALFORMED");
        assert!(err.to_string().contains("--order n"), "{err}");
    }
    let by_key = run(items.clone(), &Query::default().limit(5))
        .unwrap()
        .next_cursor
        .unwrap();
    let err = run(items, &by_n.cursor(by_key)).unwrap_err();
    assert!(err.to_string().contains("no --order (by key)"), "{err}");
}

#[test]
fn garbage_cursors_are_malformed_not_panics() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let query = Query::default().order(Order::parse("n").unwrap());
    for garbage in [
        String::new(),
        "!!!".into(),
        "AAAA".into(),
        enc("null"),
        enc("[]"),
        enc(r#"{"o":"n","v":{"x":1},"k":"a"}"#),
        enc(r#"{"o":"n","v":{"i":"one"},"k":"a"}"#),
        enc(r#"{"o":"n","v":null}"#),
        enc(r#"{"o":"n","v":null,"k":"a","extra":1}"#),
        enc(&format!("{}1{}", "[".repeat(5000), "]".repeat(5000))),
    ] {
        let err = run(numbered(5), &query.clone().cursor(garbage.clone())).unwrap_err();
        assert_eq!(err.code(), "MALFORMED", "{garbage}: {err}");
    }
    let huge = "A".repeat(1 << 20);
    assert_eq!(
        run(numbered(5), &query.clone().cursor(huge))
            .unwrap_err()
            .code(),
        "TOO_LARGE"
    );
    // A well-formed hand-made cursor is honoured (it is opaque, not secret).
    let handmade = enc(r#"{"o":"n","v":{"i":3},"k":"zzz"}"#);
    let page = run(numbered(30), &query.cursor(handmade)).unwrap();
    assert!(page.items.iter().all(|i| i.n.is_none() || i.n > Some(3)));
}

#[test]
fn limits_default_clamp_and_refuse_zero() {
    let items = numbered(1500);
    let page = run(items.clone(), &Query::default()).unwrap();
    assert_eq!(page.items.len(), DEFAULT_LIMIT);
    assert!(page.next_cursor.is_some());
    let page = run(items.clone(), &Query::default().limit(1_000_000)).unwrap();
    assert_eq!(page.items.len(), MAX_LIMIT);
    assert!(page.next_cursor.is_some());
    let err = run(items, &Query::default().limit(0)).unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let empty = run(Vec::<Item>::new(), &Query::default()).unwrap();
    assert_eq!(
        empty,
        Page {
            items: vec![],
            next_cursor: None
        }
    );
}

#[test]
fn an_exactly_full_last_page_has_no_cursor() {
    let page = run(numbered(10), &Query::default().limit(10)).unwrap();
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.next_cursor, None);
}

// ---------------------------------------------------------------------------
// Properties

fn arb_comparison() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec!["n", "status", "expires_at", "trial", "id", "nope"]);
    let equality = prop::sample::select(vec!["eq", "ne", "EQ", "Ne"]);
    let ordering = prop::sample::select(vec!["lt", "le", "gt", "ge", "Gt"]);
    let string_match = prop::sample::select(vec!["co", "sw", "ew"]);
    let string = prop::sample::select(vec![
        r#""active""#,
        r#""expired""#,
        r#""i00""#,
        r#""2023-11-14T22:13:24Z""#,
        r#""not a time""#,
        r#""a\"b\\c""#,
        r#""""#,
    ])
    .prop_map(String::from);
    let number = (-3i64..8).prop_map(|n| n.to_string());
    let constant =
        prop::sample::select(vec!["true", "false", "null", "NULL"]).prop_map(String::from);
    prop_oneof![
        (
            field.clone(),
            equality,
            prop_oneof![string.clone(), number.clone(), constant]
        )
            .prop_map(|(f, o, l)| format!("{f} {o} {l}")),
        (field.clone(), ordering, prop_oneof![string.clone(), number])
            .prop_map(|(f, o, l)| format!("{f} {o} {l}")),
        (field.clone(), string_match, string).prop_map(|(f, o, l)| format!("{f} {o} {l}")),
        field.prop_map(|f| format!("{f} pr")),
    ]
}

fn arb_filter() -> impl Strategy<Value = String> {
    arb_comparison().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// Grammar-shaped text with random damage: still must not panic.
fn arb_mangled() -> impl Strategy<Value = String> {
    (arb_filter(), any::<usize>(), any::<char>(), any::<bool>()).prop_map(|(f, at, c, cut)| {
        let mut chars: Vec<char> = f.chars().collect();
        let at = at % (chars.len() + 1);
        if cut {
            chars.truncate(at);
        } else {
            chars.insert(at, c);
        }
        chars.into_iter().collect()
    })
}

fn arb_items() -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(
        (
            prop::option::of(prop::sample::select(vec!["active", "expired"])),
            prop::option::of(-2i64..6),
            prop::option::of(1_700_000_000i64..1_700_000_010),
            prop::option::of(any::<bool>()),
        ),
        0..40,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (status, n, exp, trial))| Item {
                id: format!("i{i:03}"),
                status: status.map(Into::into),
                n,
                expires_at: exp.map(Timestamp::from_unix),
                trial,
                name: None,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text_never_panics(text in ".{0,200}") {
        let _ = Filter::parse(&text);
        let _ = Order::parse(&text);
        let _ = run(numbered(3), &Query::default().cursor(text));
    }

    #[test]
    fn mangled_filters_never_panic(text in arb_mangled()) {
        if let Ok(filter) = Filter::parse(&text) {
            let _ = fixture().iter().filter(|i| filter.matches(*i)).count();
            prop_assert_eq!(Filter::parse(&filter.to_string()).ok(), Some(filter));
        }
        let _ = Order::parse(&text);
        let _ = run(fixture(), &Query::default().cursor(text));
    }

    #[test]
    fn generated_filters_parse_and_round_trip(text in arb_filter()) {
        let f = Filter::parse(&text).unwrap();
        prop_assert_eq!(&Filter::parse(&f.to_string()).unwrap(), &f);
    }

    #[test]
    fn pages_concatenate_to_the_whole_sorted_filtered_list(
        items in arb_items(),
        filter in prop::option::of(arb_filter()),
        order in prop::option::of(prop::sample::select(vec!["n", "-n", "expires_at", "-expires_at", "trial", "-trial"])),
        limit in 1usize..12,
    ) {
        let filter = filter.map(|f| Filter::parse(&f).unwrap());
        let order = order.map(|o| Order::parse(o).unwrap());
        let query = Query { filter: filter.clone(), order: order.clone(), limit: Some(limit), cursor: None };
        let (paged, _) = walk(&items, &query);
        let whole = run(items.clone(), &Query { limit: Some(MAX_LIMIT), ..query.clone() }).unwrap();
        prop_assert_eq!(&whole.next_cursor, &None);
        prop_assert_eq!(&paged, &whole.items);
        prop_assert_eq!(&paged, &reference(&items, filter.as_ref(), order.as_ref()));
    }
}
