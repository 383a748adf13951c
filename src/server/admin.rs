//! The admin routes of docs/http.md (`/admin/...`): licenses, status and
//! usage, offline responses applied, behind the admin bearer token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::license_query;

use super::api::{
    blocking, created, ok, path, query, text_body, to_json, Answer, ApiError, App, RouteTable,
};

/// The admin routes: the server's table starts with them.
pub(super) fn table() -> RouteTable<Arc<App>> {
    let mut table = vec![
        (Method::POST, "/admin/license", post(admin_add_license)),
        (Method::GET, "/admin/license", get(admin_list_licenses)),
        (
            Method::DELETE,
            "/admin/license/{id}",
            delete(admin_remove_license),
        ),
        (Method::GET, "/admin/license/status", get(admin_status)),
        (Method::GET, "/admin/license/usage", get(admin_usage)),
        (Method::POST, "/admin/apply", post(admin_apply)),
    ];
    table.extend(super::seats::table());
    table
}

/// Lets an admin request through, or says why not: `404` when the admin
/// routes are off, `401` without the right bearer token.
pub(super) fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    check_admin(app.admin_token.as_ref(), headers)
}

/// Checks the bearer token against `expected` (the admin token's
/// SHA-256; `None`: the admin routes are off).
pub(super) fn check_admin(
    expected: Option<&[u8; 32]>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "the admin routes are off on this server (it was started without \
             --admin-token-file)",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| Sha256::digest(token.trim().as_bytes()));
    let matches = presented.is_some_and(|digest| {
        digest
            .iter()
            .zip(expected.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "this route needs `Authorization: Bearer <admin token>` with the server's admin \
             token",
        ))
    }
}

async fn admin_add_license(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let text = text_body(body)?;
    let engine = app.engine.clone();
    let info = blocking(move || {
        let id = engine.add_license(&text)?;
        Ok(engine.license_infos().into_iter().find(|l| l.id == id))
    })
    .await?;
    created(to_json(&info))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    filter: Option<String>,
    order: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn admin_list_licenses(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let q = query(params)?;
    let parsed = license_query(
        q.filter.as_deref(),
        q.order.as_deref(),
        q.limit,
        q.cursor.as_deref(),
    )?;
    let page = app.engine.licenses(&parsed)?;
    ok(json!({"items": to_json(&page.items), "next_cursor": page.next_cursor}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    hard: bool,
}

async fn admin_remove_license(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<RemoveQuery>, QueryRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let id = path(id)?;
    let hard = query(params)?.hard;
    let engine = app.engine.clone();
    let removed_id = id.clone();
    let removed = blocking(move || engine.remove_license(&removed_id, hard)).await?;
    let mut value = match removed {
        Some(info) => to_json(&info),
        None => json!({"id": id}),
    };
    value["removed"] = json!(true);
    value["hard"] = json!(hard);
    value["removed_at"] = json!(app.engine.now());
    ok(value)
}

async fn admin_status(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    authorize(&app, &headers)?;
    let mut value = to_json(&app.engine.status());
    // Named-user seats above; the floating pools beside them.
    value["floating"] = json!(super::seats::pools(&app));
    ok(value)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    #[serde(default)]
    offset: usize,
    size: Option<usize>,
}

async fn admin_usage(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<UsageQuery>, QueryRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let q = query(params)?;
    let size = q.size.unwrap_or(10);
    if !(1..=1000).contains(&size) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "`size` is 1 to 1000",
        ));
    }
    ok(to_json(&app.engine.usage(q.offset, size)))
}

async fn admin_apply(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    authorize(&app, &headers)?;
    let text = text_body(body)?;
    let engine = app.engine.clone();
    let applied = blocking(move || engine.apply(&text)).await?;
    ok(to_json(&applied))
}
