//! Tenants are explicit on PostgreSQL: opening a namespace that does not
//! exist is `STATE_MISSING` and makes nothing (a typo never becomes an
//! empty tenant); `PgStore::create` makes one, `PgStore::namespaces` lists
//! them, `PgStore::remove` deletes one and nothing else; an engine on a
//! removed namespace does not bring it back. The same through the CLI
//! (`entitle namespace list|remove`). Against a real server
//! (`tests/pg_common/`).
#![cfg(feature = "postgres")]

mod common;
mod pg_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use entitle::store::PgStore;
use entitle::Engine;
use pg_common::{fresh_database, psql};
use serde_json::{json, Value};

/// Every table of the database with a `namespace` column.
fn namespaced_tables(url: &str) -> Vec<String> {
    psql(
        url,
        "SELECT table_name FROM information_schema.columns \
         WHERE column_name = 'namespace' AND table_schema = current_schema() ORDER BY 1",
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// How many rows of `namespace` each of those tables holds.
fn rows_of(url: &str, namespace: &str) -> BTreeMap<String, u64> {
    let literal = namespace.replace('\'', "''");
    namespaced_tables(url)
        .into_iter()
        .map(|table| {
            let count = psql(
                url,
                &format!("SELECT count(*) FROM {table} WHERE namespace = '{literal}'"),
            );
            (table, count.parse().unwrap())
        })
        .collect()
}

fn tables_made(url: &str) -> bool {
    psql(url, "SELECT to_regclass('entitle_schema') IS NOT NULL") == "t"
}

/// An engine on `namespace`, which must exist.
fn engine(vendor: &Vendor, url: &str, namespace: &str) -> Engine {
    vendor
        .builder(&clock_at(T0))
        .store(PgStore::open(url, namespace).unwrap())
        .build()
        .unwrap()
}

/// A tenant with rows in many tables: licenses (one removed for good),
/// users, metered units, a floating lease, and the install's settings.
fn fill(vendor: &Vendor, engine: &Engine) {
    engine
        .add_license(
            &vendor.license(json!({"id": "lic-users", "seats": {"max": 5},
            "features": [{"code": "api", "consumption": {"max": 100}}]})),
        )
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "lic-float",
            "floating": {"seats": 2, "lease_secs": 600}, "features": [{"code": "cad"}]})))
        .unwrap();
    engine
        .add_license(&vendor.license(json!({"id": "lic-gone", "features": [{"code": "old"}]})))
        .unwrap();
    engine.remove_license("lic-gone", true).unwrap();
    engine.add_user("ann", "member").unwrap();
    engine.consume("api", 3).unwrap();
    engine.checkout("host-1", None).unwrap();
}

#[test]
fn opening_a_missing_namespace_is_state_missing_and_makes_nothing() {
    let url = fresh_database("ns_missing");
    // A database without entitle's tables: missing, and still without.
    let err = PgStore::open(&url, "tenant-7").unwrap_err();
    assert_eq!(err.code(), "STATE_MISSING", "{err}");
    assert!(!tables_made(&url), "open made the tables");

    PgStore::create(&url, "tenant-7").unwrap();
    let err = PgStore::open(&url, "tenant-77").unwrap_err();
    assert_eq!(err.code(), "STATE_MISSING", "{err}");
    let message = err.to_string();
    for said in ["tenant-77", "PgStore::create", "--namespace tenant-77 init"] {
        assert!(message.contains(said), "{said:?} not in: {message}");
    }
    assert_eq!(PgStore::namespaces(&url).unwrap(), ["tenant-7"]);
    assert_eq!(
        psql(&url, "SELECT count(*) FROM entitle_namespaces"),
        "1",
        "open made a namespace row"
    );
}

#[test]
fn a_created_namespace_opens_and_is_created_once() {
    let url = fresh_database("ns_create");
    let vendor = Vendor::new();
    let created = PgStore::create(&url, "tenant-7").unwrap();
    assert_eq!(created.namespace(), "tenant-7");
    let first = vendor
        .builder(&clock_at(T0))
        .store(created)
        .build()
        .unwrap();
    fill(&vendor, &first);
    let reopened = engine(&vendor, &url, "tenant-7");
    assert!(reopened.check_feature("api").allowed());
    assert_eq!(reopened.usage(0, 10).total, 1);

    // Made once: a second create is refused and leaves it as it was.
    let before = rows_of(&url, "tenant-7");
    let err = PgStore::create(&url, "tenant-7").unwrap_err();
    assert_eq!(err.code(), "STATE_EXISTS", "{err}");
    assert!(err.to_string().contains("tenant-7"), "{err}");
    assert_eq!(rows_of(&url, "tenant-7"), before);
    assert!(engine(&vendor, &url, "tenant-7")
        .check_feature("api")
        .allowed());
}

#[test]
fn namespaces_are_listed_sorted_and_listing_makes_nothing() {
    let url = fresh_database("ns_list");
    assert_eq!(PgStore::namespaces(&url).unwrap(), Vec::<String>::new());
    assert!(!tables_made(&url), "listing made the tables");
    for ns in ["tenant-b", "Tenant-Z", "tenant-a", "tenant-'q'"] {
        PgStore::create(&url, ns).unwrap();
    }
    assert_eq!(
        PgStore::namespaces(&url).unwrap(),
        ["Tenant-Z", "tenant-'q'", "tenant-a", "tenant-b"]
    );
}

#[test]
fn remove_deletes_every_row_of_its_namespace_and_no_other() {
    let url = fresh_database("ns_remove");
    let vendor = Vendor::new();
    for ns in ["tenant-a", "tenant-b"] {
        PgStore::create(&url, ns).unwrap();
        fill(&vendor, &engine(&vendor, &url, ns));
    }
    // Every table keyed by namespace is one `remove` knows; a new one
    // must be added to `NAMESPACED_TABLES` (src/store/postgres/schema.rs)
    // and here.
    assert_eq!(
        namespaced_tables(&url),
        [
            "entitle_accepted_receipts",
            "entitle_activations",
            "entitle_books",
            "entitle_closed_periods",
            "entitle_counters",
            "entitle_first_use",
            "entitle_issued_receipts",
            "entitle_leases",
            "entitle_licenses",
            "entitle_namespaces",
            "entitle_reports",
            "entitle_serials",
            "entitle_settings",
            "entitle_signed",
            "entitle_tombstones",
            "entitle_transfers",
            "entitle_users",
        ]
    );
    let a_before = rows_of(&url, "tenant-a");
    let b_before = rows_of(&url, "tenant-b");
    let filled = a_before.values().filter(|&&n| n > 0).count();
    assert!(
        filled >= 7,
        "tenant-a fills only {filled} tables: {a_before:?}"
    );

    PgStore::remove(&url, "tenant-a").unwrap();
    let a_after = rows_of(&url, "tenant-a");
    assert!(
        a_after.values().all(|&n| n == 0),
        "left behind: {a_after:?}"
    );
    assert_eq!(
        rows_of(&url, "tenant-b"),
        b_before,
        "another tenant's rows moved"
    );
    assert_eq!(PgStore::namespaces(&url).unwrap(), ["tenant-b"]);
    assert_eq!(
        PgStore::open(&url, "tenant-a").unwrap_err().code(),
        "STATE_MISSING"
    );
    let b = engine(&vendor, &url, "tenant-b");
    assert!(b.check_feature("api").allowed());
    assert_eq!(b.consumption("api")[0].used, 3);
}

#[test]
fn removing_a_missing_namespace_is_state_missing() {
    let url = fresh_database("ns_remove_missing");
    // No tables at all.
    let err = PgStore::remove(&url, "tenant-a").unwrap_err();
    assert_eq!(err.code(), "STATE_MISSING", "{err}");
    assert!(!tables_made(&url), "remove made the tables");
    PgStore::create(&url, "tenant-a").unwrap();
    let err = PgStore::remove(&url, "tenant-b").unwrap_err();
    assert_eq!(err.code(), "STATE_MISSING", "{err}");
    assert!(err.to_string().contains("tenant-b"), "{err}");
    assert_eq!(PgStore::namespaces(&url).unwrap(), ["tenant-a"]);
    // Removed once; the second time it is missing.
    PgStore::remove(&url, "tenant-a").unwrap();
    let err = PgStore::remove(&url, "tenant-a").unwrap_err();
    assert_eq!(err.code(), "STATE_MISSING", "{err}");
}

/// Engines open on a namespace when it is removed keep their memory, but
/// their next change fails `STATE_MISSING`, and writes nothing back:
/// the namespace stays gone, with no row of it anywhere.
#[test]
fn an_engine_on_a_removed_namespace_fails_its_next_change_and_brings_nothing_back() {
    let url = fresh_database("ns_removed_under");
    let vendor = Vendor::new();
    PgStore::create(&url, "tenant-a").unwrap();
    let engine = engine(&vendor, &url, "tenant-a");
    fill(&vendor, &engine);
    let other = self::engine(&vendor, &url, "tenant-a");

    PgStore::remove(&url, "tenant-a").unwrap();
    let err = engine.consume("api", 1).unwrap_err();
    assert_eq!(err.code(), "STATE_MISSING", "{err}");
    assert!(err.to_string().contains("tenant-a"), "{err}");
    // Again, and another kind of change, on another engine.
    assert_eq!(
        engine.add_user("bob", "member").unwrap_err().code(),
        "STATE_MISSING"
    );
    assert_eq!(
        other.add_user("cy", "member").unwrap_err().code(),
        "STATE_MISSING"
    );
    assert_eq!(PgStore::namespaces(&url).unwrap(), Vec::<String>::new());
    let rows = rows_of(&url, "tenant-a");
    assert!(rows.values().all(|&n| n == 0), "written back: {rows:?}");
}

#[test]
fn a_namespace_name_is_checked_before_anything_is_made() {
    let url = fresh_database("ns_bad_name");
    for bad in ["", "a\nb"] {
        assert_eq!(
            PgStore::create(&url, bad).unwrap_err().code(),
            "INVALID_ARGUMENT"
        );
    }
    assert!(!tables_made(&url));
}

// ---- the command line -------------------------------------------------------

/// `entitle --store URL [--namespace NS] ARGS`, with `--json` first if
/// `json`.
fn entitle(url: &str, namespace: Option<&str>, json: bool, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_entitle"));
    if json {
        command.arg("--json");
    }
    command.args(["--store", url]);
    if let Some(namespace) = namespace {
        command.args(["--namespace", namespace]);
    }
    command
        .args(args)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_STORE")
        .env_remove("ENTITLE_NAMESPACE")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_cli_lists_and_removes_namespaces_and_only_init_makes_one() {
    let url = fresh_database("ns_cli");
    let dir = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    let public = write(dir.path(), "vendor.pub", &vendor.key.public_key().to_pem());

    // Nothing yet: an empty list, said on stderr; stdout stays data.
    let empty = entitle(&url, None, false, &["namespace", "list"]);
    assert!(empty.status.success(), "{empty:?}");
    assert_eq!(String::from_utf8_lossy(&empty.stdout), "");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("init"));

    for ns in ["tenant-b", "tenant-a"] {
        let init = entitle(
            &url,
            Some(ns),
            true,
            &["init", "--pub", &public, "--product", "acme"],
        );
        assert!(init.status.success(), "{}", json_of(&init));
        assert_eq!(json_of(&init)["created"], json!(true));
    }
    // `init` again on one that exists: as on a directory, nothing changes.
    let again = entitle(
        &url,
        Some("tenant-a"),
        true,
        &["init", "--pub", &public, "--product", "acme"],
    );
    assert!(again.status.success(), "{}", json_of(&again));
    assert_eq!(json_of(&again)["created"], json!(false));

    // Any other command on a typo: STATE_MISSING, and no tenant made.
    let typo = entitle(&url, Some("tenant-aa"), true, &["license", "status"]);
    assert!(!typo.status.success());
    let error = &json_of(&typo)["error"];
    assert_eq!(error["code"], "STATE_MISSING", "{error}");
    assert!(error["message"].as_str().unwrap().contains("tenant-aa"));

    let listed = entitle(&url, None, false, &["namespace", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "tenant-a\ntenant-b\n"
    );
    let listed = json_of(&entitle(&url, None, true, &["namespace", "list"]));
    assert_eq!(listed["namespaces"], json!(["tenant-a", "tenant-b"]));

    // Without --yes nothing is deleted; a typo is said as such first.
    let unsure = entitle(&url, None, true, &["namespace", "remove", "tenant-a"]);
    assert!(!unsure.status.success());
    let error = &json_of(&unsure)["error"];
    assert_eq!(error["code"], "INVALID_ARGUMENT", "{error}");
    assert!(error["message"].as_str().unwrap().contains("--yes"));
    let typo = entitle(&url, None, true, &["namespace", "remove", "tenant-x"]);
    assert_eq!(json_of(&typo)["error"]["code"], "STATE_MISSING");
    let typo = entitle(
        &url,
        None,
        true,
        &["namespace", "remove", "tenant-x", "--yes"],
    );
    assert_eq!(json_of(&typo)["error"]["code"], "STATE_MISSING");
    assert_eq!(PgStore::namespaces(&url).unwrap(), ["tenant-a", "tenant-b"]);

    let removed = entitle(
        &url,
        None,
        true,
        &["namespace", "remove", "tenant-a", "--yes"],
    );
    assert!(removed.status.success(), "{}", json_of(&removed));
    assert_eq!(json_of(&removed)["removed"], json!(true));
    assert_eq!(PgStore::namespaces(&url).unwrap(), ["tenant-b"]);
    let rows = rows_of(&url, "tenant-a");
    assert!(rows.values().all(|&n| n == 0), "left behind: {rows:?}");
    let gone = entitle(&url, Some("tenant-a"), true, &["license", "status"]);
    assert_eq!(json_of(&gone)["error"]["code"], "STATE_MISSING");
    let kept = entitle(&url, Some("tenant-b"), true, &["license", "status"]);
    assert!(kept.status.success(), "{}", json_of(&kept));
}

#[test]
fn the_namespace_commands_need_a_postgres_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for args in [
        &["namespace", "list"][..],
        &["namespace", "remove", "x", "--yes"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_entitle"))
            .arg("--json")
            .arg("--state")
            .arg(&state)
            .args(args)
            .env_remove("ENTITLE_STORE")
            .env_remove("ENTITLE_NAMESPACE")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let error = &json_of(&out)["error"];
        assert_eq!(error["code"], "INVALID_ARGUMENT", "{error}");
        assert!(
            error["message"].as_str().unwrap().contains("PostgreSQL"),
            "{error}"
        );
    }
    assert!(!state.exists(), "a state directory was made");
}
