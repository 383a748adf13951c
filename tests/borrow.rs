//! Borrowed seats (DESIGN sections 4 and 11.1): a borrow holds its seat
//! until it ends, whatever the client asks, so that an early check-in
//! makes no more seats than the pool has.

mod common;

use common::*;
use entitle::{Error, Reason};
use serde_json::json;

fn one_borrowable_seat() -> serde_json::Value {
    json!({"id": "lic", "features": [{"code": "cad"}],
        "floating": {"seats": 1, "lease_secs": 300, "borrow_max_secs": 7 * DAY}})
}

#[test]
fn checking_in_a_borrowed_lease_early_is_refused_and_its_seat_stays_taken() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(one_borrowable_seat()))
        .unwrap();
    let lease = engine.checkout("laptop-1", None).unwrap();
    let borrowed = engine.borrow(&lease.id, DAY).unwrap();
    let ends = t(T0).plus_secs(DAY);
    assert_eq!(borrowed.borrowed_until, Some(ends));

    // The attack: check the borrowed lease in, and borrow the freed seat
    // again for another laptop. Neither a check-in nor a return frees it.
    for refused in [engine.checkin(&lease.id), engine.return_borrow(&lease.id)] {
        match refused {
            Err(Error::Denied {
                reason, retry_at, ..
            }) => {
                assert_eq!(reason, Reason::LeaseBorrowed);
                assert_eq!(retry_at, Some(ends));
            }
            other => panic!("a borrowed lease was checked in early: {other:?}"),
        }
    }
    assert_eq!(engine.leases().len(), 1);
    let err = engine.checkout("laptop-2", None).unwrap_err();
    assert_eq!(err.code(), "FLOATING_EXHAUSTED", "{err}");

    // A heartbeat near the end renews the lease past the borrow; the
    // lease stays borrowed (a server signs its token `borrowed: true`
    // until the new end), so its seat is held until that end.
    clock.advance(DAY - 1);
    let renewed = engine.heartbeat(&lease.id).unwrap();
    let new_end = t(T0).plus_secs(DAY - 1 + 300);
    assert_eq!(renewed.expires_at, new_end);
    assert_eq!(
        engine.checkin(&lease.id).unwrap_err().code(),
        "LEASE_BORROWED"
    );
    // At its end the seat frees itself, and the ended lease can be given
    // back.
    clock.set(new_end);
    engine.checkout("laptop-2", None).unwrap();
    engine.return_borrow(&lease.id).unwrap();
}

#[test]
fn a_lease_that_is_not_borrowed_is_still_checked_in_at_once() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(one_borrowable_seat()))
        .unwrap();
    let lease = engine.checkout("desk-1", None).unwrap();
    engine.checkin(&lease.id).unwrap();
    engine.checkout("desk-2", None).unwrap();
}
