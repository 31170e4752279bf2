//! `agent-host serve` as an operator runs it: the real binary on a free port, driven
//! over HTTP by a real client, on the embedded store and on a real Redis.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use agent_host_tests::{RedisServer, eventually, plugins};
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Server, TOKEN_A, TOKEN_ADMIN, TOKEN_B, call, get, kind, turn};

/// A config with three plugins and three tokens (tenant A: chat and wreck, tenant
/// B: notes, the operator: all), on Redis at `redis_url` or else the embedded store.
fn config(redis_url: Option<&str>) -> String {
    let store = match redis_url {
        Some(url) => format!("url = \"{url}\"\nop_timeout = \"1s\""),
        None => "path = \"data/state.redb\"".to_string(),
    };
    format!(
        r#"
[store]
{store}

[server]
listen = "127.0.0.1:0"
max_input = "4KiB"
shutdown_grace = "20s"

[[plugin]]
id = "chat"
wasm = "{chat}"
prefix = "tenant-a"
default_ttl = "1h"

[[plugin]]
id = "wreck"
wasm = "{wreck}"
prefix = "tenant-a"

[[plugin]]
id = "notes"
wasm = "{notes}"
prefix = "tenant-b"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["chat", "wreck"]

[[token]]
tenant = "b"
secret_env = "TEST_TOKEN_B"
plugins = ["notes"]

[[token]]
tenant = "operator"
secret = "{TOKEN_ADMIN}"
plugins = ["*"]
"#,
        chat = plugins::CHAT_MEMORY,
        wreck = plugins::WRECK,
        notes = plugins::NOTES,
    )
}

#[tokio::test]
async fn every_endpoint_with_tenant_auth_on_the_embedded_store() {
    let s = Server::start(&config(None));

    let (status, body) = turn(&s, TOKEN_A, "chat", "alice", "I like sourdough bread").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["output"].as_str().unwrap().starts_with("Turn 1."),
        "{body}"
    );
    let (status, body) = turn(&s, TOKEN_A, "chat", "alice", "and rye").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["output"].as_str().unwrap().contains("sourdough"),
        "{body}"
    );

    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"], "alice");
    assert_eq!(body["version"], 2);
    assert_eq!(body["history_len"], 4);
    assert!(
        body["state"].as_str().unwrap().contains("\"turns\":2"),
        "{body}"
    );
    let ttl = body["ttl_ms"].as_u64().unwrap();
    assert!((3_500_000..=3_600_000).contains(&ttl), "{ttl}");

    turn(&s, TOKEN_A, "chat", "bob", "hi").await;
    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"sessions": ["alice"], "next": "alice"}));
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions?after=alice").await;
    assert_eq!(body, json!({"sessions": ["bob"], "next": null}));

    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins").await;
    assert_eq!(body, json!({"plugins": ["chat", "wreck"]}));
    let (_, body) = get(&s, Some(TOKEN_ADMIN), "/v1/plugins").await;
    assert_eq!(body, json!({"plugins": ["chat", "notes", "wreck"]}));

    // Delete, then it is gone.
    let delete = |session: &str| {
        call(
            reqwest::Method::DELETE,
            s.url(&format!("/v1/plugins/chat/sessions/{session}")),
            Some(TOKEN_A),
            None,
        )
    };
    assert_eq!(delete("bob").await.0, StatusCode::NO_CONTENT);
    let (status, body) = delete("bob").await;
    assert_eq!((status, kind(&body)), (StatusCode::NOT_FOUND, "no_session"));
    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/bob").await;
    assert_eq!((status, kind(&body)), (StatusCode::NOT_FOUND, "no_session"));

    // Auth: no token, an unknown token, another tenant's plugin.
    let (status, body) = turn(&s, "", "chat", "alice", "x").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = get(&s, None, "/v1/plugins/chat/sessions").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = turn(&s, "not-a-token-at-all-xxxxxxxx", "chat", "alice", "x").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    // Another tenant's plugin is, to this token, one that does not exist: the same
    // answer as for an id no plugin has, so plugin ids cannot be probed.
    let (status, body) = turn(&s, TOKEN_B, "chat", "alice", "x").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::NOT_FOUND, "unknown_plugin")
    );
    let (status, other) = turn(&s, TOKEN_B, "no-such-plugin", "alice", "x").await;
    assert_eq!(
        (status, kind(&other)),
        (StatusCode::NOT_FOUND, "unknown_plugin")
    );
    let (status, body) = get(&s, Some(TOKEN_B), "/v1/plugins/chat/sessions/alice").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::NOT_FOUND, "unknown_plugin")
    );
    let (status, _) = turn(&s, TOKEN_B, "notes", "n", "add buy flour").await;
    assert_eq!(status, StatusCode::OK);
    // The forbidden calls changed nothing.
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/alice").await;
    assert_eq!(body["version"], 2);

    // Unknown plugin (for a token that may call anything), bad ids, too big input.
    let (status, body) = turn(&s, TOKEN_ADMIN, "nope", "alice", "x").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::NOT_FOUND, "unknown_plugin")
    );
    let (status, body) = turn(&s, TOKEN_A, "chat", "bad%01id", "x").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::BAD_REQUEST, "invalid_session")
    );
    let (status, _) = turn(&s, TOKEN_A, "chat", "alice", &"x".repeat(5000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // The plugin's own error, and a trap: stable JSON bodies, nothing written.
    let (status, body) = turn(&s, TOKEN_A, "wreck", "w", "no such mode").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "plugin_error")
    );
    let (status, body) = turn(&s, TOKEN_A, "wreck", "w2", "trap").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "trap"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("crashed")
    );
    let (status, _) = get(&s, Some(TOKEN_A), "/v1/plugins/wreck/sessions/w2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = get(&s, None, "/healthz").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "ok", "store": "ok"}))
    );
    let (status, body) = get(&s, None, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = body.as_str().unwrap();
    for line in [
        "agent_host_turns_total{plugin=\"chat\",outcome=\"ok\"} 3",
        "agent_host_turns_total{plugin=\"wreck\",outcome=\"trap\"} 1",
        "agent_host_turns_total{plugin=\"wreck\",outcome=\"plugin_error\"} 1",
        "agent_host_turn_duration_seconds_count{plugin=\"chat\"} 4",
        "agent_host_turns_total{plugin=\"chat\",outcome=\"invalid_session\"} 1",
        "agent_host_store_call_duration_seconds_count{op=\"commit\"}",
        "agent_host_instances 0",
    ] {
        assert!(metrics.contains(line), "no {line:?} in:\n{metrics}");
    }
    // JSON logs, one span per turn with plugin, session and outcome; no secrets.
    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let trap = lines
        .iter()
        .find(|l| l["message"] == "turn failed" && l["span"]["outcome"] == "trap")
        .unwrap_or_else(|| panic!("no failed turn in:\n{log}"));
    assert_eq!(trap["span"]["plugin"], "wreck");
    assert_eq!(trap["span"]["session"], "w2");
    assert!(
        trap["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["tenant"] == "a"),
        "{trap}"
    );
    for secret in [TOKEN_A, TOKEN_B, TOKEN_ADMIN] {
        assert!(!log.contains(secret), "a token is in the log");
    }

    // A restart keeps the sessions; the second start loads the compiled cache.
    let dir = s.stop();
    let s = Server::start_in(dir);
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/alice").await;
    assert_eq!(body["version"], 2, "{body}");
    let (_, body) = turn(&s, TOKEN_A, "chat", "alice", "again").await;
    assert!(
        body["output"].as_str().unwrap().starts_with("Turn 3."),
        "{body}"
    );
    assert!(
        s.log().contains(r#""compiled":0,"cached":3"#),
        "{}",
        s.log()
    );
}

#[tokio::test]
async fn on_redis_a_store_outage_is_a_503_and_passes() {
    const PASSWORD: &str = "pa55-word-of-redis";
    let mut redis = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--requirepass",
        PASSWORD,
    ]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port());
    let s = Server::start(&config(Some(&url)));
    let (status, _) = turn(&s, TOKEN_A, "chat", "alice", "hello").await;
    assert_eq!(status, StatusCode::OK);

    redis.stop();
    let (status, body) = turn(&s, TOKEN_A, "chat", "alice", "hello?").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        "{body}"
    );
    let (status, body) = get(&s, None, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Liveness does not depend on the store; readiness does, and says why.
    let (status, body) = get(&s, None, "/livez").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get(&s, None, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.starts_with("the store does not answer"), "{body}");
    assert!(!reason.contains(PASSWORD), "{body}");
    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/alice").await;
    assert_eq!(
        (status, kind(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );

    redis.restart();
    let back = eventually(Duration::from_secs(10), || async {
        get(&s, None, "/healthz").await.0 == StatusCode::OK
    })
    .await;
    assert!(back, "healthz not ok 10 s after Redis came back");
    let (status, body) = get(&s, None, "/readyz").await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("ready")),
        "{body}"
    );
    let (status, body) = turn(&s, TOKEN_A, "chat", "alice", "back again").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["output"].as_str().unwrap().starts_with("Turn 2."),
        "{body}"
    );
    assert!(
        !s.log().contains(PASSWORD),
        "the Redis password is in the log"
    );

    // A restart of the server keeps the sessions in Redis.
    let dir = s.stop();
    let s = Server::start_in(dir);
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions/alice").await;
    assert_eq!(body["version"], 2, "{body}");
}

#[tokio::test]
async fn shutdown_finishes_the_turns_in_flight() {
    let s = Server::start(&config(None));
    let base = s.base.clone();
    let slow = tokio::spawn(async move {
        call(
            reqwest::Method::POST,
            format!("{base}/v1/plugins/wreck/sessions/slow/turns"),
            Some(TOKEN_A),
            Some("slow 1500"),
        )
        .await
    });
    // Wait until the turn holds an instance, then ask the server to stop.
    let running = eventually(Duration::from_secs(10), || async {
        let (_, body) = get(&s, None, "/metrics").await;
        body.as_str()
            .unwrap_or_default()
            .contains("agent_host_instances 1")
    })
    .await;
    assert!(running, "the slow turn never started");
    s.terminate();

    let (status, body) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["output"], "slept 1500 ms");
    // The server stops by itself once the turn is done, and accepts nothing new.
    let dir = s.exited();
    let s = Server::start_in(dir);
    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/wreck/sessions/slow").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the slow turn's writes are committed: {body}"
    );
}

#[tokio::test]
async fn the_sample_config_serves_a_turn_with_redis_url_overriding_its_store() {
    let redis = RedisServer::start();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/agent-host.toml");
    let url = redis.url();
    let s = Server::spawn(
        tempfile::tempdir().unwrap(),
        std::path::Path::new(sample),
        &[
            ("AGENT_HOST_TOKEN_A", TOKEN_A),
            ("AGENT_HOST_TOKEN_B", TOKEN_B),
            ("REDIS_URL", &url),
        ],
        &["--listen", "127.0.0.1:0"],
    );
    let (status, body) = turn(&s, TOKEN_A, "chat", "alice", "hello sourdough").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["output"].as_str().unwrap().starts_with("Turn 1."),
        "{body}"
    );
    let (status, _) = turn(&s, TOKEN_B, "chat", "alice", "hello").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The state went to the Redis of REDIS_URL, under tenant A's prefix.
    let mut conn = redis.conn().await;
    let version: Option<u64> = redis::cmd("HGET")
        .arg("agent:tenant-a:s:{alice}:state")
        .arg("ver")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, Some(1));
}

#[test]
fn a_bad_config_is_refused_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("agent-host.toml");
    let text = config(None).replace("default_ttl = \"1h\"", "default_ttl = \"an hour\"");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("TEST_TOKEN_B", TOKEN_B)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:14:15", path.display())) && err.contains("not a duration"),
        "{err}"
    );
    assert!(!err.contains(TOKEN_A));
}
