//! The contract every store's history keeps (docs/http.md#history), run
//! by the file and memory stores (`site_history.rs`) and PostgreSQL
//! (`site_history_pg.rs`) on their own stores.
#![allow(dead_code)]

use entitle::store::{EventKind, History, HistoryEvent, MinuteBucket, Step};

/// What every store's history must do alike: merge buckets written in any
/// order (as redundant servers do), keep the level between events, page
/// events without gaps, prune by age.
pub fn history_contract(history: &dyn History) {
    // A whole hour, so that its minute and its hour start together.
    let minute = 1_800_000_000;
    history
        .merge_buckets(&[MinuteBucket::new(None, minute + 5).in_use(3).denials(1)])
        .unwrap();
    history
        .merge_buckets(&[MinuteBucket::new(None, minute + 50).in_use(1).denials(2)])
        .unwrap();
    history
        .merge_buckets(&[MinuteBucket::new(Some("cad"), minute).in_use(7)])
        .unwrap();
    let points = history
        .series(None, minute - 60, minute + 180, Step::Minute)
        .unwrap();
    let got: Vec<(i64, u32, u64)> = points
        .iter()
        .map(|p| (p.at - minute, p.in_use_peak, p.denials))
        .collect();
    assert_eq!(got, [(-60, 0, 0), (0, 3, 3), (60, 1, 0), (120, 1, 0)]);
    let hours = history
        .series(None, minute, minute + 1, Step::Hour)
        .unwrap();
    assert_eq!(
        (hours.len(), hours[0].in_use_peak, hours[0].denials),
        (1, 3, 3)
    );
    let cad = history
        .series(Some("cad"), minute, minute + 60, Step::Minute)
        .unwrap();
    assert_eq!(cad[0].in_use_peak, 7);
    assert!(history
        .series(None, 0, 10_001 * 60, Step::Minute)
        .unwrap_err()
        .to_string()
        .contains("at most 10000"));

    let events: Vec<HistoryEvent> = (0..7)
        .map(|i| HistoryEvent::new(minute + i, EventKind::Checkout, None, &format!("c{i}")))
        .collect();
    history.append(&events).unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = history.events(minute + 1, minute + 6, cursor, 2).unwrap();
        seen.extend(page.items.iter().map(|e| e.event.client.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["c1", "c2", "c3", "c4", "c5"]);

    assert!(history.prune(minute + 3).unwrap() >= 3);
    let left = history.events(0, i64::MAX, None, 100).unwrap();
    assert_eq!(left.items.len(), 4);
    let points = history
        .series(None, minute - 60, minute, Step::Minute)
        .unwrap();
    assert_eq!(points[0].in_use_peak, 0);
}
