//! Idempotent turns as clients use them: the `Idempotency-Key` header of
//! `agent-host serve` and `agent-host run --idempotency-key`.

mod support;

use std::process::Command;

use agent_host_tests::plugins;
use reqwest::StatusCode;
use serde_json::Value;

use support::{Server, TOKEN_A, kind};

fn config() -> String {
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "counter"
wasm = "{counter}"
prefix = "tenant-a"
idempotency_ttl = "1h"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["counter"]
"#,
        counter = plugins::COUNTER,
    )
}

/// A turn with `key` (raw header bytes): status, `Idempotent-Replay`,
/// `Retry-After` and body.
async fn keyed_turn(s: &Server, key: &[u8], input: &str) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(s.url("/v1/plugins/counter/sessions/s/turns"))
        .bearer_auth(TOKEN_A)
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(key).unwrap(),
        )
        .body(input.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let replay = response
        .headers()
        .get("idempotent-replay")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap();
    (status, replay, body)
}

#[tokio::test]
async fn the_idempotency_key_header_replays_the_first_answer() {
    let s = Server::start(&config());
    let (status, replay, body) = keyed_turn(&s, b"order-1", "add one").await;
    assert_eq!((status, replay), (StatusCode::OK, None), "{body}");
    assert_eq!(body["output"], "1");
    let (status, replay, body) = keyed_turn(&s, b"order-1", "add one").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(replay.as_deref(), Some("true"));
    assert_eq!(body["output"], "1");

    let (status, _, body) = keyed_turn(&s, b"order-1", "add two").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch")
    );
    for bad in [&b"caf\xc3\xa9"[..], &[b'k'; 256][..]] {
        let (status, _, body) = keyed_turn(&s, bad, "add one").await;
        assert_eq!(
            (status, kind(&body)),
            (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            "{body}"
        );
    }
    // Only the first request ran the plugin.
    let (status, replay, body) = keyed_turn(&s, b"order-2", "add one").await;
    assert_eq!((status, replay), (StatusCode::OK, None));
    assert_eq!(body["output"], "2");

    // Replays are counted apart.
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"agent_host_turns_total{plugin="counter",outcome="replayed"} 1"#),
        "{metrics}"
    );
}

#[test]
fn run_with_an_idempotency_key_runs_the_plugin_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let run = |key: &str, input: &str| {
        Command::new(env!("CARGO_BIN_EXE_agent-host"))
            .args(["run", plugins::COUNTER, "--session", "s", "--input", input])
            .args(["--idempotency-key", key, "--no-cache", "--state-file"])
            .arg(&state)
            .env_remove("REDIS_URL")
            .output()
            .unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let first = run("k", "add one");
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout), "1\n");
    let again = run("k", "add one");
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), "1\n");
    assert!(
        text(&again.stderr).contains("stored answer"),
        "{}",
        text(&again.stderr)
    );
    let other = run("k", "add two");
    assert!(!other.status.success());
    assert!(
        text(&other.stderr).contains("idempotency key was used with another input"),
        "{}",
        text(&other.stderr)
    );
    assert_eq!(text(&run("k2", "add one").stdout), "2\n");
}
