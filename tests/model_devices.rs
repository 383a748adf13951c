//! A model-based property test of the moving parts: device activations and
//! transfers, floating leases (license and feature pools, node-locked
//! concurrency), borrowing and metered consumption, with the clock moving
//! forward and back. The reference model below is written from docs/semantics.md
//! and recomputes everything from scratch; the engine must agree with it on
//! every outcome and keep the invariants at every step.
//!
//! Cases: 256 by default; CI runs `PROPTEST_CASES=10000`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use entitle::device::Device;
use entitle::{Engine, ManualClock, Timestamp};
use proptest::prelude::*;
use serde_json::json;

const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z, a Thursday
const DAY: i64 = 86_400;
const L1_END: i64 = BASE + 2 * DAY + 3600;
const TOLERANCE: i64 = 600;

#[derive(Debug, Clone)]
enum Op {
    AddL2,
    RemoveL2,
    Activate(u8),
    Deactivate(u8),
    Checkout(u8, bool),
    Heartbeat(u8),
    Checkin(u8),
    Borrow(u8, i64),
    Consume(u64),
    Advance(i64),
    Rollback(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::AddL2),
        1 => Just(Op::RemoveL2),
        3 => (0u8..4).prop_map(Op::Activate),
        1 => (0u8..4).prop_map(Op::Deactivate),
        // Client 4 is the engine itself (its own client id, on device 0).
        5 => (0u8..5, any::<bool>()).prop_map(|(c, f)| Op::Checkout(c, f)),
        3 => (0u8..6).prop_map(Op::Heartbeat),
        2 => (0u8..6).prop_map(Op::Checkin),
        2 => (0u8..6, prop_oneof![Just(0i64), 1i64..400]).prop_map(|(l, s)| Op::Borrow(l, s)),
        4 => (1u64..7).prop_map(Op::Consume),
        5 => prop_oneof![0i64..90, Just(DAY / 2), Just(DAY)].prop_map(Op::Advance),
        1 => prop_oneof![1i64..TOLERANCE, TOLERANCE + 1..3 * TOLERANCE].prop_map(Op::Rollback),
    ]
}

#[derive(Debug, Clone)]
struct Lease {
    client: u8,
    render: bool,
    expires: i64,
    /// Borrowed once: its seat is held until it ends (docs/semantics.md#borrowing).
    borrowed: bool,
}

/// The reference model: plain collections, rules restated from docs/semantics.md.
#[derive(Debug, Default)]
struct Model {
    now: i64,
    latest_seen: i64,
    l2: bool,
    devices: BTreeSet<u8>,
    transfers: u32,
    leases: BTreeMap<String, Lease>,
    /// (license, day or 0) -> units used.
    used: BTreeMap<(u8, i64), u64>,
    /// The latest period charged per license: a clock set back across a
    /// boundary keeps charging it.
    last_period: BTreeMap<u8, i64>,
}

/// Decision ranking: the engine reports the most helpful reason.
fn rank(code: &str) -> u8 {
    match code {
        "OK" => 100,
        "CLOCK_TAMPERED" => 60,
        "NOT_ACTIVATED" => 55,
        "EXPIRED" => 40,
        _ => 10,
    }
}

/// As `best`, with the gates' lease reasons ranked above every other
/// denial but a tampered clock.
fn gate_best(a: &'static str, b: &'static str) -> &'static str {
    let rank = |code: &str| match code {
        "LEASE_REQUIRED" | "LEASE_EXPIRED" => 58,
        other => rank(other),
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn best(a: &'static str, b: &'static str) -> &'static str {
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

struct Pool {
    seats: u64,
    lease_secs: i64,
    borrow_max: Option<i64>,
}

impl Model {
    fn tampered(&self) -> bool {
        self.now < self.latest_seen - TOLERANCE
    }

    /// L1 (node-locked, time-limited) grants new rights: OK, or why not.
    fn l1(&self) -> &'static str {
        if self.tampered() {
            "CLOCK_TAMPERED"
        } else if self.now >= L1_END {
            "EXPIRED"
        } else {
            "OK"
        }
    }

    fn pool(&self, client: u8, render: bool) -> Result<Pool, &'static str> {
        if render {
            // Only L2 has a `render` pool; L1 does not grant `render`. The
            // pool lends by its own block (L2's license-level pool does not).
            return if self.l2 {
                Ok(Pool {
                    seats: 1,
                    lease_secs: 45,
                    borrow_max: Some(120),
                })
            } else {
                Err("NOT_LICENSED")
            };
        }
        let mut pool = Pool {
            seats: 0,
            lease_secs: i64::MAX,
            borrow_max: None,
        };
        let mut reason = "NOT_LICENSED";
        match self.l1() {
            "OK" if self.devices.contains(&device_of(client)) => {
                pool.seats += 2;
                pool.lease_secs = 60;
                pool.borrow_max = Some(300);
                reason = "OK";
            }
            "OK" => reason = best(reason, "NOT_ACTIVATED"),
            other => reason = best(reason, other),
        }
        if self.l2 {
            pool.seats += 1;
            pool.lease_secs = pool.lease_secs.min(30);
            reason = "OK";
        }
        if reason == "OK" {
            Ok(pool)
        } else {
            Err(reason)
        }
    }

    fn live(&self, render: bool) -> u64 {
        self.leases
            .values()
            .filter(|l| l.render == render && l.expires > self.now)
            .count() as u64
    }

    /// What the engine itself (client 4) holds in a pool.
    fn held(&self, render: bool) -> &'static str {
        let mine = self
            .leases
            .values()
            .filter(|l| l.client == 4 && l.render == render);
        let mut held = "NONE";
        for lease in mine {
            if lease.expires > self.now {
                return "LIVE";
            }
            // Forgotten a day after its end, reclaimed or not.
            if lease.expires + DAY > self.now {
                held = "LAPSED";
            }
        }
        held
    }

    /// A gate's answer for a grant through a floating pool that would
    /// otherwise allow.
    fn leased(&self, render: bool) -> &'static str {
        match self.held(render) {
            // A lease lives until an instant: a clock set back would
            // stretch it (docs/semantics.md#what-stored-state-is-trusted).
            "LIVE" if self.tampered() => "CLOCK_TAMPERED",
            "LIVE" => "OK",
            "LAPSED" => "LEASE_EXPIRED",
            _ => "LEASE_REQUIRED",
        }
    }

    /// The metered candidates for `api` now, first charged first:
    /// (license, period, max, overage).
    fn api_candidates(&self) -> (&'static str, Vec<(u8, i64, u64, u64)>) {
        let day = (self.now - BASE)
            .div_euclid(DAY)
            .max(self.last_period.get(&1).copied().unwrap_or(i64::MIN));
        let mut candidates = Vec::new();
        // L1 is node-locked: on this engine's device, dev0.
        let l1 = match self.l1() {
            "OK" if !self.devices.contains(&0) => "NOT_ACTIVATED",
            other => other,
        };
        if l1 == "OK" {
            candidates.push((1, day, 10, 3));
        }
        if self.l2 {
            candidates.push((2, 0, 5, 0));
        }
        (l1, candidates)
    }

    /// What the `render` gate says: only L2 grants it, through its own
    /// pool.
    fn render_gate(&self) -> &'static str {
        if self.l2 {
            self.leased(true)
        } else {
            "NOT_LICENSED"
        }
    }

    /// What the `api` gate says: granted by L1 and L2, both through their
    /// license-level pools, and metered.
    fn api_gate(&self) -> &'static str {
        let (l1, candidates) = self.api_candidates();
        let l1 = if l1 == "OK" { self.leased(false) } else { l1 };
        let l2 = if self.l2 {
            self.leased(false)
        } else {
            "NOT_LICENSED"
        };
        let reason = gate_best(l1, l2);
        if reason != "OK" || candidates.is_empty() {
            return reason;
        }
        let fits = |&(l, p, max, over): &(u8, i64, u64, u64), with_overage: bool| {
            let used = self.used.get(&(l, p)).copied().unwrap_or(0);
            used < max + if with_overage { over } else { 0 }
        };
        if candidates.iter().any(|c| fits(c, false)) {
            "OK"
        } else if candidates.iter().any(|c| fits(c, true)) {
            "OVERAGE"
        } else {
            "CONSUMPTION_LIMIT"
        }
    }

    /// A lapsed lease holds no seat; it is forgotten a day after its end
    /// (until then a heartbeat hears `LEASE_EXPIRED`).
    fn reclaim(&mut self) {
        let now = self.now;
        self.leases.retain(|_, l| l.expires + DAY > now);
    }
}

/// The device a client is: client 4, the engine itself, is on dev0.
fn device_of(client: u8) -> u8 {
    if client == 4 {
        0
    } else {
        client
    }
}

fn device(n: u8) -> Device {
    Device {
        fingerprint: format!("dev{n}"),
        hostname: "h".into(),
        vm: false,
    }
}

fn code<T>(result: &Result<T, entitle::Error>) -> &'static str {
    match result {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let vendor = Vendor::new();
    let clock = ManualClock::new(Timestamp::from_unix(BASE));
    // The engine is device 0: node-locked rights (L1's) hold for it only
    // while dev0 is activated.
    let engine: Engine = vendor
        .builder(&clock)
        .in_memory()
        .fingerprint("dev0")
        .build()
        .unwrap();
    let l1 = vendor.license(
        json!({"id": "l1", "expires_at": Timestamp::from_unix(L1_END).to_string(),
        "activations": {"max": 2, "max_transfers": 2},
        "floating": {"seats": 2, "lease_secs": 60, "borrow_max_secs": 300},
        "features": [{"code": "api", "consumption": {"max": 10, "overage": 3, "reset": "daily"}}]}),
    );
    let l2 = vendor.license(
        json!({"id": "l2", "floating": {"seats": 1, "lease_secs": 30},
        "features": [{"code": "api", "consumption": {"max": 5}},
                     {"code": "render", "floating": {"seats": 1, "lease_secs": 45, "borrow_max_secs": 120}}]}),
    );
    // Gates, taken before any license: their words follow every change.
    let api = engine.feature("api");
    let render = engine.feature("render");
    let check_gates = |m: &Model, op: &str| -> Result<(), TestCaseError> {
        prop_assert_eq!(
            api.check().reason().code(),
            m.api_gate(),
            "api gate after {}",
            op
        );
        prop_assert_eq!(
            render.check().reason().code(),
            m.render_gate(),
            "render gate after {}",
            op
        );
        Ok(())
    };
    engine.add_license(&l1).unwrap();
    let mut m = Model {
        now: BASE,
        latest_seen: BASE,
        ..Model::default()
    };
    let mut lease_ids: Vec<String> = Vec::new();
    let pick = |ids: &Vec<String>, i: u8| {
        ids.get(i as usize)
            .cloned()
            .unwrap_or_else(|| "lease_none".into())
    };

    for op in ops {
        check_gates(&m, "the previous step")?;
        let expected: &'static str;
        let actual: &'static str;
        match op.clone() {
            Op::AddL2 => {
                actual = code(&engine.add_license(&l2));
                expected = "OK";
                m.l2 = true;
            }
            Op::RemoveL2 => {
                actual = code(&engine.remove_license("l2", false));
                expected = if m.l2 { "OK" } else { "LICENSE_NOT_FOUND" };
                m.l2 = false;
            }
            Op::Activate(d) => {
                actual = code(&engine.activate(&device(d)));
                expected = match m.l1() {
                    "OK" if m.devices.contains(&d) => "OK",
                    "OK" if m.devices.len() >= 2 => "ACTIVATION_LIMIT",
                    "OK" => {
                        m.devices.insert(d);
                        "OK"
                    }
                    other => other,
                };
            }
            Op::Deactivate(d) => {
                actual = code(&engine.deactivate(&format!("dev{d}")));
                expected = if !m.devices.contains(&d) {
                    "NOT_ACTIVATED"
                } else if m.transfers >= 2 {
                    "TRANSFER_LIMIT"
                } else {
                    m.devices.remove(&d);
                    m.transfers += 1;
                    "OK"
                };
            }
            Op::Checkout(c, render) => {
                let client = match c {
                    4 => engine.client_id().to_owned(),
                    c => format!("dev{c}"),
                };
                let result = engine.checkout(&client, render.then_some("render"));
                actual = code(&result);
                expected = match m.pool(c, render) {
                    Err(reason) => reason,
                    Ok(pool) => {
                        let now = m.now;
                        let own = m
                            .leases
                            .iter()
                            .find(|(_, l)| l.client == c && l.render == render && l.expires > now)
                            .map(|(id, _)| id.clone());
                        match own {
                            Some(id) => {
                                m.reclaim();
                                // One seat per client and pool: a second live
                                // lease of the client (a lapsed one live again
                                // after the clock went back) goes.
                                m.leases.retain(|other, l| {
                                    *other == id
                                        || !(l.client == c && l.render == render && l.expires > now)
                                });
                                let lease = m.leases.get_mut(&id).unwrap();
                                lease.expires = lease.expires.max(now + pool.lease_secs);
                                prop_assert_eq!(
                                    result.as_ref().map(|l| l.id.clone()).ok(),
                                    Some(id)
                                );
                                "OK"
                            }
                            None if m.live(render) < pool.seats => {
                                m.reclaim();
                                if let Ok(lease) = &result {
                                    m.leases.insert(
                                        lease.id.clone(),
                                        Lease {
                                            client: c,
                                            render,
                                            expires: now + pool.lease_secs,
                                            borrowed: false,
                                        },
                                    );
                                    lease_ids.push(lease.id.clone());
                                }
                                prop_assert!(m.live(render) <= pool.seats, "pool overrun");
                                "OK"
                            }
                            None => "FLOATING_EXHAUSTED",
                        }
                    }
                };
                if let Ok(lease) = &result {
                    prop_assert_eq!(lease.expires_at.unix(), m.leases[&lease.id].expires);
                }
            }
            Op::Heartbeat(i) => {
                let id = pick(&lease_ids, i);
                actual = code(&engine.heartbeat(&id));
                expected = match m.leases.get(&id).cloned() {
                    None => "LEASE_NOT_FOUND",
                    Some(l) if l.expires <= m.now => "LEASE_EXPIRED",
                    Some(l) => match m.pool(l.client, l.render) {
                        Err(reason) => reason,
                        Ok(pool) => {
                            m.reclaim();
                            let now = m.now;
                            let lease = m.leases.get_mut(&id).unwrap();
                            lease.expires = lease.expires.max(now + pool.lease_secs);
                            "OK"
                        }
                    },
                };
            }
            Op::Checkin(i) => {
                let id = pick(&lease_ids, i);
                actual = code(&engine.checkin(&id));
                expected = match m.leases.get(&id) {
                    // A borrowed seat is held until the borrow ends.
                    Some(l) if l.borrowed && l.expires > m.now => "LEASE_BORROWED",
                    Some(_) => {
                        m.reclaim();
                        m.leases.remove(&id);
                        "OK"
                    }
                    None => "LEASE_NOT_FOUND",
                };
            }
            Op::Borrow(i, secs) => {
                let id = pick(&lease_ids, i);
                actual = code(&engine.borrow(&id, secs));
                expected = if secs <= 0 {
                    "INVALID_ARGUMENT"
                } else {
                    match m.leases.get(&id).cloned() {
                        None => "LEASE_NOT_FOUND",
                        Some(l) if l.expires <= m.now => "LEASE_EXPIRED",
                        Some(l) => match m.pool(l.client, l.render) {
                            Err(reason) => reason,
                            Ok(Pool {
                                borrow_max: None, ..
                            }) => "BORROW_NOT_ALLOWED",
                            Ok(Pool {
                                borrow_max: Some(max),
                                ..
                            }) if secs > max => "BORROW_TOO_LONG",
                            Ok(_) => {
                                let now = m.now;
                                // A borrow never shortens a lease.
                                let lease = m.leases.get_mut(&id).unwrap();
                                lease.expires = lease.expires.max(now + secs);
                                lease.borrowed = true;
                                "OK"
                            }
                        },
                    }
                };
            }
            Op::Consume(amount) => {
                let result = engine.consume("api", amount);
                actual = code(&result);
                // Candidates, first to expire first: L1 (daily, 10 + 3), then L2 (5).
                let (l1, candidates) = m.api_candidates();
                expected = if candidates.is_empty() {
                    l1
                } else {
                    let fits = |&(l, p, max, over): &(u8, i64, u64, u64), with_overage: bool| {
                        let used = m.used.get(&(l, p)).copied().unwrap_or(0);
                        used + amount <= max + if with_overage { over } else { 0 }
                    };
                    let chosen = candidates
                        .iter()
                        .find(|c| fits(c, false))
                        .or_else(|| candidates.iter().find(|c| fits(c, true)));
                    match chosen {
                        None => "CONSUMPTION_LIMIT",
                        Some(&(l, p, max, over)) => {
                            m.last_period.insert(l, p);
                            let used = m.used.entry((l, p)).or_insert(0);
                            *used += amount;
                            prop_assert!(*used <= max + over, "consumption beyond max + overage");
                            if let Ok(c) = &result {
                                prop_assert_eq!(c.used, *used);
                                prop_assert_eq!(
                                    c.license_id.as_str(),
                                    if l == 1 { "l1" } else { "l2" }
                                );
                            }
                            "OK"
                        }
                    }
                };
            }
            Op::Advance(secs) => {
                m.now += secs;
                clock.set(Timestamp::from_unix(m.now));
                continue;
            }
            Op::Rollback(secs) => {
                m.now -= secs;
                clock.set(Timestamp::from_unix(m.now));
                continue;
            }
        }
        prop_assert_eq!(
            actual,
            expected,
            "{:?} at +{}s (latest seen +{}s)",
            op,
            m.now - BASE,
            m.latest_seen - BASE
        );
        if actual == "OK" {
            // A mutation that succeeded persisted the latest time seen.
            m.latest_seen = m.latest_seen.max(m.now);
        }
        // Invariants, from the engine's own reports.
        let leases = engine.leases();
        prop_assert!(
            leases.iter().all(|l| l.expires_at.unix() > m.now),
            "a lease outlived its end"
        );
        prop_assert!(m.transfers <= 2);
        let live: BTreeSet<_> = leases.iter().map(|l| l.id.clone()).collect();
        let model_live: BTreeSet<_> = m
            .leases
            .iter()
            .filter(|(_, l)| l.expires > m.now)
            .map(|(id, _)| id.clone())
            .collect();
        prop_assert_eq!(live, model_live);
        let active: BTreeSet<String> = engine
            .activations()
            .into_iter()
            .map(|a| a.fingerprint)
            .collect();
        let model_active: BTreeSet<String> = m.devices.iter().map(|d| format!("dev{d}")).collect();
        prop_assert_eq!(active, model_active);
    }
    check_gates(&m, "the last step")?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
