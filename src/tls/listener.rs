//! A TCP listener whose connections come out TLS-terminated. One task accepts; each handshake
//! runs in its own task, bounded in number (per listener and per client address) and in time,
//! and hands the finished connection over a bounded channel. A client address past its share of
//! open connections is closed before any handshake. Serves axum as a [`Listener`] and tonic as
//! a stream of connections.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use skewer_storage::auth::ConnectionIdentity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tracing::debug;

use super::TlsReloader;
use crate::per_address::{AddressSlot, PeerAddress, PerAddress};

/// A handshake not finished within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once per listener; past it, new connections wait in the backlog.
const MAX_HANDSHAKES: usize = 1024;
/// Handshakes in progress at once per client address (or the per-address connection cap, when
/// lower; none without one); past it, its new connections are closed: one host cannot hold the
/// listener's handshake slots.
const MAX_HANDSHAKES_PER_ADDRESS: usize = 32;
/// Finished connections waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// One TLS connection.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    remote: SocketAddr,
    identity: ConnectionIdentity,
    _address_slot: AddressSlot,
}

/// Its address was counted before the handshake.
impl PeerAddress for TlsConnection {
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
}

impl crate::http_serve::ClientIdentity for TlsConnection {
    fn identity(&self) -> ConnectionIdentity {
        self.identity.clone()
    }
}

/// TLS-terminated connections of one port.
pub struct TlsListener {
    ready: mpsc::Receiver<TlsConnection>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` with the configuration `tls` holds at each handshake,
    /// at most `per_address` open connections from one client address, until `stop` is
    /// cancelled.
    pub fn spawn(
        listener: TcpListener,
        tls: Arc<TlsReloader>,
        per_address: PerAddress,
        stop: CancellationToken,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(listener, tls, per_address, sender, stop));
        Ok(Self { ready, local_addr })
    }

    /// The connections as tonic's `serve_with_incoming` takes them.
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = io::Result<TlsConnection>> {
        tokio_stream::wrappers::ReceiverStream::new(self.ready).map(Ok)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<TlsReloader>,
    per_address: PerAddress,
    ready: mpsc::Sender<TlsConnection>,
    stop: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let handshakes_per_address = PerAddress::new(per_address.max().min(MAX_HANDSHAKES_PER_ADDRESS));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stop.cancelled() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: pause instead of spinning.
                debug!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = Some(remote.ip());
        let (Some(address_slot), Some(handshake_slot)) = (
            per_address.try_take(ip),
            handshakes_per_address.try_take(ip),
        ) else {
            debug!(%remote, "connection closed: its address holds its share");
            continue;
        };
        let acceptor = TlsAcceptor::from(tls.current());
        let ready = ready.clone();
        let tls = Arc::clone(&tls);
        tokio::spawn(async move {
            let _permits = (permit, handshake_slot);
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let identity = tls
                        .client_tenants()
                        .identity(stream.get_ref().1.peer_certificates());
                    let connection = TlsConnection {
                        stream,
                        remote,
                        identity,
                        _address_slot: address_slot,
                    };
                    // The server stopped taking connections: this one is closed.
                    let _ = ready.send(connection).await;
                }
                Ok(Err(err)) => debug!(%remote, error = %err, "TLS handshake failed"),
                Err(_) => debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => {
                let remote = connection.remote;
                (connection, remote)
            }
            // The accept loop stopped (shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// tonic puts the connection's identity in every request's extensions, where the ingest
/// check reads it.
impl Connected for TlsConnection {
    type ConnectInfo = ConnectionIdentity;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.identity.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
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
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
