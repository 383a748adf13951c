//! PostgreSQL against the store contract (`tests/conformance/`), one test
//! per part, and what is particular to it: namespaces, the schema version,
//! connection failures, change notifications, many tenants in one
//! process. Against a real server (`tests/pg_common/`).
#![cfg(feature = "postgres")]

mod common;
mod conformance;
mod pg_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use entitle::store::{Change, PgStore, Store, PG_SCHEMA_VERSION};
use entitle::{Engine, Reason, SystemClock};
use pg_common::{created_namespace, fresh_database, namespace, psql, server_url};
use serde_json::json;

/// A fresh namespace on the test server, and how to open it (again).
fn fresh() -> impl Fn() -> PgStore {
    let url = server_url();
    let ns = created_namespace("conformance");
    move || PgStore::open(url, &ns).unwrap()
}

#[test]
fn acknowledged_changes_survive_reopening() {
    conformance::acknowledged_changes_survive_reopening(fresh());
}

#[test]
fn refused_and_abandoned_changes_leave_no_trace() {
    conformance::refused_and_abandoned_changes_leave_no_trace(fresh());
}

#[test]
fn a_transaction_is_all_or_nothing() {
    conformance::a_transaction_is_all_or_nothing(fresh());
}

#[test]
fn limits_hold_exactly_across_two_engines() {
    conformance::limits_hold_exactly_across_two_engines(fresh());
}

#[test]
fn another_engine_sees_a_change_within_a_second() {
    conformance::another_engine_sees_a_change_within_a_second(fresh());
}

#[test]
fn a_refresh_sees_every_kind_of_change() {
    conformance::a_refresh_sees_every_kind_of_change(fresh());
}

#[test]
fn the_way_back_survives_reopening() {
    conformance::the_way_back_survives_reopening(fresh());
}

#[test]
fn a_refresh_keeps_the_signed_facts_another_engine_applied() {
    conformance::a_refresh_keeps_the_signed_facts_another_engine_applied(fresh());
}

#[test]
fn books_records_survive_reopening() {
    conformance::books_records_survive_reopening(fresh());
}

#[test]
fn closed_periods_wait_for_a_report_across_reopening() {
    conformance::closed_periods_wait_for_a_report_across_reopening(fresh());
}

/// Two namespaces in one database are two installs: licenses, users,
/// limits and generations of one are nothing to the other. A quote or a
/// backslash in a name is just part of it (the store sends the namespace
/// as a literal in its begin and commit).
#[test]
fn namespaces_are_independent() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let (a, b) = (namespace("tenant-a"), namespace("tenant-'b\\' OR ''='"));
    for ns in [&a, &b] {
        PgStore::create(server_url(), ns).unwrap();
    }
    let open = |ns: &str| {
        vendor
            .builder(&clock)
            .store(PgStore::open(server_url(), ns).unwrap())
            .build()
            .unwrap()
    };
    let (first, second) = (open(&a), open(&b));
    let one_seat = |id: &str| {
        vendor.license(json!({"id": id, "seats": {"max": 1},
            "features": [{"code": "export"}, {"code": "api", "consumption": {"max": 2}}]}))
    };
    first.add_license(&one_seat("lic-a")).unwrap();
    assert_eq!(second.check_feature("export").reason(), Reason::NotLicensed);
    let b_before = PgStore::open(server_url(), &b)
        .unwrap()
        .generation()
        .unwrap();
    first.add_user("ann", "member").unwrap();
    first.consume("api", 2).unwrap();
    assert_eq!(
        PgStore::open(server_url(), &b)
            .unwrap()
            .generation()
            .unwrap(),
        b_before,
        "a write in one namespace moved another's generation"
    );
    // The same limits, counted apart.
    second.add_license(&one_seat("lic-b")).unwrap();
    second.add_user("ann", "member").unwrap();
    second.consume("api", 2).unwrap();
    assert_eq!(
        second.add_user("bob", "member").unwrap_err().code(),
        "SEAT_LIMIT"
    );
    // A hard removal in one leaves the other's license alone.
    first.remove_license("lic-a", true).unwrap();
    let reopened_b = open(&b);
    assert_eq!(reopened_b.check_feature("export").reason(), Reason::Ok);
    assert_eq!(reopened_b.usage(0, 10).total, 1);
    assert_eq!(reopened_b.consumption("api")[0].used, 2);
    let reopened_a = open(&a);
    assert_eq!(
        reopened_a.check_feature("export").reason(),
        Reason::NotLicensed
    );
    assert_eq!(
        reopened_a
            .add_license(&one_seat("lic-b"))
            .map(drop)
            .map_err(|e| e.code()),
        Ok(()),
        "lic-b is buried nowhere in namespace a"
    );
}

/// Tables written by a newer entitle are refused, naming the version,
/// rather than read as something they are not.
#[test]
fn a_schema_written_by_a_newer_entitle_is_refused_as_state_corrupt() {
    let url = fresh_database("newer");
    drop(PgStore::create(&url, "default").unwrap());
    let newer = PG_SCHEMA_VERSION + 1;
    psql(
        &url,
        &format!("UPDATE entitle_schema SET version = {newer}"),
    );
    let err = PgStore::open(&url, "default").unwrap_err();
    assert_eq!(err.code(), "STATE_CORRUPT", "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("schema version {newer}")),
        "{message}"
    );
    assert!(message.contains("upgrade entitle"), "{message}");
}

/// Tables of schema version 1 (before the air-gapped way back: no
/// receipts, no reports, activations without an install key) are brought
/// up to this version when opened, keeping every row: what the old rows
/// granted they still grant, and the state gains an install key.
#[test]
fn a_version_1_schema_is_migrated_keeping_its_rows() {
    let url = fresh_database("version1");
    PgStore::create(&url, "default").unwrap();
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let license = vendor.license(json!({"id": "lic", "seats": {"max": 2},
        "activations": {"max": 2}, "features": [{"code": "cad"}]}));
    let open = || {
        vendor
            .builder(&clock)
            .fingerprint("desk-1")
            .store(PgStore::open(&url, "default").unwrap())
            .build()
            .unwrap()
    };
    {
        let engine = open();
        engine.add_license(&license).unwrap();
        engine.activate_this_device().unwrap();
        engine.add_user("ann", "member").unwrap();
    }
    // What version 1 wrote: the same tables less what version 2 added.
    psql(
        &url,
        "DROP TABLE entitle_issued_receipts, entitle_accepted_receipts, entitle_reports; \
         ALTER TABLE entitle_activations DROP COLUMN install_key; \
         ALTER TABLE entitle_users DROP COLUMN name, DROP COLUMN email; \
         DELETE FROM entitle_settings WHERE key IN ('install_key', 'report_sequence'); \
         DROP FUNCTION entitle_advance; UPDATE entitle_schema SET version = 1",
    );
    let engine = open();
    assert_eq!(
        psql(&url, "SELECT version FROM entitle_schema"),
        PG_SCHEMA_VERSION.to_string()
    );
    assert!(engine.check_feature("cad").allowed());
    assert_eq!(engine.usage(0, 10).users.len(), 1);
    let activations = engine.activations();
    assert_eq!(activations.len(), 1);
    assert_eq!(activations[0].install_key, None);
    assert!(engine.install_key().is_some());
    assert_eq!(engine.usage_report().unwrap().report.sequence, 1);
    // Version 3's commit in one round trip works on the migrated tables,
    // and version 5's users keep a name and an email.
    engine
        .add_user_with(&entitle::engine::NewUser::new("bob", "member").email("bob@example.com"))
        .unwrap();
    let usage = open().usage(0, 10);
    assert_eq!(usage.users.len(), 2);
    assert_eq!(usage.users[0].email, None);
    assert_eq!(usage.users[1].email.as_deref(), Some("bob@example.com"));
}

/// A database that is not there: an error naming the host and port and
/// what to check, without the password, within the URL's connect_timeout.
#[test]
fn an_unreachable_database_is_a_clear_error_naming_host_and_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/licenses?connect_timeout=1");
    let started = Instant::now();
    let err = PgStore::open(&url, "default").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.code(), "STORE_UNAVAILABLE", "{err}");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("pg_isready"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

/// A text PostgreSQL cannot store is refused as bad input before it
/// reaches a batch shared with other mutations.
#[test]
fn a_nul_character_is_refused_not_sent() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let ns = created_namespace("nul");
    let engine = vendor
        .builder(&clock)
        .store(PgStore::open(server_url(), &ns).unwrap())
        .build()
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "lic", "seats": {"max": 5}})))
        .unwrap();
    let err = engine.add_user("ann", "mem\0ber").unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT", "{err}");
    engine.add_user("ann", "member").unwrap();
    assert_eq!(engine.usage(0, 10).total, 1);
}

fn entitle(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_entitle"))
        .args(args)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_STORE")
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The listener: a change another process commits reaches this process
/// by notification. While the listener listens nothing polls, so each
/// generation seen here was told by PostgreSQL, within a fraction of a
/// second; and an engine with background refresh has the new right
/// within about a second.
#[test]
fn a_change_made_by_another_process_is_seen_within_a_second_by_notification() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let public = write(dir.path(), "vendor.pub", &vendor.key.public_key().to_pem());
    let ns = created_namespace("listen");
    let store_args = ["--store", server_url(), "--namespace", ns.as_str()];
    let init = entitle(
        &[
            &store_args[..],
            &["init", "--pub", &public, "--product", "acme"],
        ]
        .concat(),
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let engine = Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .clock(SystemClock)
        .store(PgStore::open(server_url(), &ns).unwrap())
        .build()
        .unwrap();
    let observer = PgStore::open(server_url(), &ns).unwrap();
    let since = Instant::now();
    while !observer.listening() {
        assert!(since.elapsed() < Duration::from_secs(5), "never listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    for (i, feature) in ["export", "render", "print"].iter().enumerate() {
        let before = observer.generation().unwrap();
        let license = write(
            dir.path(),
            &format!("lic{i}.lic"),
            &vendor.license(
                json!({"id": format!("lic{i}"), "issued_at": "2020-01-01T00:00:00Z",
                "features": [{"code": feature}]}),
            ),
        );
        let added = entitle(&[&store_args[..], &["license", "add", &license]].concat());
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let committed = Instant::now();
        while observer.generation().unwrap() == before {
            assert!(
                committed.elapsed() < Duration::from_millis(500),
                "change {i} not notified within 500 ms"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        while !engine.check_feature(feature).allowed() {
            assert!(
                committed.elapsed() < Duration::from_millis(1500),
                "the engine did not see change {i} within a second"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A writer plans on the generation it knows and its commit moves the
/// namespace on from exactly that one: when another writer got there
/// first (here one whose notification has not arrived: the rows and the
/// generation are changed behind the engine's back), the commit is rolled
/// back and the mutation planned again on what is stored. Units another
/// writer recorded are never overwritten, and a limit it reached holds.
#[test]
fn a_write_planned_on_a_stale_view_is_planned_again_not_lost() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let ns = created_namespace("stale");
    let open = || {
        vendor
            .builder(&clock)
            .store(PgStore::open(server_url(), &ns).unwrap())
            .background_refresh(false)
            .build()
            .unwrap()
    };
    let engine = open();
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "features": [{"code": "api", "consumption": {"max": 10}}]})))
        .unwrap();
    assert_eq!(engine.consume("api", 1).unwrap().used, 1);
    let behind_its_back = |sql: &str| {
        psql(
            server_url(),
            &format!(
                "BEGIN; {sql}; UPDATE entitle_namespaces SET generation = generation + 1 \
                 WHERE namespace = '{ns}'; COMMIT"
            ),
        )
    };
    behind_its_back(&format!(
        "UPDATE entitle_counters SET used = used + 5 WHERE namespace = '{ns}'"
    ));
    assert_eq!(engine.consume("api", 1).unwrap().used, 7);
    assert_eq!(open().consumption("api")[0].used, 7);

    behind_its_back(&format!(
        "UPDATE entitle_counters SET used = 10 WHERE namespace = '{ns}'"
    ));
    let refused = engine.consume("api", 1).unwrap_err();
    assert_eq!(refused.code(), "CONSUMPTION_LIMIT", "{refused}");
    assert_eq!(open().consumption("api")[0].used, 10);
}

/// Commits made in a loop are announced together, at most every 100 ms
/// per store: another process (here a second URL, with its own pool and
/// listener) still sees the last of a burst within a second. A commit no
/// notification told of (its process died before announcing it; here
/// rows and generation changed by hand) is seen through the listener's
/// poll, once a second.
#[test]
fn the_last_of_a_burst_and_an_unannounced_commit_are_seen_by_other_processes() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let ns = created_namespace("burst");
    let url = server_url();
    let elsewhere = format!(
        "{url}{}application_name=elsewhere",
        if url.contains('?') { '&' } else { '?' }
    );
    let open = |url: &str, refresh: bool| {
        vendor
            .builder(&clock)
            .store(PgStore::open(url, &ns).unwrap())
            .background_refresh(refresh)
            .build()
            .unwrap()
    };
    let writer = open(url, false);
    writer
        .add_license(&vendor.license(json!({"id": "lic",
            "features": [{"code": "api", "consumption": {"max": 1000}}]})))
        .unwrap();
    let observer = open(&elsewhere, true);
    let used = || observer.consumption("api").first().map_or(0, |c| c.used);
    let seen_within = |want: u64, within: Duration| {
        let since = Instant::now();
        while used() != want {
            assert!(
                since.elapsed() < within,
                "{} units seen after {within:?}, {want} stored",
                used()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for _ in 0..50 {
        writer.consume("api", 1).unwrap();
    }
    seen_within(50, Duration::from_millis(1500));

    psql(
        url,
        &format!(
            "BEGIN; UPDATE entitle_counters SET used = 60 WHERE namespace = '{ns}'; \
             UPDATE entitle_namespaces SET generation = generation + 1 \
             WHERE namespace = '{ns}'; COMMIT"
        ),
    );
    seen_within(60, Duration::from_millis(2500));
}

/// A batch holding mutations planned on a generation must read (another
/// mutation's engine view is behind) and finds that another writer moved
/// the namespace since: what it planned is rolled back (its sync fails,
/// nothing of it stored) and the read, under the namespace's lock, sees
/// what the other writer stored, on which the next mutation commits.
#[test]
fn a_batch_that_must_read_after_another_writer_moved_rolls_back_what_it_planned() {
    let ns = created_namespace("moved");
    let store = PgStore::open(server_url(), &ns).unwrap();
    let mut first = store.begin().unwrap();
    first
        .write(&[Change::Transfers("planned".into(), 1)])
        .unwrap();
    let planned = first.commit().unwrap();
    psql(
        server_url(),
        &format!(
            "BEGIN; INSERT INTO entitle_transfers (namespace, license_id, count) \
             VALUES ('{ns}', 'elsewhere', 7); UPDATE entitle_namespaces \
             SET generation = generation + 1 WHERE namespace = '{ns}'; COMMIT"
        ),
    );
    let mut second = store.begin().unwrap();
    assert_eq!(
        second.load().unwrap().transfers,
        [("elsewhere".to_owned(), 7)]
    );
    second
        .write(&[Change::Transfers("read".into(), 2)])
        .unwrap();
    let read = second.commit().unwrap();
    assert!(store.sync(planned).is_err());
    store.sync(read).unwrap();
    let (_, mut stored) = PgStore::open(server_url(), &ns).unwrap().load().unwrap();
    stored.transfers.sort();
    assert_eq!(
        stored.transfers,
        [("elsewhere".to_owned(), 7), ("read".to_owned(), 2)]
    );
}

/// A batch rolled back by a conflict leaves its changes in the engine's
/// memory under a generation it handed out, until the mutation whose sync
/// failed reloads. The other writer's commit can bring the namespace to
/// that very number (here it moves it on by one, changing nothing else),
/// so a mutation that takes the engine's writer in between must not take
/// the equal generations for the same state: it would plan on the
/// rolled-back unit, and store one unit more than was acknowledged (or,
/// had the other writer consumed, one less: a unit given twice).
#[test]
fn a_mutation_right_after_a_rolled_back_batch_plans_on_what_is_stored() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let ns = created_namespace("rolled-back");
    let open = || {
        vendor
            .builder(&clock)
            .store(PgStore::open(server_url(), &ns).unwrap())
            .background_refresh(false)
            .build()
            .unwrap()
    };
    let engine = open();
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "features": [{"code": "api", "consumption": {"max": 10}}]})))
        .unwrap();
    assert_eq!(engine.consume("api", 1).unwrap().used, 1);
    let connect = || postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
    // Another writer holds the namespace, moving it on by one.
    let mut other = connect();
    let mut moving = other.transaction().unwrap();
    moving
        .execute(
            "UPDATE entitle_namespaces SET generation = generation + 1 WHERE namespace = $1",
            &[&ns],
        )
        .unwrap();
    std::thread::scope(|s| {
        // Planned on the generation before, its commit waits for the lock.
        let first = s.spawn(|| engine.consume("api", 1));
        let mut watch = connect();
        let since = Instant::now();
        let waiting = |watch: &mut postgres::Client| {
            let row = watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                     AND query LIKE '%entitle_advance%' AND strpos(query, $1) > 0",
                    &[&ns],
                )
                .unwrap();
            row.get::<_, i64>(0) > 0
        };
        while !waiting(&mut watch) {
            assert!(since.elapsed() < Duration::from_secs(10), "no commit waits");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Takes the engine's writer and waits for its store, busy with
        // that commit, which the other writer's then fails.
        let second = s.spawn(|| engine.consume("api", 1));
        std::thread::sleep(Duration::from_millis(500));
        moving.commit().unwrap();
        let mut acknowledged = [first, second].map(|t| t.join().unwrap().unwrap().used);
        acknowledged.sort_unstable();
        assert_eq!(
            acknowledged,
            [2, 3],
            "each counted on top of what is stored"
        );
    });
    assert_eq!(
        engine.consumption("api")[0].used,
        3,
        "as the engine sees it"
    );
    assert_eq!(
        open().consumption("api")[0].used,
        3,
        "three consumes stored"
    );
}

/// `psql` that must fail: its error output.
fn psql_fails(url: &str, sql: &str) -> String {
    let out = Command::new(pg_common::pg_program("psql"))
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "psql {sql} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A namespace's generation set by hand to the largest `bigint`: no
/// commit can move it on. Before, the generation was clamped there, so
/// every writer's commit passed `entitle_advance` as the successor of the
/// others': 16 concurrent consumes were all acknowledged and one was
/// stored. Now each is `STATE_CORRUPT`, nothing is stored, the
/// namespace's row is not left locked, and `entitle_advance` itself
/// refuses to move a namespace anywhere but forward.
#[test]
fn a_generation_that_would_overflow_acknowledges_nothing_and_leaves_nothing_locked() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let ns = created_namespace("overflow");
    let open = || {
        vendor
            .builder(&clock)
            .store(PgStore::open(server_url(), &ns).unwrap())
            .build()
            .unwrap()
    };
    open()
        .add_license(&vendor.license(json!({"id": "lic",
            "features": [{"code": "api", "consumption": {"max": 1000}}]})))
        .unwrap();
    let engines: Vec<Engine> = (0..16).map(|_| open()).collect();
    psql(
        server_url(),
        &format!(
            "UPDATE entitle_namespaces SET generation = {} WHERE namespace = '{ns}'",
            i64::MAX
        ),
    );
    let outcomes: Vec<Result<u64, String>> = std::thread::scope(|scope| {
        let running: Vec<_> = engines
            .iter()
            .map(|engine| {
                scope.spawn(move || {
                    engine
                        .consume("api", 1)
                        .map(|c| c.used)
                        .map_err(|e| format!("{}: {e}", e.code()))
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for outcome in &outcomes {
        let refused = outcome
            .as_ref()
            .expect_err("acknowledged at a clamped generation");
        assert!(refused.starts_with("STATE_CORRUPT"), "{refused}");
        assert!(refused.contains("generation"), "{refused}");
    }
    let counted = psql(
        server_url(),
        &format!("SELECT count(*) FROM entitle_counters WHERE namespace = '{ns}'"),
    );
    assert_eq!(counted, "0", "nothing stored");
    // Nobody holds the namespace's row: an update waits at most a second.
    psql(
        server_url(),
        &format!(
            "SET lock_timeout = '1s'; UPDATE entitle_namespaces SET generation = generation \
             WHERE namespace = '{ns}'"
        ),
    );
    // The commit's own check, in SQL: only forward.
    let refused = psql_fails(
        server_url(),
        &format!(
            "SELECT entitle_advance('{ns}', {max}, {max}, NULL)",
            max = i64::MAX
        ),
    );
    assert!(refused.contains("cannot move"), "{refused}");
    assert_eq!(
        psql(
            server_url(),
            &format!("SELECT generation FROM entitle_namespaces WHERE namespace = '{ns}'")
        ),
        i64::MAX.to_string()
    );
}

/// Anyone who can connect may `NOTIFY entitle_changes`. One spoofed
/// notification of a generation far ahead used to be taken as known, so
/// every engine on the namespace reloaded it every second until
/// restarted. A notification is a hint: the table says what is known. A
/// change made behind the engine's back without moving the generation (a
/// probe of whether it reloads) is not read after the spoof; a real
/// change still arrives at once.
#[test]
fn a_spoofed_notification_costs_at_most_one_reload() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let ns = created_namespace("spoof");
    let engine = vendor
        .builder(&clock)
        .store(PgStore::open(server_url(), &ns).unwrap())
        .background_refresh(true)
        .build()
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "lic",
            "features": [{"code": "api", "consumption": {"max": 1000}}]})))
        .unwrap();
    engine.consume("api", 1).unwrap();
    let observer = PgStore::open(server_url(), &ns).unwrap();
    let since = Instant::now();
    while !observer.listening() {
        assert!(since.elapsed() < Duration::from_secs(5), "never listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stored = || {
        psql(
            server_url(),
            &format!("SELECT generation FROM entitle_namespaces WHERE namespace = '{ns}'"),
        )
    };
    let before = stored();
    for spoofed in [i64::MAX as u64, u64::MAX - 1] {
        psql(
            server_url(),
            &format!("NOTIFY entitle_changes, '{spoofed} {ns}'"),
        );
    }
    // Whatever one reload the spoof may cost is over by then.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(observer.generation().unwrap().to_string(), before);
    psql(
        server_url(),
        &format!("UPDATE entitle_counters SET used = 50 WHERE namespace = '{ns}'"),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let used = engine.consumption("api")[0].used;
    assert_eq!(used, 1, "reloaded again after a spoofed notification");
    assert_eq!(observer.generation().unwrap().to_string(), stored());

    // A real change is still seen, and mutations still commit.
    psql(
        server_url(),
        &format!(
            "UPDATE entitle_namespaces SET generation = generation + 1 WHERE namespace = '{ns}'"
        ),
    );
    let moved = Instant::now();
    while engine.consumption("api")[0].used != 50 {
        assert!(
            moved.elapsed() < Duration::from_millis(2500),
            "a real change was not seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(engine.consume("api", 1).unwrap().used, 51);
}
