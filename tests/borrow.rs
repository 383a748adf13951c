//! Borrowed seats (docs/semantics.md#borrowing): a borrow holds its seat
//! until it ends, whatever the client asks, and a borrowed token held
//! offline is judged by the engine's clock guard, so that neither an early
//! check-in nor a clock set back makes more seats than the pool has.

mod common;

use common::*;
use entitle::token::{LeaseToken, SigningKey};
use entitle::{Error, LeaseGuard, Reason, Timestamp};
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

/// A server's borrowed token for `lease_1`, from `from` for `secs`.
fn borrowed_token(server: &SigningKey, from: Timestamp, secs: i64) -> String {
    LeaseToken::new(
        "lease_1",
        vec!["lic".into()],
        "laptop-3",
        Some("cad"),
        from,
        from.plus_secs(secs),
        true,
    )
    .sign(server)
    .unwrap()
}

#[test]
fn a_borrowed_token_held_offline_is_clock_tampered_when_the_clock_is_set_back_into_it() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let install = vendor.engine(&clock);
    // The install holds the license the server lent a seat of: the one
    // gate (which the guard answers with) needs both.
    install
        .add_license(&vendor.license(one_borrowable_seat()))
        .unwrap();
    let server = SigningKey::from_seed(&[9; 32]);
    let saved = borrowed_token(&server, t(T0), DAY);

    let seat = LeaseGuard::borrowed(&install, &saved, server.public_key()).unwrap();
    assert!(seat.check().allowed());
    // Set back within the tolerance (10 minutes): still fine.
    clock.advance(3600);
    install.refresh().unwrap();
    clock.advance(-599);
    assert!(seat.check().allowed());

    // Two days on, the install has seen the time: the borrow is over.
    clock.set(t(T0).plus_secs(2 * DAY));
    install.refresh().unwrap(); // persists the latest time seen
    assert_eq!(seat.check().reason(), Reason::LeaseExpired);
    assert_eq!(
        LeaseGuard::borrowed(&install, &saved, server.public_key())
            .unwrap_err()
            .code(),
        "LEASE_EXPIRED"
    );

    // The clock set back into the borrow does not bring it back.
    clock.set(t(T0).plus_secs(DAY / 2));
    assert_eq!(seat.check().reason(), Reason::ClockTampered);
    let again = LeaseGuard::borrowed(&install, &saved, server.public_key()).unwrap();
    assert_eq!(again.check().reason(), Reason::ClockTampered);
    assert!(!again.renew().allowed());

    // Set right again: the honest answer.
    clock.set(t(T0).plus_secs(2 * DAY));
    assert_eq!(again.check().reason(), Reason::LeaseExpired);
}

#[test]
fn an_engines_own_borrowed_lease_grants_nothing_on_a_clock_set_back() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let engine = vendor.engine(&clock);
    engine
        .add_license(&vendor.license(one_borrowable_seat()))
        .unwrap();
    let cad = engine.feature("cad");
    let seat = engine.lease(None).unwrap();
    let lease = seat.lease().unwrap();
    engine.borrow(&lease.id, DAY).unwrap();
    assert!(cad.check().allowed());

    clock.advance(DAY + 3600);
    engine.refresh().unwrap(); // persists the latest time seen
    assert_eq!(cad.check().reason(), Reason::LeaseExpired);
    // Back into the borrow: the gate and the guard both refuse.
    clock.set(t(T0).plus_secs(DAY / 2));
    assert_eq!(cad.check().reason(), Reason::ClockTampered);
    assert_eq!(engine.check_feature("cad").reason(), Reason::Ok);
    assert_eq!(seat.check().reason(), Reason::ClockTampered);
}
