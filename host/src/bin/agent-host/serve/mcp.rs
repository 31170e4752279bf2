//! MCP: `serve` as a Model Context Protocol server on `/v1/mcp`, over the
//! Streamable HTTP transport of the official Rust SDK (`rmcp`). Each plugin the
//! caller's token may call is one tool; calling it runs one turn.
//!
//! ## Behavior
//! - Behind the `/v1` token check (`auth.rs`): a request without a known token
//!   gets 401 before rmcp sees it. The body is then read as the other routes read
//!   theirs (`body.rs`: within `body_timeout`, at most [`max_body`] bytes), and
//!   what rmcp answers after that is the transport's (JSON-RPC errors).
//! - Stateless: every POST is answered on its own, with no `Mcp-Session-Id`, so
//!   any worker (`--workers`) or replica answers any request. GET and DELETE
//!   answer 405: there is no session to stream to or to end.
//! - `tools/list`: one tool per plugin the token may call, named by
//!   [`tool_name`], described by its `describe` name and version and its
//!   `[[plugin]] description`, taking `{"session", "input"}` (strings).
//! - `tools/call`: one turn, let in and run exactly as the HTTP turn route runs
//!   it (`turns::admit`, `turns::run`: the tenant's budget and turn limit, the
//!   metrics). The answer is its output as text (`_meta`: `usage`, `replayed`);
//!   a turn that fails is `isError` with the HTTP API's error message (`_meta`:
//!   the error body). `_meta.idempotency_key` is the turn's idempotency key.
//! - With a `progressToken` in `_meta`, each chunk the plugin emits is sent as
//!   a `notifications/progress` (`message`: the chunk) while the turn runs, then
//!   the result. A conflict retry's restart is one with `_meta: {"restart": true}`.
//!   As on the HTTP stream, the plugin never waits for the client: one that does
//!   not keep up (256 chunks behind) gets no more chunks.
//! - A call whose connection closes before its answer drops its turn (rmcp
//!   cancels the request), which writes nothing, as for an HTTP client that
//!   disconnects. A `notifications/cancelled` comes on a POST of its own and,
//!   with no session, reaches no call.

use std::collections::BTreeMap;
use std::sync::Arc;

use agent_host::{TurnAnswer, TurnEvent, TurnOptions};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, MetaObject, PaginatedRequestParams, ProgressNotificationParam,
    ProgressToken, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::{body, turns};
use crate::views::turn_usage_json;

/// The path of the MCP endpoint.
const PATH: &str = "/v1/mcp";
/// The `_meta` key of a `tools/call` that carries the turn's idempotency key.
const IDEMPOTENCY_KEY: &str = "idempotency_key";
/// Chunks of a streamed call waiting to be sent as progress notifications.
const EVENTS: usize = 256;

/// The MCP route, added to the API's (before its token check is layered on).
pub(super) fn routes(router: Router<Arc<App>>, app: &Arc<App>) -> Router<Arc<App>> {
    warn_of_shared_names(app);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // rmcp accepts only loopback `Host`s by default, against DNS rebinding:
        // a page a browser was lured to cannot send the bearer token every
        // request here needs, and serve listens where its operator says.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(max_body(app));
    let handler = Mcp { app: app.clone() };
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let mcp = Router::new()
        .route_service(PATH, service)
        .route_layer(middleware::from_fn_with_state(app.clone(), read_body));
    router.merge(mcp)
}

/// The largest body of an MCP request: a `tools/call` with an input of
/// `max_input` bytes, each of which JSON may write as two (`\n`), and the rest of
/// the message.
fn max_body(app: &App) -> usize {
    max_input(app)
        .saturating_mul(2)
        .saturating_add(body::MAX_JSON_BODY)
}

fn max_input(app: &App) -> usize {
    usize::try_from(app.loaded().config.server.max_input.as_u64()).unwrap_or(usize::MAX)
}

/// Reads the request's body within `body_timeout` and [`max_body`] (408 and 413
/// with the API's error body), before rmcp, which would wait for it unbounded.
async fn read_body(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (parts, request_body) = request.into_parts();
    match body::read(&app, request_body, max_body(&app)).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(refused) => refused.into_response(),
    }
}

/// The MCP tool name of a plugin id. Ids are 1 to 128 of `[A-Za-z0-9_.-/]` and
/// tool names 1 to 128 of `[A-Za-z0-9_.-]`, so `/` becomes `.`: `team/chat` is
/// the tool `team.chat`.
fn tool_name(plugin: &str) -> String {
    plugin.replace('/', ".")
}

/// Warns of plugin ids that make one tool name (`a/b` and `a.b`): the first by
/// id is that tool, the others are no tool.
fn warn_of_shared_names(app: &App) {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for plugin in app.host.plugins() {
        by_name.entry(tool_name(&plugin)).or_default().push(plugin);
    }
    for (tool, plugins) in by_name.into_iter().filter(|(_, p)| p.len() > 1) {
        tracing::warn!(
            tool,
            ?plugins,
            "plugin ids share an MCP tool name; only the first is that tool"
        );
    }
}

/// The MCP server: one per request (stateless), over the app.
#[derive(Clone)]
struct Mcp {
    app: Arc<App>,
}

impl Mcp {
    /// The plugins `caller` may call, by tool name (ids sorted: of two that share
    /// a name, the first keeps it).
    fn tools_of(&self, caller: &Caller) -> BTreeMap<String, String> {
        let token = caller.token();
        let mut tools = BTreeMap::new();
        for plugin in self
            .app
            .host
            .plugins()
            .into_iter()
            .filter(|p| token.allows(p))
        {
            tools.entry(tool_name(&plugin)).or_insert(plugin);
        }
        tools
    }

    /// The tool of `plugin`: its description is the config's `description`, then
    /// what the plugin says it is (`describe`).
    fn tool(&self, name: String, plugin: &str) -> Tool {
        let described = self
            .app
            .host
            .plugin_info(plugin)
            .map(|info| format!("{} {}", info.name, info.version))
            .unwrap_or_default();
        let loaded = self.app.loaded();
        let configured = loaded
            .config
            .plugin(plugin)
            .and_then(|p| p.description.as_deref());
        let description = match configured {
            Some(text) => format!("{text} ({described})"),
            None => described,
        };
        Tool::new(name, description, input_schema())
    }

    /// Runs the turn of a `tools/call`; `Err` for a call that is not one (no such
    /// tool, bad arguments).
    async fn call(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = caller(&ctx)?;
        // A plugin the token may not call is no tool, as one that does not exist.
        let plugin = self
            .tools_of(&caller)
            .remove(request.name.as_ref())
            .ok_or_else(|| {
                ErrorData::invalid_params(
                    format!("no tool {:?} that this token may call", request.name),
                    None,
                )
            })?;
        let arguments = request.arguments.unwrap_or_default();
        let session = string_argument(&arguments, "session")?;
        let input = string_argument(&arguments, "input")?;
        let options = match ctx.meta.get(IDEMPOTENCY_KEY) {
            None => TurnOptions::default(),
            Some(Value::String(key)) => TurnOptions::idempotency_key(key.as_str()),
            Some(_) => {
                return Err(ErrorData::invalid_params(
                    format!("_meta.{IDEMPOTENCY_KEY} must be a string"),
                    None,
                ));
            }
        };
        let max = max_input(&self.app);
        if input.len() > max {
            return Ok(failed(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "input_too_large",
                format!("the input is over the limit of {max} bytes"),
            )));
        }
        let mut admitted = match turns::admit(&self.app, &caller, &plugin, options) {
            Ok(admitted) => admitted,
            Err(busy) => return Ok(failed(busy)),
        };
        let progress = ctx.meta.get_progress_token().map(|token| {
            let (events, from_turn) = mpsc::channel(EVENTS);
            admitted.options = std::mem::take(&mut admitted.options).with_stream(events);
            Progress::start(ctx.peer.clone(), token, from_turn)
        });
        let run = turns::run(&self.app, plugin, &session, &input, admitted);
        let outcome = tokio::select! {
            outcome = run => outcome,
            () = ctx.ct.cancelled() => {
                return Err(ErrorData::internal_error("the call was cancelled", None));
            }
        };
        if let Some(progress) = progress {
            progress.finish().await;
        }
        Ok(match outcome {
            Ok(answer) => answered(answer),
            Err(e) => failed(ApiError::from(e)),
        })
    }
}

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agent-host", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool is an agent plugin. Call it with a session id (the \
                 conversation: the plugin keeps its state and history) and an input; \
                 it answers the turn's output.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&ctx)?;
        let tools = self
            .tools_of(&caller)
            .into_iter()
            .map(|(name, plugin)| self.tool(name, &plugin))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, ctx).await.map(CallToolResponse::from)
    }
}

/// The caller `auth::require` put in the HTTP request, which rmcp hands on.
fn caller(ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("no caller: the token was not checked", None))
}

/// Every tool's arguments: the session and the turn's input.
fn input_schema() -> JsonObject {
    let schema = json!({
        "type": "object",
        "properties": {"session": {"type": "string"}, "input": {"type": "string"}},
        "required": ["session", "input"],
    });
    match schema {
        Value::Object(schema) => schema,
        _ => unreachable!("a JSON object"),
    }
}

fn string_argument(arguments: &JsonObject, name: &str) -> Result<String, ErrorData> {
    match arguments.get(name) {
        Some(Value::String(value)) => Ok(value.clone()),
        _ => Err(ErrorData::invalid_params(
            format!("the argument {name:?} must be a string"),
            None,
        )),
    }
}

/// A turn's answer: its output as text; `_meta` has `usage` and `replayed`.
fn answered(answer: TurnAnswer) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(answer.output)]);
    result.meta = Some(meta(json!({
        "usage": turn_usage_json(&answer.usage),
        "replayed": answer.replayed,
    })));
    result
}

/// A turn that failed: `isError`, the error's message as text; `_meta` has the
/// HTTP API's error body (`{"error": {"kind", "message"}}`).
fn failed(error: ApiError) -> CallToolResult {
    let body = error.body();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
    result.meta = Some(meta(body));
    result
}

fn meta(value: Value) -> MetaObject {
    match value {
        Value::Object(map) => MetaObject::from(map),
        _ => MetaObject::default(),
    }
}

/// Sends a streamed call's chunks as progress notifications, from a task of its
/// own so the turn never waits for the client.
struct Progress {
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(
        peer: Peer<RoleServer>,
        token: ProgressToken,
        mut from_turn: mpsc::Receiver<TurnEvent>,
    ) -> Self {
        let (done, mut ended) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut sent = 0u32;
            loop {
                let event = tokio::select! {
                    biased;
                    Some(event) = from_turn.recv() => event,
                    _ = &mut ended => break,
                };
                sent += 1;
                if !notify(&peer, &token, sent, event).await {
                    return;
                }
            }
            // The chunks sent before the turn ended. (The channel may stay open:
            // a reused instance keeps its sender.)
            while let Ok(event) = from_turn.try_recv() {
                sent += 1;
                if !notify(&peer, &token, sent, event).await {
                    return;
                }
            }
        });
        Self { done, task }
    }

    /// Sends what is left once the turn has ended, before its result.
    async fn finish(self) {
        let _ = self.done.send(());
        let _ = self.task.await;
    }
}

/// Sends `event` as the `sent`-th progress notification; false if the client is
/// gone.
async fn notify(
    peer: &Peer<RoleServer>,
    token: &ProgressToken,
    sent: u32,
    event: TurnEvent,
) -> bool {
    let mut param = ProgressNotificationParam::new(token.clone(), f64::from(sent));
    match event {
        TurnEvent::Chunk(chunk) => param = param.with_message(chunk),
        TurnEvent::Restart => {
            param.meta = match json!({"restart": true}) {
                Value::Object(map) => Some(map.into()),
                _ => None,
            };
        }
        _ => return true,
    }
    peer.notify_progress(param).await.is_ok()
}
