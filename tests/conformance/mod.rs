//! The store contract, as one suite every backend runs with its own store
//! (the way object_store's `integration.rs` holds its backends to one
//! behaviour). A backend's test file includes this module and calls each
//! function with `open`, which opens the *same* state again each time it
//! is called (for the file store: `FileStore::create(dir)`; for a database:
//! the same URL and namespace), as separate processes or hosts would.
//!
//! The contract (docs/semantics.md#durability-and-sharing): every mutation is durable when it
//! returns `Ok` and survives the store being closed without ceremony; a
//! refused mutation or an abandoned transaction leaves no trace; a
//! transaction is all or nothing; engines over the same state never let
//! more through than a limit allows, whichever engine asks; and an engine
//! sees another's change within a second.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use entitle::store::{Change, IssueMark, Store};
use entitle::{Engine, ManualClock, Reason, SystemClock};
use serde_json::json;

use crate::common::{clock_at, t, Vendor, DAY, T0};

fn engine<S: Store>(vendor: &Vendor, clock: &ManualClock, store: S) -> Engine {
    vendor.builder(clock).store(store).build().unwrap()
}

/// What a mutation acknowledged is there when the state is opened again,
/// after the engine was dropped without a flush or a close.
pub fn acknowledged_changes_survive_reopening<S: Store>(open: impl Fn() -> S) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    {
        let engine = engine(&vendor, &clock, open());
        engine
            .add_license(&vendor.license(json!({"id": "lic", "seats": {"max": 3},
                "expires_at": "2027-01-01T00:00:00Z",
                "floating": {"seats": 2, "lease_secs": 600},
                "features": [{"code": "export", "limit": 7},
                             {"code": "api", "consumption": {"max": 10}}]})))
            .unwrap();
        engine
            .add_user_with(
                &entitle::engine::NewUser::new("ann", "admin")
                    .name("Ann Lee")
                    .email("ann@example.com"),
            )
            .unwrap();
        engine.add_user("bob", "member").unwrap();
        engine.remove_user("bob").unwrap();
        engine.remove_license("gone", true).unwrap();
        engine.consume("api", 4).unwrap();
        engine.checkout("ws-1", None).unwrap();
        clock.advance(90 * DAY);
        engine.refresh().unwrap();
    }
    let engine = engine(&vendor, &clock, open());
    assert!(engine.check_feature("export").allowed());
    assert_eq!(engine.limit("export"), Some(7));
    let usage = engine.usage(0, 10);
    assert_eq!(usage.users.len(), 1);
    assert_eq!(
        (
            usage.users[0].id.as_str(),
            usage.users[0].user_type.as_str()
        ),
        ("ann", "admin")
    );
    assert_eq!(
        (
            usage.users[0].name.as_deref(),
            usage.users[0].email.as_deref()
        ),
        (Some("Ann Lee"), Some("ann@example.com"))
    );
    assert_eq!(engine.consumption("api")[0].used, 4);
    assert_eq!(
        engine.leases().len(),
        0,
        "ws-1's lease lapsed after 90 days"
    );
    let gone = vendor.license(json!({"id": "gone"}));
    assert_eq!(
        engine.add_license(&gone).unwrap_err().code(),
        "LICENSE_REVOKED"
    );
    // The latest time seen was kept too: back at the start, the clock is
    // behind it.
    clock.set(t(T0));
    let engine = engine_again(&vendor, &clock, open());
    assert_eq!(
        engine.check_feature("export").reason(),
        Reason::ClockTampered
    );
}

fn engine_again<S: Store>(vendor: &Vendor, clock: &ManualClock, store: S) -> Engine {
    engine(vendor, clock, store)
}

/// A mutation refused by policy, and a transaction dropped without
/// committing, leave nothing behind.
pub fn refused_and_abandoned_changes_leave_no_trace<S: Store>(open: impl Fn() -> S) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = engine(&vendor, &clock, open());
    engine
        .add_license(&vendor.license(json!({"id": "lic", "seats": {"max": 1}})))
        .unwrap();
    engine.add_user("a", "member").unwrap();
    assert_eq!(
        engine.add_user("b", "member").unwrap_err().code(),
        "SEAT_LIMIT"
    );
    drop(engine);
    let store = open();
    let before = store.load().unwrap();
    assert_eq!(before.1.users.len(), 1);
    let mut txn = store.begin().unwrap();
    txn.write(&[
        Change::DeleteUser("a".into()),
        Change::Serial("x".into(), IssueMark::new(9, 100)),
    ])
    .unwrap();
    drop(txn);
    assert_eq!(store.load().unwrap(), before);
    drop(store);
    assert_eq!(engine_again(&vendor, &clock, open()).usage(0, 10).total, 1);
}

/// The changes of one transaction are there together once it is
/// committed and synced, and the generation moved.
pub fn a_transaction_is_all_or_nothing<S: Store>(open: impl Fn() -> S) {
    let store = open();
    let (before, _) = store.load().unwrap();
    let mut txn = store.begin().unwrap();
    txn.write(&[
        Change::Serial("a".into(), IssueMark::new(1, 100)),
        Change::Tombstone("b".into(), 5),
    ])
    .unwrap();
    txn.write(&[Change::Transfers("c".into(), 2)]).unwrap();
    let generation = txn.commit().unwrap();
    store.sync(generation).unwrap();
    assert_ne!(generation, before);
    drop(store);
    let (seen, rows) = open().load().unwrap();
    assert_eq!(seen, generation);
    assert_eq!(rows.serials, [("a".to_owned(), IssueMark::new(1, 100))]);
    assert_eq!(rows.tombstones, [("b".to_owned(), 5)]);
    assert_eq!(rows.transfers, [("c".to_owned(), 2)]);
}

/// Threads of two engines over the same state (as two processes would)
/// add users, take leases and consume at once: each limit is reached
/// exactly, nothing is lost, nothing counted twice.
pub fn limits_hold_exactly_across_two_engines<S: Store>(open: impl Fn() -> S) {
    let vendor = Vendor::new();
    let build = |store| {
        vendor
            .builder(&clock_at(T0))
            .clock(SystemClock)
            .store(store)
            .build()
            .unwrap()
    };
    let first = build(open());
    first
        .add_license(
            &vendor.license(json!({"id": "lic", "issued_at": "2020-01-01T00:00:00Z",
            "seats": {"max": 10, "hard_max": 12},
            "floating": {"seats": 3, "lease_secs": 3600},
            "features": [{"code": "api", "consumption": {"max": 50, "overage": 5}}]})),
        )
        .unwrap();
    let second = build(open());
    let (users, leases, units) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let count = |counter: &AtomicU64, result: entitle::Result<()>, refusal: &str| match result {
        Ok(()) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => assert_eq!(e.code(), refusal, "{e}"),
    };
    std::thread::scope(|s| {
        for thread in 0..8u64 {
            let engine = if thread % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let (users, leases, units) = (&users, &leases, &units);
            s.spawn(move || {
                for i in 0..12u64 {
                    let user = engine.add_user(&format!("t{thread}-u{i}"), "member");
                    count(users, user.map(drop), "SEAT_LIMIT");
                    let lease = engine.checkout(&format!("t{thread}-c{i}"), None);
                    count(leases, lease.map(drop), "FLOATING_EXHAUSTED");
                    let used = engine.consume("api", 1);
                    count(units, used.map(drop), "CONSUMPTION_LIMIT");
                }
            });
        }
    });
    assert_eq!(
        users.load(Ordering::Relaxed),
        12,
        "exactly the hard limit admitted"
    );
    assert_eq!(
        leases.load(Ordering::Relaxed),
        3,
        "exactly the floating seats leased"
    );
    assert_eq!(
        units.load(Ordering::Relaxed),
        55,
        "exactly max + overage consumed"
    );
    // A fresh engine reads what is durable.
    let check = build(open());
    assert_eq!(check.status().active_user_count, 12);
    assert_eq!(check.leases().len(), 3);
    assert_eq!(check.consumption("api")[0].used, 55);
}

/// An engine sees a change another engine made to the same state within
/// a second, by its own background refresh, and the store's generation
/// tells it something changed.
pub fn another_engine_sees_a_change_within_a_second<S: Store>(open: impl Fn() -> S) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let watcher = vendor
        .builder(&clock)
        .store(open())
        .background_refresh(true)
        .build()
        .unwrap();
    let writer = engine(&vendor, &clock, open());
    let before = open().generation().unwrap();
    writer
        .add_license(&vendor.license(json!({"id": "lic", "features": [{"code": "export"}]})))
        .unwrap();
    assert_ne!(open().generation().unwrap(), before);
    let changed = Instant::now();
    while !watcher.check_feature("export").allowed() {
        assert!(
            changed.elapsed() < Duration::from_millis(1500),
            "the other engine did not see the license within a second"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An engine refreshing after another's changes sees each of them, the
/// ones to licenses among them, whatever it kept from its last read: a
/// user added (nothing about licenses changed), a license suspended by a
/// later serial, a license revoked by a list, a license hard-removed.
pub fn a_refresh_sees_every_kind_of_change<S: Store>(open: impl Fn() -> S) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let writer = engine(&vendor, &clock, open());
    for id in ["a", "b", "c", "seats"] {
        writer
            .add_license(
                &vendor.license(json!({"id": id, "serial": 1, "seats": {"max": 5},
                "features": [{"code": format!("f{id}")}]})),
            )
            .unwrap();
    }
    let reader = engine(&vendor, &clock, open());
    let reasons = |e: &Engine| ["fa", "fb", "fc"].map(|f| e.check_feature(f).reason());
    assert_eq!(reasons(&reader), [Reason::Ok; 3]);

    writer.add_user("ann", "member").unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.status().active_user_count, 1);
    assert_eq!(reasons(&reader), [Reason::Ok; 3]);

    writer
        .add_license(
            &vendor.license(json!({"id": "a", "serial": 2, "enabled": false,
            "features": [{"code": "fa"}]})),
        )
        .unwrap();
    reader.refresh().unwrap();
    assert_eq!(
        reasons(&reader),
        [Reason::Suspended, Reason::Ok, Reason::Ok]
    );

    writer
        .apply_revocations(&vendor.revocations_for(Some("acme"), &["b"], T0))
        .unwrap();
    reader.refresh().unwrap();
    assert_eq!(
        reasons(&reader),
        [Reason::Suspended, Reason::Revoked, Reason::Ok]
    );

    writer.remove_license("c", true).unwrap();
    reader.refresh().unwrap();
    assert_eq!(
        reasons(&reader),
        [Reason::Suspended, Reason::Revoked, Reason::NotLicensed]
    );
    writer.add_user("bob", "member").unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.status().active_user_count, 2);
    assert_eq!(
        reasons(&reader),
        [Reason::Suspended, Reason::Revoked, Reason::NotLicensed]
    );
}

/// A key rotation (and a revocation list) one engine applies stays with
/// another across its refreshes, however the store tells what changed: a
/// license the new key signed is trusted there, and the signed facts are
/// still there after a change to something else.
pub fn a_refresh_keeps_the_signed_facts_another_engine_applied<S: Store>(open: impl Fn() -> S) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let writer = engine(&vendor, &clock, open());
    let reader = engine(&vendor, &clock, open());
    let next = entitle::token::SigningKey::from_seed(&[7; 32]);
    writer
        .apply(&vendor.sign(
            json!({"v": 1, "product": "acme", "issued_at": T0,
                   "keys": [next.public_key().to_base64url()]}),
            entitle::token::TokenType::Keys,
        ))
        .unwrap();
    writer
        .apply_revocations(&vendor.revocations_for(Some("acme"), &["gone"], T0))
        .unwrap();
    reader.refresh().unwrap();
    writer.remove_license("never-added", true).unwrap();
    reader.refresh().unwrap();

    let license = entitle::token::sign(
        &json!({"v": 1, "id": "rotated", "product": "acme", "issued_at": T0,
                "features": [{"code": "fr"}]}),
        &next,
        entitle::token::TokenType::License,
    )
    .unwrap();
    reader.add_license(&license).unwrap();
    assert_eq!(reader.check_feature("fr").reason(), Reason::Ok);
}

/// What the air-gapped way back keeps (docs/formats.md) is there when
/// the state is opened again: the install key and report sequence, the
/// receipt kept for a deactivation; and, in the vendor's books, the
/// install key recorded with an activation, the receipts accepted and the
/// reports ingested (so replays are still refused).
pub fn the_way_back_survives_reopening<S: Store>(open: impl Fn() -> S) {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let license = vendor.license(json!({"id": "lic",
        "activations": {"max": 1, "counted_by": "vendor"}, "features": [{"code": "cad"}]}));
    let install_on = |store: S| {
        vendor
            .builder(&clock)
            .fingerprint("desk-1")
            .store(store)
            .build()
            .unwrap()
    };
    let books_on = |store: S| vendor.books_builder(&clock).store(store).build().unwrap();
    // A program's install elsewhere (in memory), and this state as both an
    // install of its own and the vendor's books for the first (two roles
    // over one state, opened one after the other as two processes would).
    let remote = vendor
        .builder(&clock)
        .in_memory()
        .fingerprint("desk-9")
        .in_memory()
        .build()
        .unwrap();
    remote.add_license(&license).unwrap();
    let (key, kept, report, receipt) = {
        let books = books_on(open());
        books.add_license(&license).unwrap();
        let request = remote.activation_request(None).unwrap();
        books.record_issued_certificate(&request, None).unwrap();
        remote
            .apply(&vendor.sign(
                json!({"v": 1, "license_id": "lic", "fingerprint": "desk-9",
                       "issued_at": T0, "install_key": request.install_key}),
                entitle::token::TokenType::Machine,
            ))
            .unwrap();
        let report = remote.usage_report().unwrap().token;
        books.ingest_report(&report).unwrap();
        let receipt = remote
            .deactivate_with_receipt("desk-9", None)
            .unwrap()
            .token;
        books.accept_receipt(&receipt).unwrap();
        drop(books);
        // Its own device, activated and deactivated with a receipt.
        let engine = install_on(open());
        engine
            .apply(&vendor.sign(
                json!({"v": 1, "license_id": "lic", "fingerprint": "desk-1", "issued_at": T0}),
                entitle::token::TokenType::Machine,
            ))
            .unwrap();
        let kept = engine.deactivate_with_receipt("desk-1", None).unwrap();
        assert_eq!(engine.usage_report().unwrap().report.sequence, 1);
        (engine.install_key().unwrap(), kept, report, receipt)
    };
    let engine = install_on(open());
    assert_eq!(engine.install_key().unwrap(), key, "the same install key");
    assert_eq!(engine.usage_report().unwrap().report.sequence, 2);
    let again = engine.deactivate_with_receipt("desk-1", None).unwrap();
    assert!(again.again);
    assert_eq!(again.token, kept.token);
    drop(engine);
    let books = books_on(open());
    assert_eq!(
        books.accept_receipt(&receipt).unwrap_err().code(),
        "RECEIPT_REPLAYED"
    );
    assert_eq!(
        books.ingest_report(&report).unwrap_err().code(),
        "REPORT_REPLAYED"
    );
    // The device's next report verifies with the key the books kept.
    assert_eq!(
        books
            .ingest_report(&remote.usage_report().unwrap().token)
            .unwrap()
            .previous_sequence,
        Some(1)
    );
    let request = remote.activation_request(None).unwrap();
    books.record_issued_certificate(&request, None).unwrap();
    drop(books);
    let recorded = books_on(open())
        .activations()
        .into_iter()
        .find(|a| a.fingerprint == "desk-9")
        .unwrap();
    assert_eq!(recorded.install_key, request.install_key);
}

/// What a usage report must carry survives reopening until a report has
/// carried it (docs/formats.md#usage-report-typ-report): a period a consume closed, a counter
/// whose period ended, and the last report, which the next one chains
/// to. Each goes to the books once.
pub fn closed_periods_wait_for_a_report_across_reopening<S: Store>(open: impl Fn() -> S) {
    use entitle::license::UsageReport;
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let license = vendor.license(json!({"id": "lic",
        "features": [{"code": "api", "consumption": {"max": 200, "reset": "monthly"}}]}));
    let install = || {
        vendor
            .builder(&clock)
            .fingerprint("desk-1")
            .store(open())
            .build()
            .unwrap()
    };
    let periods = |report: &UsageReport| {
        let api = &report.licenses[0].features[0];
        let closed: Vec<(String, String, u64)> = api
            .periods
            .iter()
            .map(|p| (p.starts_at.to_string(), p.ends_at.to_string(), p.used))
            .collect();
        (api.used, closed)
    };
    {
        let engine = install();
        engine.add_license(&license).unwrap();
        engine.consume("api", 110).unwrap();
        clock.set(t("2026-02-03T00:00:00Z"));
        engine.consume("api", 5).unwrap();
    }
    let first = install().usage_report().unwrap();
    assert_eq!(first.report.previous, None);
    assert_eq!(
        periods(&first.report),
        (
            5,
            vec![(
                "2026-01-01T00:00:00Z".to_owned(),
                "2026-02-01T00:00:00Z".to_owned(),
                110
            )]
        )
    );
    let first_compact = entitle::token::dearmor(&first.token).unwrap().0;
    clock.set(t("2026-03-02T00:00:00Z"));
    let second = install().usage_report().unwrap();
    assert_eq!(
        second.report.previous.as_deref(),
        Some(UsageReport::hash(&first_compact).as_str())
    );
    assert_eq!(
        periods(&second.report),
        (
            0,
            vec![(
                "2026-02-01T00:00:00Z".to_owned(),
                "2026-03-01T00:00:00Z".to_owned(),
                5
            )]
        )
    );
    let third = install().usage_report().unwrap();
    assert_eq!(periods(&third.report), (0, vec![]));
    assert_eq!(third.report.sequence, 3);
}

/// The records of the vendor's online service (license keys, accounts,
/// trials) are kept as given across reopening, replaced by kind and key,
/// and forgotten when deleted; a transaction that refreshes sees another
/// writer's.
pub fn books_records_survive_reopening<S: Store>(open: impl Fn() -> S) {
    use entitle::store::BooksRecord;
    let store = open();
    let mut txn = store.begin().unwrap();
    txn.write(&[
        Change::PutBooksRecord(BooksRecord::new("key", "9f86d0", r#"{"license":"lic_1"}"#)),
        Change::PutBooksRecord(BooksRecord::new("trial", "desk-1", "lic_t")),
        Change::PutBooksRecord(BooksRecord::new("trial", "desk-2", "o'brien \\ \u{e9}")),
    ])
    .unwrap();
    let generation = txn.commit().unwrap();
    store.sync(generation).unwrap();
    drop(store);

    let store = open();
    let mut txn = store.begin().unwrap();
    txn.write(&[
        Change::PutBooksRecord(BooksRecord::new("trial", "desk-1", "lic_t2")),
        Change::DeleteBooksRecord {
            kind: "key".into(),
            key: "9f86d0".into(),
        },
    ])
    .unwrap();
    let generation = txn.commit().unwrap();
    store.sync(generation).unwrap();
    drop(store);

    let (_, rows) = open().load().unwrap();
    let mut books = rows.books.clone();
    books.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
    assert_eq!(
        books,
        [
            BooksRecord::new("trial", "desk-1", "lic_t2"),
            BooksRecord::new("trial", "desk-2", "o'brien \\ \u{e9}"),
        ]
    );
}
