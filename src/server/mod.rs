//! The license server, `entitle serve` (docs/http.md): floating
//! seats, checks, consumption and users over HTTP for a LAN of desktops
//! and for clients that cannot link the crate, and the admin API.
//!
//! Behind the `server` feature, so that a program linking the engine
//! pulls in no async runtime. The server is a shell around one
//! [`Engine`]: every mutation runs on tokio's blocking pool (a mutation
//! waits for the state's `fsync`, which must never stall the workers that
//! read requests), every read is the engine's own lock-free snapshot.
//!
//! ```no_run
//! use entitle::server::{self, ServerConfig};
//! # fn main() -> entitle::Result<()> {
//! let engine = entitle::Engine::builder("acme").in_memory().build()?;
//! let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
//! config.admin_token = Some("a long random secret".into());
//! // Blocks until SIGTERM or SIGINT.
//! server::run(engine, config, |addr| println!("listening on http://{addr}"))?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod api;
mod books;
mod cidr;
mod console;
pub mod history;
mod listener;
mod metrics;
mod queue;
mod ratelimit;
mod request_log;
mod seats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::books::online::Service;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::token::SigningKey;

pub use api::routes;
pub use books::books_routes;
pub use cidr::Cidr;
pub use request_log::{log_to_stderr, LogFormat, REQUEST_LOG_TARGET};

/// The largest request body the server reads (64 KiB, as a token).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The largest request head (request line and headers) the server reads:
/// 16 KiB. A larger one is answered `431` and its connection closed; no
/// more than this of a head is ever buffered, however slowly it comes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How many connections one client address may hold open at once, by
/// default ([`ServerConfig::max_connections_per_address`]).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;

/// The longest a checkout may wait in a pool's queue (`wait_secs`), by
/// default ([`ServerConfig::max_wait_secs`]).
pub const MAX_WAIT_SECS: u64 = 60;

/// How many days of history a server keeps, by default
/// ([`ServerConfig::history_days`]).
pub const HISTORY_DAYS: u32 = 90;

/// How a server runs: where it listens, who may use it, and its limits.
///
/// ```
/// let config = entitle::server::ServerConfig::new("127.0.0.1:8740".parse().unwrap());
/// assert!(config.admin_token.is_none()); // admin routes off
/// assert_eq!(config.max_queue, 64);
/// assert_eq!(config.max_connections_per_address, 64);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The bearer token of the admin routes; `None` turns them off.
    pub admin_token: Option<String>,
    /// The key lease tokens are signed with; `None`: the install's own key,
    /// made when the state was first opened and kept in it.
    pub lease_key: Option<Arc<SigningKey>>,
    /// Only clients in these networks are served (empty: everyone).
    pub allow: Vec<Cidr>,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Connections one client address may hold open at once; more from
    /// that address are closed at once, unread, so that it cannot take
    /// the slots of [`ServerConfig::max_connections`] every other client
    /// needs. Protects others only while it is below that cap.
    pub max_connections_per_address: usize,
    /// How long a connection may take to send a request's head, and may
    /// stay idle between requests (keep-alive), before it is closed.
    pub idle_timeout: Duration,
    /// Checkouts waiting per pool; beyond, `429 QUEUE_FULL`.
    pub max_queue: usize,
    /// How long a request may take (reading a slow client's body
    /// included), besides the wait it asked for.
    pub request_timeout: Duration,
    /// The longest `wait_secs` a checkout may ask for.
    pub max_wait_secs: u64,
    /// How [`log_to_stderr`] writes the request log (`entitle serve
    /// --log-format`). The server itself only emits `tracing` events
    /// (target [`REQUEST_LOG_TARGET`]): nothing is written unless a
    /// subscriber listens.
    pub log_format: LogFormat,
    /// Days of history kept (docs/http.md#history); 0 turns history off.
    pub history_days: u32,
}

impl ServerConfig {
    /// A server on `listen` with the default limits: admin routes off,
    /// the install key as lease key, every client allowed, 1024
    /// connections and 64 per client address, 10 s to send a request's
    /// head or between requests, 64 waiting per pool, 10 s per request,
    /// waits of up to 60 s, the request log in text, 90 days of history.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            admin_token: None,
            lease_key: None,
            allow: Vec::new(),
            max_connections: 1024,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
            idle_timeout: Duration::from_secs(10),
            max_queue: 64,
            request_timeout: Duration::from_secs(10),
            max_wait_secs: MAX_WAIT_SECS,
            log_format: LogFormat::Text,
            history_days: HISTORY_DAYS,
        }
    }
}

/// The key `engine`'s server signs lease tokens with: `given`, or the
/// install's own key. Its public half is what clients verify leases with.
///
/// ```
/// let engine = entitle::Engine::builder("acme").in_memory().build().unwrap();
/// let key = entitle::server::lease_key(&engine, None).unwrap();
/// assert_eq!(key.public_key(), &engine.install_key().unwrap());
/// ```
pub fn lease_key(engine: &Engine, given: Option<Arc<SigningKey>>) -> Result<Arc<SigningKey>> {
    match given {
        Some(key) => Ok(key),
        None => engine.install_signing_key().ok_or_else(|| {
            Error::InvalidArgument(
                "this state has no install key to sign leases with; open it again (the key is \
                 made when the state is opened) or give a lease key"
                    .into(),
            )
        }),
    }
}

/// Serves `engine` until SIGTERM or SIGINT, then stops cleanly: no new
/// connection is accepted, requests in flight finish (waiting checkouts
/// hear `503 SHUTTING_DOWN`), and every mutation acknowledged is already
/// durable. `ready` is called with the address once connections are
/// accepted (port 0 resolved to the real port).
pub fn run(
    engine: Engine,
    config: ServerConfig,
    ready: impl FnOnce(SocketAddr) + Send,
) -> Result<()> {
    let lease_key = lease_key(&engine, config.lease_key.clone())?;
    let app_config = config.clone();
    // Closed only after the runtime is gone: a PostgreSQL store announces
    // its last commits when dropped, with calls that block, which may not
    // run on the runtime's threads.
    let kept = engine.clone();
    let app_slot = Arc::new(parking_lot::Mutex::new(None));
    let slot = Arc::clone(&app_slot);
    let served = runtime()?.block_on(serve(
        config,
        move |stopping| {
            let app = api::App::new(engine, lease_key, &app_config, stopping);
            history::start(&app);
            *slot.lock() = Some(Arc::clone(&app));
            api::router(app)
        },
        ready,
    ));
    // The history of the last second, written once no request is left
    // (off the runtime: a PostgreSQL store's calls block).
    if let Some(app) = app_slot.lock().take() {
        app.flush_history();
    }
    drop(kept);
    served
}

/// Serves the vendor's online service `service` (docs/http.md#the-vendors-service)
/// until SIGTERM or SIGINT, as [`run`] serves an install: the same
/// listener, limits and clean stop. `config.admin_token` turns on the
/// admin routes (issuing, revoking, accounts); its lease key and queue
/// settings are not used.
///
/// ```no_run
/// use entitle::books::{online::Service, Books};
/// use entitle::server::{self, ServerConfig};
/// # fn main() -> entitle::Result<()> {
/// let vendor = entitle::token::SigningKey::generate()?;
/// let books = Books::builder("acme").in_memory().trust(vendor.public_key().clone()).build()?;
/// let service = Service::new(books, vendor)?;
/// let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
/// config.admin_token = Some("a long random secret".into());
/// server::run_books(service, config, |addr| println!("listening on http://{addr}"))?;
/// # Ok(())
/// # }
/// ```
pub fn run_books(
    service: Service,
    config: ServerConfig,
    ready: impl FnOnce(SocketAddr) + Send,
) -> Result<()> {
    let app_config = config.clone();
    // Closed after the runtime, as in `run`.
    let kept = service.clone();
    let served = runtime()?.block_on(serve(
        config,
        move |stopping| books::router(books::BooksApp::new(service, &app_config, stopping)),
        ready,
    ));
    drop(kept);
    served
}

/// The server's runtime: two workers, a bounded blocking pool.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Mutations serialize on the engine's writer anyway; a bounded
        // pool keeps a burst from spawning hundreds of threads.
        .max_blocking_threads(64)
        .thread_name("entitle-serve")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the server's runtime", e))
}

/// Listens, serves the router `router_for` makes (given the stop signal)
/// until SIGTERM or SIGINT, then stops cleanly.
async fn serve(
    config: ServerConfig,
    router_for: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> axum::Router,
    ready: impl FnOnce(SocketAddr) + Send,
) -> Result<()> {
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::io(format!("listening on {}", config.listen), e))?;
    let local = tcp
        .local_addr()
        .map_err(|e| Error::io("reading the listening address", e))?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    // Outermost, so that every answer is logged: a route's, a refusal
    // of its guard, a 404.
    let router =
        router_for(shutdown_rx.clone()).layer(axum::middleware::from_fn(request_log::log_request));
    // A connection that has sent part of a request gets no longer than
    // the longest request may take to be answered, however slowly it
    // trickles (the request's own timeout answers first); one between
    // requests, as long to send the next.
    let patience =
        config.request_timeout + Duration::from_secs(config.max_wait_secs) + Duration::from_secs(1);
    let listener = listener::Guarded::new(
        tcp,
        config.allow.clone(),
        config.max_connections,
        config.max_connections_per_address,
        patience,
    );
    ready(local);
    let mut stopping = shutdown_rx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = shutdown_tx.send(true);
    });
    let server = listener::serve(listener, router, config.idle_timeout, shutdown_rx);
    // Once asked to stop, in-flight requests get a while to finish; a
    // client that never finishes its request does not hold the server.
    let grace = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
    };
    tokio::select! {
        () = server => Ok(()),
        () = grace => Ok(()),
    }
}

/// SIGTERM (a service manager) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            // Without signal handlers the process still ends on a signal,
            // only not gracefully.
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
