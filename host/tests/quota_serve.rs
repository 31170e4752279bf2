//! Storage quotas as operators and tenants see them: a tenant at its quota gets 429
//! while another tenant on the same nearly full Redis keeps working; usage over
//! HTTP, in `/metrics` and from `agent-host sessions ... usage`.

mod support;

use std::process::Command;

use agent_host_tests::{RedisServer, plugins};
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Server, TOKEN_A, TOKEN_B, get, kind, turn};

const QUOTA: u64 = 5 << 20;

fn config(redis: &str) -> String {
    format!(
        r#"
[store]
url = "{redis}"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "a"
wasm = "{probe}"
prefix = "tenant-a"
quota = {{ sessions = 1000, bytes = "5MiB" }}

[[plugin]]
id = "b"
wasm = "{probe}"
prefix = "tenant-b"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["a"]

[[token]]
tenant = "b"
secret = "{TOKEN_B}"
plugins = ["b"]
"#,
        probe = plugins::PROBE,
    )
}

fn save_big(session: &str, size: usize) -> String {
    json!([{"op": "save-big", "session": session, "size": size}]).to_string()
}

#[tokio::test]
async fn a_tenant_at_its_quota_gets_429_while_another_keeps_working() {
    // 8 MB for everything: without a quota, tenant a alone would fill it.
    let redis =
        RedisServer::start_with(&["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"]);
    let s = Server::start(&config(&redis.url()));
    let mut saved = 0;
    let refusal = loop {
        let (status, body) = turn(
            &s,
            TOKEN_A,
            "a",
            "probe",
            &save_big(&format!("s{saved}"), 200_000),
        )
        .await;
        match status {
            StatusCode::OK => saved += 1,
            _ => break (status, body),
        }
        assert!(saved < 40, "tenant a was never refused");
    };
    assert_eq!(refusal.0, StatusCode::TOO_MANY_REQUESTS, "{}", refusal.1);
    assert_eq!(kind(&refusal.1), "quota_exceeded", "{}", refusal.1);
    let message = refusal.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("{QUOTA} bytes")), "{message}");
    assert!(
        (24..=26).contains(&saved),
        "{saved} documents of 200 kB in 5 MiB"
    );
    // Tenant b, on the same Redis, keeps working, and tenant a can still read.
    for i in 0..5 {
        let (status, body) = turn(
            &s,
            TOKEN_B,
            "b",
            "probe",
            &save_big(&format!("s{i}"), 50_000),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/a/sessions/s0").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // What tenant a keeps, over HTTP (its own plugin only).
    let (status, usage) = get(&s, Some(TOKEN_A), "/v1/plugins/a/usage").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["sessions"], json!(saved));
    let bytes = usage["bytes"].as_u64().unwrap();
    assert!(bytes <= QUOTA && bytes > QUOTA - 200_000, "{usage}");
    assert_eq!(usage["quota"], json!({"sessions": 1000, "bytes": QUOTA}));
    let (status, body) = get(&s, Some(TOKEN_B), "/v1/plugins/a/usage").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(&s, None, "/v1/plugins/a/usage").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // In /metrics.
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| -> Option<u64> {
        let prefix = format!("{name}{{plugin=\"a\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
    };
    assert_eq!(
        gauge("agent_host_plugin_stored_bytes"),
        Some(bytes),
        "{metrics}"
    );
    assert_eq!(
        gauge("agent_host_plugin_sessions"),
        Some(saved),
        "{metrics}"
    );

    // From the CLI, on the same store.
    let dir = s.dir.as_ref().unwrap().path();
    let out = Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["sessions", "--plugin", "a", "usage", "--config"])
        .arg(dir.join("agent-host.toml"))
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli, usage);

    // Deleting makes room again.
    let (status, body) = support::call(
        reqwest::Method::DELETE,
        s.url("/v1/plugins/a/sessions/s0"),
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = turn(&s, TOKEN_A, "a", "probe", &save_big("again", 150_000)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn a_bad_quota_stops_the_start_with_its_place() {
    let text = config("redis://127.0.0.1:1").replace(
        r#"quota = { sessions = 1000, bytes = "5MiB" }"#,
        r#"quota = { sessions = 1000, bytes = "lots" }"#,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent-host.toml"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["sessions", "--plugin", "a", "usage", "--config"])
        .arg(dir.path().join("agent-host.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agent-host.toml:12:"), "{stderr}");
    assert!(stderr.contains("\"lots\""), "{stderr}");
}
