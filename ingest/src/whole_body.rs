//! A request body handed on only once it has arrived whole: its frames are kept as they come
//! (no copying) and given out after the last one. For gRPC: tonic reserves a message's
//! declared length (up to the size limit) as soon as its 5-byte prefix arrives, so a stream
//! that declares 16 MiB and stalls would hold memory the budget never saw (about 2 MiB resident
//! each, measured). Held back until whole, every byte is charged by the guard beneath before
//! tonic reserves anything, and a stalled stream holds only what it sent.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

/// `inner`, given out only after its last frame arrived.
pub struct WholeBody<B> {
    inner: B,
    frames: VecDeque<Frame<Bytes>>,
    complete: bool,
}

impl<B> WholeBody<B> {
    /// Holds `inner`'s frames back until it ends.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            frames: VecDeque::new(),
            complete: false,
        }
    }
}

impl<B> Body for WholeBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        while !this.complete {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => this.frames.push_back(frame),
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => this.complete = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(this.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.complete && self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn nothing_comes_out_before_the_last_frame_then_everything_in_order() {
        let (send, receive) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, String>>(4);
        let mut body = WholeBody::new(StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(receive),
        ));
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
    async fn an_error_comes_out_at_once() {
        let frames: Vec<Result<Frame<Bytes>, String>> = vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err("cut".to_owned()),
        ];
        let body = WholeBody::new(StreamBody::new(tokio_stream::iter(frames)));
        assert_eq!(body.collect().await.unwrap_err(), "cut");
    }
}
