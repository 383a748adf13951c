//! The tables, made and checked by the store itself: every table is
//! keyed by `namespace`, so one database holds any number of independent
//! installs; `entitle_namespaces` holds each one's generation (the row
//! every write transaction locks); `entitle_schema` the version of these
//! tables, which an older entitle refuses; `entitle_advance` the check a
//! commit planned without the row lock makes (see `batch.rs`).

use super::database::{db_error, Conn};
use crate::error::{Error, Result};

/// The version of the PostgreSQL tables this crate writes. Tables written
/// by an older version are brought up to date when opened; tables written
/// by a newer one are refused (`STATE_CORRUPT`, naming the version).
///
/// ```
/// assert!(entitle::store::PG_SCHEMA_VERSION >= 1);
/// ```
pub const SCHEMA_VERSION: i32 = 7;

/// Taken, for the transaction, by whoever makes or migrates the tables:
/// processes starting together make them once.
const SCHEMA_LOCK: i64 = 0x656e_7469_746c_6500; // "entitle\0"

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS entitle_schema (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), version integer NOT NULL);
CREATE TABLE IF NOT EXISTS entitle_namespaces (
    namespace text PRIMARY KEY, generation bigint NOT NULL,
    licenses_generation bigint NOT NULL);
CREATE TABLE IF NOT EXISTS entitle_settings (
    namespace text NOT NULL, key text NOT NULL, value text NOT NULL,
    PRIMARY KEY (namespace, key));
CREATE TABLE IF NOT EXISTS entitle_licenses (
    namespace text NOT NULL, id text NOT NULL, token text NOT NULL,
    added_at bigint NOT NULL, revoked boolean NOT NULL, PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS entitle_serials (
    namespace text NOT NULL, id text NOT NULL, serial bigint NOT NULL, issued_at bigint,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS entitle_tombstones (
    namespace text NOT NULL, id text NOT NULL, at bigint NOT NULL,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS entitle_first_use (
    namespace text NOT NULL, id text NOT NULL, at bigint NOT NULL,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS entitle_signed (
    namespace text NOT NULL, digest text NOT NULL, typ text NOT NULL, token text NOT NULL,
    added_at bigint NOT NULL, PRIMARY KEY (namespace, digest));
CREATE TABLE IF NOT EXISTS entitle_users (
    namespace text NOT NULL, id text NOT NULL, user_type text NOT NULL,
    added_at bigint NOT NULL, last_active_at bigint NOT NULL, name text, email text,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS entitle_activations (
    namespace text NOT NULL, license_id text NOT NULL, fingerprint text NOT NULL,
    activated_at bigint NOT NULL, expires_at bigint, certificate boolean NOT NULL,
    hostname text NOT NULL, vm boolean NOT NULL, token text, install_key text, machine text,
    PRIMARY KEY (namespace, license_id, fingerprint));
CREATE TABLE IF NOT EXISTS entitle_transfers (
    namespace text NOT NULL, license_id text NOT NULL, count bigint NOT NULL,
    PRIMARY KEY (namespace, license_id));
CREATE TABLE IF NOT EXISTS entitle_leases (
    namespace text NOT NULL, id text NOT NULL, client text NOT NULL, feature text,
    created_at bigint NOT NULL, expires_at bigint NOT NULL, borrowed_until bigint,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS entitle_counters (
    namespace text NOT NULL, license_id text NOT NULL, code text NOT NULL,
    period_start bigint NOT NULL, used bigint NOT NULL, PRIMARY KEY (namespace, license_id, code));
CREATE TABLE IF NOT EXISTS entitle_issued_receipts (
    namespace text NOT NULL, license_id text NOT NULL, fingerprint text NOT NULL,
    deactivated_at bigint NOT NULL, nonce text NOT NULL, token text NOT NULL,
    PRIMARY KEY (namespace, license_id, fingerprint));
CREATE TABLE IF NOT EXISTS entitle_accepted_receipts (
    namespace text NOT NULL, license_id text NOT NULL, fingerprint text NOT NULL,
    nonce text NOT NULL, install_key text NOT NULL, deactivated_at bigint NOT NULL,
    accepted_at bigint NOT NULL, token text NOT NULL,
    PRIMARY KEY (namespace, license_id, fingerprint, nonce));
CREATE TABLE IF NOT EXISTS entitle_reports (
    namespace text NOT NULL, fingerprint text NOT NULL, sequence bigint NOT NULL,
    install_key text NOT NULL, created_at bigint NOT NULL, ingested_at bigint NOT NULL,
    token text NOT NULL, PRIMARY KEY (namespace, fingerprint, sequence));
-- Version 2 (the air-gapped way back): activations recorded by version 1
-- have no install key; their receipts cannot be checked, as in the file
-- store's format 3.
ALTER TABLE entitle_activations ADD COLUMN IF NOT EXISTS install_key text;
-- Version 4 (nothing stored fails open): the machine a named device was
-- activated on; an older row has none, and a named device's activation
-- then grants nothing until it is made again.
ALTER TABLE entitle_activations ADD COLUMN IF NOT EXISTS machine text;
-- and the issued_at of each license id's latest issue: a token of the
-- same serial signed earlier is refused, installed or not.
ALTER TABLE entitle_serials ADD COLUMN IF NOT EXISTS issued_at bigint;
-- Version 3 (commits in one round trip): moves a namespace from the
-- generation its writer planned on to the next, or fails the transaction
-- (serialization_failure) if another writer moved it first. Run first in
-- a commit, it takes the row lock every writer takes. Version 4: only
-- forward (numeric_value_out_of_range otherwise), so a generation at the
-- top of bigint, set by hand, fails every commit (STATE_CORRUPT) instead
-- of passing each writer's plan as the successor of the others'.
CREATE OR REPLACE FUNCTION entitle_advance(
    ns text, planned_on bigint, next bigint, licenses bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF next IS NULL OR planned_on IS NULL OR next <= planned_on THEN
        RAISE EXCEPTION 'entitle: namespace % cannot move from generation % to %',
            ns, planned_on, next
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    UPDATE entitle_namespaces
    SET generation = next, licenses_generation = COALESCE(licenses, licenses_generation)
    WHERE namespace = ns AND generation = planned_on;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'entitle: namespace % moved past generation %', ns, planned_on
            USING ERRCODE = 'serialization_failure';
    END IF;
END $$;
-- Version 4 (reports that hide nothing): the closed periods of metered
-- features an install keeps until a usage report carries them; and
-- `entitle_advance`, above, moves a namespace only forward.
CREATE TABLE IF NOT EXISTS entitle_closed_periods (
    namespace text NOT NULL, license_id text NOT NULL, code text NOT NULL,
    starts_at bigint NOT NULL, ends_at bigint NOT NULL, used bigint NOT NULL,
    PRIMARY KEY (namespace, license_id, code, starts_at));
-- Version 5: a user's name and email, shown in usage (words: they grant
-- nothing); an older user has none.
ALTER TABLE entitle_users ADD COLUMN IF NOT EXISTS name text;
ALTER TABLE entitle_users ADD COLUMN IF NOT EXISTS email text;
-- Version 6: the records of the vendor's online service (license keys,
-- accounts, assignments, trials, withdrawn certificates), kept by its
-- books; an install has none.
CREATE TABLE IF NOT EXISTS entitle_books (
    namespace text NOT NULL, kind text NOT NULL, key text NOT NULL, value text NOT NULL,
    PRIMARY KEY (namespace, kind, key));
-- Version 7: the license server's history (docs/http.md#history), its
-- events and their per-minute buckets; never read with the state.
CREATE TABLE IF NOT EXISTS entitle_history_events (
    namespace text NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, at bigint NOT NULL,
    kind text NOT NULL, feature text, client text NOT NULL, lease_id text, reason text,
    in_use integer NOT NULL, queued integer NOT NULL, PRIMARY KEY (namespace, id));
CREATE INDEX IF NOT EXISTS entitle_history_events_at
    ON entitle_history_events (namespace, at, id);
CREATE TABLE IF NOT EXISTS entitle_history_minutes (
    namespace text NOT NULL, pool text NOT NULL, minute bigint NOT NULL,
    in_use_peak integer NOT NULL, denials bigint NOT NULL, queued_peak integer NOT NULL,
    last_at bigint NOT NULL, in_use_last integer NOT NULL, queued_last integer NOT NULL,
    PRIMARY KEY (namespace, pool, minute));
";

/// Every table holding rows of a namespace, `entitle_namespaces` first:
/// what [`remove_namespace`] deletes. A table added to [`TABLES`] is
/// added here (the PostgreSQL tests check every `entitle_*` table with a
/// `namespace` column is).
pub(super) const NAMESPACED_TABLES: &[&str] = &[
    "entitle_namespaces",
    "entitle_settings",
    "entitle_licenses",
    "entitle_serials",
    "entitle_tombstones",
    "entitle_first_use",
    "entitle_signed",
    "entitle_users",
    "entitle_activations",
    "entitle_transfers",
    "entitle_leases",
    "entitle_counters",
    "entitle_issued_receipts",
    "entitle_accepted_receipts",
    "entitle_reports",
    "entitle_closed_periods",
    "entitle_books",
    "entitle_history_events",
    "entitle_history_minutes",
];

/// Whether entitle's tables are there, brought up to date if they are
/// older than this entitle and made if they are missing and `make`; an
/// error if they were written by a newer entitle.
pub(super) fn ready(conn: &mut Conn, location: &str, make: bool) -> Result<bool> {
    let sql = |e| db_error(location, std::time::Duration::ZERO, e);
    // The common case, in one round trip: the tables are there and current.
    let current = match conn
        .client
        .query_opt("SELECT version FROM entitle_schema", &[])
    {
        Ok(Some(row)) => Some(check_version(row.try_get(0).map_err(sql)?, location)?),
        // No tables yet (or no version row, which making them mends).
        Ok(None) => None,
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(sql(e)),
    };
    match current {
        Some(true) => Ok(true),
        // Older: what was stored is kept, so bringing it up to date is
        // no creation.
        Some(false) => make_tables(conn, location).map(|()| true),
        None if make => make_tables(conn, location).map(|()| true),
        None => Ok(false),
    }
}

/// The generation of `namespace`, or `None` if it has no row.
pub(super) fn generation(conn: &mut Conn, location: &str, namespace: &str) -> Result<Option<u64>> {
    let sql = |e| db_error(location, std::time::Duration::ZERO, e);
    let rows = conn
        .query(
            "SELECT generation FROM entitle_namespaces WHERE namespace = $1",
            &[&namespace],
        )
        .map_err(sql)?;
    match rows.first() {
        Some(row) => {
            let generation: i64 = row.try_get(0).map_err(sql)?;
            Ok(Some(u64::try_from(generation).unwrap_or(0)))
        }
        None => Ok(None),
    }
}

/// Makes `namespace`'s row at generation 0; `false` if it had one.
pub(super) fn add_namespace(conn: &mut Conn, location: &str, namespace: &str) -> Result<bool> {
    let sql = |e| db_error(location, std::time::Duration::ZERO, e);
    let added = conn
        .execute(
            "INSERT INTO entitle_namespaces (namespace, generation, licenses_generation) \
             VALUES ($1, 0, 0) ON CONFLICT (namespace) DO NOTHING",
            &[&namespace],
        )
        .map_err(sql)?;
    Ok(added == 1)
}

/// Every namespace, sorted by bytes (not by the database's collation,
/// which differs between servers).
pub(super) fn namespaces(conn: &mut Conn, location: &str) -> Result<Vec<String>> {
    let sql = |e| db_error(location, std::time::Duration::ZERO, e);
    let mut names = conn
        .query("SELECT namespace FROM entitle_namespaces", &[])
        .map_err(sql)?
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(sql)?;
    names.sort_unstable();
    Ok(names)
}

/// Deletes every row of `namespace` in one transaction, waiting up to
/// `lock_timeout` for a writer holding it; `false` (and nothing deleted)
/// if it has no namespace row.
///
/// The namespace row goes first: deleting it waits for a writer holding
/// its lock to commit, whose rows the later statements (each reading
/// what is committed when it starts) then delete too; and a writer
/// coming after finds no row to lock or advance, and fails.
pub(super) fn remove_namespace(
    conn: &mut Conn,
    location: &str,
    namespace: &str,
    lock_timeout: std::time::Duration,
) -> Result<bool> {
    let sql = |e| db_error(location, lock_timeout, e);
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = {}",
        lock_timeout.as_millis().max(1)
    );
    if let Err(e) = conn.client.batch_execute(&begin) {
        let _ = conn.client.batch_execute("ROLLBACK");
        return Err(sql(e));
    }
    let removed = (|| {
        for table in NAMESPACED_TABLES {
            let deleted = conn
                .client
                .execute(
                    &format!("DELETE FROM {table} WHERE namespace = $1"),
                    &[&namespace],
                )
                .map_err(sql)?;
            if *table == "entitle_namespaces" && deleted == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    })();
    let end = match removed {
        Ok(true) => "COMMIT",
        _ => "ROLLBACK",
    };
    match conn.client.batch_execute(end) {
        Err(e) if end == "COMMIT" => Err(sql(e)),
        _ => removed,
    }
}

/// Whether tables of `version` are current; an error if they are newer
/// than this entitle reads.
fn check_version(version: i32, location: &str) -> Result<bool> {
    if version > SCHEMA_VERSION {
        return Err(Error::StateCorrupt {
            path: location.to_owned(),
            detail: format!(
                "its tables were written by a newer entitle (schema version {version}; \
                 this one reads up to {SCHEMA_VERSION}): upgrade entitle"
            ),
        });
    }
    Ok(version == SCHEMA_VERSION)
}

/// Makes (or migrates) the tables in one transaction, under an advisory
/// lock so that processes starting at once do it one at a time.
fn make_tables(conn: &mut Conn, location: &str) -> Result<()> {
    let sql = |e| db_error(location, std::time::Duration::ZERO, e);
    conn.client.batch_execute("BEGIN").map_err(sql)?;
    let made = (|| {
        conn.client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(sql)?;
        // Made current by another process while this one waited for the
        // lock: nothing to do. Running [`TABLES`] again would take each
        // altered table's exclusive lock while that process's engines use
        // them, in another order than they do (a deadlock).
        let made: bool = conn
            .client
            .query_one("SELECT to_regclass('entitle_schema') IS NOT NULL", &[])
            .and_then(|row| row.try_get(0))
            .map_err(sql)?;
        let current: Option<i32> = if made {
            conn.client
                .query_one("SELECT max(version) FROM entitle_schema", &[])
                .and_then(|row| row.try_get(0))
                .map_err(sql)?
        } else {
            None
        };
        if current == Some(SCHEMA_VERSION) {
            return Ok(());
        }
        conn.client.batch_execute(TABLES).map_err(sql)?;
        let version: Option<i32> = conn
            .client
            .query_opt("SELECT version FROM entitle_schema", &[])
            .map_err(sql)?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(sql)?;
        match version {
            None => {
                conn.client
                    .execute(
                        "INSERT INTO entitle_schema (version) VALUES ($1)",
                        &[&SCHEMA_VERSION],
                    )
                    .map_err(sql)?;
            }
            // Made by another process meanwhile, or older: [`TABLES`]
            // adds what each version since added (new tables, the
            // activations' install key), so older is brought up by
            // setting the version.
            Some(version) if !check_version(version, location)? => {
                conn.client
                    .execute("UPDATE entitle_schema SET version = $1", &[&SCHEMA_VERSION])
                    .map_err(sql)?;
            }
            Some(_) => {}
        }
        Ok(())
    })();
    match made {
        Ok(()) => conn.client.batch_execute("COMMIT").map_err(sql),
        Err(e) => {
            let _ = conn.client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}
