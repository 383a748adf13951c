#![no_main]

use entitle::query::{run, Fields, Filter, Order, Query, Value, MAX_FILTER_BYTES};
use entitle::Timestamp;

// Self-contained so that it needs nothing from `entitle_fuzz`; the stable
// suite (`tests/query.rs`, `fuzz_corpus_replays`) runs the same checks over
// `corpus/filter`.
struct Probe;

impl Fields for Probe {
    fn field(&self, name: &str) -> Option<Value<'_>> {
        match name {
            "status" => Some(Value::Str("active")),
            "expires_at" => Some(Value::Time(Timestamp::from_unix(1_767_225_600))),
            "serial" => Some(Value::Int(3)),
            "trial" => Some(Value::Bool(false)),
            "starts_at" => Some(Value::Null),
            _ => None,
        }
    }

    fn key(&self) -> &str {
        "lic_1"
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = Filter::parse(text) {
        let _ = filter.matches(&Probe);
        let canonical = filter.to_string();
        if canonical.len() <= MAX_FILTER_BYTES {
            assert_eq!(Filter::parse(&canonical).ok(), Some(filter), "{canonical}");
        }
    }
    let _ = Order::parse(text);
    let _ = run([Probe], &Query::default().cursor(text));
});
