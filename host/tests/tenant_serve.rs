//! A tenant's share of `agent-host serve`: `max_concurrent_turns` of a `[[token]]`
//! bounds the turns its tenant has in flight across all its plugins (a tenant with
//! two plugins does not get two plugins' shares), and how the config file reads it.

mod support;

use std::path::Path;

use agent_host::config_file::ConfigFile;
use agent_host_tests::plugins;
use reqwest::StatusCode;
use support::gate::Gate;
use support::{Server, TOKEN_A, TOKEN_B, get, kind, turn};

/// Two llm-chat plugins of tenant a, which may run one turn at once, and tenant b
/// (no tenant limit) on the second; both plugins call `gate`.
fn config(gate: &Gate) -> String {
    let plugin = |id: &str| {
        format!(
            r#"
[[plugin]]
id = "{id}"
wasm = "{wasm}"
prefix = "tenant-a-{id}"
env = {{ MODEL_URL = "{origin}/v1", MODEL = "small" }}
[[plugin.outbound]]
origin = "{origin}"
"#,
            wasm = plugins::LLM_CHAT,
            origin = gate.origin(),
        )
    };
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"
{one}{two}
[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["one", "two"]
max_concurrent_turns = 1

[[token]]
tenant = "b"
secret = "{TOKEN_B}"
plugins = ["two"]
"#,
        one = plugin("one"),
        two = plugin("two"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_limit_gets_busy_on_every_plugin_and_others_do_not() {
    let gate = Gate::start().await;
    let s = Server::start(&config(&gate));

    // Tenant a's turn on plugin one waits for its model, held by the test.
    let held = {
        let url = s.url("/v1/plugins/one/sessions/alice/turns");
        tokio::spawn(async move {
            support::call(reqwest::Method::POST, url, Some(TOKEN_A), Some("hold")).await
        })
    };
    gate.arrived().await;

    // Meanwhile its turn on the other plugin is refused at once...
    let refused = reqwest::Client::new()
        .post(s.url("/v1/plugins/two/sessions/alice/turns"))
        .bearer_auth(TOKEN_A)
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(kind(&body), "busy", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("tenant \"a\""), "{message}");
    // ...while another tenant's turn on that plugin runs.
    let (status, body) = turn(&s, TOKEN_B, "two", "bob", "hi").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    gate.release();
    let (status, body) = held.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["output"], r#"You said "hold"."#);
    // Its turn is over before its answer is sent: the tenant may run one again.
    let (status, body) = turn(&s, TOKEN_A, "two", "alice", "hi").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, session) = get(&s, Some(TOKEN_A), "/v1/plugins/two/sessions/alice").await;
    assert_eq!(session["history_len"], 2, "the refused turn wrote nothing");

    let (_, metrics) = get(&s, None, "/metrics").await;
    let metrics = metrics.as_str().unwrap();
    let line = "agent_host_turns_total{plugin=\"two\",outcome=\"busy\"} 1";
    assert!(metrics.contains(line), "no {line:?} in:\n{metrics}");
}

fn parse(text: &str) -> Result<ConfigFile, String> {
    let path = Path::new("/etc/agent-host/agent-host.toml");
    ConfigFile::parse(path, text, None, |_| None).map_err(|e| e.to_string())
}

fn token_config(token_lines: &str) -> String {
    format!(
        r#"[[plugin]]
id = "p"
wasm = "{probe}"
prefix = "tenant-a"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["p"]
{token_lines}
"#,
        probe = plugins::PROBE,
    )
}

#[test]
fn max_concurrent_turns_of_a_token_is_read_and_checked_with_its_place() {
    let file = parse(&token_config("max_concurrent_turns = 3")).unwrap();
    assert_eq!(file.tokens[0].max_concurrent_turns, Some(3));
    let file = parse(&token_config("")).unwrap();
    assert_eq!(
        file.tokens[0].max_concurrent_turns, None,
        "default: no limit"
    );

    // Line 10 is the token's last line.
    let error = parse(&token_config("max_concurrent_turns = 0")).unwrap_err();
    assert!(
        error.contains("/etc/agent-host/agent-host.toml:10:"),
        "{error}"
    );
    assert!(error.contains("at least 1"), "{error}");
    let error = parse(&token_config("max_concurrent_turns = -2")).unwrap_err();
    assert!(
        error.contains("/etc/agent-host/agent-host.toml:10:"),
        "{error}"
    );
    let error = parse(&token_config("max_turns = 2")).unwrap_err();
    assert!(
        error.contains("/etc/agent-host/agent-host.toml:10:"),
        "{error}"
    );
    assert!(error.contains("max_turns"), "{error}");
    assert!(!error.contains(TOKEN_A), "a secret in an error: {error}");
}
