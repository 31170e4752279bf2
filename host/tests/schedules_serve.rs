//! Scheduled turns through `agent-host serve`: two servers on one Redis, schedules
//! made over HTTP and by a plugin's turn, each run once by one of them, listed and
//! cancelled over HTTP and with `agent-host sessions ... schedules`, counted in
//! `/metrics`.

mod support;

use std::process::Command;
use std::time::Duration;

use agent_host_tests::{RedisServer, eventually, plugins};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use support::{Server, TOKEN_A, call, get, kind, turn};

fn config(redis: &RedisServer) -> String {
    format!(
        r#"
[store]
url = "{url}"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "remind"
wasm = "{wasm}"
prefix = "tenant-a"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["remind"]
"#,
        url = redis.url(),
        wasm = plugins::REMIND,
    )
}

const BASE: &str = "/v1/plugins/remind/sessions/alice/schedules";

async fn post(s: &Server, body: &str) -> (StatusCode, Value) {
    call(Method::POST, s.url(BASE), Some(TOKEN_A), Some(body)).await
}

/// The schedules of alice, as `GET` lists them.
async fn listed(s: &Server) -> Vec<Value> {
    let (status, body) = get(s, Some(TOKEN_A), BASE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["schedules"].as_array().unwrap().clone()
}

/// The value of the counter `line` (`name{labels}`) in `/metrics`, 0 if absent.
async fn counter(s: &Server, line: &str) -> u64 {
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_over_http_run_once_across_two_servers() {
    let redis = RedisServer::start();
    let servers = [
        Server::start(&config(&redis)),
        Server::start(&config(&redis)),
    ];
    let [one, two] = &servers;

    let (status, body) = post(one, r#"{"input": "reminder: http", "delay": "1s"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let by_http = body["id"].as_str().unwrap().to_owned();
    assert!(body["at"].as_u64().unwrap() > 0);
    let (status, body) = turn(two, TOKEN_A, "remind", "alice", "remind 1 turn").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let by_turn = body["output"].as_str().unwrap()["scheduled ".len()..].to_owned();
    let (status, body) = post(two, r#"{"input": "never", "delay": "1h"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cancelled = body["id"].as_str().unwrap().to_owned();

    // Bad requests are refused with what was wrong.
    for bad in [
        r#"{"input": "x"}"#,
        r#"{"input": "x", "delay": "soon"}"#,
        r#"{"input": "x", "delay": "0s"}"#,
        r#"{"input": "x", "delay": "1s", "at": 5}"#,
        r#"{"input": "x", "delay": "1s", "extra": 1}"#,
        "not json",
    ] {
        let (status, body) = post(one, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, _) = call(Method::POST, one.url(BASE), None, Some("{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Cancel: once, then there is nothing to cancel.
    let path = format!("{BASE}/{cancelled}");
    let (status, body) = call(Method::DELETE, one.url(&path), Some(TOKEN_A), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = call(Method::DELETE, two.url(&path), Some(TOKEN_A), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(kind(&body), "no_schedule");

    // Both others run, once each, on one server or the other.
    let done = eventually(Duration::from_secs(20), || async {
        let found = listed(one).await;
        found.len() == 2 && found.iter().all(|s| s["state"] == "done")
    })
    .await;
    assert!(done, "{:?}", listed(one).await);
    let found = listed(two).await;
    let answer = |id: &str| {
        found.iter().find(|s| s["id"] == id).unwrap()["answer"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(answer(&by_http), "got reminder: http");
    assert_eq!(answer(&by_turn), "got reminder: turn");
    let (_, session) = get(one, Some(TOKEN_A), "/v1/plugins/remind/sessions/alice").await;
    assert_eq!(session["history_len"], 3, "{session}");

    let runs = r#"agent_host_scheduled_runs_total{plugin="remind",outcome="done"}"#;
    let total = counter(one, runs).await + counter(two, runs).await;
    assert_eq!(total, 2);

    // The CLI lists them from the store.
    let dir = one.dir.as_ref().unwrap().path();
    let out = Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["sessions", "--plugin", "remind", "--config"])
        .arg(dir.join("agent-host.toml"))
        .args(["schedules", "alice"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed.len(), 2);
    assert!(printed.iter().all(|s| s["state"] == "done"), "{printed:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["sessions", "--plugin", "remind", "--config"])
        .arg(dir.join("agent-host.toml"))
        .args(["schedules", "alice", "--add", "later", "--delay", "1h"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listed(two).await.len(), 3);
}
