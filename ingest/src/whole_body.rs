//! A request body handed on only once it has arrived whole: its frames are kept as they come
//! (no copying) and given out after the last one. For gRPC: tonic reserves a message's
//! declared length (up to the size limit) as soon as its 5-byte prefix arrives, so a stream
//! that declares 16 MiB and stalls would hold memory the budget never saw (about 2 MiB resident
//! each, measured). Held back until whole, every byte is charged by the guard beneath before
//! tonic reserves anything, and a stalled stream holds only what it sent. A body past the one
//! message it may carry is cut at once (tonic would have refused its declared length).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

use crate::body_guard::BodyError;

/// `inner`, given out only after its last frame arrived.
pub struct WholeBody<B> {
    inner: B,
    max_bytes: usize,
    received_bytes: usize,
    frames: VecDeque<Frame<Bytes>>,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Arriving,
    Complete,
    Failed,
}

impl<B> WholeBody<B> {
    /// Holds `inner`'s frames back until it ends; more than `max_bytes` of data cut it.
    pub fn new(inner: B, max_bytes: usize) -> Self {
        Self {
            inner,
            max_bytes,
            received_bytes: 0,
            frames: VecDeque::new(),
            state: State::Arriving,
        }
    }

    fn fail(&mut self, err: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.state = State::Failed;
        self.frames.clear();
        Poll::Ready(Some(Err(err)))
    }
}

impl<B> Body for WholeBody<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        while this.state == State::Arriving {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let bytes = frame.data_ref().map_or(0, Bytes::len);
                    this.received_bytes = this.received_bytes.saturating_add(bytes);
                    if this.received_bytes > this.max_bytes {
                        let max_bytes = this.max_bytes;
                        return this.fail(BodyError::TooLarge { max_bytes });
                    }
                    this.frames.push_back(frame);
                }
                Poll::Ready(Some(Err(err))) => return this.fail(err),
                Poll::Ready(None) => this.state = State::Complete,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(this.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.state != State::Arriving && self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Fed = StreamBody<tokio_stream::wrappers::ReceiverStream<Result<Frame<Bytes>, BodyError>>>;

    /// A whole body of at most `max_bytes` over frames the test sends.
    fn fed_body(
        max_bytes: usize,
    ) -> (
        tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BodyError>>,
        WholeBody<Fed>,
    ) {
        let (send, receive) = tokio::sync::mpsc::channel(4);
        let body = WholeBody::new(
            StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receive)),
            max_bytes,
        );
        (send, body)
    }

    #[tokio::test]
    async fn nothing_comes_out_before_the_last_frame_then_everything_in_order() {
        let (send, mut body) = fed_body(5);
        send.send(Ok(Frame::data(Bytes::from_static(b"ab"))))
            .await
            .unwrap();
        send.send(Ok(Frame::data(Bytes::from_static(b"cd"))))
            .await
            .unwrap();
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), body.frame()).await;
        assert!(early.is_err(), "a frame came out before the body was whole");
        send.send(Ok(Frame::data(Bytes::from_static(b"e"))))
            .await
            .unwrap();
        drop(send);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcde");
    }

    #[tokio::test]
    async fn an_error_comes_out_at_once_and_ends_the_body() {
        let frames: Vec<Result<Frame<Bytes>, BodyError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err(BodyError::Transport("cut".to_owned())),
            Ok(Frame::data(Bytes::from_static(b"cd"))),
        ];
        let mut body = WholeBody::new(StreamBody::new(tokio_stream::iter(frames)), 100);
        assert!(matches!(
            body.frame().await,
            Some(Err(BodyError::Transport(_)))
        ));
        assert!(body.frame().await.is_none(), "nothing after the error");
    }

    #[tokio::test]
    async fn a_body_past_its_cap_is_cut_before_it_ends() {
        let (send, mut body) = fed_body(3);
        send.send(Ok(Frame::data(Bytes::from_static(b"ab"))))
            .await
            .unwrap();
        send.send(Ok(Frame::data(Bytes::from_static(b"cd"))))
            .await
            .unwrap();
        assert!(matches!(
            body.frame().await,
            Some(Err(BodyError::TooLarge { max_bytes: 3 }))
        ));
        drop(send);
    }
}
