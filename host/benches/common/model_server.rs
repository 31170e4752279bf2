//! The model the `agents` benchmark calls: an OpenAI-compatible
//! `POST /v1/chat/completions` on a free loopback port, in a process of its own.
//!
//! With `"stream": true` it answers `text/event-stream` at once and sends
//! [`WORDS`] one chunk each (`data: {"choices":[{"delta":{"content":"word "}}]}`),
//! spread evenly over the delay (the last one at the delay), then a usage chunk if
//! `stream_options.include_usage` was asked, then `data: [DONE]`. Without it, it
//! waits the delay and answers the whole completion as JSON. The waits are Tokio
//! timers: thousands of answers in flight cost a timer and a socket each.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body::Frame;
use serde_json::{Value, json};
use tokio::time::{Instant, Sleep};

/// The answer, one piece per chunk.
pub const WORDS: [&str; 10] = [
    "Agents ", "spend ", "most ", "of ", "their ", "time ", "waiting ", "on ", "a ", "model.",
];

/// Serves on a free loopback port until killed; prints `listening on URL` once it
/// accepts connections.
pub fn serve(delay: Duration) {
    super::common::runtime().block_on(async move {
        let listener = bind_loopback();
        let addr = listener.local_addr().expect("local address");
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(delay);
        println!("listening on http://{addr}");
        axum::serve(listener, app).await.expect("model server");
    });
}

/// A listener on a free loopback port with a deep accept queue (4,096: the default
/// 1,024 overflows when a thousand clients connect at once, and a dropped SYN costs
/// its sender a second). Inside a Tokio runtime.
pub fn bind_loopback() -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("bind a loopback port");
    socket.listen(4096).expect("listen")
}

async fn complete(State(delay): State<Duration>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["stream"] == true {
        let step = delay / WORDS.len() as u32;
        let start = Instant::now();
        let words = Words {
            sleep: Box::pin(tokio::time::sleep_until(start + step)),
            start,
            step,
            next: 0,
            usage: request["stream_options"]["include_usage"] == true,
        };
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::new(words),
        )
            .into_response();
    }
    tokio::time::sleep(delay).await;
    axum::Json(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": WORDS.concat()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": WORDS.len()},
    }))
    .into_response()
}

/// The event stream of one answer: word `next` is due at `start + (next + 1) * step`.
struct Words {
    sleep: Pin<Box<Sleep>>,
    start: Instant,
    step: Duration,
    next: usize,
    usage: bool,
}

impl http_body::Body for Words {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.next == WORDS.len() {
            return Poll::Ready(None);
        }
        ready!(self.sleep.as_mut().poll(cx));
        let word = self.next;
        self.next += 1;
        let piece = json!({"choices": [{"index": 0, "delta": {"content": WORDS[word]}}]});
        let mut chunk = format!("data: {piece}\n\n");
        if self.next == WORDS.len() {
            if self.usage {
                let usage = json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": WORDS.len()}});
                chunk.push_str(&format!("data: {usage}\n\n"));
            }
            chunk.push_str("data: [DONE]\n\n");
        } else {
            let due = self.start + self.step * (self.next as u32 + 1);
            self.sleep.as_mut().reset(due);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.next == WORDS.len()
    }
}
