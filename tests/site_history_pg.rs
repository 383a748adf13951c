//! The site server's history on PostgreSQL (docs/http.md#history): the
//! same contract as the local stores, namespaces kept apart, and several
//! writers (redundant servers on one namespace) merging the same minutes
//! rather than overwriting each other's.
#![cfg(all(feature = "server", feature = "postgres"))]

mod history_common;
mod pg_common;

use entitle::store::{EventKind, HistoryEvent, MinuteBucket, PgStore, Step, Store};

#[test]
fn postgresql_keeps_history_to_the_contract() {
    let ns = pg_common::created_namespace("history");
    let store = PgStore::open(pg_common::server_url(), &ns).unwrap();
    history_common::history_contract(store.history().unwrap());
}

#[test]
fn two_writers_on_one_namespace_merge_their_minutes() {
    let url = pg_common::server_url();
    let ns = pg_common::created_namespace("history-merge");
    let minute = 1_800_000_000;
    // Two servers, each a store of its own, appending batches about the
    // same minutes at once: server A sees up to 4 seats in use and 1
    // denial a batch; server B up to 6 and 2.
    let writers: Vec<_> = [("a", 4u32, 1u64), ("b", 6, 2)]
        .into_iter()
        .map(|(name, peak, denials)| {
            let url = url.to_owned();
            let ns = ns.clone();
            std::thread::spawn(move || {
                let store = PgStore::open(&url, &ns).unwrap();
                let history = store.history().unwrap();
                for round in 0..20 {
                    let at = minute + round % 3;
                    let mut batch = vec![HistoryEvent::new(at, EventKind::Checkout, None, name)
                        .counts(peak - (round % 2) as u32, 0)];
                    for _ in 0..denials {
                        batch.push(
                            HistoryEvent::new(at, EventKind::Deny, None, name)
                                .reason("FLOATING_EXHAUSTED")
                                .counts(1, 0),
                        );
                    }
                    history.append(&batch).unwrap();
                    // And buckets written directly, in another order.
                    history
                        .merge_buckets(&[
                            MinuteBucket::new(Some("cad"), minute + 60 + round).in_use(peak),
                            MinuteBucket::new(None, minute + 120).denials(denials),
                        ])
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let store = PgStore::open(url, &ns).unwrap();
    let history = store.history().unwrap();
    let points = history
        .series(None, minute, minute + 180, Step::Minute)
        .unwrap();
    let got: Vec<(u32, u64)> = points.iter().map(|p| (p.in_use_peak, p.denials)).collect();
    // Minute 0: both writers' peaks merged by maximum, every denial
    // counted (20 rounds of 1 and of 2); minute 2: the denials merged
    // directly, 20 of each writer's.
    assert_eq!(got[0], (6, 60));
    assert_eq!(got[2].1, 20 + 40);
    let cad = history
        .series(Some("cad"), minute + 60, minute + 120, Step::Minute)
        .unwrap();
    assert_eq!(cad[0].in_use_peak, 6);
    let page = history.events(minute, minute + 60, None, 1000).unwrap();
    assert_eq!(page.items.len(), 20 + 20 + 20 + 40);
    let mut ids: Vec<i64> = page.items.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}

#[test]
fn each_namespace_has_a_history_of_its_own() {
    let url = pg_common::server_url();
    let (one, two) = (
        pg_common::created_namespace("history-one"),
        pg_common::created_namespace("history-two"),
    );
    let first = PgStore::open(url, &one).unwrap();
    let second = PgStore::open(url, &two).unwrap();
    first
        .history()
        .unwrap()
        .append(&[
            HistoryEvent::new(1_800_000_000, EventKind::Deny, None, "x").reason("NOT_LICENSED")
        ])
        .unwrap();
    let theirs = second.history().unwrap();
    assert!(theirs
        .events(0, i64::MAX, None, 10)
        .unwrap()
        .items
        .is_empty());
    let series = theirs
        .series(None, 1_800_000_000, 1_800_000_060, Step::Minute)
        .unwrap();
    assert_eq!(series[0].denials, 0);
    // Removing a namespace removes its history.
    PgStore::remove(url, &one).unwrap();
    PgStore::create(url, &one).unwrap();
    let again = PgStore::open(url, &one).unwrap();
    assert!(again
        .history()
        .unwrap()
        .events(0, i64::MAX, None, 10)
        .unwrap()
        .items
        .is_empty());
}
