//! Outbound HTTP through `agent-host serve`, configured as the README shows: the
//! llm-chat example against an OpenAI-compatible server on loopback, the key read
//! from the host's environment and never seen anywhere but on the wire to the model.

mod support;

use agent_host_tests::model_server::ModelServer;
use agent_host_tests::plugins;
use reqwest::StatusCode;
use support::{Server, TOKEN_A, get, sse_events, turn};

const KEY: &str = "sk-live-0123456789-never-in-a-log";

fn config(model: &ModelServer) -> String {
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "llm-chat"
wasm = "{wasm}"
prefix = "tenant-a"
env = {{ MODEL_URL = "{origin}/v1", MODEL = "small" }}
[[plugin.outbound]]
origin = "{origin}"
secret_headers = {{ Authorization = "Bearer ${{env:LLM_API_KEY}}" }}

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["llm-chat"]
"#,
        wasm = plugins::LLM_CHAT,
        origin = model.origin(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_chat_through_serve_with_the_key_held_by_the_host() {
    let model = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(&path, config(&model)).unwrap();
    // The log of -vv (every debug line).
    let env = [("LLM_API_KEY", KEY), ("RUST_LOG", "debug")];
    let s = Server::spawn(dir, &path, &env, &[]);

    let (status, body) = turn(&s, TOKEN_A, "llm-chat", "alice", "Hello, model.").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["output"],
        r#"You said "Hello, model."; I saw 2 messages."#
    );
    let (status, body) = turn(&s, TOKEN_A, "llm-chat", "alice", "And again.").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["output"],
        r#"You said "And again."; I saw 4 messages."#
    );
    for request in model.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    let (_, session) = get(&s, Some(TOKEN_A), "/v1/plugins/llm-chat/sessions/alice").await;
    assert_eq!(session["history_len"], 4, "{session}");

    // Streamed (what `curl -N -H 'Accept: text/event-stream'` gets): the model's
    // pieces as chunks as they come, then the whole answer once committed.
    let streamed = reqwest::Client::new()
        .post(s.url("/v1/plugins/llm-chat/sessions/alice/turns"))
        .bearer_auth(TOKEN_A)
        .header("Accept", "text/event-stream")
        .body("Stream it.")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = sse_events(&streamed);
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(done.1, "done", "{streamed}");
    let answer = r#"You said "Stream it."; I saw 6 messages."#;
    assert_eq!(done.2["output"], answer);
    assert!(chunks.len() >= 5, "{streamed}");
    let joined: String = chunks
        .iter()
        .map(|(_, name, data)| {
            assert_eq!(name, "chunk");
            data.as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(joined, answer);

    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = format!(
        r#"agent_host_outbound_requests_total{{plugin="llm-chat",origin="{}",outcome="ok"}} 3"#,
        model.origin()
    );
    assert!(metrics.contains(&counted), "{metrics}");
    assert!(!metrics.contains(KEY));

    let log = s.log();
    assert!(
        log.contains("outbound request"),
        "no request log line:\n{log}"
    );
    assert!(!log.contains(KEY), "the key is in the log");
    assert!(
        !log.contains("never-in-a-log"),
        "part of the key is in the log"
    );
}

#[test]
fn a_missing_key_stops_the_start_with_a_clear_message() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = rt.block_on(ModelServer::start());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(&path, config(&model)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("LLM_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("environment variable LLM_API_KEY is not set")
            && stderr.contains("agent-host.toml:"),
        "{stderr}"
    );
}

/// Secret headers on the origin `*` stop the loading of the file, pointing at the
/// origin's line, and the key is not in the message. (`sessions` reads the file as
/// `serve` does, and ends either way.)
#[test]
fn secret_headers_on_any_origin_stop_the_load_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    let text = format!(
        r#"[[plugin]]
id = "open"
wasm = "{wasm}"
prefix = "tenant-a"
allow_any_origin = true
[[plugin.outbound]]
origin = "*"
secret_headers = {{ Authorization = "Bearer ${{env:LLM_API_KEY}}" }}

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["open"]
"#,
        wasm = plugins::HOSTILE,
    );
    std::fs::write(&path, text).unwrap();
    // `sessions` first: a file that loads would make `serve` run on.
    for args in [&["sessions", "--plugin", "open", "list"][..], &["serve"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agent-host"))
            .args(&args[..1])
            .arg("--config")
            .arg(&path)
            .args(&args[1..])
            .env_remove("REDIS_URL")
            .env("LLM_API_KEY", KEY)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        let place = "agent-host.toml:7:10: plugin \"open\": outbound origin \"*\" cannot have secret_headers";
        assert!(stderr.contains(place), "{args:?}: {stderr}");
        assert!(!stderr.contains("never-in-a-log"), "{stderr}");
    }
}

/// A plugin's TRACE to its allowed origin is refused before any connection,
/// counted as `denied` and logged with the reason; the key appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_request_is_refused_counted_and_logged() {
    let model = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    let text = config(&model).replace(plugins::LLM_CHAT, plugins::HOSTILE);
    std::fs::write(&path, text).unwrap();
    let s = Server::spawn(dir, &path, &[("LLM_API_KEY", KEY)], &[]);

    let input = format!("send TRACE {}/x", model.origin());
    let (status, body) = turn(&s, TOKEN_A, "llm-chat", "alice", &input).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let output = body["output"].as_str().unwrap_or_default();
    assert!(output.contains("HttpRequestDenied"), "{body}");
    assert!(model.requests().is_empty(), "{:?}", model.requests());

    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = format!(
        r#"agent_host_outbound_requests_total{{plugin="llm-chat",origin="{}",outcome="denied"}} 1"#,
        model.origin()
    );
    assert!(metrics.contains(&counted), "{metrics}");
    let log = s.log();
    assert!(log.contains("TRACE is refused"), "{log}");
    for text in [&metrics, &log, &body.to_string()] {
        assert!(!text.contains("never-in-a-log"), "the key leaked: {text}");
    }
}
