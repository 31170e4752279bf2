//! Streamed turns over HTTP: `Accept: text/event-stream` on the turn endpoint of
//! `agent-host serve`.

mod support;

use std::time::Duration;

use agent_host_tests::{eventually, plugins};
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Server, TOKEN_A, get, sse_events as events};

fn config() -> String {
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "p"
wasm = "{probe}"
prefix = "tenant-a"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["p"]
"#,
        probe = plugins::PROBE,
    )
}

fn request(s: &Server, ops: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(s.url("/v1/plugins/p/sessions/probe/turns"))
        .bearer_auth(TOKEN_A)
        .header("Accept", "text/event-stream")
        .body(ops.to_string())
}

#[tokio::test]
async fn chunks_then_one_final_event() {
    let s = Server::start(&config());
    let ops = json!([
        {"op": "emit", "chunk": "Hel"},
        {"op": "emit", "chunk": "lo\nthere"},
        {"op": "save", "session": "probe", "value": "kept"},
    ]);
    let response = request(&s, &ops).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let got = events(&response.text().await.unwrap());
    let names: Vec<&str> = got.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["chunk", "chunk", "done"]);
    assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        (got[0].2.clone(), got[1].2.clone()),
        (json!("Hel"), json!("lo\nthere"))
    );
    let output: Value = serde_json::from_str(got[2].2["output"].as_str().unwrap()).unwrap();
    assert_eq!(output[2], json!({"ok": 1}));
    // The final event comes once the turn has committed.
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/p/sessions/probe").await;
    assert_eq!(body["state"], "kept");

    // A trap after a chunk: the chunk, then the error, and nothing stored.
    let ops = json!([
        {"op": "emit", "chunk": "seen"},
        {"op": "save", "session": "probe", "value": "lost"},
        {"op": "panic"},
    ]);
    let got = events(
        &request(&s, &ops)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].1.as_str(), got[0].2.clone()),
        ("chunk", json!("seen"))
    );
    assert_eq!(got[1].1, "error");
    assert_eq!(got[1].2["error"]["kind"], "trap");
    assert_eq!(got[1].2["status"], 500);
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/p/sessions/probe").await;
    assert_eq!(body["state"], "kept");

    // Without Accept: text/event-stream, the JSON answer as before.
    let ops = json!([{"op": "emit", "chunk": "dropped"}]);
    let response = reqwest::Client::new()
        .post(s.url("/v1/plugins/p/sessions/probe/turns"))
        .bearer_auth(TOKEN_A)
        .body(ops.to_string())
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"output": "[{\"ok\":null}]"}));
}

#[tokio::test]
async fn a_client_that_leaves_does_not_stop_the_turn() {
    let s = Server::start(&config());
    let ops = json!([
        {"op": "emit", "chunk": "working"},
        {"op": "sleep", "ms": 300},
        {"op": "save", "session": "probe", "value": "finished anyway"},
    ]);
    let mut response = request(&s, &ops).send().await.unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("working"));
    drop(response);
    let committed = eventually(Duration::from_secs(10), || async {
        let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/p/sessions/probe").await;
        status == StatusCode::OK && body["state"] == "finished anyway"
    })
    .await;
    assert!(committed, "the turn of a client that left did not commit");
}

#[test]
fn run_prints_the_chunks_then_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ops = json!([{"op": "emit", "chunk": "Hel"}, {"op": "emit", "chunk": "lo"}]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["run", plugins::PROBE, "--session", "probe", "--no-cache"])
        .args(["--input", &ops.to_string(), "--state-file"])
        .arg(dir.path().join("state.redb"))
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello\n[{\"ok\":null},{\"ok\":null}]\n");
}
