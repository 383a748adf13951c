//! Rows: how each record of the store's vocabulary is written to the
//! PostgreSQL tables and read back, always within one namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use postgres::types::FromSql;
use postgres::Row;
use sha2::{Digest, Sha256};

use super::database::Conn;
use crate::store::{
    AcceptedReceiptRecord, ActivationKind, ActivationRecord, BooksRecord, Change,
    ClosedPeriodRecord, CounterRecord, IssueMark, IssuedReceiptRecord, LeaseRecord, LicenseRecord,
    Persisted, ReportRecord, Setting, Settings, SignedKind, SignedRecord, UserRecord,
};

/// A failure reading or writing rows: the client's, or a row that does
/// not read as what entitle wrote.
#[derive(Debug)]
pub(super) enum RowError {
    Client(postgres::Error),
    Corrupt(String),
}

impl From<postgres::Error> for RowError {
    fn from(e: postgres::Error) -> Self {
        RowError::Client(e)
    }
}

type Rows<T> = std::result::Result<T, RowError>;

/// The keys of `entitle_settings`.
use crate::store::setting_key as key;

fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize, table: &str) -> Rows<T> {
    row.try_get(i)
        .map_err(|e| RowError::Corrupt(format!("a row of {table} does not read ({e})")))
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A sequence or count as a `bigint`: one beyond is refused, never
/// clamped (a clamped sequence would repeat).
fn exact(value: u64, what: &str) -> Rows<i64> {
    i64::try_from(value)
        .map_err(|_| RowError::Corrupt(format!("{what} {value} is beyond what a state holds")))
}

/// The tables that change seldom and hold large tokens (licenses and what
/// goes with them; the receipts and reports a vendor's books keep), as
/// last read, with the `licenses_generation` they were read at: a refresh
/// after another engine's change reads them again only if they changed.
#[derive(Debug, Default)]
pub(super) struct Cached {
    at: Option<u64>,
    licenses: Vec<LicenseRecord>,
    serials: Vec<(String, IssueMark)>,
    tombstones: Vec<(String, i64)>,
    first_use: Vec<(String, i64)>,
    signed: Vec<SignedRecord>,
    accepted_receipts: Vec<AcceptedReceiptRecord>,
    reports: Vec<ReportRecord>,
    books: Vec<BooksRecord>,
}

/// Whether a change touches a table [`Cached`] keeps.
pub(super) fn changes_licenses(change: &Change) -> bool {
    match change {
        Change::PutLicense(_)
        | Change::DeleteLicense(_)
        | Change::Serial(..)
        | Change::Tombstone(..)
        | Change::FirstUse(..)
        | Change::PutSigned(_)
        | Change::PutAcceptedReceipt(_)
        | Change::PutReport(_)
        | Change::PutBooksRecord(_)
        | Change::DeleteBooksRecord { .. } => true,
        Change::Set(_)
        | Change::PutUser(_)
        | Change::DeleteUser(_)
        | Change::PutActivation(_)
        | Change::DeleteActivation { .. }
        | Change::Transfers(..)
        | Change::PutLease(_)
        | Change::DeleteLease(_)
        | Change::PutCounter(_)
        | Change::PutIssuedReceipt(_)
        | Change::PutClosedPeriod(_)
        | Change::DeleteClosedPeriod { .. } => false,
    }
}

/// Reads the whole state of `namespace`. `licenses_at` is the
/// `licenses_generation` the tables [`Cached`] keeps are at, when they
/// are as committed (`None` inside a batch that changed them): then they
/// are taken from `cached` if it holds them at that generation.
pub(super) fn read_all(
    conn: &mut Conn,
    namespace: &str,
    cached: &mut Cached,
    licenses_at: Option<u64>,
) -> Rows<Persisted> {
    let ns: &(dyn postgres::types::ToSql + Sync) = &namespace;
    let settings = read_settings(conn, namespace)?;
    if licenses_at.is_none() || cached.at != licenses_at {
        let fresh = Cached {
            at: licenses_at,
            licenses: conn
                .query(
                    "SELECT id, token, added_at, revoked FROM entitle_licenses \
                     WHERE namespace = $1 ORDER BY id",
                    &[ns],
                )?
                .iter()
                .map(|r| {
                    Ok(LicenseRecord {
                        id: Arc::from(get::<&str>(r, 0, "licenses")?),
                        token: Arc::from(get::<&str>(r, 1, "licenses")?),
                        added_at: get(r, 2, "licenses")?,
                        revoked: get(r, 3, "licenses")?,
                        verified: None,
                    })
                })
                .collect::<Rows<_>>()?,
            serials: conn
                .query(
                    "SELECT id, serial, issued_at FROM entitle_serials WHERE namespace = $1 \
                     ORDER BY id",
                    &[ns],
                )?
                .iter()
                .map(|r| {
                    let mark = IssueMark {
                        serial: unsigned(get(r, 1, "serials")?),
                        issued_at: get(r, 2, "serials")?,
                    };
                    Ok((get(r, 0, "serials")?, mark))
                })
                .collect::<Rows<_>>()?,
            tombstones: pairs(
                conn,
                "SELECT id, at FROM entitle_tombstones WHERE namespace = $1 ORDER BY id",
                namespace,
                "tombstones",
            )?,
            first_use: pairs(
                conn,
                "SELECT id, at FROM entitle_first_use WHERE namespace = $1 ORDER BY id",
                namespace,
                "first_use",
            )?,
            signed: conn
                .query(
                    "SELECT typ, token, added_at FROM entitle_signed \
                     WHERE namespace = $1 ORDER BY digest",
                    &[ns],
                )?
                .iter()
                .map(|r| {
                    let typ: &str = get(r, 0, "signed")?;
                    let kind = SignedKind::parse(typ).ok_or_else(|| {
                        RowError::Corrupt(format!("a signed row has an unknown type `{typ}`"))
                    })?;
                    Ok(SignedRecord {
                        kind,
                        token: get(r, 1, "signed")?,
                        added_at: get(r, 2, "signed")?,
                    })
                })
                .collect::<Rows<_>>()?,
            accepted_receipts: conn
                .query(
                    "SELECT license_id, fingerprint, nonce, install_key, deactivated_at, \
                     accepted_at, token FROM entitle_accepted_receipts WHERE namespace = $1 \
                     ORDER BY license_id, fingerprint, nonce",
                    &[ns],
                )?
                .iter()
                .map(|r| {
                    let t = "accepted_receipts";
                    Ok(AcceptedReceiptRecord {
                        license_id: get(r, 0, t)?,
                        fingerprint: get(r, 1, t)?,
                        nonce: get(r, 2, t)?,
                        install_key: get(r, 3, t)?,
                        deactivated_at: get(r, 4, t)?,
                        accepted_at: get(r, 5, t)?,
                        token: get(r, 6, t)?,
                    })
                })
                .collect::<Rows<_>>()?,
            reports: conn
                .query(
                    "SELECT fingerprint, sequence, install_key, created_at, ingested_at, token \
                     FROM entitle_reports WHERE namespace = $1 ORDER BY fingerprint, sequence",
                    &[ns],
                )?
                .iter()
                .map(|r| {
                    let t = "reports";
                    let sequence: i64 = get(r, 1, t)?;
                    Ok(ReportRecord {
                        fingerprint: get(r, 0, t)?,
                        sequence: u64::try_from(sequence).map_err(|_| {
                            RowError::Corrupt("a row of reports has a negative sequence".into())
                        })?,
                        install_key: get(r, 2, t)?,
                        created_at: get(r, 3, t)?,
                        ingested_at: get(r, 4, t)?,
                        token: get(r, 5, t)?,
                    })
                })
                .collect::<Rows<_>>()?,
            books: conn
                .query(
                    "SELECT kind, key, value FROM entitle_books WHERE namespace = $1 \
                     ORDER BY kind, key",
                    &[ns],
                )?
                .iter()
                .map(|r| {
                    Ok(BooksRecord {
                        kind: get(r, 0, "books")?,
                        key: get(r, 1, "books")?,
                        value: get(r, 2, "books")?,
                    })
                })
                .collect::<Rows<_>>()?,
        };
        *cached = fresh;
    }
    let users = conn
        .query(
            "SELECT id, user_type, added_at, last_active_at, name, email FROM entitle_users \
             WHERE namespace = $1 ORDER BY id",
            &[ns],
        )?
        .iter()
        .map(|r| {
            Ok(UserRecord {
                id: get(r, 0, "users")?,
                user_type: get(r, 1, "users")?,
                added_at: get(r, 2, "users")?,
                last_active_at: get(r, 3, "users")?,
                name: get(r, 4, "users")?,
                email: get(r, 5, "users")?,
            })
        })
        .collect::<Rows<_>>()?;
    let activations = conn
        .query(
            "SELECT license_id, fingerprint, activated_at, expires_at, certificate, hostname, \
             vm, token, install_key, machine FROM entitle_activations WHERE namespace = $1 \
             ORDER BY license_id, fingerprint",
            &[ns],
        )?
        .iter()
        .map(|r| {
            let t = "activations";
            let kind = match (get::<bool>(r, 4, t)?, get::<Option<String>>(r, 7, t)?) {
                (false, _) => ActivationKind::Counted,
                (true, Some(token)) => ActivationKind::Certificate(token),
                (true, None) => ActivationKind::Recorded,
            };
            Ok(ActivationRecord {
                license_id: get(r, 0, t)?,
                fingerprint: get(r, 1, t)?,
                activated_at: get(r, 2, t)?,
                expires_at: get(r, 3, t)?,
                kind,
                hostname: get(r, 5, t)?,
                vm: get(r, 6, t)?,
                install_key: get(r, 8, t)?,
                machine: get(r, 9, t)?,
            })
        })
        .collect::<Rows<_>>()?;
    let transfers = conn
        .query(
            "SELECT license_id, count FROM entitle_transfers WHERE namespace = $1 \
             ORDER BY license_id",
            &[ns],
        )?
        .iter()
        .map(|r| {
            let count: i64 = get(r, 1, "transfers")?;
            Ok((
                get(r, 0, "transfers")?,
                u32::try_from(count).unwrap_or(u32::MAX),
            ))
        })
        .collect::<Rows<_>>()?;
    let leases = conn
        .query(
            "SELECT id, client, feature, created_at, expires_at, borrowed_until \
             FROM entitle_leases WHERE namespace = $1 ORDER BY id",
            &[ns],
        )?
        .iter()
        .map(|r| {
            Ok(LeaseRecord {
                id: get(r, 0, "leases")?,
                client: get(r, 1, "leases")?,
                feature: get(r, 2, "leases")?,
                created_at: get(r, 3, "leases")?,
                expires_at: get(r, 4, "leases")?,
                borrowed_until: get(r, 5, "leases")?,
            })
        })
        .collect::<Rows<_>>()?;
    let counters = conn
        .query(
            "SELECT license_id, code, period_start, used FROM entitle_counters \
             WHERE namespace = $1 ORDER BY license_id, code",
            &[ns],
        )?
        .iter()
        .map(|r| {
            Ok(CounterRecord {
                license_id: get(r, 0, "counters")?,
                code: get(r, 1, "counters")?,
                period_start: get(r, 2, "counters")?,
                used: unsigned(get(r, 3, "counters")?),
            })
        })
        .collect::<Rows<_>>()?;
    let issued_receipts = conn
        .query(
            "SELECT license_id, fingerprint, deactivated_at, nonce, token \
             FROM entitle_issued_receipts WHERE namespace = $1 ORDER BY license_id, fingerprint",
            &[ns],
        )?
        .iter()
        .map(|r| {
            let t = "issued_receipts";
            Ok(IssuedReceiptRecord {
                license_id: get(r, 0, t)?,
                fingerprint: get(r, 1, t)?,
                deactivated_at: get(r, 2, t)?,
                nonce: get(r, 3, t)?,
                token: get(r, 4, t)?,
            })
        })
        .collect::<Rows<_>>()?;
    let closed_periods = conn
        .query(
            "SELECT license_id, code, starts_at, ends_at, used FROM entitle_closed_periods \
             WHERE namespace = $1 ORDER BY license_id, code, starts_at",
            &[ns],
        )?
        .iter()
        .map(|r| {
            let t = "closed_periods";
            Ok(ClosedPeriodRecord {
                license_id: get(r, 0, t)?,
                code: get(r, 1, t)?,
                starts_at: get(r, 2, t)?,
                ends_at: get(r, 3, t)?,
                used: unsigned(get(r, 4, t)?),
            })
        })
        .collect::<Rows<_>>()?;
    Ok(Persisted {
        settings,
        licenses: cached.licenses.clone(),
        serials: cached.serials.clone(),
        tombstones: cached.tombstones.clone(),
        first_use: cached.first_use.clone(),
        users,
        activations,
        transfers,
        leases,
        counters,
        signed: cached.signed.clone(),
        issued_receipts,
        accepted_receipts: cached.accepted_receipts.clone(),
        reports: cached.reports.clone(),
        closed_periods,
        books: cached.books.clone(),
    })
}

/// Rows of (text, bigint).
fn pairs(
    conn: &mut Conn,
    sql: &'static str,
    namespace: &str,
    table: &str,
) -> Rows<Vec<(String, i64)>> {
    conn.query(sql, &[&namespace])?
        .iter()
        .map(|r| Ok((get(r, 0, table)?, get(r, 1, table)?)))
        .collect()
}

/// The settings of `namespace`.
pub(super) fn read_settings(conn: &mut Conn, namespace: &str) -> Rows<Settings> {
    let meta: BTreeMap<String, String> = conn
        .query(
            "SELECT key, value FROM entitle_settings WHERE namespace = $1",
            &[&namespace],
        )?
        .iter()
        .map(|r| Ok((get(r, 0, "settings")?, get(r, 1, "settings")?)))
        .collect::<Rows<_>>()?;
    // The release date is kept as Unix seconds here.
    Settings::from_rows(&meta, |text| {
        text.parse::<i64>()
            .map_err(|_| format!("the setting `{}` is not a number", key::RELEASE_DATE))
    })
    .map_err(RowError::Corrupt)
}

/// A value written into SQL text as a constant. A commit's writes go to
/// the server as text (one simple query, with the commit itself), so
/// every value is a literal: numbers and booleans as such, texts as
/// escape strings (`E'...'`, backslashes and quotes doubled: they read
/// the same whatever the server's `standard_conforming_strings`). NUL,
/// which no PostgreSQL text holds, is refused before a change gets here
/// ([`holds_nul`]); the client speaks UTF-8, in which no character's
/// bytes hold a quote or a backslash.
pub(super) trait Literal {
    /// Appends the value as an SQL constant.
    fn push_to(&self, sql: &mut String);
}

impl Literal for str {
    fn push_to(&self, sql: &mut String) {
        sql.push_str("E'");
        for c in self.chars() {
            if c == '\\' || c == '\'' {
                sql.push(c);
            }
            sql.push(c);
        }
        sql.push('\'');
    }
}

impl Literal for String {
    fn push_to(&self, sql: &mut String) {
        self.as_str().push_to(sql);
    }
}

impl Literal for i64 {
    fn push_to(&self, sql: &mut String) {
        sql.push_str(&self.to_string());
    }
}

impl Literal for bool {
    fn push_to(&self, sql: &mut String) {
        sql.push_str(if *self { "TRUE" } else { "FALSE" });
    }
}

impl<T: Literal> Literal for Option<T> {
    fn push_to(&self, sql: &mut String) {
        match self {
            Some(value) => value.push_to(sql),
            None => sql.push_str("NULL"),
        }
    }
}

impl<T: Literal + ?Sized> Literal for &T {
    fn push_to(&self, sql: &mut String) {
        (**self).push_to(sql);
    }
}

/// `text` as an SQL constant (see [`Literal`]).
pub(super) fn literal(text: &str) -> String {
    let mut sql = String::with_capacity(text.len() + 3);
    text.push_to(&mut sql);
    sql
}

/// Appends `template` to `sql` with `$1`, `$2`, ... replaced by the
/// literals of `values`, and a `;`. Templates are entitle's own
/// statements, whose only `$` are their placeholders.
fn statement(sql: &mut String, template: &str, values: &[&dyn Literal]) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        sql.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len() - at - 1, |end| end);
        let number: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        match number.checked_sub(1).and_then(|i| values.get(i)) {
            Some(value) => value.push_to(sql),
            // Not one of ours: kept as it is, for the server to refuse.
            None => sql.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    sql.push_str(rest);
    sql.push_str(";\n");
}

/// Appends the statement that sets `key` of `namespace` to `value` (or
/// deletes it, for `None`).
fn set(sql: &mut String, namespace: &str, key: &str, value: Option<&str>) {
    match value {
        Some(value) => statement(
            sql,
            "INSERT INTO entitle_settings (namespace, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value",
            &[&namespace, &key, &value],
        ),
        None => statement(
            sql,
            "DELETE FROM entitle_settings WHERE namespace = $1 AND key = $2",
            &[&namespace, &key],
        ),
    }
}

fn write_setting(sql: &mut String, ns: &str, setting: &Setting) -> Rows<()> {
    match setting {
        Setting::Product(p) => set(sql, ns, key::PRODUCT, Some(p)),
        Setting::LatestSeen(t) => set(sql, ns, key::LATEST_SEEN, Some(&t.to_string())),
        Setting::MaxIssuedAt(t) => set(sql, ns, key::MAX_ISSUED_AT, Some(&t.to_string())),
        Setting::Install(s) => {
            let keys = serde_json::to_string(&s.trusted_keys)
                .map_err(|e| RowError::Corrupt(format!("trusted keys do not serialize ({e})")))?;
            set(sql, ns, key::KEYS, Some(&keys));
            let date = s.release_date.map(|t| t.to_string());
            set(sql, ns, key::RELEASE_DATE, date.as_deref());
            set(sql, ns, key::DEVICE, s.device.as_deref());
            set(sql, ns, key::MACHINE, s.machine.as_deref());
            set(sql, ns, key::VERSION, s.version.as_deref());
            set(sql, ns, key::CHANNEL, s.channel.as_deref());
        }
        Setting::InstallKey(seed) => set(sql, ns, key::INSTALL_KEY, Some(seed.expose())),
        Setting::ReportSequence(n) => set(
            sql,
            ns,
            key::REPORT_SEQUENCE,
            Some(&exact(*n, "the report sequence")?.to_string()),
        ),
        Setting::LastReport(token) => set(sql, ns, key::LAST_REPORT, Some(token)),
    }
    Ok(())
}

/// Appends to `sql` the statements that write one change into
/// `namespace`, each ended by `;`, its values as literals: the writes of
/// a commit go to the server with it, in one round trip.
pub(super) fn write(sql: &mut String, ns: &str, change: &Change) -> Rows<()> {
    match change {
        Change::Set(setting) => return write_setting(sql, ns, setting),
        Change::PutLicense(l) => statement(
            sql,
            "INSERT INTO entitle_licenses (namespace, id, token, added_at, revoked) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, id) DO UPDATE SET \
             token = EXCLUDED.token, added_at = EXCLUDED.added_at, revoked = EXCLUDED.revoked",
            &[&ns, &&*l.id, &&*l.token, &l.added_at, &l.revoked],
        ),
        Change::DeleteLicense(id) => statement(
            sql,
            "DELETE FROM entitle_licenses WHERE namespace = $1 AND id = $2",
            &[&ns, id],
        ),
        Change::Serial(id, mark) => statement(
            sql,
            "INSERT INTO entitle_serials (namespace, id, serial, issued_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, id) DO UPDATE SET serial = EXCLUDED.serial, \
             issued_at = EXCLUDED.issued_at",
            &[&ns, id, &signed(mark.serial), &mark.issued_at],
        ),
        Change::Tombstone(id, at) => statement(
            sql,
            "INSERT INTO entitle_tombstones (namespace, id, at) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, id) DO UPDATE SET at = EXCLUDED.at",
            &[&ns, id, at],
        ),
        Change::FirstUse(id, at) => statement(
            sql,
            "INSERT INTO entitle_first_use (namespace, id, at) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, id) DO NOTHING",
            &[&ns, id, at],
        ),
        Change::PutSigned(r) => {
            let digest: String = Sha256::digest(r.token.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            statement(
                sql,
                "INSERT INTO entitle_signed (namespace, digest, typ, token, added_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, digest) DO NOTHING",
                &[&ns, &digest, &r.kind.as_str(), &r.token, &r.added_at],
            )
        }
        Change::PutUser(u) => statement(
            sql,
            "INSERT INTO entitle_users (namespace, id, user_type, added_at, last_active_at, \
             name, email) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (namespace, id) DO \
             UPDATE SET user_type = EXCLUDED.user_type, added_at = EXCLUDED.added_at, \
             last_active_at = EXCLUDED.last_active_at, name = EXCLUDED.name, \
             email = EXCLUDED.email",
            &[
                &ns,
                &u.id,
                &u.user_type,
                &u.added_at,
                &u.last_active_at,
                &u.name,
                &u.email,
            ],
        ),
        Change::DeleteUser(id) => statement(
            sql,
            "DELETE FROM entitle_users WHERE namespace = $1 AND id = $2",
            &[&ns, id],
        ),
        Change::PutActivation(a) => {
            let token = match &a.kind {
                ActivationKind::Certificate(token) => Some(token.as_str()),
                ActivationKind::Counted | ActivationKind::Recorded => None,
            };
            let certificate = a.kind != ActivationKind::Counted;
            statement(
                sql,
                "INSERT INTO entitle_activations (namespace, license_id, fingerprint, \
                 activated_at, expires_at, certificate, hostname, vm, token, install_key, \
                 machine) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (namespace, license_id, fingerprint) DO UPDATE SET \
                 activated_at = EXCLUDED.activated_at, expires_at = EXCLUDED.expires_at, \
                 certificate = EXCLUDED.certificate, hostname = EXCLUDED.hostname, \
                 vm = EXCLUDED.vm, token = EXCLUDED.token, install_key = EXCLUDED.install_key, \
                 machine = EXCLUDED.machine",
                &[
                    &ns,
                    &a.license_id,
                    &a.fingerprint,
                    &a.activated_at,
                    &a.expires_at,
                    &certificate,
                    &a.hostname,
                    &a.vm,
                    &token,
                    &a.install_key,
                    &a.machine,
                ],
            )
        }
        Change::DeleteActivation {
            license_id,
            fingerprint,
        } => statement(
            sql,
            "DELETE FROM entitle_activations \
             WHERE namespace = $1 AND license_id = $2 AND fingerprint = $3",
            &[&ns, license_id, fingerprint],
        ),
        Change::Transfers(license_id, n) => statement(
            sql,
            "INSERT INTO entitle_transfers (namespace, license_id, count) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, license_id) DO UPDATE SET count = EXCLUDED.count",
            &[&ns, license_id, &i64::from(*n)],
        ),
        Change::PutLease(l) => statement(
            sql,
            "INSERT INTO entitle_leases (namespace, id, client, feature, created_at, \
             expires_at, borrowed_until) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (namespace, id) DO UPDATE SET client = EXCLUDED.client, \
             feature = EXCLUDED.feature, created_at = EXCLUDED.created_at, \
             expires_at = EXCLUDED.expires_at, borrowed_until = EXCLUDED.borrowed_until",
            &[
                &ns,
                &l.id,
                &l.client,
                &l.feature,
                &l.created_at,
                &l.expires_at,
                &l.borrowed_until,
            ],
        ),
        Change::DeleteLease(id) => statement(
            sql,
            "DELETE FROM entitle_leases WHERE namespace = $1 AND id = $2",
            &[&ns, id],
        ),
        Change::PutCounter(c) => statement(
            sql,
            "INSERT INTO entitle_counters (namespace, license_id, code, period_start, used) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, license_id, code) \
             DO UPDATE SET period_start = EXCLUDED.period_start, used = EXCLUDED.used",
            &[
                &ns,
                &c.license_id,
                &c.code,
                &c.period_start,
                &signed(c.used),
            ],
        ),
        Change::PutIssuedReceipt(r) => statement(
            sql,
            "INSERT INTO entitle_issued_receipts (namespace, license_id, fingerprint, \
             deactivated_at, nonce, token) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (namespace, license_id, fingerprint) DO UPDATE SET \
             deactivated_at = EXCLUDED.deactivated_at, nonce = EXCLUDED.nonce, \
             token = EXCLUDED.token",
            &[
                &ns,
                &r.license_id,
                &r.fingerprint,
                &r.deactivated_at,
                &r.nonce,
                &r.token,
            ],
        ),
        Change::PutAcceptedReceipt(r) => statement(
            sql,
            "INSERT INTO entitle_accepted_receipts (namespace, license_id, fingerprint, nonce, \
             install_key, deactivated_at, accepted_at, token) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (namespace, license_id, fingerprint, nonce) DO UPDATE SET \
             install_key = EXCLUDED.install_key, deactivated_at = EXCLUDED.deactivated_at, \
             accepted_at = EXCLUDED.accepted_at, token = EXCLUDED.token",
            &[
                &ns,
                &r.license_id,
                &r.fingerprint,
                &r.nonce,
                &r.install_key,
                &r.deactivated_at,
                &r.accepted_at,
                &r.token,
            ],
        ),
        // Never over a stored report: the books refuse a sequence at or
        // below one they hold, and a row already there fails the commit.
        Change::PutReport(r) => statement(
            sql,
            "INSERT INTO entitle_reports (namespace, fingerprint, sequence, install_key, \
             created_at, ingested_at, token) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &ns,
                &r.fingerprint,
                &exact(r.sequence, "the report sequence")?,
                &r.install_key,
                &r.created_at,
                &r.ingested_at,
                &r.token,
            ],
        ),
        Change::PutClosedPeriod(p) => statement(
            sql,
            "INSERT INTO entitle_closed_periods (namespace, license_id, code, starts_at, \
             ends_at, used) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (namespace, license_id, code, starts_at) DO UPDATE SET \
             ends_at = EXCLUDED.ends_at, used = EXCLUDED.used",
            &[
                &ns,
                &p.license_id,
                &p.code,
                &p.starts_at,
                &p.ends_at,
                &exact(p.used, "a closed period's count")?,
            ],
        ),
        Change::DeleteClosedPeriod {
            license_id,
            code,
            starts_at,
        } => statement(
            sql,
            "DELETE FROM entitle_closed_periods \
             WHERE namespace = $1 AND license_id = $2 AND code = $3 AND starts_at = $4",
            &[&ns, license_id, code, starts_at],
        ),
        Change::PutBooksRecord(r) => statement(
            sql,
            "INSERT INTO entitle_books (namespace, kind, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, kind, key) DO UPDATE SET value = EXCLUDED.value",
            &[&ns, &r.kind, &r.key, &r.value],
        ),
        Change::DeleteBooksRecord { kind, key } => statement(
            sql,
            "DELETE FROM entitle_books WHERE namespace = $1 AND kind = $2 AND key = $3",
            &[&ns, kind, key],
        ),
    }
    Ok(())
}

/// Whether a change holds a text PostgreSQL cannot store (a NUL
/// character): refused before it reaches the batch, so that it cannot
/// fail the other mutations committed with it.
pub(super) fn holds_nul(change: &Change) -> bool {
    let nul = |s: &str| s.contains('\0');
    match change {
        Change::Set(Setting::Product(p)) => nul(p),
        Change::Set(
            Setting::LatestSeen(_) | Setting::MaxIssuedAt(_) | Setting::ReportSequence(_),
        ) => false,
        Change::Set(Setting::LastReport(token)) => nul(token),
        Change::Set(Setting::InstallKey(seed)) => nul(seed.expose()),
        Change::Set(Setting::Install(s)) => {
            s.trusted_keys.iter().any(|k| nul(k))
                || s.device.as_deref().is_some_and(nul)
                || s.machine.as_deref().is_some_and(nul)
                || s.version.as_deref().is_some_and(nul)
                || s.channel.as_deref().is_some_and(nul)
        }
        Change::PutLicense(l) => nul(&l.id) || nul(&l.token),
        Change::DeleteLicense(id)
        | Change::Serial(id, _)
        | Change::Tombstone(id, _)
        | Change::FirstUse(id, _)
        | Change::DeleteUser(id)
        | Change::Transfers(id, _)
        | Change::DeleteLease(id) => nul(id),
        Change::PutSigned(r) => nul(&r.token),
        Change::PutUser(u) => {
            nul(&u.id)
                || nul(&u.user_type)
                || u.name.as_deref().is_some_and(nul)
                || u.email.as_deref().is_some_and(nul)
        }
        Change::PutActivation(a) => {
            nul(&a.license_id)
                || nul(&a.fingerprint)
                || nul(&a.hostname)
                || a.install_key.as_deref().is_some_and(nul)
                || a.machine.as_deref().is_some_and(nul)
                || matches!(&a.kind, ActivationKind::Certificate(t) if nul(t))
        }
        Change::DeleteActivation {
            license_id,
            fingerprint,
        } => nul(license_id) || nul(fingerprint),
        Change::PutLease(l) => {
            nul(&l.id) || nul(&l.client) || l.feature.as_deref().is_some_and(nul)
        }
        Change::PutCounter(c) => nul(&c.license_id) || nul(&c.code),
        Change::PutIssuedReceipt(r) => {
            nul(&r.license_id) || nul(&r.fingerprint) || nul(&r.nonce) || nul(&r.token)
        }
        Change::PutAcceptedReceipt(r) => {
            nul(&r.license_id)
                || nul(&r.fingerprint)
                || nul(&r.nonce)
                || nul(&r.install_key)
                || nul(&r.token)
        }
        Change::PutReport(r) => nul(&r.fingerprint) || nul(&r.install_key) || nul(&r.token),
        Change::PutClosedPeriod(p) => nul(&p.license_id) || nul(&p.code),
        Change::PutBooksRecord(r) => nul(&r.kind) || nul(&r.key) || nul(&r.value),
        Change::DeleteBooksRecord { kind, key } => nul(kind) || nul(key),
        Change::DeleteClosedPeriod {
            license_id, code, ..
        } => nul(license_id) || nul(code),
    }
}

#[cfg(test)]
mod tests {
    use super::{literal, statement};

    #[test]
    fn a_literal_doubles_quotes_and_backslashes() {
        assert_eq!(literal("tenant-7"), "E'tenant-7'");
        assert_eq!(literal("o'brien"), "E'o''brien'");
        assert_eq!(
            literal("a\\'; DROP TABLE x; --"),
            "E'a\\\\''; DROP TABLE x; --'"
        );
    }

    #[test]
    fn a_statement_takes_each_placeholder_from_its_values() {
        let mut sql = String::new();
        let (none, hostname): (Option<i64>, String) = (None, "h'1".into());
        let values: [&dyn super::Literal; 11] = [
            &"ns",
            &"a",
            &-5i64,
            &i64::MIN,
            &true,
            &false,
            &none,
            &Some(7i64),
            &hostname,
            &Some("x"),
            &"ten",
        ];
        statement(
            &mut sql,
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &values,
        );
        assert_eq!(
            sql,
            "VALUES (E'ns', E'a', -5, -9223372036854775808, TRUE, FALSE, NULL, 7, \
             E'h''1', E'x', E'ten', $12);\n"
        );
    }
}
