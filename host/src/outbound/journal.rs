//! A turn's outbound journal: the answers its requests got, kept for the turn's
//! next attempt.
//!
//! When a turn runs again because its session changed under it (a conflict),
//! its model calls would be paid again. Instead, each request of an attempt is
//! looked up in the journal of the attempts before: while the plugin sends the
//! same requests (method, URL, the headers it set, the body: one digest) in the
//! same order, each gets the answer recorded for it (status, headers, the body's
//! frames as they came), and nothing leaves the host; the first request that
//! differs ends the replay and goes out for real, and what was recorded after it
//! is dropped. Only whole answers are recorded, within the plugin's
//! `max_response_bytes` for all of a turn's answers together. Replay assumes the
//! plugin sends the same requests given the same answers; a plugin whose request
//! depends on the state that changed sends a different one, which goes out.
//!
//! A turn with an idempotency key also keeps its journal in the store
//! (`journal_store`), so a retry of the key on another host replays it too.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use wasmtime_wasi_http::WasiBody;

use super::journal_store::KeptJournal;

/// What identifies a request: a digest of its method, URL, the headers the
/// plugin set and its body.
pub(super) type RequestKey = [u8; 32];

/// The key of a request begun on its method, URL and the headers the plugin
/// set (taken before the host adds its secret headers; no copy of them is
/// kept); its body completes it ([`keyed`]).
pub(super) fn request_head(method: &str, uri: &str, headers: &HeaderMap) -> Sha256 {
    let mut digest = Sha256::new();
    digest.update(method.as_bytes());
    digest.update(b"\n");
    digest.update(uri.as_bytes());
    let mut names: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    names.sort();
    for (name, value) in names {
        digest.update(b"\n");
        digest.update(name.as_bytes());
        digest.update(b":");
        digest.update(value);
    }
    digest.update(b"\n\n");
    digest
}

/// The request with its body read whole (the plugin's limit applies as it is
/// read), and its key (`head` with the body). Its body goes out as one piece
/// with its length.
pub(super) async fn keyed(
    request: http::Request<WasiBody>,
    mut head: Sha256,
) -> Result<(http::Request<WasiBody>, RequestKey), wasmtime_wasi_http::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    head.update(&body);
    let body = http_body_util::Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok((
        http::Request::from_parts(parts, body),
        head.finalize().into(),
    ))
}

/// A recorded answer as a response, its body the recorded frames.
pub(super) fn replay(
    answer: Answer,
) -> (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
) {
    let body = Replayed {
        frames: answer.frames.into(),
    }
    .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    (response, Box::new(async { Ok(()) }))
}

/// A recorded answer.
#[derive(Clone, Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) frames: Vec<Bytes>,
}

struct Entry {
    key: RequestKey,
    /// `None` until the answer was read to its end (and fit).
    answer: Option<Answer>,
}

/// The journal of one turn, across its attempts.
pub(crate) struct Journal {
    state: Mutex<State>,
    max_bytes: u64,
    /// Where its answers are kept too, for a turn with an idempotency key.
    kept: OnceLock<KeptJournal>,
    /// True once the store holds any of them.
    in_store: AtomicBool,
    /// Set once what an earlier run kept was read (`load_kept`).
    loaded: tokio::sync::OnceCell<()>,
}

struct State {
    entries: Vec<Entry>,
    /// The next entry the current attempt may replay.
    cursor: usize,
    /// False once a request of the current attempt differed.
    replaying: bool,
    bytes: u64,
}

impl Journal {
    /// An empty journal keeping at most `max_bytes` of answers.
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            state: Mutex::new(State {
                entries: Vec::new(),
                cursor: 0,
                replaying: true,
                bytes: 0,
            }),
            max_bytes,
            kept: OnceLock::new(),
            in_store: AtomicBool::new(false),
            loaded: tokio::sync::OnceCell::new(),
        }
    }

    /// Keeps the journal in the store from now on. What an earlier run of the
    /// turn kept there is read when the turn sends its first request
    /// ([`Journal::load_kept`]): a turn that sends none costs no store read.
    pub(crate) fn keep_in(&self, kept: KeptJournal) {
        let _ = self.kept.set(kept);
    }

    /// Before the turn's first request (once; concurrent requests wait for it):
    /// the entries an earlier run kept, from the first slot on without a gap and
    /// within the byte limit, replay as if this run had recorded them.
    pub(super) async fn load_kept(&self) {
        let Some(kept) = self.kept.get() else {
            return;
        };
        self.loaded
            .get_or_init(|| async {
                let entries = kept.load().await;
                self.in_store.store(!entries.is_empty(), Ordering::Relaxed);
                let mut state = self.state();
                for (slot, key, answer) in entries {
                    let size: u64 = answer.frames.iter().map(|f| f.len() as u64).sum();
                    if slot != state.entries.len() || state.bytes + size > self.max_bytes {
                        break;
                    }
                    state.bytes += size;
                    state.entries.push(Entry {
                        key,
                        answer: Some(answer),
                    });
                }
            })
            .await;
    }

    /// Where the journal is kept, if the store holds any of it.
    pub(crate) fn kept(&self) -> Option<&KeptJournal> {
        self.kept
            .get()
            .filter(|_| self.in_store.load(Ordering::Relaxed))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new attempt starts: it may replay from the first entry.
    pub(crate) fn next_attempt(&self) {
        let mut state = self.state();
        state.cursor = 0;
        state.replaying = true;
    }

    /// The recorded answer to this attempt's next request, if it is the same
    /// request as the one recorded there; otherwise the replay ends here, what
    /// was recorded from here on is dropped, and a slot is kept for the answer
    /// the request will get (`Err(slot)`).
    pub(super) fn replay_or_reserve(&self, key: RequestKey) -> Result<Answer, usize> {
        let mut state = self.state();
        if state.replaying {
            let cursor = state.cursor;
            if let Some(Entry {
                key: recorded,
                answer: Some(answer),
            }) = state.entries.get(cursor)
                && *recorded == key
            {
                let answer = answer.clone();
                state.cursor += 1;
                return Ok(answer);
            }
            state.replaying = false;
            let dropped: u64 = state.entries[cursor.min(state.entries.len())..]
                .iter()
                .filter_map(|e| e.answer.as_ref())
                .map(|a| a.frames.iter().map(|f| f.len() as u64).sum::<u64>())
                .sum();
            state.bytes -= dropped;
            state.entries.truncate(cursor);
        }
        state.entries.push(Entry { key, answer: None });
        Err(state.entries.len() - 1)
    }

    /// Records the answer of the request in `slot`, if it fits.
    fn fill(&self, slot: usize, answer: Answer) {
        let size: u64 = answer.frames.iter().map(|f| f.len() as u64).sum();
        let mut state = self.state();
        if state.bytes + size > self.max_bytes {
            return;
        }
        if let Some(entry) = state.entries.get_mut(slot)
            && entry.answer.is_none()
        {
            // Only successes are kept for another run: a retry after a crash
            // should not be told "rate limited" again.
            if let (Some(kept), true) = (self.kept.get(), answer.status.is_success()) {
                kept.keep(slot, &entry.key, &answer);
                self.in_store.store(true, Ordering::Relaxed);
            }
            entry.answer = Some(answer);
            state.bytes += size;
        }
    }
}

/// A real answer's body: passes every frame on and records the whole answer in
/// the journal once it ends.
pub(super) struct Recording<B> {
    pub(super) inner: B,
    pub(super) journal: Arc<Journal>,
    pub(super) slot: usize,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    /// The frames so far; `None` once the answer grew past what may be kept.
    pub(super) frames: Option<Vec<Bytes>>,
    pub(super) bytes: u64,
}

impl<B> Body for Recording<B>
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
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let max = self.journal.max_bytes;
                    self.bytes += data.len() as u64;
                    if self.bytes > max {
                        self.frames = None;
                    } else if let Some(frames) = self.frames.as_mut() {
                        frames.push(data.clone());
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(frames) = self.frames.take() {
                    let answer = Answer {
                        status: self.status,
                        headers: self.headers.clone(),
                        frames,
                    };
                    self.journal.fill(self.slot, answer);
                }
            }
            Poll::Ready(Some(Err(_))) => self.frames = None,
            Poll::Pending => {}
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

/// A replayed answer's body: the recorded frames, in order.
pub(super) struct Replayed {
    pub(super) frames: VecDeque<Bytes>,
}

impl Body for Replayed {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.frames.pop_front().map(|f| Ok(Frame::data(f))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &'static str) -> Answer {
        Answer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            frames: vec![Bytes::from_static(text.as_bytes())],
        }
    }

    fn key(n: u8) -> RequestKey {
        [n; 32]
    }

    #[test]
    fn the_same_requests_in_order_replay_and_the_first_different_one_ends_it() {
        let journal = Journal::new(1 << 20);
        let first = journal.replay_or_reserve(key(1)).unwrap_err();
        journal.fill(first, answer("one"));
        let second = journal.replay_or_reserve(key(2)).unwrap_err();
        journal.fill(second, answer("two"));

        journal.next_attempt();
        assert_eq!(journal.replay_or_reserve(key(1)).unwrap().frames[0], "one");
        // A different second request: sent, and the old second answer dropped.
        assert_eq!(journal.replay_or_reserve(key(3)).unwrap_err(), 1);
        // Within this attempt nothing more replays, even a recorded request.
        assert!(journal.replay_or_reserve(key(1)).is_err());

        journal.next_attempt();
        assert!(journal.replay_or_reserve(key(1)).is_ok());
        // The third request's answer was never filled: it goes out again.
        assert!(journal.replay_or_reserve(key(3)).is_err());
    }

    #[test]
    fn answers_past_the_byte_limit_are_not_kept() {
        let journal = Journal::new(4);
        let slot = journal.replay_or_reserve(key(1)).unwrap_err();
        journal.fill(slot, answer("too long"));
        journal.next_attempt();
        assert!(journal.replay_or_reserve(key(1)).is_err());
    }

    fn request_key(method: &str, uri: &str, headers: &HeaderMap, body: &[u8]) -> RequestKey {
        let mut head = request_head(method, uri, headers);
        head.update(body);
        head.finalize().into()
    }

    #[test]
    fn the_key_covers_method_url_headers_and_body() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        let base = request_key("POST", "http://m/v1", &headers, b"{}");
        assert_eq!(
            base,
            request_key("POST", "http://m/v1", &headers.clone(), b"{}")
        );
        assert_ne!(base, request_key("GET", "http://m/v1", &headers, b"{}"));
        assert_ne!(base, request_key("POST", "http://m/v2", &headers, b"{}"));
        assert_ne!(
            base,
            request_key("POST", "http://m/v1", &HeaderMap::new(), b"{}")
        );
        assert_ne!(base, request_key("POST", "http://m/v1", &headers, b"{ }"));
    }
}
