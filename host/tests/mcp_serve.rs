//! `agent-host serve` as an MCP server (`/v1/mcp`), driven by the official MCP
//! Python SDK (`tests/servers/mcp_client.py`, `mcp` pinned in its requirements
//! file, installed into `target/mcp-venv` by `tests/setup.sh`): initialize, the
//! tools each token may call, a turn, an idempotent retry, a failing turn, a
//! streamed turn's chunks as progress notifications, and callers without a token
//! or with one that may not call the tool.

mod support;

use std::path::{Path, PathBuf};

use agent_host_tests::model_server::ModelServer;
use agent_host_tests::plugins;
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Server, TOKEN_A, TOKEN_B, get, kind};

const KEY: &str = "sk-live-mcp-0123456789-never-shown";

fn config(model: &ModelServer) -> String {
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "chat"
wasm = "{chat}"
prefix = "tenant-a"
description = "Remembers what you said."

[[plugin]]
id = "bad"
wasm = "{hostile}"
prefix = "tenant-a-bad"

[[plugin]]
id = "llm-chat"
wasm = "{llm}"
prefix = "tenant-a-llm"
env = {{ MODEL_URL = "{origin}/v1", MODEL = "small" }}
[[plugin.outbound]]
origin = "{origin}"
secret_headers = {{ Authorization = "Bearer ${{env:LLM_API_KEY}}" }}

[[plugin]]
id = "team/notes"
wasm = "{chat}"
prefix = "tenant-b"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["chat", "bad", "llm-chat"]

[[token]]
tenant = "b"
secret = "{TOKEN_B}"
plugins = ["team/notes"]
"#,
        chat = plugins::CHAT_MEMORY,
        hostile = plugins::HOSTILE,
        llm = plugins::LLM_CHAT,
        origin = model.origin(),
    )
}

/// The venv's Python with the pinned MCP SDK; fails saying how to get it.
fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/mcp-venv/bin/python");
    assert!(
        python.is_file(),
        "no MCP client: {} is missing; run tests/setup.sh (it installs the MCP Python SDK, \
         tests/servers/mcp_client.requirements.txt, into target/mcp-venv)",
        python.display()
    );
    python
}

/// Runs the Python client against `s` with `token` ("" for none) and `steps`;
/// its JSON output.
async fn client(s: &Server, token: &str, steps: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/mcp_client.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .arg(s.url("/v1/mcp"))
        .arg(token)
        .arg(steps.to_string())
        .output()
        .await
        .expect("the MCP client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the MCP client failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nserver log:\n{}", s.log()))
}

/// The text of a `tools/call` result (one text block).
fn text(result: &Value) -> &str {
    assert_eq!(
        result["content"].as_array().map(Vec::len),
        Some(1),
        "{result}"
    );
    assert_eq!(result["content"][0]["type"], "text", "{result}");
    result["content"][0]["text"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_tools_to_the_official_mcp_client() {
    let model = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(&path, config(&model)).unwrap();
    let s = Server::spawn(dir, &path, &[("LLM_API_KEY", KEY)], &[]);

    let steps = json!([
        {"list": true},
        {"call": "chat", "session": "alice", "input": "Hi there."},
        {"call": "chat", "session": "alice", "input": "Again.", "idempotency_key": "k-1"},
        {"call": "chat", "session": "alice", "input": "Again.", "idempotency_key": "k-1"},
        {"call": "bad", "session": "s", "input": "error 5"},
        {"call": "llm-chat", "session": "bob", "input": "Stream it.", "progress": true},
    ]);
    let out = client(&s, TOKEN_A, &steps).await;
    assert!(out.get("error").is_none(), "{out}\n{}", s.log());
    assert_eq!(out["server"]["serverInfo"]["name"], "agent-host", "{out}");
    assert!(out["server"]["capabilities"]["tools"].is_object(), "{out}");
    let steps = out["steps"].as_array().unwrap();

    // tools/list: exactly the plugins token a may call, each with the schema.
    let tools = steps[0]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bad", "chat", "llm-chat"], "{}", steps[0]);
    let chat = &tools[1];
    assert_eq!(
        chat["description"],
        "Remembers what you said. (chat-memory 0.1.0)"
    );
    assert_eq!(
        chat["inputSchema"],
        json!({
            "type": "object",
            "properties": {"session": {"type": "string"}, "input": {"type": "string"}},
            "required": ["session", "input"],
        })
    );

    // A turn: the plugin's answer, as text.
    let first = &steps[1];
    assert_eq!(first["isError"], false, "{first}");
    assert!(
        text(first).starts_with(r#"Turn 1. You said: "Hi there.""#),
        "{first}"
    );
    // An idempotent turn, and its retry: the same answer, replayed.
    let (second, retry) = (&steps[2], &steps[3]);
    assert!(text(second).starts_with("Turn 2."), "{second}");
    assert_eq!(second["_meta"]["replayed"], false, "{second}");
    assert_eq!(text(retry), text(second));
    assert_eq!(retry["_meta"]["replayed"], true, "{retry}");
    // The session's history grew by the two turns that ran (the user's input
    // and the agent's answer each), not by the replay.
    let (status, session) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/alice").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["history_len"], 4, "{session}");

    // A failing turn: isError with the HTTP API's message, the error body in _meta.
    let failed = &steps[4];
    assert_eq!(failed["isError"], true, "{failed}");
    assert_eq!(text(failed), "plugin bad failed: eeeee");
    assert_eq!(failed["_meta"]["error"]["kind"], "plugin_error", "{failed}");

    // A streamed turn: each chunk as a progress notification, then the result.
    let streamed = &steps[5];
    assert_eq!(streamed["isError"], false, "{streamed}");
    let answer = text(streamed);
    assert!(answer.starts_with(r#"You said "Stream it.""#), "{streamed}");
    let progress = streamed["progress"].as_array().unwrap();
    assert!(progress.len() >= 5, "{streamed}");
    let chunks: String = progress
        .iter()
        .map(|p| p["message"].as_str().unwrap())
        .collect();
    assert_eq!(chunks, answer);
    let counts: Vec<f64> = progress
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");

    // Token b sees only its plugin (`/` made `.`), and not a's.
    let out = client(&s, TOKEN_B, &json!([{"list": true}])).await;
    let tools = out["steps"][0]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["team.notes"], "{out}");
    assert_eq!(tools[0]["description"], "chat-memory 0.1.0");
    let steps = json!([{"call": "chat", "session": "alice", "input": "Mine now."}]);
    let out = client(&s, TOKEN_B, &steps).await;
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(r#"no tool "chat" that this token may call"#),
        "{out}"
    );
    let steps = json!([{"call": "team.notes", "session": "n", "input": "A note."}]);
    let out = client(&s, TOKEN_B, &steps).await;
    assert!(text(&out["steps"][0]).starts_with("Turn 1."), "{out}");

    // Without a token (or with an unknown one): refused before MCP.
    for token in ["", "not-a-token-of-this-server-0123"] {
        let out = client(&s, token, &json!([{"list": true}])).await;
        assert!(out["error"].is_string(), "{out}");
    }
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"}}});
    let refused = reqwest::Client::new()
        .post(s.url("/v1/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(kind(&body), "unauthorized");
    // With one, a plain JSON answer (no session: any worker answers any request).
    let answered = reqwest::Client::new()
        .post(s.url("/v1/mcp"))
        .bearer_auth(TOKEN_A)
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    assert!(answered.headers().get("mcp-session-id").is_none());
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "agent-host", "{body}");
    assert!(!s.log().contains(KEY));
}
