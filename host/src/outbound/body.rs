//! A plugin request's bodies: the plugin's body (read to nowhere once hyper is done
//! with it), a body cut at a byte limit, and a response body cut when it stalls or
//! at the turn's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, WasiBody};

use super::hooks::Sent;

/// A body that fails once more than `limit` bytes went through it (with a
/// counter shared by the bodies of one turn, for responses), and, for a response,
/// logs and reports its request once it is done with (read or dropped): `ok`
/// when it was read to its end or the plugin stopped reading, `limit` when it
/// was cut at the limit, `timeout` when it stalled past the between-bytes
/// timeout or the turn's deadline, `error` when the connection failed.
pub(super) struct LimitedBody<B> {
    pub(super) inner: B,
    pub(super) seen: Arc<AtomicU64>,
    pub(super) limit: u64,
    pub(super) error: fn() -> Error,
    pub(super) log: Option<Done>,
}

/// What the log line of a response says when its body is done with.
pub(super) struct Done {
    pub(super) sent: Sent,
    pub(super) status: u16,
    pub(super) bytes: u64,
    /// The time to the response's head.
    pub(super) head: Duration,
    /// How the body ended so far (`ok` until it failed).
    pub(super) outcome: &'static str,
}

impl<B> Drop for LimitedBody<B> {
    fn drop(&mut self) {
        if let Some(done) = &self.log {
            let sent = &done.sent;
            sent.report_after(done.outcome, done.head);
            tracing::info!(
                plugin = %sent.plugin,
                method = %sent.method,
                origin = %sent.origin,
                path = %sent.path,
                status = done.status,
                bytes = done.bytes,
                outcome = done.outcome,
                ms = sent.started.elapsed().as_millis() as u64,
                "outbound request"
            );
            // The request's span in traces ends with its body.
            sent.span.record("bytes.received", done.bytes);
            sent.span.in_scope(|| {});
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let (Some(Err(e)), Some(done)) = (&frame, self.log.as_mut()) {
            done.outcome = match e {
                Error::ConnectionReadTimeout => "timeout",
                _ => "error",
            };
        }
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let total =
                self.seen.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if total > self.limit {
                tracing::warn!(limit = self.limit, "outbound body over its limit; cut");
                if let Some(done) = self.log.as_mut() {
                    done.outcome = "limit";
                }
                return Poll::Ready(Some(Err((self.error)())));
            }
            // Counted once it goes on: the piece that went over is not.
            if let Some(done) = self.log.as_mut() {
                done.bytes += data.len() as u64;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body a plugin writes. When hyper is done with it before the plugin is (a
/// refused or failed request, or a body hyper knows to be complete by its
/// length), the rest is read and dropped in the background until the plugin
/// finishes: the plugin's writes then succeed and its client reports the
/// response's outcome instead of a closed stream. The reading ends when the
/// plugin finishes the body or its turn ends.
pub(super) struct GuestBody {
    pub(super) inner: Option<WasiBody>,
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        if frame.is_none() {
            self.inner = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        if let Some(mut body) = self.inner.take()
            && !body.is_end_stream()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
        }
    }
}

/// A response body that fails when no bytes come for `between`, or at the turn's
/// deadline.
pub(super) struct Timed {
    pub(super) inner: hyper::body::Incoming,
    pub(super) between: Duration,
    pub(super) sleep: Pin<Box<tokio::time::Sleep>>,
    pub(super) deadline: Instant,
}

impl Body for Timed {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = (Instant::now() + self.between).min(self.deadline);
                self.sleep.as_mut().reset(next.into());
                Poll::Ready(frame.map(|f| f.map_err(Error::from)))
            }
            Poll::Pending => {
                ready!(self.sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
