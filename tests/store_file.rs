//! The file store against the store contract (`tests/conformance/`), one
//! test per part so that a failure names it. What is particular to SQLite
//! (batches, damage, other processes) is in tests/durability.rs.

mod common;
mod conformance;

use entitle::store::FileStore;
use tempfile::TempDir;

/// A fresh state directory, and how to open it (again).
fn fresh() -> (TempDir, impl Fn() -> FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    (dir, move || FileStore::create(&path).unwrap())
}

#[test]
fn acknowledged_changes_survive_reopening() {
    let (_dir, open) = fresh();
    conformance::acknowledged_changes_survive_reopening(open);
}

#[test]
fn refused_and_abandoned_changes_leave_no_trace() {
    let (_dir, open) = fresh();
    conformance::refused_and_abandoned_changes_leave_no_trace(open);
}

#[test]
fn a_transaction_is_all_or_nothing() {
    let (_dir, open) = fresh();
    conformance::a_transaction_is_all_or_nothing(open);
}

#[test]
fn limits_hold_exactly_across_two_engines() {
    let (_dir, open) = fresh();
    conformance::limits_hold_exactly_across_two_engines(open);
}

#[test]
fn another_engine_sees_a_change_within_a_second() {
    let (_dir, open) = fresh();
    conformance::another_engine_sees_a_change_within_a_second(open);
}

#[test]
fn a_refresh_sees_every_kind_of_change() {
    let (_dir, open) = fresh();
    conformance::a_refresh_sees_every_kind_of_change(open);
}

#[test]
fn the_way_back_survives_reopening() {
    let (_dir, open) = fresh();
    conformance::the_way_back_survives_reopening(open);
}

#[test]
fn a_refresh_keeps_the_signed_facts_another_engine_applied() {
    let (_dir, open) = fresh();
    conformance::a_refresh_keeps_the_signed_facts_another_engine_applied(open);
}

#[test]
fn books_records_survive_reopening() {
    let (_dir, open) = fresh();
    conformance::books_records_survive_reopening(open);
}

#[test]
fn closed_periods_wait_for_a_report_across_reopening() {
    let (_dir, open) = fresh();
    conformance::closed_periods_wait_for_a_report_across_reopening(open);
}
