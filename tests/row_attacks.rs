//! Every row the state holds, attacked (docs/semantics.md#what-stored-state-is-trusted): a property
//! test that builds a state by random legitimate steps, then edits one
//! table of it as an attacker with `sqlite3` or `psql` would (deleting
//! rows, setting any column of any row to another value, inserting a copy
//! of a row with one column changed, or rolling the whole table back to an
//! earlier snapshot), opens it again and compares what the engine grants
//! with what it granted before the edit and with what the vendor's signed
//! tokens give.
//!
//! The tables and columns are read from the database itself, so a table
//! added later is attacked too without a line here. The rule the test
//! holds the stores to: a stored fact is signed and re-verified, or
//! re-derived on open, or a restriction whose absence or edit fails
//! closed; the only gains an edit of one table may bring are those the
//! README's threat model names for that table ([`allowed_gains`]).
//! Besides, whatever the edit:
//! - **sound**: every feature allowed is given by a token the vendor
//!   signed, on that token's own terms (its window, a trial never past the
//!   latest time seen plus its length, a certificate for this device on
//!   this machine that has not ended and was not given up with a receipt);
//! - **durable**: a consume acknowledged after the edit is stored (a
//!   generation edited to the largest number once acknowledged consumes
//!   it never stored).
//!
//! SQLite at `$PROPTEST_CASES` cases (default 64), PostgreSQL (feature
//! `postgres`) at `$ENTITLE_PG_PROPTEST_CASES` (default 16); CI runs
//! thousands of the first and hundreds of the second.

#[cfg(feature = "postgres")]
mod pg_common;

use std::collections::BTreeMap;
use std::path::Path;

use entitle::device::Device;
use entitle::license::LicenseStatus;
use entitle::store::FileStore;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Clock, Engine, EngineBuilder, ManualClock, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const T0: &str = "2026-01-01T00:00:00Z";
const DAY: i64 = 86_400;
/// The machine the engine runs on, and the name of its device there.
const MACHINE: &str = "machine-here";
const DEVICE: &str = "desk-1";
const TRIAL_SECS: i64 = 2 * DAY;
const FEATURES: [&str; 6] = ["base", "cad", "site", "trial_only", "api", "gone"];
/// When rights are compared, after the last step: then, within the
/// trial's length and a short certificate, and well past both.
const LOOKS: [i64; 3] = [0, 3 * DAY, 40 * DAY];

fn t0() -> Timestamp {
    Timestamp::parse(T0).unwrap()
}

// ---- the vendor's signed tokens ------------------------------------------

/// A machine certificate: (fingerprint, machine, end in days, bound to
/// another install, token).
type Certificate = (
    &'static str,
    Option<&'static str>,
    Option<i64>,
    bool,
    String,
);

/// Every token the attacker holds, all signed by the vendor.
struct Pool {
    key: SigningKey,
    /// (id, serial, token)
    licenses: Vec<(&'static str, u64, String)>,
    certificates: Vec<Certificate>,
    revocations: String,
}

impl Pool {
    fn new() -> Self {
        let key = SigningKey::from_seed(&[7; 32]);
        let other_install = SigningKey::from_seed(&[8; 32]).public_key().to_base64url();
        let at = |days: i64| t0().plus_secs(days * DAY).to_string();
        let license = |doc: Json| sign(&doc, &key, TokenType::License).unwrap();
        let base = |serial: u64, enabled: bool| {
            license(
                json!({"v": 1, "id": "base", "product": "acme", "issued_at": at(serial as i64),
                "serial": serial, "enabled": enabled,
                "seats": {"max": 1, "hard_max": 2},
                "floating": {"seats": 1, "lease_secs": 3600, "borrow_max_secs": 3 * DAY},
                "features": [{"code": "base"}]}),
            )
        };
        let licenses = vec![
            ("base", 1, base(1, true)),
            ("base", 2, base(2, false)),
            (
                "vend",
                0,
                license(
                    json!({"v": 1, "id": "vend", "product": "acme", "issued_at": T0,
                    "activations": {"max": 1, "counted_by": "vendor", "max_transfers": 3},
                    "features": [{"code": "cad"}]}),
                ),
            ),
            (
                "inst",
                0,
                license(
                    json!({"v": 1, "id": "inst", "product": "acme", "issued_at": T0,
                    "activations": {"max": 1, "max_transfers": 1},
                    "features": [{"code": "site"}]}),
                ),
            ),
            (
                "trial",
                0,
                license(
                    json!({"v": 1, "id": "trial", "product": "acme", "issued_at": T0,
                    "trial": true, "trial_secs": TRIAL_SECS,
                    "features": [{"code": "trial_only"}]}),
                ),
            ),
            (
                "meter",
                0,
                license(
                    json!({"v": 1, "id": "meter", "product": "acme", "issued_at": T0,
                    "features": [{"code": "api",
                                  "consumption": {"max": 10, "reset": "monthly"}}]}),
                ),
            ),
            (
                "gone",
                0,
                license(
                    json!({"v": 1, "id": "gone", "product": "acme", "issued_at": T0,
                    "expires_at": at(60), "features": [{"code": "gone"}]}),
                ),
            ),
        ];
        let certificate = |fingerprint: &str, machine: Option<&str>, days: Option<i64>, other| {
            let mut doc = json!({"v": 1, "license_id": "vend", "fingerprint": fingerprint,
                "issued_at": T0});
            if let Some(machine) = machine {
                doc["machine"] = json!(machine);
            }
            if let Some(days) = days {
                doc["expires_at"] = json!(at(days));
            }
            if other {
                doc["install_key"] = json!(other_install);
            }
            sign(&doc, &key, TokenType::Machine).unwrap()
        };
        let mut certificates = Vec::new();
        // The one certificate that activates this device here ends on day
        // 10: past it, `cad` is granted by nothing the attacker holds.
        for (fingerprint, machine, days, other) in [
            (DEVICE, Some(MACHINE), Some(10), false),
            // The same device, activated on another machine (a copy).
            (DEVICE, Some("machine-other"), None, false),
            ("other-device", None, None, false),
            // This device and machine, for another install's key.
            (DEVICE, Some(MACHINE), None, true),
        ] {
            let token = certificate(fingerprint, machine, days, other);
            certificates.push((fingerprint, machine, days, other, token));
        }
        let list = json!({"v": 1, "product": "acme", "issued_at": T0, "ids": ["gone"]});
        let revocations = sign(&list, &key, TokenType::Revocations).unwrap();
        Pool {
            key,
            licenses,
            certificates,
            revocations,
        }
    }

    /// Every token the attacker holds, by kind: licenses, certificates,
    /// revocation lists.
    fn tokens(&self) -> Vec<Vec<String>> {
        vec![
            self.licenses.iter().map(|l| l.2.clone()).collect(),
            self.certificates.iter().map(|c| c.4.clone()).collect(),
            vec![self.revocations.clone()],
        ]
    }

    /// Other text an attacker may write into any column: the names in
    /// play, and a few numbers spelled out.
    fn texts(&self) -> Vec<String> {
        let mut texts = Vec::new();
        for name in [
            DEVICE,
            MACHINE,
            "machine-other",
            "other-device",
            "base",
            "vend",
            "trial",
            "gone",
            "0",
            "-1",
            "9223372036854775807",
            "",
        ] {
            texts.push(name.to_owned());
        }
        texts
    }
}

fn pool() -> &'static Pool {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    POOL.get_or_init(Pool::new)
}

// ---- legitimate steps ------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    AddLicense(usize),
    ApplyCertificate(usize),
    Revoke,
    Activate,
    Consume(u64),
    Checkout(u8),
    Borrow,
    AddUser(u8),
    DeactivateWithReceipt,
    Remove(usize, bool),
    Advance(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..7usize).prop_map(Step::AddLicense),
        2 => (0..4usize).prop_map(Step::ApplyCertificate),
        1 => Just(Step::Revoke),
        2 => Just(Step::Activate),
        2 => (1..6u64).prop_map(Step::Consume),
        2 => (0..3u8).prop_map(Step::Checkout),
        1 => Just(Step::Borrow),
        2 => (0..4u8).prop_map(Step::AddUser),
        2 => Just(Step::DeactivateWithReceipt),
        1 => ((0..7usize), any::<bool>()).prop_map(|(i, hard)| Step::Remove(i, hard)),
        2 => (1..72i64).prop_map(|hours| Step::Advance(hours * 3600)),
    ]
}

/// What the steps did that bounds what the signed tokens give.
#[derive(Debug, Default)]
struct History {
    /// Ids hard-removed or revoked here: they never grant again.
    buried: Vec<&'static str>,
    /// The highest serial of `base` added.
    base_serial: Option<u64>,
    /// When the device gave up its certificates of `vend` with a receipt.
    given_up_at: Option<i64>,
}

/// Runs `steps`, and after each hands the tables as they are to `seen`.
fn run_steps(
    engine: &Engine,
    clock: &ManualClock,
    steps: &[Step],
    history: &mut History,
    seen: &mut dyn FnMut(),
) {
    let pool = pool();
    let mut last_lease = None;
    for step in steps {
        seen();
        match step {
            Step::AddLicense(i) => {
                let (id, serial, token) = &pool.licenses[*i];
                if engine.add_license(token).is_ok() && *id == "base" {
                    history.base_serial = history.base_serial.max(Some(*serial));
                }
            }
            Step::ApplyCertificate(i) => {
                let _ = engine.apply(&pool.certificates[*i].4);
            }
            Step::Revoke => {
                if engine.apply(&pool.revocations).is_ok() {
                    history.buried.push("gone");
                }
            }
            Step::Activate => {
                let _ = engine.activate(&Device::new(DEVICE));
            }
            Step::Consume(n) => {
                let _ = engine.consume("api", *n);
            }
            Step::Checkout(client) => {
                if let Ok(lease) = engine.checkout(&format!("ws-{client}"), None) {
                    last_lease = Some(lease.id);
                }
            }
            Step::Borrow => {
                if let Some(id) = &last_lease {
                    let _ = engine.borrow(id, DAY);
                }
            }
            Step::AddUser(n) => {
                let _ = engine.add_user(&format!("user-{n}"), "standard");
            }
            Step::DeactivateWithReceipt => {
                if engine.deactivate_with_receipt(DEVICE, Some("vend")).is_ok() {
                    history.given_up_at = Some(engine.now().unix());
                }
            }
            Step::Remove(i, hard) => {
                let id = pool.licenses[*i].0;
                if engine.remove_license(id, *hard).is_ok() && *hard {
                    history.buried.push(id);
                }
            }
            Step::Advance(secs) => clock.set(clock.now().plus_secs(*secs)),
        }
    }
    seen();
}

// ---- the rights an install has ----------------------------------------------

/// A kind of right, as the threat model names what editing a table gains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gain {
    /// Named users: seat room.
    Seats,
    /// Metered units: room left this period.
    Meter,
    /// Floating seats free.
    Floating,
    /// A node-locked license the install counts itself.
    SelfCounted,
    /// Deactivations left.
    Transfers,
    /// A trial's window (restarted from a re-add, never endless).
    Trial,
}

/// What an engine grants at one look.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rights {
    features: [bool; FEATURES.len()],
    can_add_user: bool,
    seat_room: i64,
    meter_room: i64,
    floating_room: i64,
    transfers_left: i64,
}

/// The license that grants each feature.
fn license_of(feature: &str) -> &'static str {
    match feature {
        "cad" => "vend",
        "site" => "inst",
        "trial_only" => "trial",
        "api" => "meter",
        "gone" => "gone",
        _ => "base",
    }
}

/// Which right each feature is, for [`allowed_gains`].
fn feature_gain(feature: &str) -> Option<Gain> {
    match feature {
        "site" => Some(Gain::SelfCounted),
        "trial_only" => Some(Gain::Trial),
        "api" => Some(Gain::Meter),
        _ => None,
    }
}

fn rights(engine: &Engine, clock: &ManualClock, end: Timestamp) -> Vec<Rights> {
    LOOKS
        .iter()
        .map(|&offset| {
            clock.set(end.plus_secs(offset));
            let status = engine.status();
            // What licenses in force allow (one revoked or suspended still
            // shows its pool and quota, and grants none of them).
            let infos: Vec<_> = engine
                .license_infos()
                .into_iter()
                .filter(|l| matches!(l.status, LicenseStatus::Active | LicenseStatus::Grace))
                .collect();
            let meter_room = infos
                .iter()
                .flat_map(|l| &l.features)
                .filter_map(|f| f.consumption.as_ref())
                .map(|c| {
                    let limit = c.max.unwrap_or(0) + c.overage.unwrap_or(0);
                    limit as i64 - c.used as i64
                })
                .sum();
            let floating_room = infos
                .iter()
                .filter_map(|l| l.floating.as_ref())
                .map(|f| i64::from(f.seats) - f.in_use as i64)
                .sum();
            let transfers_left = infos
                .iter()
                .filter_map(|l| l.activations.as_ref())
                .map(|a| i64::from(a.max_transfers.unwrap_or(0)) - i64::from(a.transfers))
                .sum();
            Rights {
                features: FEATURES.map(|f| engine.check_feature(f).allowed()),
                can_add_user: status.can_add_user.allowed(),
                seat_room: status.hard_seats as i64 - status.active_user_count as i64,
                meter_room,
                floating_room,
                transfers_left,
            }
        })
        .collect()
}

/// What editing `table` may gain, as the README's threat model names it.
fn allowed_gains(table: &str) -> &'static [Gain] {
    match table.trim_start_matches("entitle_") {
        "users" => &[Gain::Seats],
        "counters" => &[Gain::Meter],
        "leases" => &[Gain::Floating],
        "activations" => &[Gain::SelfCounted],
        "transfers" => &[Gain::Transfers],
        "first_use" => &[Gain::Trial],
        // A license row deleted is a license removed, which its holder
        // may do: then only the licenses left limit users (one without
        // `seats` limits none).
        "licenses" => &[Gain::Seats],
        _ => &[],
    }
}

/// Whether some signed token gives `feature` at `at` on its own terms.
fn backs(feature: &str, at: i64, latest_seen: i64, history: &History) -> bool {
    let buried = |id: &str| history.buried.contains(&id);
    match feature {
        "base" => !buried("base") && history.base_serial != Some(2),
        "cad" => {
            !buried("vend")
                && pool()
                    .certificates
                    .iter()
                    .any(|(fingerprint, machine, days, other, _)| {
                        *fingerprint == DEVICE
                            && *machine == Some(MACHINE)
                            && !*other
                            && days.is_none_or(|d| at < t0().unix() + d * DAY)
                            // Given up with a receipt: it was signed at
                            // T0, before.
                            && history.given_up_at.is_none()
                    })
        }
        "site" => !buried("inst"),
        "trial_only" => !buried("trial") && at < latest_seen + TRIAL_SECS,
        "api" => !buried("meter"),
        "gone" => !buried("gone") && at < t0().unix() + 60 * DAY,
        _ => false,
    }
}

// ---- the attacker's edits -----------------------------------------------------

/// A value as a column holds it.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Text(String),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Bool(bool),
}

/// A row: its columns' values, in the table's column order.
type Row = Vec<Val>;

/// A value to write, chosen before the table is known.
#[derive(Debug, Clone)]
enum NewValue {
    Null,
    Int(i64),
    /// The old value moved by this many days (a number), flipped (a
    /// flag), or kept (text).
    Shift(i64),
    /// The same column's value in another row.
    FromRow(usize),
    /// One of the names an attacker knows ([`Pool::texts`]).
    Text(usize),
    /// One of the tokens an attacker holds ([`Pool::tokens`]): in a column
    /// holding a token, one of the same kind (a certificate pasted over a
    /// certificate), elsewhere any.
    Token(usize),
}

impl NewValue {
    fn resolve(&self, old: &Val, column: &[Val], texts: &[String], kinds: &[Vec<String>]) -> Val {
        let all: Vec<String>;
        let tokens = match kinds
            .iter()
            .find(|k| matches!(old, Val::Text(t) if k.contains(t)))
        {
            Some(kind) => kind,
            None => {
                all = kinds.concat();
                &all
            }
        };
        match self {
            NewValue::Null => Val::Null,
            NewValue::Int(n) => match old {
                Val::Bool(_) => Val::Bool(*n != 0),
                Val::Text(_) => Val::Text(n.to_string()),
                _ => Val::Int(*n),
            },
            NewValue::Shift(days) => match old {
                Val::Int(n) => Val::Int(n.saturating_add(days.saturating_mul(DAY))),
                Val::Bool(b) => Val::Bool(!b),
                other => other.clone(),
            },
            NewValue::FromRow(i) if !column.is_empty() => column[i % column.len()].clone(),
            NewValue::FromRow(_) => old.clone(),
            // In a column that holds a token, a name is another token.
            NewValue::Text(i) if matches!(old, Val::Text(t) if t.matches('.').count() == 2) => {
                Val::Text(tokens[i % tokens.len()].clone())
            }
            NewValue::Text(i) => Val::Text(texts[i % texts.len()].clone()),
            NewValue::Token(i) => Val::Text(tokens[i % tokens.len()].clone()),
        }
    }
}

fn new_value() -> impl Strategy<Value = NewValue> {
    prop_oneof![
        1 => Just(NewValue::Null),
        2 => prop_oneof![Just(0i64), Just(-1), Just(1), Just(i64::MAX), Just(i64::MIN)]
            .prop_map(NewValue::Int),
        3 => (-400..400i64).prop_map(NewValue::Shift),
        2 => any::<usize>().prop_map(NewValue::FromRow),
        2 => any::<usize>().prop_map(NewValue::Text),
        3 => any::<usize>().prop_map(NewValue::Token),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Delete(usize),
    Set(usize, usize, NewValue),
    /// A copy of a row with one column changed.
    InsertCopy(usize, usize, NewValue),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<usize>().prop_map(Op::Delete),
        4 => (any::<usize>(), any::<usize>(), new_value()).prop_map(|(r, c, v)| Op::Set(r, c, v)),
        2 => (any::<usize>(), any::<usize>(), new_value())
            .prop_map(|(r, c, v)| Op::InsertCopy(r, c, v)),
    ]
}

/// An attack on one table.
#[derive(Debug, Clone)]
enum Attack {
    /// Edits of its rows, in turn.
    Edit(Vec<Op>),
    /// The whole table as it was before one of the steps (a backup of it).
    RollBack(usize),
}

fn attack() -> impl Strategy<Value = (usize, Attack)> {
    (
        any::<usize>(),
        prop_oneof![
            3 => proptest::collection::vec(op(), 1..4).prop_map(Attack::Edit),
            2 => any::<usize>().prop_map(Attack::RollBack),
        ],
    )
}

/// A store's tables as an attacker sees them.
trait Tables {
    /// The tables that hold this install's rows, sorted.
    fn names(&mut self) -> Vec<String>;
    /// The columns of `table` an attacker edits.
    fn columns(&mut self, table: &str) -> Vec<String>;
    /// This install's rows of `table`.
    fn rows(&mut self, table: &str) -> Vec<Row>;
    /// Deletes rows equal to `row` (failures ignored: a refused edit is no edit).
    fn delete(&mut self, table: &str, row: &Row);
    /// Writes `row` (replacing one with the same key).
    fn insert(&mut self, table: &str, row: &Row);

    fn set(&mut self, table: &str, row: &Row, column: usize, value: Val) {
        let mut edited = row.clone();
        edited[column] = value;
        self.delete(table, row);
        self.insert(table, &edited);
    }

    fn everything(&mut self) -> BTreeMap<String, Vec<Row>> {
        self.names()
            .into_iter()
            .map(|t| {
                let rows = self.rows(&t);
                (t, rows)
            })
            .collect()
    }
}

fn attack_table(
    db: &mut dyn Tables,
    table_index: usize,
    attack: &Attack,
    snapshots: &[BTreeMap<String, Vec<Row>>],
) -> String {
    let snapshot = match attack {
        Attack::RollBack(k) => &snapshots[k % snapshots.len()],
        Attack::Edit(_) => &snapshots[0],
    };
    // A table with rows now or at the snapshot: editing an empty one
    // changes nothing.
    let names: Vec<String> = db
        .names()
        .into_iter()
        .filter(|t| !snapshot[t].is_empty() || !db.rows(t).is_empty())
        .collect();
    let table = names[table_index % names.len()].clone();
    let (texts, tokens) = (pool().texts(), pool().tokens());
    match attack {
        Attack::RollBack(_) => {
            for row in db.rows(&table) {
                db.delete(&table, &row);
            }
            for row in snapshot.get(&table).into_iter().flatten() {
                db.insert(&table, row);
            }
        }
        Attack::Edit(ops) => {
            for op in ops {
                let rows = db.rows(&table);
                if rows.is_empty() {
                    continue;
                }
                let width = rows[0].len();
                let pick = |i: usize| &rows[i % rows.len()];
                match op {
                    Op::Delete(r) => db.delete(&table, pick(*r)),
                    Op::Set(r, c, v) | Op::InsertCopy(r, c, v) => {
                        let row = pick(*r);
                        let c = c % width;
                        let column: Vec<Val> = rows.iter().map(|row| row[c].clone()).collect();
                        let value = v.resolve(&row[c], &column, &texts, &tokens);
                        if matches!(op, Op::Set(..)) {
                            db.set(&table, row, c, value);
                        } else {
                            let mut copy = row.clone();
                            copy[c] = value;
                            db.insert(&table, &copy);
                        }
                    }
                }
            }
        }
    }
    table
}

// ---- the property --------------------------------------------------------------

/// Opens the install (a program on `MACHINE` naming its device `DEVICE`).
fn builder(clock: &ManualClock) -> EngineBuilder {
    Engine::builder("acme")
        .trust(pool().key.public_key().clone())
        .clock(clock.clone())
        .fingerprint(MACHINE)
        .named_device(DEVICE)
        .background_refresh(false)
}

/// The property, for a store `open` makes (the same install every time)
/// and its tables `db`.
fn check_case(
    open: &dyn Fn(&ManualClock) -> entitle::Result<Engine>,
    db: &mut dyn Tables,
    steps: &[Step],
    (table_index, attack): &(usize, Attack),
) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(t0());
    let mut history = History::default();
    let mut snapshots = Vec::new();
    // Every table holds rows before the random steps: each license but the
    // revoked one and the newer serial, the certificate, an activation,
    // units, a user, a borrowed lease.
    let preamble = [0, 2, 3, 4, 5].map(Step::AddLicense).into_iter().chain([
        Step::ApplyCertificate(0),
        Step::Activate,
        Step::Consume(2),
        Step::AddUser(0),
        Step::Checkout(0),
        Step::Borrow,
    ]);
    let steps: Vec<Step> = preamble.chain(steps.iter().cloned()).collect();
    let end = {
        let engine = open(&clock).unwrap();
        run_steps(&engine, &clock, &steps, &mut history, &mut || {
            snapshots.push(db.everything())
        });
        engine.now()
    };
    let before = {
        let engine = open(&clock).unwrap();
        rights(&engine, &clock, end)
    };
    let table = attack_table(db, *table_index, attack, &snapshots);
    clock.set(end);
    // A state the engine refuses to open grants nothing at all.
    let Ok(engine) = open(&clock) else {
        return Ok(());
    };
    let after = rights(&engine, &clock, end);
    let gains = allowed_gains(&table);
    let may = |gain: Option<Gain>| gain.is_some_and(|g| gains.contains(&g));
    // The licenses table holds signed tokens: a row written with one the
    // attacker holds gives what adding its file would (a trial continues
    // its window; a revoked, hard-removed or superseded one nothing, which
    // `backs` holds it to).
    let readded = |ids: &[&str]| {
        table.trim_start_matches("entitle_") == "licenses"
            && ids.iter().any(|id| !history.buried.contains(id))
    };
    for (look, (now, then)) in after.iter().zip(&before).enumerate() {
        let at = end.unix() + LOOKS[look];
        let day = LOOKS[look] / DAY;
        for (i, feature) in FEATURES.iter().enumerate() {
            if !now.features[i] {
                continue;
            }
            prop_assert!(
                backs(feature, at, end.unix(), &history),
                "{table}: `{feature}` allowed at day {day} with no signed token giving it"
            );
            let readded = readded(&[license_of(feature)]);
            prop_assert!(
                then.features[i] || readded || may(feature_gain(feature)),
                "{table}: `{feature}` allowed at day {day} after the edit, not before"
            );
        }
        // Seats come only from licenses in force, and one without `seats`
        // limits no users: an edit that takes the seat license out of
        // force (as `license remove` may) leaves users unlimited.
        let any = &["base", "vend", "inst", "trial", "meter", "gone"][..];
        let seats_out = then.features[0] && !now.features[0];
        for (gain, ids, now, then) in [
            (Gain::Seats, any, now.seat_room, then.seat_room),
            (
                Gain::Seats,
                any,
                i64::from(now.can_add_user),
                i64::from(then.can_add_user),
            ),
            (Gain::Meter, &["meter"], now.meter_room, then.meter_room),
            (
                Gain::Floating,
                &["base"],
                now.floating_room,
                then.floating_room,
            ),
            (
                Gain::Transfers,
                &["vend", "inst"],
                now.transfers_left,
                then.transfers_left,
            ),
        ] {
            let out = gain == Gain::Seats && seats_out;
            prop_assert!(
                now <= then || may(Some(gain)) || readded(ids) || out,
                "{table}: {gain:?} grew from {then} to {now} at day {day}\nbefore: {:?}\nafter: {:?}",
                before[look],
                after[look]
            );
        }
    }
    // Acknowledged is stored, with two engines (two processes) taking
    // turns: the second plans on a view the first has moved past, and
    // must count on top of it, never over it.
    clock.set(end);
    let Ok(other) = open(&clock) else {
        return Ok(());
    };
    if let (Ok(first), Ok(second)) = (engine.consume("api", 1), other.consume("api", 1)) {
        drop((engine, other));
        let engine = open(&clock).unwrap();
        let stored = |license: &str| {
            engine
                .consumption("api")
                .into_iter()
                .find(|c| c.license_id == license)
                .map(|c| c.used)
        };
        if first.license_id == second.license_id {
            prop_assert_eq!(
                second.used,
                first.used + 1,
                "{}: two consumes acknowledged, one counted",
                table
            );
        }
        prop_assert_eq!(
            stored(&second.license_id),
            Some(second.used),
            "{}: a consume acknowledged after the edit is not what is stored",
            table
        );
    }
    Ok(())
}

// ---- SQLite ------------------------------------------------------------------

struct Sqlite(rusqlite::Connection);

impl Sqlite {
    fn open(dir: &Path) -> Self {
        Sqlite(rusqlite::Connection::open(dir.join("state.sqlite")).unwrap())
    }
}

fn from_sql(value: rusqlite::types::ValueRef<'_>) -> Val {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(n) => Val::Int(n),
        ValueRef::Real(f) => Val::Int(f as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => Val::Text(String::from_utf8_lossy(t).into()),
    }
}

fn to_sql(value: &Val) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match value {
        Val::Null => Value::Null,
        Val::Int(n) => Value::Integer(*n),
        Val::Text(t) => Value::Text(t.clone()),
        Val::Bool(b) => Value::Integer(i64::from(*b)),
    }
}

impl Tables for Sqlite {
    fn names(&mut self) -> Vec<String> {
        let mut stmt = self
            .0
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn columns(&mut self, table: &str) -> Vec<String> {
        let mut stmt = self
            .0
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn rows(&mut self, table: &str) -> Vec<Row> {
        let width = self.columns(table).len();
        let mut stmt = self.0.prepare(&format!("SELECT * FROM {table}")).unwrap();
        stmt.query_map([], |r| {
            Ok((0..width)
                .map(|i| from_sql(r.get_ref(i).unwrap()))
                .collect())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn delete(&mut self, table: &str, row: &Row) {
        let columns = self.columns(table);
        let filter: Vec<String> = columns.iter().map(|c| format!("{c} IS ?")).collect();
        let values: Vec<_> = row.iter().map(to_sql).collect();
        let _ = self.0.execute(
            &format!("DELETE FROM {table} WHERE {}", filter.join(" AND ")),
            rusqlite::params_from_iter(values),
        );
    }

    fn insert(&mut self, table: &str, row: &Row) {
        let marks = vec!["?"; row.len()].join(", ");
        let values: Vec<_> = row.iter().map(to_sql).collect();
        let _ = self.0.execute(
            &format!("INSERT OR REPLACE INTO {table} VALUES ({marks})"),
            rusqlite::params_from_iter(values),
        );
    }
}

fn cases(variable: &str, default: u32) -> u32 {
    std::env::var(variable)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases("PROPTEST_CASES", 64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn editing_any_row_of_the_file_store_gains_only_what_the_threat_model_names(
        steps in proptest::collection::vec(step(), 1..14),
        attack in attack(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        FileStore::create(&path).unwrap();
        let open = |clock: &ManualClock| builder(clock).store(FileStore::open(&path)?).build();
        let mut db = Sqlite::open(&path);
        check_case(&open, &mut db, &steps, &attack)?;
    }
}

// ---- PostgreSQL --------------------------------------------------------------

#[cfg(feature = "postgres")]
mod on_postgres {
    use super::*;
    use entitle::store::PgStore;

    /// One namespace's rows of the `entitle_*` tables.
    struct Postgres {
        client: postgres::Client,
        namespace: String,
        /// (column, data type) per table.
        columns: BTreeMap<String, Vec<(String, String)>>,
        /// The primary key's columns per table.
        keys: BTreeMap<String, Vec<String>>,
    }

    impl Postgres {
        fn connect(namespace: &str) -> Self {
            let mut client =
                postgres::Client::connect(pg_common::server_url(), postgres::NoTls).unwrap();
            let mut columns: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            for row in client
                .query(
                    "SELECT table_name::text, column_name::text, data_type::text \
                     FROM information_schema.columns \
                     WHERE table_name LIKE 'entitle\\_%' AND table_name <> 'entitle_schema' \
                     ORDER BY table_name, ordinal_position",
                    &[],
                )
                .unwrap()
            {
                columns
                    .entry(row.get(0))
                    .or_default()
                    .push((row.get(1), row.get(2)));
            }
            let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for row in client
                .query(
                    "SELECT k.table_name::text, k.column_name::text \
                     FROM information_schema.table_constraints c \
                     JOIN information_schema.key_column_usage k \
                       ON k.constraint_name = c.constraint_name \
                     WHERE c.constraint_type = 'PRIMARY KEY' AND k.table_name LIKE 'entitle\\_%' \
                     ORDER BY k.table_name, k.ordinal_position",
                    &[],
                )
                .unwrap()
            {
                keys.entry(row.get(0)).or_default().push(row.get(1));
            }
            Postgres {
                client,
                namespace: namespace.to_owned(),
                columns,
                keys,
            }
        }

        /// The columns an attacker edits: all but the namespace.
        fn edited(&self, table: &str) -> &[(String, String)] {
            &self.columns[table][1..]
        }
    }

    fn param(value: &Val, data_type: &str) -> Box<dyn postgres::types::ToSql + Sync> {
        match (value, data_type) {
            (Val::Null, "bigint") => Box::new(None::<i64>),
            (Val::Null, "integer") => Box::new(None::<i32>),
            (Val::Null, "boolean") => Box::new(None::<bool>),
            (Val::Null, _) => Box::new(None::<String>),
            (Val::Int(n), "bigint") => Box::new(*n),
            (Val::Int(n), "integer") => Box::new(i32::try_from(*n).unwrap_or(i32::MAX)),
            (Val::Int(n), "boolean") => Box::new(*n != 0),
            (Val::Int(n), _) => Box::new(n.to_string()),
            (Val::Bool(b), "boolean") => Box::new(*b),
            (Val::Bool(b), "bigint") => Box::new(i64::from(*b)),
            (Val::Bool(b), _) => Box::new(b.to_string()),
            (Val::Text(t), "bigint") => Box::new(t.parse::<i64>().unwrap_or(0)),
            (Val::Text(t), "integer") => Box::new(t.parse::<i32>().unwrap_or(0)),
            (Val::Text(t), "boolean") => Box::new(t == "true"),
            // PostgreSQL's text holds no NUL.
            (Val::Text(t), _) => Box::new(t.replace('\0', "")),
        }
    }

    impl Tables for Postgres {
        fn names(&mut self) -> Vec<String> {
            self.columns.keys().cloned().collect()
        }

        fn columns(&mut self, table: &str) -> Vec<String> {
            self.edited(table).iter().map(|(c, _)| c.clone()).collect()
        }

        fn rows(&mut self, table: &str) -> Vec<Row> {
            let columns = self.edited(table).to_vec();
            let list: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
            self.client
                .query(
                    &format!(
                        "SELECT {} FROM {table} WHERE namespace = $1",
                        list.join(", ")
                    ),
                    &[&self.namespace],
                )
                .unwrap()
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .enumerate()
                        .map(|(i, (_, data_type))| match data_type.as_str() {
                            "bigint" => r.get::<_, Option<i64>>(i).map_or(Val::Null, Val::Int),
                            "integer" => r
                                .get::<_, Option<i32>>(i)
                                .map_or(Val::Null, |n| Val::Int(n.into())),
                            "boolean" => r.get::<_, Option<bool>>(i).map_or(Val::Null, Val::Bool),
                            _ => r.get::<_, Option<String>>(i).map_or(Val::Null, Val::Text),
                        })
                        .collect()
                })
                .collect()
        }

        fn delete(&mut self, table: &str, row: &Row) {
            let columns = self.edited(table).to_vec();
            let mut params: Vec<Box<dyn postgres::types::ToSql + Sync>> =
                vec![Box::new(self.namespace.clone())];
            let mut filter = vec!["namespace = $1".to_owned()];
            for ((column, data_type), value) in columns.iter().zip(row) {
                params.push(param(value, data_type));
                filter.push(format!("{column} IS NOT DISTINCT FROM ${}", params.len()));
            }
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref()).collect();
            let _ = self.client.execute(
                &format!("DELETE FROM {table} WHERE {}", filter.join(" AND ")),
                &refs,
            );
        }

        fn insert(&mut self, table: &str, row: &Row) {
            let columns = self.edited(table).to_vec();
            let mut params: Vec<Box<dyn postgres::types::ToSql + Sync>> =
                vec![Box::new(self.namespace.clone())];
            for ((_, data_type), value) in columns.iter().zip(row) {
                params.push(param(value, data_type));
            }
            let names: Vec<&str> = std::iter::once("namespace")
                .chain(columns.iter().map(|(c, _)| c.as_str()))
                .collect();
            let marks: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref()).collect();
            // A key already there: this row replaces it, as INSERT OR
            // REPLACE does in SQLite.
            let key = self.keys[table].join(", ");
            let update: Vec<String> = columns
                .iter()
                .map(|(c, _)| format!("{c} = EXCLUDED.{c}"))
                .collect();
            let conflict = if update.is_empty() || key.is_empty() {
                String::new()
            } else {
                format!("ON CONFLICT ({key}) DO UPDATE SET {}", update.join(", "))
            };
            let _ = self.client.execute(
                &format!(
                    "INSERT INTO {table} ({}) VALUES ({}) {conflict}",
                    names.join(", "),
                    marks.join(", ")
                ),
                &refs,
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: cases("ENTITLE_PG_PROPTEST_CASES", 16),
            ..ProptestConfig::default()
        })]

        #[test]
        fn editing_any_row_on_postgres_gains_only_what_the_threat_model_names(
            steps in proptest::collection::vec(step(), 1..14),
            attack in attack(),
        ) {
            let namespace = pg_common::created_namespace("rows");
            let open = |clock: &ManualClock| {
                builder(clock)
                    .store(PgStore::open(pg_common::server_url(), &namespace)?)
                    .build()
            };
            // The namespace exists before the attacker's connection looks.
            drop(open(&ManualClock::new(t0())).unwrap());
            let mut db = Postgres::connect(&namespace);
            check_case(&open, &mut db, &steps, &attack)?;
        }
    }
}
