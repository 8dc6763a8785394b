//! A cap on the open connections of a listener served by tonic: a connection is taken from
//! the listener only when a slot is free, and its slot is freed when it closes; past the cap,
//! new connections wait in the accept queue (none is accepted and then dropped). A client
//! address holding its own share of the cap ([`PerAddress`]) has new connections closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;
use tracing::debug;

use crate::per_address::{AddressSlot, PeerAddress, PerAddress};

/// A connection holding one slot of its listener's cap and one of its address's.
pub struct CappedConnection<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
    _address_slot: AddressSlot,
}

/// The connections of `incoming`, at most `max_connections` open at once, and at most what
/// `per_address` allows from one client address (past that, closed at once).
pub fn capped<S, IO, E>(
    incoming: S,
    max_connections: usize,
    per_address: PerAddress,
) -> impl Stream<Item = Result<CappedConnection<IO>, E>>
where
    S: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: PeerAddress + Send + 'static,
    E: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    // One connection handed over at a time: the accept task waits for the server to take it.
    let (hand_over, taken) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            // The slot is kept for the next connection while one is refused by its address.
            let connection = loop {
                let Some(accepted) = incoming.next().await else {
                    return;
                };
                let io = match accepted {
                    Ok(io) => io,
                    Err(err) => break Err(err),
                };
                let ip = io.peer_ip();
                match per_address.try_take(ip) {
                    Some(address_slot) => break Ok((io, address_slot)),
                    None => debug!(?ip, "connection closed: its address holds its share"),
                }
            };
            let connection = connection.map(|(io, address_slot)| CappedConnection {
                io,
                _slot: slot,
                _address_slot: address_slot,
            });
            // The server stopped taking connections: stop accepting.
            if hand_over.send(connection).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(taken)
}

impl<IO: AsyncRead + Unpin> AsyncRead for CappedConnection<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for CappedConnection<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: Connected> Connected for CappedConnection<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A connection from a test address.
    #[derive(Debug, PartialEq)]
    struct Fake(u8);

    impl PeerAddress for Fake {
        fn peer_ip(&self) -> Option<std::net::IpAddr> {
            Some(std::net::IpAddr::from([10, 0, 0, self.0 / 10]))
        }
    }

    #[tokio::test]
    async fn past_the_cap_a_connection_waits_until_one_closes() {
        let incoming =
            tokio_stream::iter((0..3).map(|n| Ok::<_, std::convert::Infallible>(Fake(n))));
        let mut connections = std::pin::pin!(capped(incoming, 2, PerAddress::new(0)));
        let first = connections.next().await.unwrap().unwrap();
        let second = connections.next().await.unwrap().unwrap();
        assert_eq!((first.io.0, second.io.0), (0, 1));
        let waiting = tokio::time::timeout(Duration::from_millis(100), connections.next()).await;
        assert!(waiting.is_err(), "the third waits while two are open");
        drop(first);
        let third = connections.next().await.unwrap().unwrap();
        assert_eq!(third.io.0, 2);
        drop(second);
        assert!(connections.next().await.is_none(), "the listener is done");
    }

    #[tokio::test]
    async fn an_address_past_its_share_is_closed_and_others_still_come_in() {
        // 0, 1, 2 from 10.0.0.0; 10 from 10.0.0.1.
        let incoming =
            tokio_stream::iter([0, 1, 2, 10].map(|n| Ok::<_, std::convert::Infallible>(Fake(n))));
        let mut connections = std::pin::pin!(capped(incoming, 4, PerAddress::new(2)));
        let mut open = Vec::new();
        while let Some(connection) = connections.next().await {
            open.push(connection.unwrap());
        }
        let ids: Vec<u8> = open.iter().map(|c| c.io.0).collect();
        assert_eq!(ids, [0, 1, 10], "the third from one address is closed");
    }
}
