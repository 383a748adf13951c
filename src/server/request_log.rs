//! The request log (docs/http.md#logs): one `tracing` event per request,
//! with its method, route, status, duration, client address and, for a
//! refusal or a denial, its reason code. Never a header (the admin token
//! travels in one) and never a query string.
//!
//! The server only emits events; whoever runs it decides where they go.
//! `entitle serve` writes them to stderr ([`log_to_stderr`]); a program
//! running [`run`](super::run) installs its own subscriber, or none (an
//! event nobody listens to costs one relaxed load).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{Error, Result};

use super::listener::ClientAddress;
use super::ServerConfig;

/// The `tracing` target of the request events, to filter them by in a
/// subscriber of one's own.
///
/// ```
/// assert_eq!(entitle::server::REQUEST_LOG_TARGET, "entitle::request");
/// ```
pub const REQUEST_LOG_TARGET: &str = "entitle::request";

/// The longest path the log repeats of a request that matched no route
/// (what a client sent, which may be anything up to the head's limit).
const MAX_LOGGED_PATH: usize = 200;

/// How the request log's lines are written: `entitle serve --log-format`.
///
/// ```
/// use entitle::server::LogFormat;
/// assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
/// assert_eq!(LogFormat::default(), LogFormat::Text);
/// assert!("xml".parse::<LogFormat>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// One line of `name=value` fields after a timestamp and level.
    #[default]
    Text,
    /// One JSON object per line, the fields at its top level.
    Json,
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(text: &str) -> Result<LogFormat> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(Error::InvalidArgument(format!(
                "`{}` is not a log format: write `text` or `json`",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// Writes the server's request log (and any other `tracing` event at
/// level INFO or above) to stderr, one line per event in
/// `config.log_format`, by installing a global `tracing` subscriber.
/// `entitle serve` calls it; a program that runs [`run`](super::run)
/// calls it, installs a subscriber of its own, or neither (no log). Fails
/// with `INVALID_ARGUMENT` when a global subscriber is already installed.
///
/// ```no_run
/// use entitle::server::{self, LogFormat, ServerConfig};
/// # fn main() -> entitle::Result<()> {
/// # let engine = entitle::Engine::builder("acme").in_memory().build()?;
/// let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
/// config.log_format = LogFormat::Json;
/// server::log_to_stderr(&config)?;
/// server::run(engine, config, |_| {})?;
/// # Ok(())
/// # }
/// ```
pub fn log_to_stderr(config: &ServerConfig) -> Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| {
        Error::InvalidArgument(format!(
            "the request log cannot be installed: a tracing subscriber is already ({e})"
        ))
    })
}

/// The reason code of a refusal (an error's code) or of a denial (a
/// decision's reason), carried on the response to the log and, when it
/// refused a right or a seat, to the denial count of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The error or reason code.
    pub(crate) code: &'static str,
    /// A right or a seat refused, rather than bad input or a fault.
    pub(crate) denial: bool,
}

/// One request's line.
pub(crate) fn line(
    method: &str,
    path: &str,
    status: u16,
    took: Duration,
    client: Option<IpAddr>,
    reason: Option<&'static str>,
) {
    // Microseconds as a decimal count of milliseconds: fine enough for a
    // check that takes a few, readable for a checkout that waited.
    let duration_ms = took.as_micros() as f64 / 1000.0;
    tracing::info!(
        target: "entitle::request",
        method,
        path,
        status,
        duration_ms,
        client = client.map(tracing::field::display),
        reason,
    );
}

/// The route a request matched (its template, so that ids in the path
/// stay out of the log and lines group by route), or the path it asked
/// for, without its query string, cut short.
fn logged_path(request: &Request) -> String {
    match request.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str().to_owned(),
        None => shortened(request.uri().path()),
    }
}

/// `path` cut to [`MAX_LOGGED_PATH`] bytes at a character boundary.
pub(crate) fn shortened(path: &str) -> String {
    let mut end = path.len().min(MAX_LOGGED_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
}

/// The outermost layer of a server's router: logs every request it
/// answers, a route or not.
pub(crate) async fn log_request(request: Request, next: Next) -> Response {
    if !tracing::enabled!(target: "entitle::request", tracing::Level::INFO) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().clone();
    let path = logged_path(&request);
    let client = request.extensions().get::<ClientAddress>().map(|c| c.0);
    let response = next.run(request).await;
    let reason = response.extensions().get::<Refusal>().map(|r| r.code);
    line(
        method.as_str(),
        &path,
        response.status().as_u16(),
        started.elapsed(),
        client,
        reason,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_path_is_cut_at_a_character_boundary() {
        let path = format!("/{}", "é".repeat(150));
        let cut = shortened(&path);
        assert!(cut.len() <= MAX_LOGGED_PATH && cut.len() >= MAX_LOGGED_PATH - 1);
        assert!(path.starts_with(&cut));
        assert_eq!(shortened("/healthz"), "/healthz");
    }
}
