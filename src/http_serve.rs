//! Serving an HTTP listener (the query API and UI, OTLP/HTTP) within bounds: a cap on open
//! connections (past it, new ones wait in the accept queue; an accepted one is never dropped
//! for it) and on those of one client address (past that, closed at once), HTTP/1 request
//! headers (and the next request on an idle keep-alive connection) within a timeout (clients that send headers slowly are
//! closed), HTTP/2 keepalive pings; on stop, accepting ends at once and connections in flight
//! get a grace period to finish before they are cut. It does not route or authorize.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use skewer_storage::auth::ConnectionIdentity;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::per_address::{PeerAddress, PerAddress};

/// How often an idle HTTP/2 connection is pinged, and how long the answer may take.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a connection says about its client (a mapped client certificate), handed to every
/// request on it as an extension.
pub trait ClientIdentity {
    /// The identity of the connection's client.
    fn identity(&self) -> ConnectionIdentity;
}

/// Plain TCP: no identity beyond the request's keys.
impl ClientIdentity for tokio::net::TcpStream {
    fn identity(&self) -> ConnectionIdentity {
        ConnectionIdentity::default()
    }
}

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections of one client address at most (0: no cap).
    pub max_connections_per_address: usize,
    /// An HTTP/1 request's headers must arrive within this.
    pub header_read_timeout: Duration,
    /// After stop, connections in flight get this long before they are cut.
    pub shutdown_grace: Duration,
}

/// Serves `app` on `listener` until `stop`, then lets connections finish within the grace
/// period and cuts the rest.
pub async fn serve<L>(mut listener: L, app: Router, limits: ServeLimits, stop: CancellationToken)
where
    L: Listener,
    L::Io: Unpin + ClientIdentity + PeerAddress,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = stop.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        // The slot is kept for the next connection while one is refused by its address.
        let accepted = loop {
            let (io, _remote) = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stop.cancelled() => break None,
            };
            let ip = io.peer_ip();
            match per_address.try_take(ip) {
                Some(address_slot) => break Some((io, address_slot)),
                None => debug!(?ip, "connection closed: its address holds its share"),
            }
        };
        let Some((io, address_slot)) = accepted else {
            break;
        };
        let identity = io.identity();
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<_>| {
                request.extensions_mut().insert(identity.clone());
                request
            },
        ));
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                debug!(error = %err, "connection ended with an error");
            }
            drop((slot, address_slot));
        });
        // Finished connections are reaped as new ones come, so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let open = connections.len();
    if open > 0
        && tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
    {
        warn!(
            open = connections.len(),
            grace_seconds = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace period: cut"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
