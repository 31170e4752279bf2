//! Kept versions as operators use them: the HTTP routes of `agent-host serve` and
//! `agent-host sessions ... versions|rollback|fork`.

mod support;

use std::process::Command;

use agent_host_tests::plugins;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use support::{Server, TOKEN_A, call, get, kind, turn};

fn config() -> String {
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
keep_versions = 5

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["chat"]
"#,
        chat = plugins::CHAT_MEMORY,
    )
}

async fn post(s: &Server, path: &str, body: &str) -> (StatusCode, Value) {
    call(Method::POST, s.url(path), Some(TOKEN_A), Some(body)).await
}

fn numbers(body: &Value) -> Vec<u64> {
    body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn versions_rollback_and_fork_over_http_and_the_cli() {
    let s = Server::start(&config());
    for input in ["first", "second", "third"] {
        let (status, body) = turn(&s, TOKEN_A, "chat", "alice", input).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let base = "/v1/plugins/chat/sessions/alice";
    let (status, body) = get(&s, Some(TOKEN_A), &format!("{base}/versions")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(numbers(&body), [3, 2, 1]);
    // Each chat turn appends two items: version 2 was written with 4.
    assert_eq!(body["versions"][1]["history_len"], 4);
    assert!(body["versions"][1]["bytes"].as_u64().unwrap() > 0);
    assert!(body["versions"][1]["written_at_ms"].as_u64().unwrap() > 0);

    let (status, two) = get(&s, Some(TOKEN_A), &format!("{base}/versions/2")).await;
    assert_eq!(status, StatusCode::OK, "{two}");
    assert_eq!(two["version"], 2);
    assert!(
        two["state"].as_str().unwrap().contains("\"turns\":2"),
        "{two}"
    );
    let (status, body) = get(&s, Some(TOKEN_A), &format!("{base}/versions/9")).await;
    assert_eq!((status, kind(&body)), (StatusCode::NOT_FOUND, "no_version"));

    let (status, body) = post(&s, &format!("{base}/rollback"), r#"{"to": 1}"#).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"version": 4})));
    let (_, body) = get(&s, Some(TOKEN_A), &format!("{base}/versions")).await;
    assert_eq!(numbers(&body), [4, 3, 2, 1]);
    let (status, body) = post(&s, &format!("{base}/rollback"), r#"{"to": "one"}"#).await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::BAD_REQUEST, "invalid_argument")
    );
    let (status, body) = post(&s, &format!("{base}/rollback"), r#"{"to": 42}"#).await;
    assert_eq!((status, kind(&body)), (StatusCode::NOT_FOUND, "no_version"));

    let fork = r#"{"to": "bob", "from_version": 2}"#;
    let (status, body) = post(&s, &format!("{base}/fork"), fork).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"session": "bob", "version": 1, "history_len": 4})
    );
    let (_, bob) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/bob").await;
    assert_eq!(
        (bob["version"].clone(), bob["history_len"].clone()),
        (json!(1), json!(4))
    );
    assert_eq!(bob["state"], two["state"]);
    let (status, body) = post(&s, &format!("{base}/fork"), fork).await;
    assert_eq!((status, kind(&body)), (StatusCode::CONFLICT, "conflict"));
    // Another tenant's token sees nothing of it.
    let (status, _) = get(
        &s,
        Some("not-a-token-at-all-xxxxxxxx"),
        &format!("{base}/versions"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The CLI on the same file, once the server is gone.
    let dir = s.stop();
    let config = dir.path().join("agent-host.toml");
    let sessions = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_agent-host"))
            .args(["sessions", "--plugin", "chat", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, out, err) = sessions(&["versions", "alice"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(numbers(&listed), [4, 3, 2, 1]);
    let (ok, out, err) = sessions(&["versions", "alice", "--version", "2"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    // The CLI shows the JSON document as JSON; the HTTP API (and --raw) as its
    // stored text.
    let stored = two["state"].as_str().unwrap();
    assert_eq!(
        shown["state"],
        serde_json::from_str::<Value>(stored).unwrap()
    );
    let (ok, out, err) = sessions(&["versions", "alice", "--version", "2", "--raw"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["state"], two["state"]);
    let (ok, out, err) = sessions(&["rollback", "alice", "--to", "3"]);
    assert!(ok, "{err}");
    assert!(out.contains("version 5"), "{out}");
    let (ok, out, err) = sessions(&["fork", "alice", "--from-version", "1", "--to", "carol"]);
    assert!(ok, "{err}");
    assert!(out.contains("into carol (2 history items)"), "{out}");
    let (ok, _, err) = sessions(&["fork", "alice", "--from-version", "1", "--to", "carol"]);
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    let (ok, _, err) = sessions(&["versions", "alice", "--version", "77"]);
    assert!(!ok);
    assert!(err.contains("no version 77"), "{err}");
}
