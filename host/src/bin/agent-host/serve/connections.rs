//! The server's connections: accepted under a cap, closed when a client is too
//! slow to send a request or idle too long, and drained on shutdown.
//!
//! ## Behavior
//! - At most `max_connections` connections are served. Beyond it up to
//!   [`RESERVE`] more are accepted, each with a short [`RESERVE_TIMEOUT`], and
//!   answer `/healthz`, `/livez`, `/readyz` and `/metrics` only (anything else: 503 `busy`); when the
//!   reserve is full its oldest connection is closed for the new one. So a flood
//!   of connections cannot keep a health probe out.
//! - A connection waiting for a request is closed after `idle_timeout`; once a
//!   request's first byte arrived, its head must be complete within
//!   `header_timeout`. While a request is being handled there is no limit here
//!   (the turn has its deadline, the body its `body_timeout`).
//! - On shutdown no connection is accepted any more, idle ones are closed, and
//!   the ones with a request in flight finish it.
//!
//! A connection's phase is a cell its socket and its requests write (a lock and a
//! copy, no wake-up), looked at by a check every eighth of the shorter timeout
//! (10 ms to 1 s), so a timeout fires up to that much late. A watch channel and a
//! timer re-armed at every change cost 10-20 us of CPU per request (measured with
//! `cargo bench -p agent-host --bench http`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tower::ServiceExt;

use super::api_error::ApiError;

/// Connections accepted beyond the cap, for health and metrics probes.
pub(super) const RESERVE: usize = 16;
/// Header and idle timeout of a reserve connection.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long clients may take.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    pub(super) header: Duration,
    pub(super) idle: Duration,
}

/// Accepts and serves connections on `listener` until `shutdown` completes, then
/// waits for the requests in flight.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let reserve: Arc<Mutex<VecDeque<AbortHandle>>> = Arc::default();
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a little, go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let conn = connection(stream, router, timeouts, false, &graceful);
                tokio::spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(_) => {
                let quick = Timeouts {
                    header: RESERVE_TIMEOUT,
                    idle: RESERVE_TIMEOUT,
                };
                let conn = connection(stream, router, quick, true, &graceful);
                let task = tokio::spawn(conn);
                let mut reserve = reserve.lock().unwrap_or_else(|p| p.into_inner());
                reserve.retain(|t| !t.is_finished());
                if reserve.len() >= RESERVE
                    && let Some(oldest) = reserve.pop_front()
                {
                    oldest.abort();
                }
                reserve.push_back(task.abort_handle());
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection, served until it closes, times out, or is shut down.
fn connection(
    stream: TcpStream,
    router: Router,
    timeouts: Timeouts,
    reserve: bool,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + Send + 'static {
    let phase = Arc::new(PhaseCell(Mutex::new(Phase::Idle(Instant::now()))));
    let watch_phase = phase.clone();
    let io = TokioIo::new(Watched {
        inner: stream,
        phase: phase.clone(),
    });
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        let phase = phase.clone();
        async move {
            phase.set(Phase::Busy);
            let response = if reserve && !is_probe(&request) {
                reserve_refusal()
            } else {
                router
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|e| match e {})
            };
            phase.set(Phase::Idle(Instant::now()));
            Ok::<_, Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Timeouts are kept by `expired` below, which knows idle from slow.
        .header_read_timeout(None)
        .serve_connection(io, service);
    let conn = graceful.watch(conn);
    async move {
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            why = expired(watch_phase, timeouts) => {
                tracing::debug!(why, "connection closed");
            }
        }
    }
}

/// The paths a reserve connection answers.
fn is_probe(request: &Request<Incoming>) -> bool {
    matches!(
        request.uri().path(),
        "/healthz" | "/livez" | "/readyz" | "/metrics"
    )
}

fn reserve_refusal() -> Response<Body> {
    let mut response = ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the server has as many connections as it serves; try again",
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Where a connection is in its request cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request since then.
    Idle(Instant),
    /// The first byte of a request's head arrived then.
    Head(Instant),
    /// A request is being handled.
    Busy,
}

/// A connection's [`Phase`], shared by its socket, its requests and its check.
struct PhaseCell(Mutex<Phase>);

impl PhaseCell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // A Phase is written whole: a panic cannot leave it half-changed.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self) -> Phase {
        *self.lock()
    }

    fn set(&self, phase: Phase) {
        *self.lock() = phase;
    }
}

/// How often a connection's phase is looked at: an eighth of the shorter timeout,
/// 10 ms to 1 s.
fn check_interval(timeouts: Timeouts) -> Duration {
    (timeouts.header.min(timeouts.idle) / 8)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Completes when the connection has been idle or sending a head for too long.
async fn expired(phase: Arc<PhaseCell>, timeouts: Timeouts) -> &'static str {
    let mut checks = tokio::time::interval(check_interval(timeouts));
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        checks.tick().await;
        let now = Instant::now();
        match phase.get() {
            Phase::Idle(since) if now >= since + timeouts.idle => return "idle timeout",
            Phase::Head(since) if now >= since + timeouts.header => return "header timeout",
            _ => {}
        }
    }
}

/// A connection's socket that marks the arrival of a request's first byte.
struct Watched {
    inner: TcpStream,
    phase: Arc<PhaseCell>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let mut phase = self.phase.lock();
            if let Phase::Idle(_) = *phase {
                *phase = Phase::Head(Instant::now());
            }
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
