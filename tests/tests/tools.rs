//! Tool calling in every SDK (`Chat` `complete_with_tools` / `stream_with_tools`,
//! `completeWithTools` / `streamWithTools`): the tool agents (Rust
//! `tests/plugins/tools`, Python `py-tools-agent`, JavaScript `js-tools-agent`),
//! streamed and not, on Redis and the embedded store, against the axum fixture's
//! tool mode and the Python stand-in's (which answer alike: see
//! [`agent_host_tests::model_server::tool_answer`]). A loop of several steps, the
//! requests carrying the tools, the calls and their results as OpenAI wants them;
//! a tool's error, an unknown tool and arguments that are not JSON told to the
//! model; a model that never stops calling tools failing after 8 requests and
//! storing nothing; the calls and results kept in the history for the next turn,
//! and the `note` tool's state with them. With `MCP_URL`, each agent offers the
//! tools of an MCP server written with the official Python SDK
//! (`tests/servers/mcp_server.py`) first, prefixed `mcp_`, through the SDKs'
//! `chat_tools` / `chatTools` (`cargo test -p agent-host-tests --test tools`;
//! needs python3, and target/mcp-venv for the MCP tests: see tests/setup.sh).

use agent_host::{AllowedOrigin, Host, Limits, PluginConfig, TurnError, TurnEvent, TurnOptions};
use agent_host_tests::mcp_server::McpServer;
use agent_host_tests::model_server::{ModelServer, Recorded};
use agent_host_tests::python_model::PythonModel;
use agent_host_tests::{Backend, load, plugins};
use serde_json::{Value, json};

/// A model server under test.
enum Server {
    Axum(ModelServer),
    Python(PythonModel),
}

impl Server {
    fn origin(&self) -> String {
        match self {
            Self::Axum(s) => s.origin(),
            Self::Python(s) => s.origin(),
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        match self {
            Self::Axum(s) => s.requests(),
            Self::Python(s) => s.requests(),
        }
    }

    /// The bodies of the requests from the `before`th on.
    fn sent_since(&self, before: usize) -> Vec<Value> {
        self.requests()[before..]
            .iter()
            .map(Recorded::json)
            .collect()
    }
}

async fn axum() -> Server {
    Server::Axum(ModelServer::start().await)
}

fn python() -> Server {
    Server::Python(PythonModel::start())
}

/// `wasm` as plugin `id`, talking to the model at `origin`, streaming its
/// answers or not (`MODEL_STREAM`).
async fn agent(host: &Host, id: &str, origin: &str, wasm: &str, stream: bool) {
    let config = PluginConfig::new(id, id)
        .with_limits(Limits::default())
        .with_env(vec![
            ("MODEL_URL".into(), format!("{origin}/v1")),
            ("MODEL".into(), "small".into()),
            ("MODEL_STREAM".into(), stream.to_string()),
        ])
        .with_origin(AllowedOrigin::parse(origin).unwrap());
    load(host, config, wasm).await;
}

/// A turn of `session`, with a caller that streams or not: its answer and the
/// chunks shown.
async fn turn(
    host: &Host,
    id: &str,
    session: &str,
    input: &str,
    watch: bool,
) -> Result<(String, Vec<String>), TurnError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let options = if watch {
        TurnOptions::default().with_stream(tx)
    } else {
        drop(tx);
        TurnOptions::default()
    };
    let answer = host.run_turn_with(id, session, input, options).await?;
    let mut chunks = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            TurnEvent::Chunk(chunk) => chunks.push(chunk),
            other => panic!("{id}: unexpected {other:?}"),
        }
    }
    Ok((answer.output, chunks))
}

/// The fixtures' final answer: the results of the last round of calls, and how
/// many messages the last request had.
fn said(results: &[&str], messages: usize) -> String {
    format!("Tools said {}; I saw {messages} messages.", json!(results))
}

/// The session's stored history, as JSON.
async fn history(host: &Host, id: &str, session: &str) -> Vec<Value> {
    host.inspect(id, session)
        .await
        .unwrap()
        .history
        .iter()
        .map(|item| serde_json::from_slice(item).unwrap())
        .collect()
}

fn roles(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["role"].as_str().unwrap_or("?"))
        .collect()
}

async fn scenario(backend: Backend, server: Server, language: &str, wasm: &str) {
    let host = backend.cached_host();
    for stream in [false, true] {
        let id = format!("{language}-{}", if stream { "stream" } else { "complete" });
        agent(&host, &id, &server.origin(), wasm, stream).await;

        // A loop of two rounds of calls, with a caller that streams.
        let before = server.requests().len();
        let (output, chunks) = turn(&host, &id, "alice", "add 2 and 3 steps=2", true)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(output, said(&["5"], 6), "{id}");
        assert_eq!(chunks.concat(), output, "{id}: the chunks shown");
        if stream {
            assert!(
                chunks.len() > 1,
                "{id}: the final answer streamed: {chunks:?}"
            );
        }
        let sent = server.sent_since(before);
        assert_eq!(sent.len(), 3, "{id}: three requests: {sent:?}");
        for request in &sent {
            assert_eq!(request["stream"] == true, stream, "{id}: {request}");
            let tools = request["tools"].as_array().expect("tools in every request");
            let names: Vec<_> = tools.iter().map(|t| &t["function"]["name"]).collect();
            assert_eq!(
                names,
                [&json!("add"), &json!("divide"), &json!("note")],
                "{id}"
            );
            assert!(
                tools.iter().all(|t| t["type"] == "function"),
                "{id}: {tools:?}"
            );
            assert_eq!(
                tools[0]["function"]["parameters"]["properties"]["a"]["type"], "number",
                "{id}: {tools:?}"
            );
        }
        assert_eq!(
            roles(sent[0]["messages"].as_array().unwrap()),
            ["system", "user"]
        );
        let second = sent[1]["messages"].as_array().unwrap().clone();
        assert_eq!(
            roles(&second),
            ["system", "user", "assistant", "tool"],
            "{id}"
        );
        let call = &second[2];
        assert_eq!(call["content"], Value::Null, "{id}: {call}");
        assert_eq!(
            call["tool_calls"].as_array().map(Vec::len),
            Some(1),
            "{id}: {call}"
        );
        assert_eq!(call["tool_calls"][0]["type"], "function", "{id}: {call}");
        assert_eq!(
            call["tool_calls"][0]["function"],
            json!({"name": "add", "arguments": "{\"a\":2,\"b\":3}"}),
            "{id}: the call as the model made it (streamed: put together from its pieces)"
        );
        assert_eq!(
            second[3],
            json!({"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "5"}),
            "{id}"
        );
        assert_eq!(sent[2]["messages"].as_array().unwrap().len(), 6, "{id}");
        let stored = history(&host, &id, "alice").await;
        assert_eq!(
            roles(&stored),
            [
                "user",
                "assistant",
                "tool",
                "assistant",
                "tool",
                "assistant"
            ],
            "{id}: {stored:?}"
        );
        assert_eq!(
            stored[0],
            json!({"role": "user", "content": "add 2 and 3 steps=2"})
        );
        assert_eq!(
            stored[5],
            json!({"role": "assistant", "content": output}),
            "{id}"
        );

        // Errors are the tools' results, told to the model; the turn goes on (each
        // in a session of its own).
        let ask = |input: &'static str| {
            let (host, id) = (host.clone(), id.clone());
            async move {
                turn(&host, &id, input, input, false)
                    .await
                    .unwrap_or_else(|e| panic!("{id}, {input:?}: {e}"))
                    .0
            }
        };
        assert_eq!(
            ask("divide 1 by 0").await,
            said(&["error: division by zero"], 4),
            "{id}"
        );
        assert_eq!(
            ask("add 1 2 unknown-tool").await,
            said(&["error: unknown tool \"no_such_tool\""], 4),
            "{id}"
        );
        let bad = ask("add 1 2 bad-args").await;
        assert!(
            bad.starts_with("Tools said [\"error: the arguments are not JSON ("),
            "{id}: {bad}"
        );
        assert_eq!(ask("add 1 2 parallel").await, said(&["3", "3"], 5), "{id}");

        // A model that never answers: 8 requests, then the turn fails and stores
        // nothing.
        let before = server.requests().len();
        let e = turn(&host, &id, "alice", "forever add 1 2", false)
            .await
            .unwrap_err();
        assert!(matches!(e, TurnError::Plugin { .. }), "{id}: {e}");
        assert!(e.to_string().contains("max_steps"), "{id}: {e}");
        assert_eq!(server.requests().len(), before + 8, "{id}");
        assert_eq!(history(&host, &id, "alice").await, stored, "{id}");

        // The next turn's model sees the last one's calls and results; the note
        // is in the state.
        let before = server.requests().len();
        let (output, _) = turn(&host, &id, "alice", "note buy flour", false)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(output, said(&["noted, 1 in all"], 10), "{id}");
        let first = server.sent_since(before)[0]["messages"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(
            first.len(),
            8,
            "{id}: the system prompt, 6 past messages, the input"
        );
        assert_eq!(first[1..7], stored[..], "{id}: the past turn, as stored");
        let snapshot = host.inspect(&id, "alice").await.unwrap();
        let state: Value = serde_json::from_slice(&snapshot.state.expect("a state").value).unwrap();
        assert_eq!(state, json!({"notes": ["note buy flour"]}), "{id}");
        assert_eq!(history(&host, &id, "alice").await.len(), 10, "{id}");
    }
}

/// The example `examples/py-tools` keeps its notes in the session and the calls
/// in its history.
async fn py_tools_example(backend: Backend, server: Server) {
    let host = backend.cached_host();
    agent(&host, "py-tools", &server.origin(), plugins::PY_TOOLS, true).await;
    let (output, _) = turn(&host, "py-tools", "alice", "save_note oven runs hot", true)
        .await
        .unwrap();
    assert_eq!(output, said(&["saved (1 notes)"], 4));
    let (output, _) = turn(&host, "py-tools", "alice", "list_notes please", false)
        .await
        .unwrap();
    assert_eq!(output, said(&["- save_note oven runs hot"], 8));
    assert_eq!(history(&host, "py-tools", "alice").await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_tools_example_on_the_embedded_store() {
    py_tools_example(Backend::embedded(), axum().await).await;
}

/// With `MCP_URL`, the agent in `wasm` offers the MCP server's tools (listed a
/// page of one at a time) before its own, prefixed `mcp_`, and the model's call
/// of `mcp_add` goes to the server as `add`.
async fn mcp_tools(language: &str, wasm: &str) {
    let host = Backend::embedded().cached_host();
    let model = ModelServer::start().await;
    let mcp = McpServer::start();
    let id = format!("{language}-mcp");
    let config = PluginConfig::new(&id, &id)
        .with_limits(Limits::default())
        .with_env(vec![
            ("MODEL_URL".into(), format!("{}/v1", model.origin())),
            ("MODEL".into(), "small".into()),
            ("MODEL_STREAM".into(), "false".into()),
            ("MCP_URL".into(), mcp.url()),
        ])
        .with_origin(AllowedOrigin::parse(&model.origin()).unwrap())
        .with_origin(AllowedOrigin::parse(&mcp.origin()).unwrap());
    load(&host, config, wasm).await;

    // No tool's name in the text: the fixture calls the first tool offered,
    // which is the MCP server's add.
    let before = model.requests().len();
    let (output, _) = turn(&host, &id, "alice", "2 plus 3", false)
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    assert_eq!(output, said(&["5"], 4), "{id}");
    let sent: Vec<Value> = model.requests()[before..]
        .iter()
        .map(Recorded::json)
        .collect();
    assert_eq!(sent.len(), 2, "{id}: a call, then the answer: {sent:?}");
    let names: Vec<&str> = sent[0]["tools"]
        .as_array()
        .expect("tools in the request")
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        names,
        [
            "mcp_add",
            "mcp_fail",
            "mcp_refuse",
            "mcp_headers",
            "add",
            "divide",
            "note"
        ],
        "{id}: the MCP server's tools first, prefixed"
    );
    let offered = &sent[0]["tools"][0]["function"];
    assert_eq!(
        offered["description"], "Adds two integers.",
        "{id}: {offered}"
    );
    assert_eq!(
        offered["parameters"]["properties"]["a"]["type"], "integer",
        "{id}: the server's schema, as it gave it: {offered}"
    );
    let stored = history(&host, &id, "alice").await;
    assert_eq!(
        roles(&stored),
        ["user", "assistant", "tool", "assistant"],
        "{id}: {stored:?}"
    );
    assert_eq!(
        stored[1]["tool_calls"][0]["function"],
        json!({"name": "mcp_add", "arguments": "{\"a\":2,\"b\":3}"}),
        "{id}: {stored:?}"
    );
    assert_eq!(
        stored[2],
        json!({"role": "tool", "tool_call_id": stored[1]["tool_calls"][0]["id"], "content": "5"}),
        "{id}"
    );
    assert_eq!(
        stored[3],
        json!({"role": "assistant", "content": output}),
        "{id}"
    );

    // The calls are the server's: its headers tool saw the session it gave...
    let (output, _) = turn(&host, &id, "bob", "mcp_headers please", false)
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let stored = history(&host, &id, "bob").await;
    assert_eq!(
        stored[1]["tool_calls"][0]["function"]["name"], "mcp_headers",
        "{id}: {stored:?}"
    );
    let seen: Value = serde_json::from_str(stored[2]["content"].as_str().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{id}: the headers tool answers JSON ({e}): {output}"));
    assert!(seen["mcp-session-id"].is_string(), "{id}: {seen}");
    assert!(seen["mcp-protocol-version"].is_string(), "{id}: {seen}");

    // ...and its tool error (isError) is told to the model.
    let (output, _) = turn(&host, &id, "carol", "mcp_fail now", false)
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    assert!(
        output.starts_with("Tools said [\"error: ")
            && output.ends_with("the tool failed on purpose\"]; I saw 4 messages."),
        "{id}: {output}"
    );
}

mod mcp {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rust() {
        mcp_tools("rust", plugins::TOOLS_AGENT).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python() {
        mcp_tools("python", plugins::PY_TOOLS_AGENT).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn javascript() {
        mcp_tools("javascript", plugins::JS_TOOLS_AGENT).await;
    }
}

/// One test per language, store and server: `LANGUAGE::SERVER_on_STORE`.
macro_rules! tool_agents {
    ($($language:ident: $wasm:expr),* $(,)?) => {
        $(
            mod $language {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn axum_on_redis() {
                    scenario(Backend::redis(), axum().await, stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn axum_on_embedded() {
                    scenario(Backend::embedded(), axum().await, stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn python_on_redis() {
                    scenario(Backend::redis(), python(), stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn python_on_embedded() {
                    scenario(Backend::embedded(), python(), stringify!($language), $wasm).await;
                }
            }
        )*
    };
}

tool_agents!(
    rust: plugins::TOOLS_AGENT,
    python: plugins::PY_TOOLS_AGENT,
    javascript: plugins::JS_TOOLS_AGENT,
);
