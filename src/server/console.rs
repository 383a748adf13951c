//! The console (docs/http.md#the-console): a web page for the
//! administrator, served from the binary at `/admin/`. Its three files are
//! compiled in, so that it works air-gapped and needs no build step; the
//! page calls the same admin routes `curl` does, with the token the
//! administrator types in, so the JSON API stays the contract.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::api::{ApiError, App, RouteTable};

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// Nothing the page loads or calls may come from elsewhere: no inline
/// script (a client name that reads `<script>` stays text), no CDN, no
/// frame around it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'none'; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes: the page and its two assets.
pub(super) fn table() -> RouteTable<Arc<App>> {
    vec![
        (Method::GET, "/admin", get(redirect_to_console)),
        (Method::GET, "/admin/", get(index_html)),
        (Method::GET, "/admin/console.js", get(console_js)),
        (Method::GET, "/admin/console.css", get(console_css)),
    ]
}

/// One compiled-in file, with its `ETag` computed once.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: OnceLock<HeaderValue>,
}

static INDEX: Asset = Asset::new(INDEX_HTML, "text/html; charset=utf-8");
static SCRIPT: Asset = Asset::new(CONSOLE_JS, "text/javascript; charset=utf-8");
static STYLE: Asset = Asset::new(CONSOLE_CSS, "text/css; charset=utf-8");

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Asset {
        Asset {
            body,
            content_type,
            etag: OnceLock::new(),
        }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.body.as_bytes());
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            // Hex between quotes is always a valid header value.
            HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"console\""))
        })
    }

    /// The file, or `304` when the browser's copy is this one. `no-cache`:
    /// the browser keeps it but asks each time, so that an upgraded server's
    /// console is the one shown.
    fn answer(&self, app: &App, headers: &HeaderMap) -> Response {
        if let Some(off) = off(app) {
            return off;
        }
        let etag = self.etag();
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .any(|t| t.trim() == "*" || t.trim().as_bytes() == etag.as_bytes())
            });
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = self.body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            response
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        secure(headers);
        response
    }
}

/// The console is part of the admin routes: off with them (`404`).
fn off(app: &App) -> Option<Response> {
    app.admin_token.is_none().then(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "the console is off on this server, as are the admin routes (it was started \
             without --admin-token-file)",
        )
        .into_response()
    })
}

/// The headers every console answer carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

async fn redirect_to_console(State(app): State<Arc<App>>) -> Response {
    if let Some(off) = off(&app) {
        return off;
    }
    let mut response = (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("/admin/"))],
    )
        .into_response();
    secure(response.headers_mut());
    response
}

async fn index_html(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    INDEX.answer(&app, &headers)
}

async fn console_js(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    SCRIPT.answer(&app, &headers)
}

async fn console_css(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    STYLE.answer(&app, &headers)
}
