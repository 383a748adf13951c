//! The server's listener and connections: a cap on connections in all
//! and per client address, the `--allow` networks, hyper's limits on a
//! request's head, and a deadline for slow clients (mini-redis's
//! semaphore, applied where connections are accepted).
//!
//! A client outside `--allow` is answered `403 FORBIDDEN` (and logged)
//! on a small allowance of its own: its connections never take the
//! slots of the clients the server serves, and beyond that allowance
//! they are closed unread.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower_service::Service as _;

use super::api::ApiError;
use super::cidr::Cidr;
use super::request_log;
use super::{MAX_BODY_BYTES, MAX_HEADER_BYTES};

/// Clients outside `--allow` answered at once, in all, and from one
/// address: beyond, their connections are closed unread.
const MAX_REFUSALS: usize = 32;
const MAX_REFUSALS_PER_ADDRESS: usize = 4;

/// How long a client outside `--allow` has to send its request before
/// its connection is closed unanswered.
const REFUSAL_PATIENCE: Duration = Duration::from_secs(5);

/// Accepts a connection only while fewer than the cap are open, and
/// only while its address holds fewer than its own cap (others are
/// closed at once, unread). A connection from outside the allowed
/// networks is accepted to be refused, under caps of its own.
pub(crate) struct Guarded {
    tcp: TcpListener,
    allow: Vec<Cidr>,
    permits: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    refusals: Arc<Semaphore>,
    refused_per_address: Arc<PerAddress>,
    patience: Duration,
}

impl Guarded {
    pub(crate) fn new(
        tcp: TcpListener,
        allow: Vec<Cidr>,
        max_connections: usize,
        max_per_address: usize,
        patience: Duration,
    ) -> Self {
        Guarded {
            tcp,
            allow,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            per_address: Arc::new(PerAddress {
                cap: max_per_address.max(1),
                open: Mutex::new(rustc_hash::FxHashMap::default()),
            }),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            refused_per_address: Arc::new(PerAddress {
                cap: MAX_REFUSALS_PER_ADDRESS,
                open: Mutex::new(rustc_hash::FxHashMap::default()),
            }),
            patience,
        }
    }

    /// The next connection to serve.
    pub(crate) async fn accept(&mut self) -> Connection {
        loop {
            // The permit first: at the cap, new connections wait in the
            // kernel's backlog rather than being accepted and starved.
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // The semaphore is never closed.
                std::future::pending::<()>().await;
                continue;
            };
            let (stream, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(peer.ip())) {
                // Refused on an allowance of its own: the permit of a
                // client the server serves goes back at once.
                drop(permit);
                let Ok(refusal) = Arc::clone(&self.refusals).try_acquire_owned() else {
                    continue;
                };
                let Some(address) = self.refused_per_address.take(peer.ip()) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                return Connection {
                    stream,
                    _permit: refusal,
                    address,
                    refused: true,
                    patience: REFUSAL_PATIENCE,
                    asking: false,
                    deadline: Box::pin(tokio::time::sleep(REFUSAL_PATIENCE)),
                };
            }
            // An address at its cap has its new connection closed at once
            // (the permit goes back with it): one address cannot take the
            // slots every other client needs, nor fill the backlog in
            // front of them.
            let Some(address) = self.per_address.take(peer.ip()) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            return Connection {
                stream,
                _permit: permit,
                address,
                refused: false,
                patience: self.patience,
                asking: false,
                deadline: Box::pin(tokio::time::sleep(self.patience)),
            };
        }
    }
}

/// The connections open per client address. An address is counted as
/// the client's whole address (an IPv4 address seen through an IPv6
/// socket counts as itself): a /64 of IPv6 is often a whole LAN, whose
/// desktops must not share one cap. An attacker with many addresses is
/// bounded by the cap in all.
struct PerAddress {
    cap: usize,
    /// Only addresses with a connection open: at most as many entries as
    /// connections.
    open: Mutex<rustc_hash::FxHashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A slot for one more connection from `ip`, unless it holds the cap.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

/// One connection's place under its address's cap, given back on drop.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on every connection `listener` accepts until `stop`
/// turns true, then lets each connection finish the request it is
/// serving (an idle one closes at once) and returns once all have
/// closed.
///
/// Each connection is hyper's HTTP/1 with its limits set: a request's
/// head (request line and headers) over [`MAX_HEADER_BYTES`] is answered
/// `431` and the connection closed, and hyper never buffers more than
/// that of a head, however slowly it comes; a head not complete within
/// `idle` closes the connection, and so does a keep-alive connection
/// that sends no next request within `idle`.
pub(crate) async fn serve(
    mut listener: Guarded,
    router: Router,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(idle)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    // A client outside `--allow` gets one answer, then the connection
    // closes.
    let mut refusing = hyper::server::conn::http1::Builder::new();
    refusing
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_PATIENCE)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(false);
    // Every connection task holds a receiver: once all are dropped, every
    // connection has closed.
    let (closed_tx, closed_rx) = watch::channel(());
    loop {
        let connection = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            connection = listener.accept() => connection,
        };
        // Each request carries its client's address, for the limits kept
        // per address (failed logins).
        let client = ClientAddress(connection.peer());
        if connection.refused {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                refuse(request, client)
            });
            let conn = refusing.serve_connection(TokioIo::new(connection), service);
            let closed_rx = closed_rx.clone();
            // Bounded by the connection's patience: no stop signal needed.
            tokio::spawn(async move {
                let _ = conn.await;
                drop(closed_rx);
            });
            continue;
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(client);
            // A router is always ready (axum's `Router::poll_ready`).
            router.clone().call(request.map(Body::new))
        });
        let conn = http.serve_connection(TokioIo::new(connection), service);
        let mut stop = stop.clone();
        let closed_rx = closed_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    // An error is a client gone, cut off, or refused (431):
                    // nothing to do but close.
                    _ = conn.as_mut() => break,
                    _ = stop.wait_for(|stop| *stop), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(closed_rx);
        });
    }
    drop(closed_rx);
    closed_tx.closed().await;
}

/// The answer to a client outside `--allow`: `403 FORBIDDEN`, and a line
/// in the request log. What body it sent is read and dropped first (up
/// to the cap on bodies, within its patience), so that the answer is
/// not lost to a reset of a connection closed with bytes unread.
async fn refuse(
    request: Request<Incoming>,
    client: ClientAddress,
) -> Result<Response<Body>, Infallible> {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let path = request_log::shortened(request.uri().path());
    let _ = axum::body::to_bytes(Body::new(request.into_body()), MAX_BODY_BYTES).await;
    let refusal = ApiError::new(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "this server serves only the networks its administrator allowed (`--allow`); ask them \
         to add yours",
    );
    let response = refusal.into_response();
    request_log::line(
        &method,
        &path,
        StatusCode::FORBIDDEN.as_u16(),
        started.elapsed(),
        Some(client.0),
        Some("FORBIDDEN"),
    );
    Ok(response)
}

/// The address of the client that sent a request (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub(crate) IpAddr);

/// An accepted connection: its slots under the caps (in all, and its
/// address's) are freed when it closes. From the first byte of a request
/// until the server writes its answer, the connection has the patience
/// once, not per byte: a client that trickles its body a byte at a time
/// is closed when it runs out (hyper's header timeout closes one that
/// trickles its head sooner, as it does an idle one).
pub(crate) struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    address: AddressSlot,
    /// From outside `--allow`: answered `403` and closed.
    refused: bool,
    patience: Duration,
    /// Bytes of a request came in that no answer has followed yet.
    asking: bool,
    deadline: Pin<Box<Sleep>>,
}

impl Connection {
    /// The client's address (canonical: an IPv4 client seen through an
    /// IPv6 socket is its IPv4 address).
    fn peer(&self) -> IpAddr {
        self.address.ip
    }

    /// The client sent bytes: the clock starts if a request begins.
    fn read_some(&mut self) {
        if !self.asking {
            self.asking = true;
            let next = Instant::now() + self.patience;
            self.deadline.as_mut().reset(next);
        }
    }

    /// The server answered: patience for the next request.
    fn wrote_some(&mut self) {
        self.asking = false;
        let next = Instant::now() + self.patience;
        self.deadline.as_mut().reset(next);
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.read_some();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took too long to send its request",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote_some();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote_some();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
