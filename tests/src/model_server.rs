//! An OpenAI-compatible chat-completions server on a free loopback port, for the
//! outbound HTTP tests: it records every request it gets, and can answer slowly,
//! fail, send a huge body, or redirect. Stopped on drop.

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
    if request["stream"] == true {
        let usage = request["stream_options"]["include_usage"] == true;
        return streamed(&content, usage);
    }
    axum::Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
    }))
    .into_response()
}

/// `content` as a chat-completions event stream: one chunk per word (with the
/// space before it), as OpenAI sends it, then a chunk with only the usage if it
/// was asked for (`stream_options.include_usage`), then `[DONE]`.
fn streamed(content: &str, usage: bool) -> Response {
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
    if usage {
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
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
