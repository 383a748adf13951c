//! Rows: how each record of the store's vocabulary is written as SQL and
//! read back. Settings live in the `meta` table under the keys older
//! versions wrote, so a state written before settings were typed reads
//! as it did.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{params, Connection, Row};
use sha2::{Digest, Sha256};

use super::corrupt_rows;
use super::schema::check_count;
use crate::store::{
    AcceptedReceiptRecord, ActivationKind, ActivationRecord, BooksRecord, Change,
    ClosedPeriodRecord, CounterRecord, IssueMark, IssuedReceiptRecord, LeaseRecord, LicenseRecord,
    Persisted, ReportRecord, Setting, Settings, SignedKind, SignedRecord, UserRecord,
};
use crate::Timestamp;

/// The `meta` keys of the settings.
use crate::store::setting_key as key;

pub(super) fn read_generation(conn: &Connection) -> rusqlite::Result<u64> {
    // Cached statements: a mutation runs this and BEGIN/COMMIT every time,
    // and parsing them again cost more than executing them.
    let text: String = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'generation'")?
        .query_row([], |r| r.get(0))?;
    text.parse()
        .map_err(|_| corrupt_rows("the generation is not a number".into()))
}

/// Reads every row of `table` (the columns of `columns`) with `read`, and
/// checks their number against the count kept beside them.
fn read_table<T>(
    conn: &Connection,
    kept: &BTreeMap<String, String>,
    table: &str,
    columns: &str,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    // Cached: a refresh after another process's change reads every table.
    let mut stmt = conn.prepare_cached(&format!("SELECT {columns} FROM {table}"))?;
    let rows = stmt
        .query_map([], |r| read(r))?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    check_count(kept, table, rows.len())?;
    Ok(rows)
}

fn read_meta(conn: &Connection) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM meta")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.collect()
}

pub(super) fn read_settings(conn: &Connection) -> rusqlite::Result<Settings> {
    settings(&read_meta(conn)?)
}

/// The large, seldom changed tables as last read, with the version they
/// were read at ([`VERSIONED`](super::schema::VERSIONED)).
#[derive(Debug, Default)]
pub(super) struct Cached {
    licenses: Option<(String, Vec<LicenseRecord>)>,
    serials: Option<(String, Vec<(String, IssueMark)>)>,
    tombstones: Option<(String, Vec<(String, i64)>)>,
    first_use: Option<(String, Vec<(String, i64)>)>,
    signed: Option<(String, Vec<SignedRecord>)>,
    accepted_receipts: Option<(String, Vec<AcceptedReceiptRecord>)>,
    reports: Option<(String, Vec<ReportRecord>)>,
    books: Option<(String, Vec<BooksRecord>)>,
}

/// Reads `table` with `read`, or takes it from `cached` when its version
/// has not moved since.
fn read_versioned<T: Clone>(
    meta: &BTreeMap<String, String>,
    cached: &mut Option<(String, Vec<T>)>,
    table: &str,
    read: impl FnOnce() -> rusqlite::Result<Vec<T>>,
) -> rusqlite::Result<Vec<T>> {
    let version = meta.get(&format!("version.{table}"));
    if let (Some(version), Some((seen, rows))) = (version, &cached) {
        if version == seen {
            return Ok(rows.clone());
        }
    }
    let rows = read()?;
    *cached = version.map(|v| (v.clone(), rows.clone()));
    Ok(rows)
}

pub(super) fn read_all(conn: &Connection, cached: &mut Cached) -> rusqlite::Result<Persisted> {
    let meta = read_meta(conn)?;
    let unsigned = |r: &Row<'_>, i: usize| -> rusqlite::Result<u64> {
        Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
    };
    Ok(Persisted {
        settings: settings(&meta)?,
        licenses: read_versioned(&meta, &mut cached.licenses, "licenses", || {
            read_table(
                conn,
                &meta,
                "licenses",
                "id, token, added_at, revoked",
                |r| {
                    Ok(LicenseRecord {
                        id: Arc::from(r.get::<_, String>(0)?),
                        token: Arc::from(r.get::<_, String>(1)?),
                        added_at: r.get(2)?,
                        revoked: r.get::<_, i64>(3)? != 0,
                        verified: None,
                    })
                },
            )
        })?,
        serials: read_versioned(&meta, &mut cached.serials, "serials", || {
            read_table(conn, &meta, "serials", "id, serial, issued_at", |r| {
                Ok((
                    r.get(0)?,
                    IssueMark {
                        serial: unsigned(r, 1)?,
                        issued_at: r.get(2)?,
                    },
                ))
            })
        })?,
        tombstones: read_versioned(&meta, &mut cached.tombstones, "tombstones", || {
            read_table(conn, &meta, "tombstones", "id, at", |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })?,
        first_use: read_versioned(&meta, &mut cached.first_use, "first_use", || {
            read_table(conn, &meta, "first_use", "id, at", |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })?,
        users: read_table(
            conn,
            &meta,
            "users",
            "id, user_type, added_at, last_active_at, name, email",
            |r| {
                Ok(UserRecord {
                    id: r.get(0)?,
                    user_type: r.get(1)?,
                    added_at: r.get(2)?,
                    last_active_at: r.get(3)?,
                    name: r.get(4)?,
                    email: r.get(5)?,
                })
            },
        )?,
        activations: read_table(
            conn,
            &meta,
            "activations",
            "license_id, fingerprint, activated_at, expires_at, certificate, hostname, vm, token, install_key, machine",
            |r| {
                let kind = match (r.get::<_, i64>(4)? != 0, r.get::<_, Option<String>>(7)?) {
                    (false, _) => ActivationKind::Counted,
                    (true, Some(token)) => ActivationKind::Certificate(token),
                    (true, None) => ActivationKind::Recorded,
                };
                Ok(ActivationRecord {
                    license_id: r.get(0)?,
                    fingerprint: r.get(1)?,
                    activated_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    kind,
                    hostname: r.get(5)?,
                    vm: r.get::<_, i64>(6)? != 0,
                    install_key: r.get(8)?,
                    machine: r.get(9)?,
                })
            },
        )?,
        transfers: read_table(conn, &meta, "transfers", "license_id, count", |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?,
        leases: read_table(
            conn,
            &meta,
            "leases",
            "id, client, feature, created_at, expires_at, borrowed_until",
            |r| {
                Ok(LeaseRecord {
                    id: r.get(0)?,
                    client: r.get(1)?,
                    feature: r.get(2)?,
                    created_at: r.get(3)?,
                    expires_at: r.get(4)?,
                    borrowed_until: r.get(5)?,
                })
            },
        )?,
        counters: read_table(
            conn,
            &meta,
            "counters",
            "license_id, code, period_start, used",
            |r| {
                Ok(CounterRecord {
                    license_id: r.get(0)?,
                    code: r.get(1)?,
                    period_start: r.get(2)?,
                    used: unsigned(r, 3)?,
                })
            },
        )?,
        signed: read_versioned(&meta, &mut cached.signed, "signed", || {
            read_table(conn, &meta, "signed", "typ, token, added_at", |r| {
                let typ: String = r.get(0)?;
                let kind = SignedKind::parse(&typ).ok_or_else(|| {
                    corrupt_rows(format!("a signed row has an unknown type `{typ}`"))
                })?;
                Ok(SignedRecord {
                    kind,
                    token: r.get(1)?,
                    added_at: r.get(2)?,
                })
            })
        })?,
        issued_receipts: read_table(
            conn,
            &meta,
            "issued_receipts",
            "license_id, fingerprint, deactivated_at, nonce, token",
            |r| {
                Ok(IssuedReceiptRecord {
                    license_id: r.get(0)?,
                    fingerprint: r.get(1)?,
                    deactivated_at: r.get(2)?,
                    nonce: r.get(3)?,
                    token: r.get(4)?,
                })
            },
        )?,
        accepted_receipts: read_versioned(
            &meta,
            &mut cached.accepted_receipts,
            "accepted_receipts",
            || {
                read_table(
                    conn,
                    &meta,
                    "accepted_receipts",
                    "license_id, fingerprint, nonce, install_key, deactivated_at, accepted_at, token",
                    |r| {
                        Ok(AcceptedReceiptRecord {
                            license_id: r.get(0)?,
                            fingerprint: r.get(1)?,
                            nonce: r.get(2)?,
                            install_key: r.get(3)?,
                            deactivated_at: r.get(4)?,
                            accepted_at: r.get(5)?,
                            token: r.get(6)?,
                        })
                    },
                )
            },
        )?,
        reports: read_versioned(&meta, &mut cached.reports, "reports", || {
            read_table(
                conn,
                &meta,
                "reports",
                "fingerprint, sequence, install_key, created_at, ingested_at, token",
                |r| {
                    Ok(ReportRecord {
                        fingerprint: r.get(0)?,
                        sequence: unsigned(r, 1)?,
                        install_key: r.get(2)?,
                        created_at: r.get(3)?,
                        ingested_at: r.get(4)?,
                        token: r.get(5)?,
                    })
                },
            )
        })?,
        closed_periods: read_table(
            conn,
            &meta,
            "closed_periods",
            "license_id, code, starts_at, ends_at, used",
            |r| {
                Ok(ClosedPeriodRecord {
                    license_id: r.get(0)?,
                    code: r.get(1)?,
                    starts_at: r.get(2)?,
                    ends_at: r.get(3)?,
                    used: unsigned(r, 4)?,
                })
            },
        )?,
        books: read_versioned(&meta, &mut cached.books, "books", || {
            read_table(conn, &meta, "books", "kind, key, value", |r| {
                Ok(BooksRecord {
                    kind: r.get(0)?,
                    key: r.get(1)?,
                    value: r.get(2)?,
                })
            })
        })?,
    })
}

/// A count or sequence as SQLite stores it (a signed 64-bit integer): one
/// beyond is refused, never clamped (a clamped sequence would repeat).
fn stored(n: u64, what: &str) -> rusqlite::Result<i64> {
    i64::try_from(n).map_err(|_| corrupt_rows(format!("{what} {n} is beyond what a state holds")))
}

/// The settings, from the `meta` table.
fn settings(meta: &BTreeMap<String, String>) -> rusqlite::Result<Settings> {
    // The release date is kept as RFC 3339 text here.
    Settings::from_rows(meta, |text| {
        Timestamp::parse(text)
            .map(Timestamp::unix)
            .map_err(|e| format!("its release date is unreadable ({e})"))
    })
    .map_err(corrupt_rows)
}

fn set_meta(conn: &Connection, key: &str, value: Option<&str>) -> rusqlite::Result<()> {
    match value {
        Some(value) => conn
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value]),
        None => conn
            .prepare_cached("DELETE FROM meta WHERE key = ?1")?
            .execute(params![key]),
    }
    .map(drop)
}

pub(super) fn set_generation(conn: &Connection, generation: u64) -> rusqlite::Result<()> {
    set_meta(conn, "generation", Some(&generation.to_string()))
}

fn write_setting(conn: &Connection, setting: &Setting) -> rusqlite::Result<()> {
    match setting {
        Setting::Product(p) => set_meta(conn, key::PRODUCT, Some(p)),
        Setting::LatestSeen(t) => set_meta(conn, key::LATEST_SEEN, Some(&t.to_string())),
        Setting::MaxIssuedAt(t) => set_meta(conn, key::MAX_ISSUED_AT, Some(&t.to_string())),
        Setting::Install(s) => {
            let keys = serde_json::to_string(&s.trusted_keys)
                .map_err(|e| corrupt_rows(format!("trusted keys do not serialize ({e})")))?;
            set_meta(conn, key::KEYS, Some(&keys))?;
            let date = s.release_date.map(|t| Timestamp::from_unix(t).to_rfc3339());
            set_meta(conn, key::RELEASE_DATE, date.as_deref())?;
            set_meta(conn, key::DEVICE, s.device.as_deref())?;
            set_meta(conn, key::MACHINE, s.machine.as_deref())?;
            set_meta(conn, key::VERSION, s.version.as_deref())?;
            set_meta(conn, key::CHANNEL, s.channel.as_deref())
        }
        Setting::InstallKey(seed) => set_meta(conn, key::INSTALL_KEY, Some(seed.expose())),
        Setting::ReportSequence(n) => set_meta(
            conn,
            key::REPORT_SEQUENCE,
            Some(&stored(*n, "the report sequence")?.to_string()),
        ),
        Setting::LastReport(token) => set_meta(conn, key::LAST_REPORT, Some(token)),
    }
}

/// Runs one cached statement with `params`.
fn run(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute(params).map(drop)
}

pub(super) fn write(conn: &Connection, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Set(setting) => write_setting(conn, setting),
        Change::PutLicense(l) => run(
            conn,
            "INSERT OR REPLACE INTO licenses (id, token, added_at, revoked) VALUES (?1, ?2, ?3, ?4)",
            params![&*l.id, &*l.token, l.added_at, l.revoked as i64],
        ),
        Change::DeleteLicense(id) => run(conn, "DELETE FROM licenses WHERE id = ?1", params![id]),
        Change::Serial(id, mark) => run(
            conn,
            "INSERT OR REPLACE INTO serials (id, serial, issued_at) VALUES (?1, ?2, ?3)",
            params![id, i64::try_from(mark.serial).unwrap_or(i64::MAX), mark.issued_at],
        ),
        Change::Tombstone(id, at) => run(
            conn,
            "INSERT OR REPLACE INTO tombstones (id, at) VALUES (?1, ?2)",
            params![id, at],
        ),
        Change::FirstUse(id, at) => run(
            conn,
            "INSERT OR IGNORE INTO first_use (id, at) VALUES (?1, ?2)",
            params![id, at],
        ),
        Change::PutSigned(r) => {
            let digest: String = Sha256::digest(r.token.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            run(
                conn,
                "INSERT OR IGNORE INTO signed (digest, typ, token, added_at) VALUES (?1, ?2, ?3, ?4)",
                params![digest, r.kind.as_str(), r.token, r.added_at],
            )
        }
        Change::PutUser(u) => run(
            conn,
            "INSERT OR REPLACE INTO users (id, user_type, added_at, last_active_at, name, email) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![u.id, u.user_type, u.added_at, u.last_active_at, u.name, u.email],
        ),
        Change::DeleteUser(id) => run(conn, "DELETE FROM users WHERE id = ?1", params![id]),
        Change::PutActivation(a) => {
            let token = match &a.kind {
                ActivationKind::Certificate(token) => Some(token.as_str()),
                _ => None,
            };
            run(
                conn,
                "INSERT OR REPLACE INTO activations (license_id, fingerprint, activated_at, expires_at, certificate, hostname, vm, token, install_key, machine) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    a.license_id,
                    a.fingerprint,
                    a.activated_at,
                    a.expires_at,
                    (a.kind != ActivationKind::Counted) as i64,
                    a.hostname,
                    a.vm as i64,
                    token,
                    a.install_key,
                    a.machine,
                ],
            )
        }
        Change::DeleteActivation {
            license_id,
            fingerprint,
        } => run(
            conn,
            "DELETE FROM activations WHERE license_id = ?1 AND fingerprint = ?2",
            params![license_id, fingerprint],
        ),
        Change::Transfers(license_id, n) => run(
            conn,
            "INSERT OR REPLACE INTO transfers (license_id, count) VALUES (?1, ?2)",
            params![license_id, n],
        ),
        Change::PutLease(l) => run(
            conn,
            "INSERT OR REPLACE INTO leases (id, client, feature, created_at, expires_at, borrowed_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![l.id, l.client, l.feature, l.created_at, l.expires_at, l.borrowed_until],
        ),
        Change::DeleteLease(id) => run(conn, "DELETE FROM leases WHERE id = ?1", params![id]),
        Change::PutCounter(c) => {
            // Every consume rewrites its counter: an UPDATE in place is
            // cheaper than a REPLACE, which deletes and inserts the row
            // and runs the counting trigger's lookup.
            let row = params![
                c.license_id,
                c.code,
                c.period_start,
                i64::try_from(c.used).unwrap_or(i64::MAX)
            ];
            let updated = conn
                .prepare_cached(
                    "UPDATE counters SET period_start = ?3, used = ?4 WHERE license_id = ?1 AND code = ?2",
                )?
                .execute(row)?;
            if updated == 0 {
                run(
                    conn,
                    "INSERT INTO counters (license_id, code, period_start, used) VALUES (?1, ?2, ?3, ?4)",
                    row,
                )?;
            }
            Ok(())
        }
        Change::PutIssuedReceipt(r) => run(
            conn,
            "INSERT OR REPLACE INTO issued_receipts (license_id, fingerprint, deactivated_at, nonce, token) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![r.license_id, r.fingerprint, r.deactivated_at, r.nonce, r.token],
        ),
        Change::PutAcceptedReceipt(r) => run(
            conn,
            "INSERT OR REPLACE INTO accepted_receipts (license_id, fingerprint, nonce, install_key, deactivated_at, accepted_at, token) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.license_id,
                r.fingerprint,
                r.nonce,
                r.install_key,
                r.deactivated_at,
                r.accepted_at,
                r.token
            ],
        ),
        // Never over a stored report: the books refuse a sequence at or
        // below one they hold, and a row already there fails the write.
        Change::PutReport(r) => run(
            conn,
            "INSERT INTO reports (fingerprint, sequence, install_key, created_at, ingested_at, token) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                r.fingerprint,
                stored(r.sequence, "the report sequence")?,
                r.install_key,
                r.created_at,
                r.ingested_at,
                r.token
            ],
        ),
        Change::PutClosedPeriod(p) => run(
            conn,
            "INSERT OR REPLACE INTO closed_periods (license_id, code, starts_at, ends_at, used) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                p.license_id,
                p.code,
                p.starts_at,
                p.ends_at,
                stored(p.used, "a closed period's count")?
            ],
        ),
        Change::DeleteClosedPeriod {
            license_id,
            code,
            starts_at,
        } => run(
            conn,
            "DELETE FROM closed_periods WHERE license_id = ?1 AND code = ?2 AND starts_at = ?3",
            params![license_id, code, starts_at],
        ),
        Change::PutBooksRecord(r) => run(
            conn,
            "INSERT OR REPLACE INTO books (kind, key, value) VALUES (?1, ?2, ?3)",
            params![r.kind, r.key, r.value],
        ),
        Change::DeleteBooksRecord { kind, key } => run(
            conn,
            "DELETE FROM books WHERE kind = ?1 AND key = ?2",
            params![kind, key],
        ),
    }
}
