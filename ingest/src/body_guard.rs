//! Export bodies as they arrive, for OTLP/HTTP and gRPC alike: each frame is charged to the
//! memory budget when it comes (a body holds only what it has sent, never what it declared),
//! and a body is cut when it outlives its deadline or, past a short grace, arrives slower than
//! a minimum rate, so clients that trickle bytes hold neither memory nor a connection for long.
//! It never buffers: the caller collects the frames.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use skewer_storage::StorageError;
use skewer_storage::budget::{MemoryBudget, Reservation};
use tokio::time::{Instant, Sleep};

/// How long a body may take, and how slowly it may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// The whole body must arrive within this.
    pub deadline: Duration,
    /// Past `rate_grace`, a body slower than this on average is cut.
    pub min_bytes_per_second: u64,
    /// How long a body may take to get going before its rate counts.
    pub rate_grace: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(60),
            min_bytes_per_second: 16 * 1024,
            rate_grace: Duration::from_secs(5),
        }
    }
}

/// How often a body's rate is looked at.
const RATE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why a body was cut.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It came too slowly, or not whole within the deadline.
    #[error("request body too slow: {received_bytes} bytes in {elapsed_ms} ms")]
    TooSlow {
        /// Bytes received when it was cut.
        received_bytes: u64,
        /// Time since it started.
        elapsed_ms: u128,
    },
    /// More arrived than the one message the body may carry.
    #[error("request body larger than {max_bytes} bytes: send it in smaller parts")]
    TooLarge {
        /// The cap.
        max_bytes: usize,
    },
    /// The budget could not take the next frame.
    #[error(transparent)]
    Budget(#[from] StorageError),
    /// The connection failed.
    #[error("request body: {0}")]
    Transport(String),
}

/// The budget a body holds, shared with whoever collects it: taken over whole (with
/// [`HeldBudget::take`]) once the body is in.
#[derive(Debug, Clone, Default)]
pub struct HeldBudget(Arc<Mutex<Reservation>>);

impl HeldBudget {
    /// The reservation held so far, leaving none behind.
    pub fn take(&self) -> Reservation {
        self.0
            .lock()
            .map(|mut held| std::mem::take(&mut *held))
            .unwrap_or_default()
    }

    fn add(&self, reservation: Reservation) {
        if let Ok(mut held) = self.0.lock() {
            held.merge(reservation);
        }
    }
}

/// A body whose frames are charged and timed as they arrive.
pub struct GuardedBody<B> {
    inner: B,
    budget: Arc<MemoryBudget>,
    held: HeldBudget,
    limits: BodyLimits,
    started: Instant,
    received_bytes: u64,
    next_check: Pin<Box<Sleep>>,
}

impl<B> GuardedBody<B> {
    /// Guards `inner`: its frames are charged to `budget` into `held`.
    pub fn new(inner: B, budget: Arc<MemoryBudget>, held: HeldBudget, limits: BodyLimits) -> Self {
        let started = Instant::now();
        let first_check = limits.rate_grace.min(limits.deadline);
        Self {
            inner,
            budget,
            held,
            limits,
            started,
            received_bytes: 0,
            next_check: Box::pin(tokio::time::sleep_until(started + first_check)),
        }
    }

    /// Whether the body is still on time; if so the next check is set.
    fn on_time(&mut self, now: Instant) -> Result<(), BodyError> {
        let elapsed = now.duration_since(self.started);
        let expected_bytes =
            (u128::from(self.limits.min_bytes_per_second) * elapsed.as_millis() / 1000) as u64;
        let too_slow = elapsed >= self.limits.rate_grace && self.received_bytes < expected_bytes;
        if elapsed >= self.limits.deadline || too_slow {
            return Err(BodyError::TooSlow {
                received_bytes: self.received_bytes,
                elapsed_ms: elapsed.as_millis(),
            });
        }
        let next = (now + RATE_CHECK_INTERVAL).min(self.started + self.limits.deadline);
        self.next_check.as_mut().reset(next);
        Ok(())
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        while this.next_check.as_mut().poll(cx).is_ready() {
            if let Err(err) = this.on_time(Instant::now()) {
                return Poll::Ready(Some(Err(err)));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received_bytes += data.len() as u64;
                    match this.budget.try_reserve(data.len()) {
                        Ok(reservation) => this.held.add(reservation),
                        Err(err) => return Poll::Ready(Some(Err(err.into()))),
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Some(Err(BodyError::Transport(err.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Frames = StreamBody<
        tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>>,
    >;

    fn frames(sizes: &[usize]) -> Frames {
        let frames: Vec<_> = sizes
            .iter()
            .map(|&size| Ok(Frame::data(Bytes::from(vec![0u8; size]))))
            .collect();
        StreamBody::new(tokio_stream::iter(frames))
    }

    #[tokio::test]
    async fn frames_are_charged_as_they_arrive_and_handed_over_whole() {
        let budget = MemoryBudget::new(1000);
        let held = HeldBudget::default();
        let body = GuardedBody::new(
            frames(&[100, 200]),
            Arc::clone(&budget),
            held.clone(),
            BodyLimits::default(),
        );
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 300);
        assert_eq!(budget.used_bytes(), 300);
        let reservation = held.take();
        assert_eq!(reservation.bytes(), 300);
        assert_eq!(held.take().bytes(), 0, "taken once");
        drop(reservation);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[tokio::test]
    async fn a_frame_the_budget_cannot_take_cuts_the_body() {
        let budget = MemoryBudget::new(250);
        let held = HeldBudget::default();
        let body = GuardedBody::new(
            frames(&[100, 200]),
            Arc::clone(&budget),
            held.clone(),
            BodyLimits::default(),
        );
        let err = body.collect().await.unwrap_err();
        assert!(matches!(err, BodyError::Budget(_)), "{err}");
        drop(held);
        assert_eq!(budget.used_bytes(), 0, "what was held is released");
    }

    /// A body of `frame_bytes` every second, for ever.
    fn every_second(
        frame_bytes: usize,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let (send, receive) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let frame = Ok(Frame::data(Bytes::from(vec![0u8; frame_bytes])));
                if send.send(frame).await.is_err() {
                    return;
                }
            }
        });
        StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receive))
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_cut_after_the_grace_and_a_steady_one_by_the_deadline() {
        let limits = BodyLimits {
            deadline: Duration::from_secs(20),
            min_bytes_per_second: 100,
            rate_grace: Duration::from_secs(5),
        };
        for (frame_bytes, cut_after_seconds) in [(1, 5), (200, 20)] {
            let started = Instant::now();
            let body = GuardedBody::new(
                every_second(frame_bytes),
                MemoryBudget::new(1 << 20),
                HeldBudget::default(),
                limits,
            );
            let err = body.collect().await.unwrap_err();
            assert!(matches!(err, BodyError::TooSlow { .. }), "{err}");
            assert_eq!(
                started.elapsed().as_secs(),
                cut_after_seconds,
                "{frame_bytes} B/s"
            );
        }
    }
}
