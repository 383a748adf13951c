//! Model-based test of floating seats with linger: random checkouts,
//! check-ins and clock steps by a few clients against the engine and
//! against a small reference model written from docs/semantics.md#floating-seats-and-leases and docs/http.md
//! (sharing no code with the crate's policy). After every step: no seat is
//! given twice (live seats never exceed the pool), every client holds
//! what the model says, and a lingering seat returns only to its client.

use std::collections::BTreeMap;

use entitle::license::{Feature, Floating, License};
use entitle::token::SigningKey;
use entitle::{Engine, ManualClock, Timestamp};
use proptest::prelude::*;

const SEATS: usize = 2;
const LEASE_SECS: i64 = 30;
const LINGER_SECS: i64 = 10;
const CLIENTS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    Checkout(usize),
    Checkin(usize),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..CLIENTS.len()).prop_map(Op::Checkout),
        2 => (0..CLIENTS.len()).prop_map(Op::Checkin),
        2 => (0i64..25).prop_map(Op::Advance),
    ]
}

/// What the model knows of a client's seat.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seat {
    expires_at: i64,
    lingering: bool,
}

#[derive(Default)]
struct Model {
    now: i64,
    seats: BTreeMap<usize, Seat>,
}

impl Model {
    fn live(&self) -> impl Iterator<Item = (&usize, &Seat)> {
        self.seats.iter().filter(|(_, s)| s.expires_at > self.now)
    }

    /// Whether `client`'s checkout succeeds, and the model after it.
    fn checkout(&mut self, client: usize) -> bool {
        let now = self.now;
        let live = self.live().count();
        match self.seats.get_mut(&client) {
            Some(seat) if seat.expires_at > now => {
                if seat.lingering {
                    *seat = Seat {
                        expires_at: now + LEASE_SECS,
                        lingering: false,
                    };
                } else {
                    seat.expires_at = seat.expires_at.max(now + LEASE_SECS);
                }
                true
            }
            _ if live >= SEATS => false,
            _ => {
                self.seats.insert(
                    client,
                    Seat {
                        expires_at: now + LEASE_SECS,
                        lingering: false,
                    },
                );
                true
            }
        }
    }

    /// A check-in of `client`'s (non-lingering) lease.
    fn checkin(&mut self, client: usize) {
        let now = self.now;
        if let Some(seat) = self.seats.get_mut(&client) {
            if seat.expires_at > now {
                *seat = Seat {
                    expires_at: now + LINGER_SECS,
                    lingering: true,
                };
            } else {
                self.seats.remove(&client);
            }
        }
    }
}

fn engine() -> (Engine, ManualClock, Timestamp) {
    let vendor = SigningKey::from_seed(&[5; 32]);
    let t0 = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    let clock = ManualClock::new(t0);
    let engine = Engine::builder("acme")
        .in_memory()
        .trust(vendor.public_key().clone())
        .clock(clock.clone())
        .fingerprint("host")
        .build()
        .unwrap();
    let license = License::builder("acme")
        .id("lic_1")
        .issued_at(t0)
        .feature(Feature::new("cad"))
        .floating(Floating::new(SEATS as u32, LEASE_SECS).with_linger_secs(LINGER_SECS))
        .sign(&vendor)
        .unwrap();
    engine.add_license(&license).unwrap();
    (engine, clock, t0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn floating_seats_with_linger_follow_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let (engine, clock, t0) = engine();
        let mut model = Model::default();
        // The engine's lease id of each client's current, non-lingering lease.
        let mut ids: BTreeMap<usize, String> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Checkout(c) => {
                    let expected = model.checkout(c);
                    let got = engine.checkout(CLIENTS[c], None);
                    prop_assert_eq!(got.is_ok(), expected, "checkout by {}: {:?}", CLIENTS[c], got);
                    match got {
                        Ok(lease) => { ids.insert(c, lease.id); }
                        Err(e) => prop_assert_eq!(e.code(), "FLOATING_EXHAUSTED"),
                    }
                }
                Op::Checkin(c) => {
                    let Some(id) = ids.remove(&c) else { continue };
                    model.checkin(c);
                    engine.checkin(&id).unwrap();
                }
                Op::Advance(secs) => {
                    model.now += secs;
                    clock.advance(secs);
                }
            }
            // Compare what every client holds now.
            let leases = engine.leases();
            prop_assert!(leases.len() <= SEATS, "a seat given twice: {:?}", leases);
            let mut held: BTreeMap<usize, Seat> = BTreeMap::new();
            for lease in &leases {
                let c = CLIENTS.iter().position(|x| *x == lease.client).unwrap();
                let seat = Seat {
                    expires_at: lease.expires_at.unix() - t0.unix(),
                    lingering: lease.id.starts_with("linger_"),
                };
                prop_assert!(held.insert(c, seat).is_none(), "two seats for one client: {:?}", leases);
            }
            let expected: BTreeMap<usize, Seat> = model.live().map(|(c, s)| (*c, *s)).collect();
            prop_assert_eq!(held, expected);
        }
    }
}
