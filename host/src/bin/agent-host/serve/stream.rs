//! A turn answered as a stream (`Accept: text/event-stream`): the plugin's chunks
//! as server-sent events while it runs, then exactly one final event.
//!
//! ```text
//! id: 1                       event: restart       event: done
//! event: chunk                data: {}             data: {"output": "..."}
//! data: "a chunk, JSON"                            (or event: error, data: the error body)
//! ```
//!
//! The turn runs in a task of its own: a client that goes away does not stop it.
//! A client that does not read is cut off (its stream ends without a final event)
//! rather than slowing the plugin.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use agent_host::{TurnAnswer, TurnError, TurnEvent, TurnOptions};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::App;
use super::api_error::ApiError;
use super::routes::record_turn;

/// Events of the turn waiting for the writer.
const EVENTS: usize = 256;
/// Frames waiting for the client; past this the client is cut off.
const FRAMES: usize = 256;

/// Whether the request asks for a stream.
pub(super) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// Starts the turn and answers its stream.
pub(super) fn turn(
    app: Arc<App>,
    plugin: String,
    session: String,
    input: String,
    options: TurnOptions,
    span: tracing::Span,
) -> Response {
    let (events, mut from_turn) = mpsc::channel(EVENTS);
    let (frames, to_client) = mpsc::channel(FRAMES);
    let options = options.with_stream(events);
    let task = async move {
        let started = Instant::now();
        let mut writer = Writer {
            to: Some(frames),
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
        record_turn(&app, plugin.clone(), &outcome, started);
        writer.end(outcome);
    };
    tokio::spawn(task.instrument(span));
    let mut response = Body::new(EventBody(to_client)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Writes events to the client until it is gone or cut off.
struct Writer {
    to: Option<mpsc::Sender<Bytes>>,
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
                let data = json!({"output": answer.output, "replayed": answer.replayed});
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
        let Some(to) = &self.to else { return };
        let frame = format!("id: {}\nevent: {name}\ndata: {data}\n\n", self.next_id);
        self.next_id += 1;
        if to.try_send(Bytes::from(frame)).is_err() {
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
