//! The server's listener: a cap on connections, the `--allow` networks,
//! and a deadline for slow clients (mini-redis's semaphore, applied where
//! connections are accepted).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::cidr::Cidr;

/// Accepts a connection only while fewer than the cap are open, and only
/// from the allowed networks (others are closed at once, unread).
pub(crate) struct Guarded {
    tcp: TcpListener,
    allow: Vec<Cidr>,
    permits: Arc<Semaphore>,
    patience: Duration,
}

impl Guarded {
    pub(crate) fn new(
        tcp: TcpListener,
        allow: Vec<Cidr>,
        max_connections: usize,
        patience: Duration,
    ) -> Self {
        Guarded {
            tcp,
            allow,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            patience,
        }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
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
                continue;
            }
            let _ = stream.set_nodelay(true);
            return (
                Connection {
                    stream,
                    _permit: permit,
                    patience: self.patience,
                    asking: false,
                    deadline: Box::pin(tokio::time::sleep(self.patience)),
                },
                peer,
            );
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// An accepted connection: its slot under the cap is freed when it
/// closes. From the first byte of a request until the server writes its
/// answer, the connection has the patience once, not per byte: a client
/// that trickles its headers a byte at a time (which no request timeout
/// sees, as the request has not begun) is closed when it runs out; so is
/// one that sends nothing for as long between requests.
pub(crate) struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    patience: Duration,
    /// Bytes of a request came in that no answer has followed yet.
    asking: bool,
    deadline: Pin<Box<Sleep>>,
}

impl Connection {
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
