//! An OpenAI-compatible chat-completions server on a free loopback port, for the
//! outbound HTTP tests: it records every request it gets, and can answer slowly,
//! fail, send a huge body, or redirect. Stopped on drop.
//!
//! Its answers carry a known usage ([`usage_of`]: 10 input tokens per message,
//! one output token per word), in the answer and, when asked for
//! (`stream_options.include_usage`), in a stream's last chunk; and
//! `POST /usage/{form}` answers a fixed usage in each form the host meters
//! ([`USAGE_FORMS`]).
//!
//! A request with `tools` gets the tool mode's answer ([`tool_answer`]): tool
//! calls, by rules the user's text sets, then a text quoting the tools' results;
//! `tests/servers/chat_completions.py` answers the same.

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
    let calls = match tool_answer(&request) {
        Some(ToolAnswer::Calls(calls)) => Some(calls),
        Some(ToolAnswer::Text(text)) => {
            content = text;
            None
        }
        None => None,
    };
    if matches!(*shared.mode.lock().unwrap(), Mode::Empty) {
        content.clear();
    }
    if let Some(calls) = calls {
        let said: Vec<&str> = calls
            .iter()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        let (input, output) = usage_of(messages.len(), &said.join(" "));
        if request["stream"] == true {
            let usage = request["stream_options"]["include_usage"] == true;
            return streamed_calls(&calls, usage.then_some((input, output)));
        }
        return axum::Json(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}
        }))
        .into_response();
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

/// What the tool mode answers: tool calls (OpenAI's `tool_calls` items), or the
/// final text.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolAnswer {
    /// `{"id", "type": "function", "function": {"name", "arguments"}}` each.
    Calls(Vec<Value>),
    /// The final answer.
    Text(String),
}

/// Words of the user's text that steer the tool mode, not passed to a tool.
const DIRECTIVES: [&str; 4] = ["forever", "unknown-tool", "bad-args", "parallel"];

/// The tool mode's answer to `request`, `None` when it has no `tools`.
///
/// While the conversation since the last user message has had fewer rounds of
/// tool calls than the text asks (`steps=N`, 1 by default; `forever`: no end),
/// it calls the first tool whose name is a word of the text (else the first
/// tool) with arguments taken from the text: its numbers, in order, for the
/// `number` and `integer` properties sorted by name, the text (without these
/// directives) for `string` ones. `unknown-tool` calls `no_such_tool`,
/// `bad-args` sends `{not json`, `parallel` makes two calls; call ids are
/// `call_{round}_{i}`. Then it answers `Tools said ["<result>", ...]; I saw <n>
/// messages.` with the contents of the trailing `tool` messages.
pub fn tool_answer(request: &Value) -> Option<ToolAnswer> {
    let tools: Vec<&Value> = request["tools"]
        .as_array()?
        .iter()
        .filter(|t| t["function"].is_object())
        .collect();
    if tools.is_empty() {
        return None;
    }
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages.iter().rposition(|m| m["role"] == "user");
    let text = last_user
        .and_then(|i| messages[i]["content"].as_str())
        .unwrap_or("");
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let since = last_user.map_or(&messages[..], |i| &messages[i + 1..]);
    let rounds = since
        .iter()
        .filter(|m| {
            m["role"] == "assistant" && m["tool_calls"].as_array().is_some_and(|c| !c.is_empty())
        })
        .count();
    let steps = words
        .iter()
        .find_map(|w| w.strip_prefix("steps="))
        .map_or(1, |n| n.parse::<usize>().unwrap_or(0));
    if words.iter().any(|w| w == "forever") || rounds < steps {
        return Some(ToolAnswer::Calls(tool_calls(&tools, text, &words, rounds)));
    }
    let results: Vec<Value> = messages
        .iter()
        .rev()
        .take_while(|m| m["role"] == "tool")
        .map(|m| m["content"].clone())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Some(ToolAnswer::Text(format!(
        "Tools said {}; I saw {} messages.",
        Value::Array(results),
        messages.len()
    )))
}

fn tool_calls(tools: &[&Value], text: &str, words: &[String], rounds: usize) -> Vec<Value> {
    let chosen = tools
        .iter()
        .find(|t| {
            let name = t["function"]["name"].as_str().unwrap_or("").to_lowercase();
            words.contains(&name)
        })
        .unwrap_or(&tools[0]);
    let name = if words.iter().any(|w| w == "unknown-tool") {
        "no_such_tool"
    } else {
        chosen["function"]["name"].as_str().unwrap_or("")
    };
    let plain: Vec<&str> = text
        .split_whitespace()
        .filter(|w| {
            let w = w.to_lowercase();
            !DIRECTIVES.contains(&w.as_str()) && !w.starts_with("steps=")
        })
        .collect();
    let plain = plain.join(" ");
    let mut numbers = numbers_in(&plain).into_iter();
    let mut arguments = serde_json::Map::new();
    if let Some(properties) = chosen["function"]["parameters"]["properties"].as_object() {
        let mut keys: Vec<&String> = properties.keys().collect();
        keys.sort();
        for key in keys {
            let value = match properties[key]["type"].as_str() {
                Some(kind @ ("number" | "integer")) => {
                    let raw = numbers.next().unwrap_or_else(|| "0".into());
                    let float: f64 = raw.parse().unwrap_or(0.0);
                    if kind == "integer" || !raw.contains('.') {
                        json!(float.trunc() as i64)
                    } else {
                        json!(float)
                    }
                }
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!(plain),
            };
            arguments.insert(key.clone(), value);
        }
    }
    let encoded = if words.iter().any(|w| w == "bad-args") {
        "{not json".to_string()
    } else {
        Value::Object(arguments).to_string()
    };
    let count = if words.iter().any(|w| w == "parallel") {
        2
    } else {
        1
    };
    (0..count)
        .map(|i| {
            json!({
                "id": format!("call_{rounds}_{i}"),
                "type": "function",
                "function": {"name": name, "arguments": encoded},
            })
        })
        .collect()
}

/// The numbers in `text` (`-?[0-9]+(\.[0-9]+)?`), as written.
fn numbers_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let negative = chars[i] == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if !(chars[i].is_ascii_digit() || negative) {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
        found.push(chars[start..i].iter().collect());
    }
    found
}

/// Tool calls as OpenAI streams them: per call a first piece with its index, id
/// and name, then its arguments in pieces of 5 characters; a chunk that ends
/// with `finish_reason: "tool_calls"`, the usage if asked for, `[DONE]`.
fn streamed_calls(calls: &[Value], usage: Option<(u64, u64)>) -> Response {
    let mut body = String::new();
    let mut event = |delta: Value, finish: Value| {
        let chunk = json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        body.push_str(&format!("data: {chunk}\n\n"));
    };
    for (i, call) in calls.iter().enumerate() {
        let first = json!({
            "index": i, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""}
        });
        event(
            json!({"role": "assistant", "content": null, "tool_calls": [first]}),
            Value::Null,
        );
        let arguments: Vec<char> = call["function"]["arguments"]
            .as_str()
            .unwrap_or("")
            .chars()
            .collect();
        for piece in arguments.chunks(5) {
            let piece: String = piece.iter().collect();
            event(
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                Value::Null,
            );
        }
    }
    event(json!({}), json!("tool_calls"));
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
