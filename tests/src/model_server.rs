//! An OpenAI-compatible chat-completions server on a free loopback port, for the
//! outbound HTTP tests: it records every request it gets, and can answer slowly,
//! fail, send a huge body, or redirect. Stopped on drop.
//!
//! Its answers carry a known usage ([`usage_of`]: 10 input tokens per message,
//! one output token per word), in the answer and, when asked for
//! (`stream_options.include_usage`), in a stream's last chunk; and
//! `POST /usage/{form}` answers a fixed usage in each form the host meters
//! ([`USAGE_FORMS`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

/// One request as the server got it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every header, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How the server answers.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// At once.
    Normal,
    /// After this long.
    Slow(Duration),
    /// 500.
    Fail,
    /// A 200 with a body of this many bytes.
    Huge(usize),
    /// A 200 with an empty answer: a completion whose content is `""`, or an
    /// event stream with no piece (only `[DONE]`).
    Empty,
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    mode: Mutex<Mode>,
}

/// A running server.
pub struct ModelServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ModelServer {
    /// Starts a server on a free loopback port (inside a Tokio runtime).
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::default(),
            mode: Mutex::new(Mode::Normal),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/redirect", get(redirect))
            .route("/usage/{form}", post(usage_form))
            .fallback(any(other))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What the server got so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How it answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    });
}

/// Answers as the mode says: `Normal` replies with what it saw (the last user
/// message and the number of messages), so tests can check the history arrived.
async fn complete(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&shared, &method, &uri, &headers, &body);
    if let Some(answer) = by_mode(&shared).await {
        return answer;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let last = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let mut content = format!("You said {last:?}; I saw {} messages.", messages.len());
    if matches!(*shared.mode.lock().unwrap(), Mode::Empty) {
        content.clear();
    }
    let (input, output) = usage_of(messages.len(), &content);
    if request["stream"] == true {
        let usage = request["stream_options"]["include_usage"] == true;
        return streamed(&content, usage.then_some((input, output)));
    }
    axum::Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}
    }))
    .into_response()
}

/// `content` as a chat-completions event stream: one chunk per word (with the
/// space before it), as OpenAI sends it, then a chunk with only the usage if it
/// was asked for (`stream_options.include_usage`), then `[DONE]`.
fn streamed(content: &str, usage: Option<(u64, u64)>) -> Response {
    let mut body = String::new();
    let mut rest = content;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == ' ')
            .map_or(rest.len(), |(i, _)| i);
        let piece = json!({"choices": [{"index": 0, "delta": {"content": &rest[..end]}}]});
        body.push_str(&format!("data: {piece}\n\n"));
        rest = &rest[end..];
    }
    if let Some((input, output)) = usage {
        let usage =
            json!({"choices": [], "usage": {"prompt_tokens": input, "completion_tokens": output}});
        body.push_str(&format!("data: {usage}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

/// The answer the mode imposes, if any (after a `Slow` wait, none).
async fn by_mode(shared: &Shared) -> Option<Response> {
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Normal | Mode::Empty => None,
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Mode::Fail => Some((StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()),
        Mode::Huge(n) => Some("x".repeat(n).into_response()),
    }
}

#[derive(serde::Deserialize)]
struct To {
    to: String,
}

async fn redirect(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(to): Query<To>,
) -> Response {
    record(&shared, &method, &uri, &headers, b"");
    (StatusCode::FOUND, [(header::LOCATION, to.to)]).into_response()
}

async fn other(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&shared, &method, &uri, &headers, &body);
    if let Some(answer) = by_mode(&shared).await {
        return answer;
    }
    format!("hello from the test server ({} body bytes)", body.len()).into_response()
}

/// The usage the server reports for an answer of `content` to `messages`
/// messages: (input tokens, output tokens).
pub fn usage_of(messages: usize, content: &str) -> (u64, u64) {
    (
        10 * messages as u64,
        content.split_whitespace().count() as u64,
    )
}

/// The forms `POST /usage/{form}` answers in, each with the tokens the host
/// should read from it: (form, input, output, cached). `none` carries no usage
/// (the host estimates), `broken` a usage that is not one.
pub const USAGE_FORMS: [(&str, u64, u64, u64); 8] = [
    ("chat", 120, 30, 100),
    ("chat-stream", 121, 31, 0),
    ("responses", 130, 40, 50),
    ("responses-stream", 131, 41, 0),
    ("anthropic", 10 + 200 + 5, 60, 200),
    ("anthropic-stream", 25, 77, 0),
    ("none", 0, 0, 0),
    ("broken", 0, 0, 0),
];

/// A fixed answer in `form` (see [`USAGE_FORMS`]).
async fn usage_form(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    axum::extract::Path(form): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    record(&shared, &method, &uri, &headers, &body);
    let json_answer = |value: Value| axum::Json(value).into_response();
    let events =
        |text: String| ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response();
    match form.as_str() {
        "chat" => json_answer(json!({
            "model": "gpt-test", "choices": [{"message": {"content": "hi"}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 100}}
        })),
        "chat-stream" => events(format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            json!({"model": "gpt-test", "choices": [{"delta": {"content": "hi"}}]}),
            json!({"model": "gpt-test", "choices": [], "usage": {"prompt_tokens": 121, "completion_tokens": 31}})
        )),
        "responses" => json_answer(json!({
            "model": "gpt-test", "output": [],
            "usage": {"input_tokens": 130, "output_tokens": 40, "input_tokens_details": {"cached_tokens": 50}}
        })),
        "responses-stream" => events(format!(
            "event: response.output_text.delta\ndata: {}\n\nevent: response.completed\ndata: {}\n\n",
            json!({"type": "response.output_text.delta", "delta": "hi"}),
            json!({"type": "response.completed", "response": {"model": "gpt-test", "usage": {"input_tokens": 131, "output_tokens": 41}}})
        )),
        "anthropic" => json_answer(json!({
            "model": "claude-test", "content": [{"type": "text", "text": "hi"}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 200, "cache_creation_input_tokens": 5, "output_tokens": 60}
        })),
        "anthropic-stream" => events(format!(
            "event: message_start\ndata: {}\n\nevent: content_block_delta\ndata: {}\n\nevent: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n",
            json!({"type": "message_start", "message": {"model": "claude-test", "usage": {"input_tokens": 25, "output_tokens": 1}}}),
            json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}}),
            json!({"type": "message_delta", "usage": {"output_tokens": 77}}),
            json!({"type": "message_stop"})
        )),
        "none" => json_answer(json!({"choices": [{"message": {"content": "no usage here"}}]})),
        _ => "{\"usage\": \"not a usage\", broken".into_response(),
    }
}
