//! Connections kept alive between requests, per plugin and origin.
//!
//! A turn's model call would otherwise open a new connection every time (and, for
//! `https`, pay a TLS handshake). A connection whose response was read to its end
//! goes back to the pool of its plugin and origin, and the next request of that
//! plugin to that origin, in any turn, uses it. Never across plugins: the key
//! holds the plugin's id, and the address checks that chose the connection
//! (`literal`) are part of the key too.
//!
//! Bounded: at most [`PER_ORIGIN`] idle connections per plugin and origin and
//! [`TOTAL`] in all; an idle connection is closed after [`IDLE_FOR`], or when
//! its server closes it. A response not read to its end closes its connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use wasmtime_wasi_http::WasiBody;

/// How long an idle connection is kept.
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(30);
/// Idle connections kept per plugin and origin.
pub(crate) const PER_ORIGIN: usize = 64;
/// Idle connections kept in all.
pub(crate) const TOTAL: usize = 1024;

/// Which connections may serve a request: the same plugin, the same origin, the
/// same address rules.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) plugin: String,
    pub(super) tls: bool,
    pub(super) host: String,
    pub(super) port: u16,
    /// The origin was allowed literally (its internal addresses may be reached).
    pub(super) literal: bool,
}

struct Idle {
    sender: SendRequest<WasiBody>,
    since: Instant,
}

/// The idle connections of a host's plugins.
#[derive(Default)]
pub(crate) struct Connections {
    idle: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    by_key: HashMap<Key, Vec<Idle>>,
    count: usize,
}

impl Connections {
    /// An idle connection ready for a request to `key`, if one is kept.
    pub(super) fn take(&self, key: &Key) -> Option<SendRequest<WasiBody>> {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let Pool { by_key, count } = &mut *pool;
        let list = by_key.get_mut(key)?;
        let mut found = None;
        // The most recently used first: the likeliest to be still open.
        while let Some(idle) = list.pop() {
            *count -= 1;
            if idle.since.elapsed() < IDLE_FOR && idle.sender.is_ready() {
                found = Some(idle.sender);
                break;
            }
        }
        if list.is_empty() {
            by_key.remove(key);
        }
        found
    }

    /// Keeps `sender` for the next request to `key` once its connection is ready
    /// for one (it is dropped, closing the connection, if it is not soon, or if
    /// the pool is full).
    pub(super) fn give_back(self: &Arc<Self>, key: Key, mut sender: SendRequest<WasiBody>) {
        let connections = self.clone();
        tokio::spawn(async move {
            let ready = tokio::time::timeout(Duration::from_secs(1), sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) {
                connections.keep(key, sender);
            }
        });
    }

    fn keep(&self, key: Key, sender: SendRequest<WasiBody>) {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let Pool { by_key, count } = &mut *pool;
        let list = by_key.entry(key).or_default();
        let before = list.len();
        list.retain(|idle| idle.since.elapsed() < IDLE_FOR && !idle.sender.is_closed());
        *count -= before - list.len();
        if list.len() < PER_ORIGIN && *count < TOTAL {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
            *count += 1;
        }
    }
}

/// A response body that gives its connection back once read to its end.
pub(super) struct GiveBack<B> {
    pub(super) inner: B,
    /// The pool, the key and the connection's sender; taken at the end.
    pub(super) back: Option<(Arc<Connections>, Key, SendRequest<WasiBody>)>,
}

impl<B> Body for GiveBack<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some((pool, key, sender)) = self.back.take() {
                    pool.give_back(key, sender);
                }
            }
            // A failed body closes its connection.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
