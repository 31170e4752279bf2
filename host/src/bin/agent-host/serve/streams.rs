//! A turn answered as a stream (`Accept: text/event-stream`): the plugin's chunks
//! as server-sent events while it runs, then exactly one final event.
//!
//! ```text
//! id: 1                       event: restart       event: done
//! event: chunk                data: {}             data: {"output": "...", "replayed", "usage"}
//! data: "a chunk, JSON"                            (or event: error, data: the error body)
//! ```
//!
//! `usage` is the turn's model calls, as in the JSON answer (`views::turn_usage_json`).
//!
//! The turn runs in a task of its own: a client that goes away does not stop it.
//! A client that does not read is cut off (its stream ends without a final event)
//! rather than slowing the plugin.
//!
//! Resumable: the answer's `Stream-Id` header names the stream, and its events are
//! kept in the store for `[server] stream_ttl` (at most `stream_buffer` bytes), so
//! `GET .../turns/{id}/events` with `Last-Event-ID: N` on any replica sharing the
//! store replays the events after N and follows the rest as they come.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use agent_host::{TurnAnswer, TurnError, TurnEvent, TurnOptions};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body::Frame;
use opentelemetry::context::FutureExt as _;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::Instrument;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::metrics::record_turn;
use super::tenants::TenantTurn;
use crate::views::turn_usage_json;

/// Events of the turn waiting for the writer.
const EVENTS: usize = 256;
/// Frames waiting for the client; past this the client is cut off.
const FRAMES: usize = 256;
/// The first buffered entry of every stream (never sent): event N is entry N.
const OPENED: &[u8] = b": opened\n\n";
/// How often a reconnected client's stream looks for new events.
const POLL: Duration = Duration::from_millis(50);

/// The route that resumes a stream, added to the API's.
pub(super) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router.route(
        "/v1/plugins/{plugin}/sessions/{session}/turns/{id}/events",
        get(resume),
    )
}

/// Whether the request asks for a stream.
pub(super) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// A turn to answer as a stream.
pub(super) struct Turn {
    pub(super) plugin: String,
    pub(super) session: String,
    pub(super) input: String,
    pub(super) options: TurnOptions,
    /// Its place in its tenant's count, kept until the turn ends.
    pub(super) counted: TenantTurn,
}

/// Starts the turn and answers its stream. The stream is in the store before the
/// answer names it, so a client that reconnects at once finds it.
pub(super) async fn turn(app: Arc<App>, turn: Turn, span: tracing::Span) -> Response {
    let Turn {
        plugin,
        session,
        input,
        options,
        counted,
    } = turn;
    let (events, mut from_turn) = mpsc::channel(EVENTS);
    let (frames, to_client) = mpsc::channel(FRAMES);
    let (kept, to_store) = mpsc::channel(FRAMES);
    let options = options.with_stream(events);
    let id = agent_host::output::new_stream_id();
    let opened = vec![OPENED.to_vec()];
    let ttl = app.loaded().config.server.stream_ttl;
    if let Err(e) = app
        .host
        .append_stream_events(&plugin, &session, &id, opened, ttl)
        .await
    {
        tracing::warn!(error = %e, "a stream could not be kept; a reconnect will not find it");
    }
    let recorder = record(
        app.clone(),
        plugin.clone(),
        session.clone(),
        id.clone(),
        to_store,
    );
    // The caller's trace goes on in the tasks (`trace_context.rs`).
    tokio::spawn(recorder.instrument(span.clone()).with_current_context());
    let task = async move {
        let started = Instant::now();
        let mut writer = Writer {
            to: Some(frames),
            kept: Some(kept),
            next_id: 1,
        };
        let run = app.host.run_turn_with(&plugin, &session, &input, options);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                Some(event) = from_turn.recv() => writer.event(&event),
            }
        };
        // The chunks sent before the turn ended, then its end.
        while let Ok(event) = from_turn.try_recv() {
            writer.event(&event);
        }
        drop(counted);
        record_turn(&app, plugin.clone(), &outcome, started);
        writer.end(outcome);
    };
    tokio::spawn(task.instrument(span).with_current_context());
    let mut response = event_stream(to_client);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(STREAM_ID, value);
    }
    response
}

/// A `text/event-stream` answer of the frames `frames` gets.
fn event_stream(frames: mpsc::Receiver<Bytes>) -> Response {
    let mut response = Body::new(EventBody(frames)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The answer header that names a stream.
const STREAM_ID: &str = "stream-id";

/// Keeps a stream's frames in the store, in batches, up to `stream_buffer` bytes
/// (past it the rest is not kept, and a client that reconnects gets what was kept
/// and an error event).
async fn record(
    app: Arc<App>,
    plugin: String,
    session: String,
    id: String,
    mut frames: mpsc::Receiver<Bytes>,
) {
    let loaded = app.loaded();
    let server = &loaded.config.server;
    let (ttl, max) = (server.stream_ttl, server.stream_buffer.as_u64());
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut batch = Vec::new();
    let mut kept = 0;
    let mut full = false;
    let mut add = |batch: &mut Vec<Vec<u8>>, frame: Bytes, full: &mut bool| {
        if *full {
            return;
        }
        if kept + frame.len() > max {
            *full = true;
            batch.push(TRUNCATED.to_vec());
            return;
        }
        kept += frame.len();
        batch.push(frame.to_vec());
    };
    loop {
        let more = match frames.recv().await {
            Some(frame) => {
                add(&mut batch, frame, &mut full);
                while let Ok(frame) = frames.try_recv() {
                    add(&mut batch, frame, &mut full);
                }
                true
            }
            None => false,
        };
        let events = std::mem::take(&mut batch);
        if let Err(e) = app
            .host
            .append_stream_events(&plugin, &session, &id, events, ttl)
            .await
        {
            tracing::warn!(error = %e, "the events of a stream could not be kept");
        }
        if !more || full {
            return;
        }
    }
}

/// The last kept event of a stream over its buffer.
const TRUNCATED: &[u8] = b"event: error\ndata: {\"error\":{\"kind\":\"stream_truncated\",\"message\":\"the rest of this stream was not kept\"}}\n\n";

/// Writes events to the client until it is gone or cut off, and to the recorder.
struct Writer {
    to: Option<mpsc::Sender<Bytes>>,
    kept: Option<mpsc::Sender<Bytes>>,
    next_id: u64,
}

impl Writer {
    fn event(&mut self, event: &TurnEvent) {
        match event {
            TurnEvent::Chunk(chunk) => self.send("chunk", &json!(chunk)),
            TurnEvent::Restart => self.send("restart", &json!({})),
            _ => {}
        }
    }

    fn end(mut self, outcome: Result<TurnAnswer, TurnError>) {
        match outcome {
            Ok(answer) => {
                let data = json!({
                    "output": answer.output,
                    "replayed": answer.replayed,
                    "usage": turn_usage_json(&answer.usage),
                });
                self.send("done", &data);
            }
            Err(e) => {
                let error = ApiError::from(e);
                let mut data = error.body();
                data["status"] = json!(error.status().as_u16());
                self.send("error", &data);
            }
        }
    }

    fn send(&mut self, name: &str, data: &serde_json::Value) {
        let frame = format!("id: {}\nevent: {name}\ndata: {data}\n\n", self.next_id);
        let frame = Bytes::from(frame);
        self.next_id += 1;
        if let Some(kept) = &self.kept
            && kept.try_send(frame.clone()).is_err()
        {
            tracing::debug!(
                "the rest of a stream is not kept (over its buffer, or the store is slow)"
            );
            self.kept = None;
        }
        if let Some(to) = &self.to
            && to.try_send(frame).is_err()
        {
            // Full (the client does not read) or closed (it left): no more events.
            self.to = None;
        }
    }
}

/// The response body: the frames the writer sends, until it is done.
struct EventBody(mpsc::Receiver<Bytes>);

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|frame| frame.map(|b| Ok(Frame::data(b))))
    }
}

/// `GET .../sessions/{session}/turns/{id}/events`: the events of stream `id` after
/// `Last-Event-ID` (all of them without it), then the rest as they come, until
/// the final event. 404 if the store keeps no such stream; 204 if it has ended
/// and nothing comes after `Last-Event-ID` (an `EventSource` stops reconnecting
/// on a 204).
async fn resume(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    _: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((plugin, session, id)) = path?;
    let last_event = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "Last-Event-ID is not an event id of this API (a number)",
                )
            })?,
    };
    // Entry 0 is the opening marker: event N is entry N.
    let kept = app.host.stream_events(&plugin, &session, &id, 0).await?;
    if kept.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_stream",
            format!("no stream {id:?} is kept for session {session:?}"),
        ));
    }
    // Past a stream's end nothing is left to send, unless the end is the mark
    // that the rest was not kept: the client may have missed some of that rest.
    let end = kept.iter().position(|e| is_final(e));
    if end.is_some_and(|end| end as u64 <= last_event && kept[end] != TRUNCATED) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let idle_limit = app
        .host
        .plugin_deadline(&plugin)
        .unwrap_or(app.loaded().config.server.stream_ttl)
        + Duration::from_secs(30);
    let (frames, to_client) = mpsc::channel(FRAMES);
    tokio::spawn(async move {
        // Every entry is looked at, those up to `Last-Event-ID` too, so the end
        // is seen even when the client claims to be past it.
        let mut next = 0u64;
        let mut entries = kept;
        let mut idle = Instant::now();
        loop {
            if !entries.is_empty() {
                idle = Instant::now();
            }
            for entry in entries {
                let index = next;
                next += 1;
                let last = is_final(&entry);
                let wanted = index > last_event || entry == TRUNCATED;
                if wanted && frames.send(Bytes::from(entry)).await.is_err() {
                    return;
                }
                if last {
                    return;
                }
            }
            if idle.elapsed() > idle_limit {
                return;
            }
            tokio::time::sleep(POLL).await;
            entries = match app.host.stream_events(&plugin, &session, &id, next).await {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a kept stream failed");
                    return;
                }
            };
        }
    });
    Ok(event_stream(to_client))
}

/// Whether a kept frame is a stream's last (`done` or `error`).
fn is_final(frame: &[u8]) -> bool {
    let text = String::from_utf8_lossy(frame);
    text.lines()
        .any(|l| l == "event: done" || l == "event: error")
}
