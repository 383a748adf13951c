//! The routes of docs/http.md: handlers, their JSON, and how an
//! [`Error`] becomes a status and `{"error": {"code", "message"}}`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::decision::Reason;
use crate::engine::{Engine, Lease, NewUser};
use crate::error::Error;
use crate::store::EventKind;
use crate::time::Timestamp;
use crate::token::{LeaseToken, SigningKey};

use super::admin;
use super::console;
use super::history::{self, Recorder};
use super::listener::ClientAddress;
use super::metrics::Metrics;
use super::queue::Queues;
use super::request_log::Refusal;
use super::seats::LeaseNotes;
use super::{ServerConfig, MAX_BODY_BYTES};

/// The OpenAPI 3 document of every route, served at `/openapi.json`.
const OPENAPI: &str = include_str!("openapi.json");

/// What every handler shares.
pub(crate) struct App {
    pub(super) engine: Engine,
    pub(super) lease_key: Arc<SigningKey>,
    /// SHA-256 of the admin token: compared digest to digest, in constant
    /// time, so neither its bytes nor its length leak through timing.
    pub(super) admin_token: Option<[u8; 32]>,
    pub(super) queues: Queues,
    pub(super) max_queue: usize,
    pub(super) request_timeout: Duration,
    pub(super) max_wait_secs: u64,
    pub(super) metrics: Metrics,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Each lease's address and last heartbeat, which the state does not
    /// keep (docs/http.md#seeing-and-steering-the-server).
    pub(super) notes: LeaseNotes,
    /// The pools' history (docs/http.md#history): record with
    /// [`App::record`] and [`App::record_lease`].
    pub(super) history: Arc<Recorder>,
}

impl App {
    pub(crate) fn new(
        engine: Engine,
        lease_key: Arc<SigningKey>,
        config: &ServerConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<App> {
        // This engine hands out a site's seats: a node-locked license is
        // bound to this machine, not to each client's.
        engine.serve_site();
        let history = Arc::new(Recorder::new(engine.clone(), config.history_days));
        Arc::new(App {
            engine,
            lease_key,
            admin_token: config
                .admin_token
                .as_deref()
                .map(|t| Sha256::digest(t.as_bytes()).into()),
            queues: Queues::default(),
            max_queue: config.max_queue,
            request_timeout: config.request_timeout,
            max_wait_secs: config.max_wait_secs,
            metrics: Metrics::new(),
            shutdown,
            notes: LeaseNotes::default(),
            history,
        })
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

// ---- errors -----------------------------------------------------------------

/// An error as the server answers it.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_at: Option<Timestamp>,
    /// Further members of the answer, also in its `error` object.
    details: Vec<(&'static str, Value)>,
    /// The scheme a `401` asks for (`WWW-Authenticate`): `Bearer` unless
    /// said otherwise.
    challenge: Option<&'static str>,
    /// A right or a seat refused (counted in `entitle_denials_total` by
    /// its code), rather than bad input or a fault.
    denial: bool,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_at: None,
            details: Vec::new(),
            challenge: None,
            denial: false,
        }
    }

    /// The same answer, counted as a refusal of a right or a seat.
    pub(super) fn counted_as_denial(mut self) -> Self {
        self.denial = true;
        self
    }

    /// The same refusal asking for another authentication scheme in its
    /// `WWW-Authenticate` (`Basic` for a user's login).
    pub(super) fn with_challenge(mut self, scheme: &'static str) -> Self {
        self.challenge = Some(scheme);
        self
    }

    /// The same refusal with another status (a route whose refusal the
    /// API documents otherwise than `status_of` maps its code).
    pub(super) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same refusal with `name: value` in its answer.
    pub(super) fn with_detail(mut self, name: &'static str, value: Value) -> Self {
        self.details.push((name, value));
        self
    }

    pub(super) fn shutting_down() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SHUTTING_DOWN",
            "the server is shutting down; retry in a moment",
        )
    }
}

/// The status an engine error is answered with (docs/http.md#errors).
fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::LicenseNotFound { .. } | Error::UserNotFound { .. } => StatusCode::NOT_FOUND,
        Error::Denied {
            reason: Reason::LeaseNotFound,
            ..
        } => StatusCode::NOT_FOUND,
        Error::Denied { .. }
        | Error::LicenseRevoked { .. }
        | Error::LicenseReplayed { .. }
        | Error::ReceiptReplayed { .. }
        | Error::ReportReplayed { .. }
        | Error::StateExists { .. }
        | Error::TrialUsed { .. } => StatusCode::CONFLICT,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        // The database is down or the state busy: the client retries.
        Error::StateLocked { .. } | Error::StoreUnavailable { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::StateCorrupt { .. } | Error::StateMissing { .. } | Error::Io { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_is_503_not_a_bad_request() {
        let down = Error::StoreUnavailable {
            location: "postgres://db:5432/x (namespace `default`)".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(status_of(&down), StatusCode::SERVICE_UNAVAILABLE);
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (retry_at, denial) = match &error {
            Error::Denied { retry_at, .. } => (*retry_at, true),
            _ => (None, false),
        };
        ApiError {
            status: status_of(&error),
            code: error.code(),
            message: error.to_string(),
            retry_at,
            details: Vec::new(),
            challenge: None,
            denial,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        // Once, in the error object, as docs/http.md#errors shows it.
        if let Some(at) = self.retry_at {
            body["error"]["retry_at"] = json!(at);
        }
        for (name, value) in self.details {
            body["error"][name] = value;
        }
        let mut response = (self.status, Json(body)).into_response();
        // For the request log and the denial count: the reason, never the
        // message (which may repeat what the client sent).
        response.extensions_mut().insert(Refusal {
            code: self.code,
            denial: self.denial,
        });
        if self.status == StatusCode::UNAUTHORIZED {
            let scheme = self.challenge.unwrap_or("Bearer");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }
}

pub(super) type Answer = Result<Response, ApiError>;

pub(super) fn ok(value: Value) -> Answer {
    Ok(Json(value).into_response())
}

pub(super) fn created(value: Value) -> Answer {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// A library value as JSON (plain data: this cannot fail; were it to, a
/// `null` beats a panic).
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Runs an engine call that may block (a mutation waits for the store's
/// commit) on the blocking pool, off the workers that read requests.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the request's work stopped unexpectedly; retry",
        )),
    }
}

// ---- input ------------------------------------------------------------------

fn body_error(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!("the request body is over {MAX_BODY_BYTES} bytes"),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            format!("the request body could not be read: {rejection}"),
        )
    }
}

/// A JSON body of the shape `T` (unknown fields refused, so a misspelt
/// field is an error rather than ignored).
pub(super) fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| body_error(&r))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            format!("the request body is not the JSON expected: {e}"),
        )
    })
}

/// A text body (an armored token).
pub(super) fn text_body(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let bytes = body.map_err(|r| body_error(&r))?;
    // Said plainly: an empty body would otherwise reach the token parser
    // and be answered with what an empty token lacks.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            "the request body is empty: send the armored license or bare token (or the \
             certificate or list to apply) as the body, e.g. `curl --data-binary @site.lic`",
        ));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            "the request body is not UTF-8 text",
        )
    })
}

pub(super) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            format!("the query string is wrong: {}", e.body_text()),
        )
    })
}

pub(super) fn path(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(p)| p).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            format!("the path is wrong: {}", e.body_text()),
        )
    })
}

// ---- leases -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutBody {
    client: String,
    #[serde(default)]
    feature: Option<String>,
    #[serde(default)]
    wait_secs: Option<u64>,
}

/// A lease as the server answers it: its fields and its signed token.
fn lease_answer(engine: &Engine, key: &SigningKey, lease: &Lease) -> crate::Result<Value> {
    let borrowed = lease.borrowed_until.is_some();
    let token = LeaseToken::new(
        lease.id.as_str(),
        engine.pool_license_ids(lease.feature.as_deref()),
        lease.client.as_str(),
        lease.feature.as_deref(),
        engine.now().min(lease.expires_at),
        lease.expires_at,
        borrowed,
    )
    .sign(key)?;
    let mut value = to_json(lease);
    value["borrowed"] = json!(borrowed);
    value["token"] = json!(token);
    Ok(value)
}

async fn try_checkout(
    app: &Arc<App>,
    client: &str,
    feature: Option<&str>,
) -> Result<Value, ApiError> {
    let engine = app.engine.clone();
    let key = Arc::clone(&app.lease_key);
    let client = client.to_owned();
    let feature = feature.map(str::to_owned);
    let (answer, lease) = blocking(move || {
        let lease = engine.checkout(&client, feature.as_deref())?;
        Ok((lease_answer(&engine, &key, &lease)?, lease))
    })
    .await?;
    app.record_lease(EventKind::Checkout, &lease);
    Ok(answer)
}

fn exhausted(error: &ApiError) -> bool {
    error.code == Reason::FloatingExhausted.code()
}

/// A lease handed out: noted with its client's address, and answered.
fn handed_out(app: &App, lease: Value, address: Option<ClientAddress>) -> Answer {
    if let Some(id) = lease["id"].as_str() {
        app.notes
            .checked_out(&app.engine, id, address.map(|a| a.0), app.engine.now());
    }
    created(lease)
}

async fn checkout(
    State(app): State<Arc<App>>,
    address: Option<Extension<ClientAddress>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let address = address.map(|Extension(a)| a);
    let request: CheckoutBody = json_body(body)?;
    let answer = checkout_for(&app, &request, address).await;
    if let Err(e) = &answer {
        // A refusal of a seat, not of the request: those are the
        // history's denials.
        if e.status == StatusCode::CONFLICT || e.status == StatusCode::TOO_MANY_REQUESTS {
            let pool = app.engine.pool_of(request.feature.as_deref());
            app.record(
                EventKind::Deny,
                pool.as_deref(),
                &request.client,
                None,
                Some(e.code),
            );
        }
    }
    answer
}

async fn checkout_for(
    app: &Arc<App>,
    request: &CheckoutBody,
    address: Option<ClientAddress>,
) -> Answer {
    let wait = request.wait_secs.unwrap_or(0);
    if wait > app.max_wait_secs {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!(
                "`wait_secs` is at most {} on this server; ask again after that",
                app.max_wait_secs
            ),
        ));
    }
    let client = request.client.as_str();
    let feature = request.feature.as_deref();
    // One line per pool: a feature without a pool of its own waits with
    // everyone drawing on the license-level pool.
    let pool = app.engine.pool_of(feature);
    let queued = app.queues.len(&pool);
    // First come, first served: while others wait for this pool, a
    // newcomer does not take a seat past them (a client renewing the seat
    // it holds, or taking back its lingering one, does).
    let renewing = queued > 0
        && app
            .engine
            .leases()
            .iter()
            .any(|l| l.client == client && l.feature == pool);
    if queued == 0 || renewing {
        match try_checkout(app, client, feature).await {
            Ok(lease) => return handed_out(app, lease, address),
            Err(e) if exhausted(&e) && wait > 0 => {}
            Err(e) => return Err(e),
        }
    } else if wait == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "FLOATING_EXHAUSTED",
            format!(
                "{queued} checkout(s) wait in line for this pool; ask with `wait_secs` to \
                 queue behind them"
            ),
        )
        .counted_as_denial());
    }
    let place = history::Waiting::join(app, &pool, client).map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "QUEUE_FULL",
            format!(
                "{} checkouts already wait for this pool, the most this server queues; retry \
                 later",
                app.max_queue
            ),
        )
        .counted_as_denial()
    })?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut shutdown = app.shutdown.clone();
    let mut last = None;
    loop {
        let moved = place.moved();
        let notified = moved.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut retry_at = None;
        if place.is_head() {
            match try_checkout(app, client, feature).await {
                Ok(lease) => {
                    drop(place);
                    return handed_out(app, lease, address);
                }
                Err(e) if exhausted(&e) => {
                    retry_at = e.retry_at;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let mut error = last.unwrap_or_else(|| {
                ApiError::new(StatusCode::CONFLICT, "FLOATING_EXHAUSTED", "").counted_as_denial()
            });
            error.message = format!(
                "no floating seat came free in the {wait} s this checkout waited in line; {}",
                if error.message.is_empty() {
                    "retry later"
                } else {
                    error.message.as_str()
                }
            );
            return Err(error);
        }
        // Woken by a check-in or by the line moving; else at the instant
        // the next lease ends, and at least once a second (a seat freed
        // by another process sharing the state wakes no one).
        let mut nap = (deadline - now).min(Duration::from_secs(1));
        if let Some(at) = retry_at {
            let secs = (at.unix() - app.engine.now().unix()).max(0) as u64;
            nap = nap.min(Duration::from_secs(secs));
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(nap) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Err(ApiError::shutting_down()),
        }
    }
}

async fn heartbeat(State(app): State<Arc<App>>, id: Result<Path<String>, PathRejection>) -> Answer {
    let id = path(id)?;
    let engine = app.engine.clone();
    let key = Arc::clone(&app.lease_key);
    let lease_id = id.clone();
    let (answer, lease) = blocking(move || {
        let lease = engine.heartbeat(&lease_id)?;
        Ok((lease_answer(&engine, &key, &lease)?, lease))
    })
    .await?;
    app.notes.heartbeat(&id, app.engine.now());
    app.history.watch(&lease);
    ok(answer)
}

async fn checkin(State(app): State<Arc<App>>, id: Result<Path<String>, PathRejection>) -> Answer {
    let id = path(id)?;
    let engine = app.engine.clone();
    let lease_id = id.clone();
    let lease = app.engine.live_lease(&id);
    blocking(move || engine.checkin(&lease_id)).await?;
    app.queues.seat_freed();
    if let Some(lease) = lease {
        app.record_lease(EventKind::Checkin, &lease);
    }
    ok(json!({"id": id, "checked_in": true}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BorrowBody {
    secs: i64,
}

async fn borrow(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let id = path(id)?;
    let request: BorrowBody = json_body(body)?;
    let engine = app.engine.clone();
    let key = Arc::clone(&app.lease_key);
    let (answer, lease) = blocking(move || {
        let lease = engine.borrow(&id, request.secs)?;
        Ok((lease_answer(&engine, &key, &lease)?, lease))
    })
    .await?;
    app.record_lease(EventKind::Borrow, &lease);
    ok(answer)
}

// ---- features, consumption, users -------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckQuery {
    user: Option<String>,
}

async fn check_feature(
    State(app): State<Arc<App>>,
    code: Result<Path<String>, PathRejection>,
    params: Result<Query<CheckQuery>, QueryRejection>,
) -> Answer {
    let code = path(code)?;
    let user = query(params)?.user;
    let decision = match &user {
        Some(user) => app.engine.check_feature_for(user, &code),
        None => app.engine.check_feature(&code),
    };
    let mut value = json!({
        "feature": code,
        "allowed": decision.allowed(),
        "reason": decision.reason().code(),
        "until": decision.until(),
        "warning": decision.warning().map(|w| w.code()),
    });
    if let Some(user) = user {
        value["user"] = json!(user);
    }
    let mut answer = Json(value).into_response();
    if !decision.allowed() {
        // A denial is an answer (200): the log and the count say why.
        answer.extensions_mut().insert(Refusal {
            code: decision.reason().code(),
            denial: true,
        });
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeBody {
    feature: String,
    amount: u64,
}

async fn consume(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Answer {
    let request: ConsumeBody = json_body(body)?;
    let engine = app.engine.clone();
    let amount = request.amount;
    let consumed = blocking(move || engine.consume(&request.feature, amount)).await?;
    let mut value = to_json(&consumed);
    value["amount"] = json!(amount);
    ok(value)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    id: String,
    #[serde(default = "default_user_type")]
    user_type: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

fn default_user_type() -> String {
    "user".to_owned()
}

async fn add_user(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Answer {
    let request: UserBody = json_body(body)?;
    let engine = app.engine.clone();
    let mut user = NewUser::new(&request.id, &request.user_type);
    if let Some(name) = &request.name {
        user = user.name(name);
    }
    if let Some(email) = &request.email {
        user = user.email(email);
    }
    let decision = blocking(move || engine.add_user_with(&user)).await?;
    let status = app.engine.status();
    created(json!({
        "id": request.id,
        "user_type": request.user_type,
        "name": request.name,
        "email": request.email,
        "allowed": decision.allowed(),
        "reason": decision.reason().code(),
        "overage": decision.reason() == Reason::Overage,
        "active_user_count": status.active_user_count,
    }))
}

async fn remove_user(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = path(id)?;
    let engine = app.engine.clone();
    let user = id.clone();
    blocking(move || engine.remove_user(&user)).await?;
    ok(json!({"id": id, "removed": true}))
}

// ---- service ----------------------------------------------------------------

async fn healthz(State(app): State<Arc<App>>) -> Answer {
    if app.stopping() {
        return Err(ApiError::shutting_down());
    }
    ok(json!({"status": "ok", "product": app.engine.product()}))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render(&app.engine, &app.queues);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such route; see /openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not take that method; see /openapi.json",
    )
}

/// Every request: refused once the server is stopping, bounded in time
/// (a slow client's body included), and counted.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = if app.stopping() {
        ApiError::shutting_down().into_response()
    } else {
        // A checkout may wait in line for as long as it asked.
        let mut limit = app.request_timeout;
        if method == Method::POST && route == "/v1/leases" {
            limit += Duration::from_secs(app.max_wait_secs);
        }
        match tokio::time::timeout(limit, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "TIMEOUT",
                format!("the request took over {} s", limit.as_secs()),
            )
            .into_response(),
        }
    };
    app.metrics
        .request(method.as_str(), &route, response.status().as_u16());
    if let Some(Refusal { code, denial: true }) = response.extensions().get::<Refusal>() {
        app.metrics.denial(code);
    }
    response
}

// ---- the router -------------------------------------------------------------

/// The routes, as data: the router is built from this table, and the
/// OpenAPI test compares it with the document.
fn table() -> RouteTable<Arc<App>> {
    let mut table = admin::table();
    table.extend(history::table());
    table.extend(console::table());
    table.extend(vec![
        (Method::POST, "/v1/leases", post(checkout)),
        (Method::POST, "/v1/leases/{id}/heartbeat", post(heartbeat)),
        (Method::DELETE, "/v1/leases/{id}", delete(checkin)),
        (Method::POST, "/v1/leases/{id}/borrow", post(borrow)),
        (Method::GET, "/v1/features/{code}", get(check_feature)),
        (Method::POST, "/v1/consume", post(consume)),
        (Method::POST, "/v1/users", post(add_user)),
        (Method::DELETE, "/v1/users/{id}", delete(remove_user)),
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/openapi.json", get(openapi)),
    ]);
    table
}

/// Every route the server answers, as (method, path template): what
/// `/openapi.json` must describe, no more and no less.
///
/// ```
/// let routes = entitle::server::routes();
/// assert!(routes.contains(&("POST".to_string(), "/v1/leases".to_string())));
/// ```
pub fn routes() -> Vec<(String, String)> {
    route_list(table())
}

/// A server's routes as data: method, path template, handler.
pub(super) type RouteTable<S> = Vec<(Method, &'static str, MethodRouter<S>)>;

/// The (method, path template) of each route of `table`.
pub(super) fn route_list<S>(table: RouteTable<S>) -> Vec<(String, String)> {
    table
        .into_iter()
        .map(|(method, path, _)| (method.to_string(), path.to_owned()))
        .collect()
}

/// The router of `table`, with the answers every server gives to an
/// unknown route or method and its limit on bodies; the caller adds its
/// guard and state.
pub(super) fn table_router<S: Clone + Send + Sync + 'static>(table: RouteTable<S>) -> Router<S> {
    let mut router = Router::new();
    for (_, path, handler) in table {
        router = router.route(path, handler);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

pub(crate) fn router(app: Arc<App>) -> Router {
    table_router(table())
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}
