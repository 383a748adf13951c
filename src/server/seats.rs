//! Seeing and steering a site server's seats (docs/http.md#seeing-and-steering-the-server):
//! the leases held and who holds them, a seat freed by force, the pools,
//! one license and its pools. Admin routes, behind the admin token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{delete, get};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::{Engine, PoolUse};
use crate::policy::floating::{is_lingering, LINGER_PREFIX};
use crate::store::{EventKind, LeaseRecord};
use crate::time::Timestamp;

use super::admin::authorize;
use super::api::{blocking, ok, path, query, to_json, Answer, ApiError, App, RouteTable};

/// The routes of this part of the admin API.
pub(super) fn table() -> RouteTable<Arc<App>> {
    vec![
        (Method::GET, "/admin/leases", get(list_leases)),
        (Method::DELETE, "/admin/leases/{id}", delete(force_release)),
        (Method::GET, "/admin/pools", get(list_pools)),
        (Method::GET, "/admin/license/{id}", get(license_detail)),
    ]
}

// ---- what the server remembers of each lease --------------------------------

/// What the server saw of a lease that its state does not keep: the
/// client's address at checkout and its last heartbeat. Kept in memory:
/// after a restart (or for a lease another server handed out) both are
/// unknown until the next checkout or heartbeat.
#[derive(Default)]
pub(crate) struct LeaseNotes {
    notes: Mutex<HashMap<String, Note>>,
}

#[derive(Debug, Clone, Copy)]
struct Note {
    address: Option<IpAddr>,
    last_heartbeat_at: Option<Timestamp>,
}

/// Notes beyond this many are pruned to the leases still live.
const NOTES_BEFORE_PRUNING: usize = 4096;

impl LeaseNotes {
    /// Lease `id` was checked out (or renewed by a checkout) from
    /// `address` at `now`.
    pub(crate) fn checked_out(
        &self,
        engine: &Engine,
        id: &str,
        address: Option<IpAddr>,
        now: Timestamp,
    ) {
        let mut notes = self.notes.lock();
        if notes.len() >= NOTES_BEFORE_PRUNING && !notes.contains_key(id) {
            // Bounded by the leases live, not by every lease ever taken.
            let live = engine.lease_records();
            notes.retain(|id, _| live.iter().any(|l| l.id == *id));
            if notes.len() >= NOTES_BEFORE_PRUNING.max(live.len() * 2) {
                notes.clear();
            }
        }
        notes.insert(
            id.to_owned(),
            Note {
                address,
                last_heartbeat_at: Some(now),
            },
        );
    }

    /// Lease `id` was renewed at `now`.
    pub(crate) fn heartbeat(&self, id: &str, now: Timestamp) {
        let mut notes = self.notes.lock();
        let room = notes.len() < NOTES_BEFORE_PRUNING;
        match notes.get_mut(id) {
            Some(note) => note.last_heartbeat_at = Some(now),
            // Taken before a restart: its address is not known.
            None if room => {
                notes.insert(
                    id.to_owned(),
                    Note {
                        address: None,
                        last_heartbeat_at: Some(now),
                    },
                );
            }
            None => {}
        }
    }

    fn forget(&self, id: &str) {
        self.notes.lock().remove(id);
    }

    /// The note of a lease; a seat lingering after a check-in has its
    /// lease's.
    fn of(&self, id: &str) -> Option<Note> {
        let notes = self.notes.lock();
        notes
            .get(id)
            .or_else(|| id.strip_prefix(LINGER_PREFIX).and_then(|l| notes.get(l)))
            .copied()
    }
}

// ---- leases -----------------------------------------------------------------

/// The most leases one page lists.
const MAX_LIMIT: usize = 1000;
/// A page's size when the query does not say.
const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeasesQuery {
    feature: Option<String>,
    client: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

/// A page's position: after the lease taken at `created_at` with `id`
/// (leases are listed oldest first, ties by id).
fn encode_cursor(lease: &LeaseRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", lease.created_at, lease.id))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || invalid("`cursor` is not one this server gave; start again without it");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('.').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

fn parse_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(invalid(format!(
            "`limit` is a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); follow \
             `next_cursor` for more"
        ))),
    }
}

fn lease_item(app: &App, lease: &LeaseRecord) -> Value {
    let note = app.notes.of(&lease.id);
    let lingering = is_lingering(lease);
    let expires_at = Timestamp::from_unix(lease.expires_at);
    json!({
        "id": lease.id,
        "client": lease.client,
        "feature": lease.feature,
        "license_ids": app.engine.pool_license_ids(lease.feature.as_deref()),
        "address": note.and_then(|n| n.address).map(|a| a.to_string()),
        "checked_out_at": Timestamp::from_unix(lease.created_at),
        "last_heartbeat_at": note.and_then(|n| n.last_heartbeat_at),
        "expires_at": expires_at,
        "borrowed_until": lease.borrowed_until.map(Timestamp::from_unix),
        "lingering_until": lingering.then_some(expires_at),
    })
}

async fn list_leases(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<LeasesQuery>, QueryRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let q = query(params)?;
    let limit = parse_limit(q.limit.as_deref())?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut leases: Vec<LeaseRecord> = app
        .engine
        .lease_records()
        .into_iter()
        .filter(|l| q.feature.is_none() || l.feature == q.feature)
        .filter(|l| q.client.as_ref().is_none_or(|c| l.client == *c))
        .filter(|l| {
            after
                .as_ref()
                .is_none_or(|(at, id)| (l.created_at, &l.id) > (*at, id))
        })
        .collect();
    leases.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let more = leases.len() > limit;
    leases.truncate(limit);
    let next_cursor = if more {
        leases.last().map(encode_cursor)
    } else {
        None
    };
    let items: Vec<Value> = leases.iter().map(|l| lease_item(&app, l)).collect();
    ok(json!({"items": items, "next_cursor": next_cursor}))
}

async fn force_release(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let id = path(id)?;
    let engine = app.engine.clone();
    let lease_id = id.clone();
    let ended = blocking(move || engine.force_release(&lease_id)).await?;
    app.notes.forget(&id);
    app.record_lease(EventKind::ForceRelease, &ended);
    // A seat is free: the head of each line tries again, as on a check-in.
    app.queues.seat_freed();
    let mut value = to_json(&ended);
    value["released"] = json!(true);
    ok(value)
}

// ---- pools ------------------------------------------------------------------

/// A pool as the admin routes and the status show it.
fn pool_item(app: &App, pool: &PoolUse) -> Value {
    json!({
        "feature": pool.feature,
        "seats": pool.seats,
        "in_use": pool.in_use,
        "borrowed": pool.borrowed,
        "lingering": pool.lingering,
        "queued": app.queues.len(&pool.feature),
    })
}

/// Every floating pool, as `GET /admin/pools` lists them.
pub(super) fn pools(app: &App) -> Vec<Value> {
    app.engine
        .pools()
        .iter()
        .map(|pool| pool_item(app, pool))
        .collect()
}

async fn list_pools(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    authorize(&app, &headers)?;
    ok(json!({"items": pools(&app)}))
}

async fn license_detail(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let id = path(id)?;
    let Some(info) = app.engine.license_infos().into_iter().find(|l| l.id == id) else {
        return Err(ApiError::from(crate::error::Error::LicenseNotFound {
            id: id.clone(),
        }));
    };
    let pools: Vec<Value> = app
        .engine
        .pools()
        .iter()
        .filter_map(|pool| {
            let (_, offered) = pool.licenses.iter().find(|(l, _)| *l == id)?;
            let mut item = pool_item(&app, pool);
            item["license_seats"] = json!(offered);
            Some(item)
        })
        .collect();
    let mut value = to_json(&info);
    value["pools"] = json!(pools);
    ok(value)
}
