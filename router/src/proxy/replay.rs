//! Request bodies that stream to the shard and can still be sent again.
//!
//! A request is forwarded chunk by chunk as the client sends it; the chunks (cheap
//! reference-counted `Bytes`) are also kept, up to a cap, so that a shard's "paused" or
//! "moved" answer can be retried without the client noticing. A body larger than the cap
//! is never retried: its first attempt's answer is final.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;

#[derive(Debug)]
struct Recorded {
    chunks: Vec<Bytes>,
    len: usize,
    cap: usize,
    overflow: bool,
    complete: bool,
}

/// The kept copy of a request body, shared with the body being streamed.
#[derive(Debug, Clone)]
pub struct Recorder(Arc<Mutex<Recorded>>);

impl Recorder {
    /// Whether [`Recorder::replay`] would give the body (without copying it).
    pub fn is_replayable(&self) -> bool {
        let r = self.0.lock();
        r.complete && !r.overflow
    }

    /// The whole body, if it was read to its end and fit under the cap.
    pub fn replay(&self) -> Option<UpstreamBody> {
        let r = self.0.lock();
        (r.complete && !r.overflow).then(|| UpstreamBody::Replay {
            chunks: r.chunks.iter().cloned().collect(),
        })
    }
}

pub enum UpstreamBody {
    Tee { inner: Body, recorder: Recorder },
    Replay { chunks: VecDeque<Bytes> },
}

impl UpstreamBody {
    /// Streams `inner`, keeping up to `cap` bytes for a possible retry.
    pub fn tee(inner: Body, cap: usize) -> (UpstreamBody, Recorder) {
        let complete = http_body::Body::is_end_stream(&inner);
        let recorder = Recorder(Arc::new(Mutex::new(Recorded {
            chunks: Vec::new(),
            len: 0,
            cap,
            overflow: false,
            complete,
        })));
        (
            UpstreamBody::Tee {
                inner,
                recorder: recorder.clone(),
            },
            recorder,
        )
    }

    /// A body already in memory (always replayable).
    pub fn buffered(bytes: Bytes) -> (UpstreamBody, Recorder) {
        let len = bytes.len();
        let chunks: Vec<Bytes> = if bytes.is_empty() {
            Vec::new()
        } else {
            vec![bytes]
        };
        let recorder = Recorder(Arc::new(Mutex::new(Recorded {
            chunks: chunks.clone(),
            len,
            cap: len,
            overflow: false,
            complete: true,
        })));
        (
            UpstreamBody::Replay {
                chunks: chunks.into(),
            },
            recorder,
        )
    }

    pub fn empty() -> UpstreamBody {
        UpstreamBody::Replay {
            chunks: VecDeque::new(),
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.get_mut() {
            UpstreamBody::Replay { chunks } => {
                Poll::Ready(chunks.pop_front().map(|c| Ok(Frame::data(c))))
            }
            UpstreamBody::Tee { inner, recorder } => {
                let mut inner = Pin::new(inner);
                let polled = inner.as_mut().poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        let mut r = recorder.0.lock();
                        if let Some(data) = frame.data_ref() {
                            if !r.overflow {
                                if r.len + data.len() > r.cap {
                                    r.overflow = true;
                                    r.chunks = Vec::new();
                                } else {
                                    r.len += data.len();
                                    r.chunks.push(data.clone());
                                }
                            }
                        }
                        // hyper stops polling once the body says it has ended (its
                        // Content-Length is used up), so `None` may never be seen
                        if inner.is_end_stream() {
                            r.complete = true;
                        }
                    }
                    Poll::Ready(None) => recorder.0.lock().complete = true,
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Replay { chunks } => chunks.is_empty(),
            UpstreamBody::Tee { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Replay { chunks } => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
            UpstreamBody::Tee { inner, .. } => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    fn streamed(parts: &[&'static str]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn a_fully_read_body_replays_identically() {
        let (body, rec) = UpstreamBody::tee(streamed(&["ab", "cd", "ef"]), 1024);
        assert!(rec.replay().is_none(), "not replayable before it was read");
        let first = body.collect().await.unwrap().to_bytes();
        assert_eq!(first, "abcdef");
        let again = rec.replay().unwrap().collect().await.unwrap().to_bytes();
        assert_eq!(again, "abcdef");
        // and a third time
        let third = rec.replay().unwrap().collect().await.unwrap().to_bytes();
        assert_eq!(third, "abcdef");
    }

    /// Polls the way hyper's HTTP/1 client does: frames until `is_end_stream`, never the
    /// final `None`.
    async fn poll_like_hyper(mut body: UpstreamBody) -> Vec<u8> {
        let mut out = Vec::new();
        while !body.is_end_stream() {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(frame)) => {
                    if let Some(d) = frame.data_ref() {
                        out.extend_from_slice(d);
                    }
                }
                _ => break,
            }
        }
        out
    }

    #[tokio::test]
    async fn a_sized_body_is_replayable_once_its_length_is_sent() {
        // Body::from(bytes) knows its length: is_end_stream turns true after the data
        let (body, rec) = UpstreamBody::tee(Body::from("{\"ids\":[\"a\"]}"), 1024);
        assert_eq!(poll_like_hyper(body).await, b"{\"ids\":[\"a\"]}");
        let again = rec.replay().expect("replayable").collect().await.unwrap();
        assert_eq!(again.to_bytes(), "{\"ids\":[\"a\"]}");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_streams_but_does_not_replay() {
        let (body, rec) = UpstreamBody::tee(streamed(&["abcd", "efgh"]), 6);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcdefgh");
        assert!(rec.replay().is_none());
    }

    #[tokio::test]
    async fn empty_and_buffered_bodies_replay() {
        let (body, rec) = UpstreamBody::tee(Body::empty(), 0);
        assert!(body.is_end_stream());
        assert_eq!(
            rec.replay().unwrap().collect().await.unwrap().to_bytes(),
            ""
        );
        let (body, rec) = UpstreamBody::buffered(Bytes::from_static(b"{\"name\":\"x\"}"));
        assert_eq!(body.size_hint().exact(), Some(12));
        assert_eq!(
            rec.replay().unwrap().collect().await.unwrap().to_bytes(),
            "{\"name\":\"x\"}"
        );
    }
}
