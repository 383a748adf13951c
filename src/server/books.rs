//! The vendor's service over HTTP (docs/http.md#the-vendors-service):
//! the routes of `entitle serve --books`, a thin shell around a
//! [`Service`]. Every decision is the service's; here are only the
//! shapes of requests and answers, the admin token, and the limit on
//! failed logins per client address.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::books::online::{Activated, Credential, NewAccount, Service};
use crate::engine::license_query;
use crate::error::Error;
use crate::license::LicenseKey;

use super::admin::check_admin;
use super::api::{
    blocking, created, json_body, ok, query, route_list, table_router, to_json, Answer, ApiError,
    RouteTable,
};
use super::listener::ClientAddress;
use super::ratelimit::FailedLogins;
use super::ServerConfig;

/// The OpenAPI 3 document of every route, served at `/openapi.json`.
const OPENAPI: &str = include_str!("openapi_books.json");

/// What every handler shares.
pub(crate) struct BooksApp {
    service: Service,
    /// SHA-256 of the admin token (see `api::check_admin`).
    admin_token: Option<[u8; 32]>,
    failed_logins: FailedLogins,
    request_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl BooksApp {
    pub(crate) fn new(
        service: Service,
        config: &ServerConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<BooksApp> {
        Arc::new(BooksApp {
            service,
            admin_token: config
                .admin_token
                .as_deref()
                .map(|t| Sha256::digest(t.as_bytes()).into()),
            failed_logins: FailedLogins::default(),
            request_timeout: config.request_timeout,
            shutdown,
        })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        check_admin(self.admin_token.as_ref(), headers)
    }
}

type AppState = State<Arc<BooksApp>>;

// ---- client routes ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationBody {
    request: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    user: Option<Login>,
}

fn activated(done: &Activated) -> Answer {
    let body = json!({
        "license_id": done.license_id,
        "license": done.license,
        "certificate": done.certificate,
    });
    if done.created {
        created(body)
    } else {
        ok(body)
    }
}

async fn activate(State(app): AppState, body: Result<Bytes, BytesRejection>) -> Answer {
    let body: ActivationBody = json_body(body)?;
    let credential = match (body.key, body.user) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidArgument(
                "give a license key or a user's login, not both".into(),
            )
            .into())
        }
        // A key that cannot be one is a key no license has: the same
        // answer, and the same count against the address.
        (Some(key), None) => Credential::Key(
            LicenseKey::parse(&key)
                .map_err(|_| Error::Unauthorized("no license has this key".into()))?,
        ),
        (None, Some(login)) => Credential::User {
            email: login.email,
            password: login.password,
        },
        (None, None) => Credential::LicenseId,
    };
    let service = app.service.clone();
    let outcome = blocking(move || {
        Ok(match service.activate(&body.request, &credential, None) {
            Ok(done) => Ok(done),
            Err(error) => {
                // Over the limit: how many devices count, of how many.
                let counts = (error.code() == "ACTIVATION_LIMIT")
                    .then(|| service.activation_counts(&body.request, &credential))
                    .flatten();
                Err((error, counts))
            }
        })
    })
    .await?;
    match outcome {
        Ok(done) => activated(&done),
        Err((error, counts)) => Err(activation_refused(error, counts)),
    }
}

/// An activation's refusal as docs/http.md#the-vendors-service answers
/// it: `403` for a virtual machine a license refuses (the device, not a
/// count, is the matter); `ACTIVATION_LIMIT` with `used` and `max`.
fn activation_refused(error: Error, counts: Option<(u64, u64)>) -> ApiError {
    let vm = error.code() == "VM_NOT_ALLOWED";
    let mut refused = ApiError::from(error);
    if vm {
        refused = refused.with_status(StatusCode::FORBIDDEN);
    }
    if let Some((used, max)) = counts {
        refused = refused
            .with_detail("used", json!(used))
            .with_detail("max", json!(max));
    }
    refused
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrialBody {
    request: String,
}

async fn trial(State(app): AppState, body: Result<Bytes, BytesRejection>) -> Answer {
    let body: TrialBody = json_body(body)?;
    let service = app.service.clone();
    let outcome = blocking(move || Ok(service.start_trial(&body.request))).await?;
    match outcome {
        Ok(done) => activated(&done),
        Err(error) => Err(activation_refused(error, None)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptBody {
    receipt: String,
}

async fn deactivate(State(app): AppState, body: Result<Bytes, BytesRejection>) -> Answer {
    let body: ReceiptBody = json_body(body)?;
    let service = app.service.clone();
    let accepted = blocking(move || service.books().accept_receipt(&body.receipt)).await?;
    let mut value = to_json(&accepted);
    value["freed"] = json!(true);
    ok(value)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    report: String,
}

async fn report(State(app): AppState, body: Result<Bytes, BytesRejection>) -> Answer {
    let body: ReportBody = json_body(body)?;
    let service = app.service.clone();
    let ingested = blocking(move || service.books().ingest_report(&body.report)).await?;
    ok(to_json(&ingested))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    license_ids: Vec<String>,
    fingerprint: String,
    install_key: String,
}

/// Licenses one sync may name.
const MAX_SYNC_LICENSES: usize = 1000;

async fn sync(State(app): AppState, body: Result<Bytes, BytesRejection>) -> Answer {
    let body: SyncBody = json_body(body)?;
    if body.license_ids.len() > MAX_SYNC_LICENSES {
        return Err(Error::TooLarge {
            what: "list of licenses to sync",
            size: body.license_ids.len(),
            limit: MAX_SYNC_LICENSES,
        }
        .into());
    }
    let service = app.service.clone();
    let synced =
        blocking(move || service.sync(&body.license_ids, &body.fingerprint, &body.install_key))
            .await?;
    ok(to_json(&synced))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserLicensesQuery {
    #[serde(default)]
    product: Option<String>,
}

/// The `email:password` of HTTP Basic authentication.
fn basic_login(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let refused = || {
        ApiError::from(Error::Unauthorized(
            "this route needs `Authorization: Basic` with the user's email and password".into(),
        ))
    };
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(refused)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| refused())?;
    let text = String::from_utf8(decoded).map_err(|_| refused())?;
    let (email, password) = text.split_once(':').ok_or_else(refused)?;
    Ok((email.to_owned(), password.to_owned()))
}

async fn user_licenses(
    State(app): AppState,
    headers: HeaderMap,
    params: Result<Query<UserLicensesQuery>, QueryRejection>,
) -> Answer {
    let q = query(params)?;
    let basic = |e: ApiError| e.with_challenge("Basic");
    let (email, password) = basic_login(&headers).map_err(basic)?;
    let service = app.service.clone();
    let listed = blocking(move || service.user_licenses(&email, &password))
        .await
        .map_err(basic)?;
    let product = app.service.books().product();
    if q.product.as_deref().is_some_and(|p| p != product) {
        return ok(json!([]));
    }
    let items: Vec<Value> = listed
        .iter()
        .map(|item| {
            let mut value = to_json(&item.license);
            value["token"] = json!(item.token);
            value["user"] = json!({
                "id": item.user.id,
                "email": item.user.email,
                "first_name": item.user.first_name,
                "last_name": item.user.last_name,
                "max_activations": item.user.max_activations,
                "total_activations": item.total_activations,
            });
            value
        })
        .collect();
    ok(Value::Array(items))
}

// ---- admin routes -----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    spec: Map<String, Value>,
    #[serde(default)]
    users: Vec<String>,
}

async fn admin_issue(
    State(app): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    app.authorize(&headers)?;
    let body: IssueBody = json_body(body)?;
    let spec = Value::Object(body.spec).to_string();
    let service = app.service.clone();
    let issued = blocking(move || {
        let users: Vec<&str> = body.users.iter().map(String::as_str).collect();
        service.issue(&spec, &users)
    })
    .await?;
    let warnings: Vec<Value> = issued
        .warnings
        .iter()
        .map(|w| json!({"code": w.code(), "message": w.to_string()}))
        .collect();
    created(json!({
        "id": issued.id,
        "key": issued.key.to_string(),
        "token": issued.token,
        "warnings": warnings,
    }))
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
    State(app): AppState,
    headers: HeaderMap,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Answer {
    app.authorize(&headers)?;
    let q = query(params)?;
    let parsed = license_query(
        q.filter.as_deref(),
        q.order.as_deref(),
        q.limit,
        q.cursor.as_deref(),
    )?;
    let page = app.service.books().license_page(&parsed)?;
    ok(json!({"items": to_json(&page.items), "next_cursor": page.next_cursor}))
}

fn one(segment: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    super::api::path(segment)
}

async fn admin_show_license(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    app.authorize(&headers)?;
    let id = one(id)?;
    let service = app.service.clone();
    let detail = blocking(move || service.license_detail(&id)).await?;
    // The license's fields, its limit on activations renamed so that
    // `activations` is the list of devices.
    let mut value = to_json(&detail.license);
    value["activation_limit"] = value["activations"].take();
    value["activations"] = to_json(&detail.activations);
    value["usage"] = to_json(&detail.usage);
    ok(value)
}

async fn admin_revoke(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    app.authorize(&headers)?;
    let id = one(id)?;
    let service = app.service.clone();
    let revoked = id.clone();
    let list = blocking(move || service.revoke(&revoked)).await?;
    ok(json!({"id": id, "revoked": true, "revocations": list}))
}

async fn admin_free(
    State(app): AppState,
    headers: HeaderMap,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    app.authorize(&headers)?;
    let Path((license_id, fingerprint)) = ids.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            format!("the path is wrong: {}", e.body_text()),
        )
    })?;
    let service = app.service.clone();
    let (license, device) = (license_id.clone(), fingerprint.clone());
    let withdrawn = blocking(move || service.free(&license, &device)).await?;
    ok(json!({
        "license_id": license_id,
        "fingerprint": fingerprint,
        "freed": true,
        "withdrawn": withdrawn,
    }))
}

async fn admin_add_user(
    State(app): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    app.authorize(&headers)?;
    let account: NewAccount = json_body(body)?;
    let service = app.service.clone();
    let added = blocking(move || service.add_account(account)).await?;
    created(to_json(&added))
}

async fn admin_list_users(State(app): AppState, headers: HeaderMap) -> Answer {
    app.authorize(&headers)?;
    let service = app.service.clone();
    let accounts = blocking(move || service.accounts()).await?;
    ok(json!({"items": to_json(&accounts)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    email: String,
}

async fn admin_assign(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    app.authorize(&headers)?;
    let id = one(id)?;
    let body: AssignBody = json_body(body)?;
    let service = app.service.clone();
    let (license, email) = (id.clone(), body.email.clone());
    blocking(move || service.assign(&license, &email)).await?;
    ok(json!({"license_id": id, "email": body.email.to_lowercase(), "assigned": true}))
}

// ---- service ----------------------------------------------------------------

async fn healthz(State(app): AppState) -> Answer {
    if *app.shutdown.borrow() {
        return Err(ApiError::shutting_down());
    }
    ok(json!({"status": "ok", "product": app.service.books().product(), "books": true}))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Every request: refused once the server is stopping, or while its
/// address has failed to authenticate too often (`429` with
/// `Retry-After`); bounded in time; a `401` answered counts as one more
/// failure of its address.
async fn guard(State(app): AppState, request: Request, next: Next) -> Response {
    if *app.shutdown.borrow() {
        return ApiError::shutting_down().into_response();
    }
    let client = request.extensions().get::<ClientAddress>().copied();
    let started = tokio::time::Instant::now().into_std();
    if let Some(ClientAddress(ip)) = client {
        if let Err(wait) = app.failed_logins.check(ip, started) {
            let mut response = ApiError::from(Error::RateLimited {
                retry_after_secs: wait,
            })
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return response;
        }
    }
    let response = match tokio::time::timeout(app.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "TIMEOUT",
            format!("the request took over {} s", app.request_timeout.as_secs()),
        )
        .into_response(),
    };
    if response.status() == StatusCode::UNAUTHORIZED {
        if let Some(ClientAddress(ip)) = client {
            app.failed_logins
                .failed(ip, tokio::time::Instant::now().into_std());
        }
    }
    response
}

// ---- the router -------------------------------------------------------------

/// The routes, as data: the router is built from this table, and the
/// OpenAPI test compares it with the document.
fn table() -> RouteTable<Arc<BooksApp>> {
    vec![
        (Method::POST, "/v1/activations", post(activate)),
        (Method::POST, "/v1/deactivations", post(deactivate)),
        (Method::POST, "/v1/reports", post(report)),
        (Method::POST, "/v1/sync", post(sync)),
        (Method::POST, "/v1/trials", post(trial)),
        (Method::GET, "/v1/user/licenses", get(user_licenses)),
        (Method::POST, "/admin/licenses", post(admin_issue)),
        (Method::GET, "/admin/licenses", get(admin_list_licenses)),
        (Method::GET, "/admin/licenses/{id}", get(admin_show_license)),
        (
            Method::POST,
            "/admin/licenses/{id}/revoke",
            post(admin_revoke),
        ),
        (
            Method::POST,
            "/admin/licenses/{id}/users",
            post(admin_assign),
        ),
        (
            Method::DELETE,
            "/admin/activations/{license_id}/{fingerprint}",
            delete(admin_free),
        ),
        (Method::POST, "/admin/users", post(admin_add_user)),
        (Method::GET, "/admin/users", get(admin_list_users)),
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/openapi.json", get(openapi)),
    ]
}

/// Every route `entitle serve --books` answers, as (method, path
/// template): what its `/openapi.json` must describe, no more and no
/// less.
///
/// ```
/// let routes = entitle::server::books_routes();
/// assert!(routes.contains(&("POST".to_string(), "/v1/activations".to_string())));
/// ```
pub fn books_routes() -> Vec<(String, String)> {
    route_list(table())
}

pub(crate) fn router(app: Arc<BooksApp>) -> Router {
    // A layer, not a route layer: the limit on failed logins holds for
    // every request from an address, a route or not.
    table_router(table())
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}
