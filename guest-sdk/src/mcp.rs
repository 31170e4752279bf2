//! A client of MCP (Model Context Protocol) servers over the Streamable HTTP
//! transport, through the plugin's outbound HTTP ([`crate::http`]): the server's
//! origin must be in the plugin's `[[plugin.outbound]]`, and the host adds its
//! `secret_headers` (a bearer token for the server) to every request, so the
//! plugin never holds them.
//!
//! ```no_run
//! # fn run() -> agent_sdk::Result<()> {
//! let client = agent_sdk::mcp::connect("https://tools.example.com/mcp")?;
//! for tool in client.tools()? {
//!     println!("{}: {}", tool.name, tool.description);
//! }
//! let sum = client.call("add", serde_json::json!({"a": 2, "b": 3}))?; // "5"
//! # Ok(()) }
//! ```
//!
//! To give a model the server's tools, [`Client::chat_tools`] (or
//! [`Client::chat_tools_prefixed`], so they cannot clash with local tools) makes
//! them [`llm::Tool`]s whose handlers call the server:
//!
//! ```no_run
//! # fn run() -> agent_sdk::Result<()> {
//! use agent_sdk::llm::{Chat, Message};
//! let client = agent_sdk::mcp::connect("https://tools.example.com/mcp")?;
//! let mut tools = client.chat_tools_prefixed("mcp_")?; // mcp_add, ...
//! let mut messages = vec![Message::user("add 2 and 3")];
//! let reply = Chat::from_env()?.complete_with_tools(&mut messages, &mut tools)?;
//! # Ok(()) }
//! ```
//!
//! [`connect`] sends `initialize` (offering protocol version
//! [`PROTOCOL_VERSION`]) and then the `notifications/initialized` notification;
//! every later request carries the `Mcp-Session-Id` the server gave (if it gave
//! one) and the `MCP-Protocol-Version` agreed on. Each request is one POST of a
//! JSON-RPC 2.0 message, answered as `application/json` or as an event stream
//! (`text/event-stream`) whose events may bring notifications before the answer:
//! they are skipped, and the stream is left as soon as the answer is in. Each
//! POST counts in the turn's `max_requests` (16 by default): connecting costs 2,
//! listing tools 1 per page, a call 1.
//!
//! Errors: a request that fails, or an HTTP error status, is [`Error::Http`]; a
//! JSON-RPC error, an answer that is not JSON-RPC, and a tool result marked
//! `isError` are [`Error::Mcp`] (for a tool, with the tool's text, which a model
//! can be shown as it is).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::http::no_host;
use crate::{Error, Result, llm};

/// The protocol version this client offers in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// The versions it speaks, of which the server picks one.
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// A tool of an MCP server, as `tools/list` describes it: what a model needs to
/// call it (`llm::Tool::new(tool.name, tool.description, tool.input_schema,
/// handler)` with a handler that calls [`Client::call`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    /// Its name, for [`Client::call`].
    pub name: String,
    /// What it does ("" when the server says nothing).
    #[serde(default)]
    pub description: String,
    /// The JSON Schema of its arguments (an object schema).
    #[serde(rename = "inputSchema", default = "object_schema")]
    pub input_schema: Value,
}

fn object_schema() -> Value {
    json!({"type": "object"})
}

/// A connection to an MCP server (its session). Cheap to clone: clones share the
/// session and its request ids.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    session: Option<String>,
    version: String,
    server: Value,
    next_id: AtomicU64,
}

/// Connects to the MCP server at `url` (its endpoint, e.g.
/// `https://tools.example.com/mcp`): `initialize`, then
/// `notifications/initialized`.
pub fn connect(url: &str) -> Result<Client> {
    let mut inner = Inner {
        url: url.to_string(),
        session: None,
        version: PROTOCOL_VERSION.to_string(),
        server: Value::Null,
        next_id: AtomicU64::new(1),
    };
    let params = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "agent-sdk-rust", "version": env!("CARGO_PKG_VERSION")},
    });
    let (result, session) = inner.request("initialize", params, true)?;
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::Mcp(format!(
                "initialize answered no protocolVersion: {}",
                start(&result)
            ))
        })?;
    if !VERSIONS.contains(&version) {
        return Err(Error::Mcp(format!(
            "the MCP server speaks protocol version {version}, which this client does not \
             (it speaks {})",
            VERSIONS.join(", ")
        )));
    }
    inner.version = version.to_string();
    inner.session = session;
    inner.server = result.get("serverInfo").cloned().unwrap_or(Value::Null);
    inner.notify("notifications/initialized")?;
    Ok(Client {
        inner: Arc::new(inner),
    })
}

impl Client {
    /// Every tool of the server (`tools/list`, following `nextCursor` page by
    /// page).
    pub fn tools(&self) -> Result<Vec<McpTool>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let page = self.request("tools/list", params)?;
            let listed = page.get("tools").cloned().ok_or_else(|| {
                Error::Mcp(format!("tools/list answered no tools: {}", start(&page)))
            })?;
            let listed: Vec<McpTool> = serde_json::from_value(listed).map_err(|e| {
                Error::Mcp(format!(
                    "tools/list answered tools that are not tools ({e})"
                ))
            })?;
            tools.extend(listed);
            match page.get("nextCursor").and_then(Value::as_str) {
                // A server that hands the same cursor back would never end.
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_string()),
                _ => return Ok(tools),
            }
        }
    }

    /// Calls the tool `name` with `args` (a JSON object) and returns the text of
    /// its result: its text content blocks, one per line (other blocks as a
    /// short note, e.g. `[image image/png]`; with no content, its
    /// `structuredContent` as JSON). A result marked `isError` is
    /// [`Error::Mcp`] with that text.
    pub fn call(&self, name: &str, args: Value) -> Result<String> {
        let args = if args.is_null() { json!({}) } else { args };
        let result = self.request("tools/call", json!({"name": name, "arguments": args}))?;
        let text = result_text(&result);
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return Err(Error::Mcp(if text.is_empty() {
                format!("the tool {name} failed without saying why")
            } else {
                text
            }));
        }
        Ok(text)
    }

    /// Every tool of the server ([`Client::tools`]) as a tool for
    /// [`llm::Chat::complete_with_tools`] / [`llm::Chat::stream_with_tools`]:
    /// same name, description and schema, and a handler that calls it
    /// ([`Client::call`]). A tool's error (a result marked `isError`, a JSON-RPC
    /// error, a failed request) is the handler's error, which the loop tells the
    /// model (`error: mcp: ...`). Costs one request per page of `tools/list`, and
    /// one per call the model makes.
    pub fn chat_tools(&self) -> Result<Vec<llm::Tool<'static>>> {
        self.chat_tools_prefixed("")
    }

    /// [`Client::chat_tools`] with `prefix` before each name the model sees
    /// (`"mcp_"`: `add` is offered as `mcp_add`), so that they cannot clash with
    /// local tools; the server is called with the tool's own name.
    pub fn chat_tools_prefixed(&self, prefix: &str) -> Result<Vec<llm::Tool<'static>>> {
        Ok(self.as_chat_tools(self.tools()?, prefix))
    }

    fn as_chat_tools(&self, tools: Vec<McpTool>, prefix: &str) -> Vec<llm::Tool<'static>> {
        tools
            .into_iter()
            .map(|tool| {
                let client = self.clone();
                let name = tool.name;
                llm::Tool::new(
                    format!("{prefix}{name}"),
                    tool.description,
                    tool.input_schema,
                    move |args| client.call(&name, args),
                )
            })
            .collect()
    }

    /// Any other request (`resources/list`, `prompts/get`...): its JSON-RPC
    /// result, or [`Error::Mcp`] for a JSON-RPC error.
    pub fn request(&self, method: &str, params: Value) -> Result<Value> {
        self.inner
            .request(method, params, false)
            .map(|(result, _)| result)
    }

    /// The `Mcp-Session-Id` the server gave, if it keeps sessions.
    pub fn session_id(&self) -> Option<&str> {
        self.inner.session.as_deref()
    }

    /// The protocol version agreed on in `initialize`.
    pub fn protocol_version(&self) -> &str {
        &self.inner.version
    }

    /// The server's `serverInfo` (`name`, `version`...), as it sent it.
    pub fn server_info(&self) -> &Value {
        &self.inner.server
    }
}

impl Inner {
    /// A request and its result, and the session id of its answer's headers.
    fn request(&self, method: &str, params: Value, first: bool) -> Result<(Value, Option<String>)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = self.post(method, &message, Some(id), first)?;
        let Some(reply) = answer.reply else {
            return Err(Error::Mcp(format!(
                "the MCP server answered {method} with no JSON-RPC response"
            )));
        };
        Ok((outcome(method, reply)?, answer.session))
    }

    fn notify(&self, method: &str) -> Result<()> {
        let message = json!({"jsonrpc": "2.0", "method": method});
        self.post(method, &message, None, false).map(|_| ())
    }

    fn post(&self, method: &str, message: &Value, id: Option<u64>, first: bool) -> Result<Answer> {
        let body = serde_json::to_vec(message)?;
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if !first {
            headers.push(("mcp-protocol-version", self.version.as_str()));
            if let Some(session) = &self.session {
                headers.push(("mcp-session-id", session.as_str()));
            }
        }
        let answer = post(&self.url, &headers, body, id)?;
        if !(200..300).contains(&answer.status) {
            return Err(status_error(method, &answer, self.session.is_some()));
        }
        Ok(answer)
    }
}

/// What one POST brought back.
struct Answer {
    status: u16,
    session: Option<String>,
    /// The JSON-RPC response to the request (None for a notification).
    reply: Option<Value>,
    /// The start of the body of an error status.
    error_body: String,
}

/// Sends one JSON-RPC message and reads until its response: a JSON body whole, an
/// event stream event by event, left once the response is in.
fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>, id: Option<u64>) -> Result<Answer> {
    no_host("POST", url)?;
    let mut response = crate::wire::send("POST", url, headers, &body)?;
    let status = response.status;
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let session = header("mcp-session-id");
    let events = header("content-type").is_some_and(|t| {
        t.trim()
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
    });
    let mut answer = Answer {
        status,
        session,
        reply: None,
        error_body: String::new(),
    };
    if !(200..300).contains(&status) {
        let start = response.body.start(crate::wire::ERROR_START)?;
        answer.error_body = String::from_utf8_lossy(&start).into_owned();
        return Ok(answer);
    }
    let mut whole: Vec<u8> = Vec::new();
    let mut stream = Events::default();
    while let Some(data) = response.body.next()? {
        if !events {
            whole.extend_from_slice(&data);
            continue;
        }
        for event in stream.push(&data) {
            if let Some(reply) = id.and_then(|id| response_to(id, &event)) {
                answer.reply = Some(reply);
                // Left here: a server may keep the stream open after it.
                return Ok(answer);
            }
        }
    }
    if events {
        for event in stream.finish() {
            if let Some(reply) = id.and_then(|id| response_to(id, &event)) {
                answer.reply = Some(reply);
                return Ok(answer);
            }
        }
        if id.is_some() {
            return Err(Error::Mcp(
                "the MCP server's event stream ended without the answer".into(),
            ));
        }
    } else if let Some(id) = id {
        let value: Value = serde_json::from_slice(&whole).map_err(|e| {
            Error::Mcp(format!(
                "the MCP server's answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&whole[..whole.len().min(200)])
            ))
        })?;
        answer.reply = Some(response_to_value(id, value).ok_or_else(|| {
            Error::Mcp(format!(
                "the MCP server's answer is not the JSON-RPC response to request {id}: {}",
                String::from_utf8_lossy(&whole[..whole.len().min(200)])
            ))
        })?);
    }
    Ok(answer)
}

/// The error of a non-2xx answer: the JSON-RPC error it carries, if any.
fn status_error(method: &str, answer: &Answer, in_session: bool) -> Error {
    let body = answer.error_body.trim();
    if let Ok(reply) = serde_json::from_str::<Value>(body)
        && reply.get("error").is_some()
        && let Err(e) = outcome(method, reply)
    {
        return e;
    }
    let status = answer.status;
    let start: String = body.chars().take(200).collect();
    if status == 404 && in_session {
        return Error::Http(format!(
            "the MCP server no longer knows this session (404 to {method}): connect again"
        ));
    }
    Error::Http(format!(
        "the MCP server answered {method} with {status} ({start})"
    ))
}

/// The result of a JSON-RPC response, or its error.
fn outcome(method: &str, reply: Value) -> Result<Value> {
    if let Some(error) = reply.get("error") {
        let code = error.get("code").and_then(Value::as_i64);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| start(error));
        return Err(Error::Mcp(match code {
            Some(code) => format!("the MCP server answered {method} with error {code}: {message}"),
            None => format!("the MCP server answered {method} with an error: {message}"),
        }));
    }
    match reply {
        Value::Object(mut fields) => fields
            .remove("result")
            .ok_or_else(|| Error::Mcp(format!("the MCP server answered {method} with no result"))),
        other => Err(Error::Mcp(format!(
            "the MCP server answered {method} with {}",
            start(&other)
        ))),
    }
}

/// The response to request `id` in an event's data, if it is that (not a
/// notification, nor a request of the server's).
fn response_to(id: u64, data: &str) -> Option<Value> {
    response_to_value(id, serde_json::from_str(data).ok()?)
}

fn response_to_value(id: u64, value: Value) -> Option<Value> {
    match value {
        // A batch (protocol 2025-03-26): the response among its messages.
        Value::Array(messages) => messages.into_iter().find_map(|m| response_to_value(id, m)),
        Value::Object(ref fields) => {
            let answers = fields.contains_key("result") || fields.contains_key("error");
            let same = match fields.get("id") {
                Some(Value::Number(n)) => n.as_u64() == Some(id),
                Some(Value::String(s)) => s.parse::<u64>().ok() == Some(id),
                // An error about a request the server could not read has id null.
                Some(Value::Null) => fields.contains_key("error"),
                _ => false,
            };
            (answers && same).then_some(value)
        }
        _ => None,
    }
}

/// The text of a `tools/call` result.
fn result_text(result: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    for block in result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let field = |name: &str| block.get(name).and_then(Value::as_str);
        match kind {
            "text" => parts.push(field("text").unwrap_or_default().to_string()),
            "resource" => {
                let resource = block.get("resource").unwrap_or(&Value::Null);
                match resource.get("text").and_then(Value::as_str) {
                    Some(text) => parts.push(text.to_string()),
                    None => parts.push(format!(
                        "[resource {}]",
                        resource
                            .get("uri")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    )),
                }
            }
            "resource_link" => {
                parts.push(format!("[resource {}]", field("uri").unwrap_or_default()))
            }
            other => parts.push(format!(
                "[{other} {}]",
                field("mimeType").unwrap_or_default()
            )),
        }
    }
    if parts.is_empty()
        && let Some(structured) = result.get("structuredContent")
        && !structured.is_null()
    {
        return structured.to_string();
    }
    parts.join("\n")
}

fn start(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

/// A server-sent event stream read as it arrives: the data of each `message`
/// event (the default type) that has data (an empty one primes a resumable
/// stream).
#[derive(Default)]
struct Events {
    /// Bytes of a line not ended yet.
    pending: Vec<u8>,
    data: Vec<String>,
    event: String,
}

impl Events {
    /// The events `bytes` completes.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        let Some(last) = bytes.iter().rposition(|&b| b == b'\n') else {
            self.pending.extend_from_slice(bytes);
            return done;
        };
        self.pending.extend_from_slice(&bytes[..last]);
        let lines = std::mem::take(&mut self.pending);
        for line in lines.split(|&b| b == b'\n') {
            self.line(
                String::from_utf8_lossy(line).trim_end_matches('\r'),
                &mut done,
            );
        }
        self.pending.extend_from_slice(&bytes[last + 1..]);
        done
    }

    /// The last event, when the stream ends without a blank line after it.
    fn finish(&mut self) -> Vec<String> {
        let mut done = Vec::new();
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.line(
                String::from_utf8_lossy(&rest).trim_end_matches('\r'),
                &mut done,
            );
        }
        self.line("", &mut done);
        done
    }

    fn line(&mut self, line: &str, done: &mut Vec<String>) {
        if line.is_empty() {
            let data = std::mem::take(&mut self.data).join("\n");
            let event = std::mem::take(&mut self.event);
            if !data.is_empty() && (event.is_empty() || event == "message") {
                done.push(data);
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = value.to_string(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_skip_notifications_and_priming_and_split_anywhere() {
        let stream = "id: 0\nretry: 100\ndata:\n\n: a comment\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\r\n\r\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"id\":7,\"result\":{}}\n\nevent: other\ndata: x\n\n";
        // Every split of the stream into two chunks gives the same events.
        for cut in 0..stream.len() {
            let mut events = Events::default();
            let mut got = events.push(&stream.as_bytes()[..cut]);
            got.extend(events.push(&stream.as_bytes()[cut..]));
            got.extend(events.finish());
            assert_eq!(got.len(), 2, "cut at {cut}: {got:?}");
            assert_eq!(response_to(7, &got[0]), None);
            assert_eq!(
                response_to(7, &got[1]),
                Some(json!({"jsonrpc": "2.0", "id": 7, "result": {}}))
            );
        }
    }

    #[test]
    fn an_event_without_a_blank_line_at_the_end_counts() {
        let mut events = Events::default();
        assert!(events.push(b"data: {\"id\":1,\"result\":{}}").is_empty());
        assert_eq!(
            events.finish(),
            vec!["{\"id\":1,\"result\":{}}".to_string()]
        );
    }

    #[test]
    fn only_the_response_to_the_request_is_taken() {
        assert!(response_to_value(2, json!({"id": 1, "result": {}})).is_none());
        assert!(response_to_value(2, json!({"id": 2, "method": "ping"})).is_none());
        assert!(response_to_value(2, json!({"id": "2", "result": {}})).is_some());
        assert!(response_to_value(2, json!({"id": null, "error": {"code": -32600}})).is_some());
        assert!(response_to_value(2, json!([{"method": "x"}, {"id": 2, "result": 1}])).is_some());
    }

    #[test]
    fn errors_and_results() {
        let error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "no"}});
        match outcome("tools/call", error) {
            Err(Error::Mcp(m)) => assert_eq!(
                m,
                "the MCP server answered tools/call with error -32001: no"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            outcome("x", json!({"id": 1, "result": 5})).unwrap(),
            json!(5)
        );
        assert!(matches!(outcome("x", json!({"id": 1})), Err(Error::Mcp(_))));
    }

    #[test]
    fn the_text_of_a_result() {
        let result = json!({"content": [
            {"type": "text", "text": "one"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "two"}},
            {"type": "resource_link", "uri": "file:///b", "name": "b"},
        ]});
        assert_eq!(
            result_text(&result),
            "one\n[image image/png]\ntwo\n[resource file:///b]"
        );
        let structured = json!({"content": [], "structuredContent": {"result": 5}});
        assert_eq!(result_text(&structured), "{\"result\":5}");
    }

    #[test]
    fn tools_decode_with_defaults() {
        let tools: Vec<McpTool> = serde_json::from_value(json!([
            {"name": "add", "description": "Adds.", "inputSchema": {"type": "object", "properties": {}}},
            {"name": "bare"},
        ]))
        .unwrap();
        assert_eq!(tools[0].description, "Adds.");
        assert_eq!(tools[1].description, "");
        assert_eq!(tools[1].input_schema, json!({"type": "object"}));
    }

    #[test]
    fn chat_tools_keep_the_schema_prefix_the_name_and_call_the_server() {
        let client = Client {
            inner: Arc::new(Inner {
                url: "http://127.0.0.1:1/mcp".into(),
                session: None,
                version: PROTOCOL_VERSION.into(),
                server: Value::Null,
                next_id: AtomicU64::new(1),
            }),
        };
        let listed: Vec<McpTool> = serde_json::from_value(json!([
            {"name": "add", "description": "Adds.", "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}}}},
            {"name": "bare"},
        ]))
        .unwrap();
        let plain = client.as_chat_tools(listed.clone(), "");
        assert_eq!(plain[0].name(), "add");
        let mut tools = client.as_chat_tools(listed, "mcp_");
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[0].name(), "mcp_add");
        assert_eq!(tools[0].description(), "Adds.");
        assert_eq!(
            tools[0].parameters(),
            &json!({"type": "object", "properties": {"a": {"type": "number"}}})
        );
        assert_eq!(tools[1].name(), "mcp_bare");
        assert_eq!(tools[1].parameters(), &json!({"type": "object"}));
        // The handler calls the server (here, outside a component: no host).
        match tools[0].call(json!({"a": 1})) {
            Err(Error::Http(m)) => assert!(m.contains("no host"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A request id was taken: the call went through the client.
        assert_eq!(client.inner.next_id.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn connecting_outside_a_component_is_an_http_error() {
        match connect("http://127.0.0.1:1/mcp") {
            Err(Error::Http(m)) => assert!(m.contains("no host"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
