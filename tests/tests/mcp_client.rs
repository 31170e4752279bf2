//! The SDKs' MCP clients (Rust `agent_sdk::mcp`, Python `agent_sdk.mcp`,
//! JavaScript `agent-sdk/mcp`) against an MCP server written with the official
//! Python SDK (`tests/servers/mcp_server.py`, Streamable HTTP with sessions), each
//! through its probe plugin (`tests/plugins/{mcp-probe,py-mcp-probe,js-mcp-probe}`)
//! and the host's outbound HTTP: the server's origin allowed with a secret header
//! the host adds. Per language: the tools listed (page by page), a call answered
//! as an event stream with a notification before its result, a tool error, a
//! JSON-RPC error, the headers the server saw (the host's key, the session, the
//! protocol version), the same against a server answering plain JSON, and a
//! plugin without the origin refused (`cargo test -p agent-host-tests --test
//! mcp_client`; needs target/mcp-venv, see tests/setup.sh).

use agent_host::{AllowedOrigin, Host, Limits, PluginConfig, SecretHeader};
use agent_host_tests::mcp_server::McpServer;
use agent_host_tests::{Backend, load, plugins};
use serde_json::Value;

const SECRET: &str = "mcp-test-the-plugin-never-holds-this";

/// `wasm` as plugin `id`, allowed to reach `server` (with the host's key), or
/// nothing when `server` is None.
async fn probe(host: &Host, id: &str, wasm: &str, server: Option<&McpServer>) {
    let mut config = PluginConfig::new(id, id).with_limits(Limits::default());
    if let Some(server) = server {
        let key = SecretHeader::new("Authorization", &format!("Bearer {SECRET}")).unwrap();
        config = config.with_origin(
            AllowedOrigin::parse(&server.origin())
                .unwrap()
                .with_secret_header(key)
                .unwrap(),
        );
    }
    load(host, config, wasm).await;
}

async fn turn(host: &Host, id: &str, input: &str) -> String {
    host.run_turn(id, "s", input)
        .await
        .unwrap_or_else(|e| panic!("{id}: the turn {input:?} failed: {e}"))
}

async fn scenario(wasm: &str) {
    let backend = Backend::embedded();
    let host = backend.cached_host();
    let streams = McpServer::start();
    let json = McpServer::json();
    probe(&host, "streams", wasm, Some(&streams)).await;
    probe(&host, "json", wasm, Some(&json)).await;
    probe(&host, "denied", wasm, None).await;

    for (id, server) in [("streams", &streams), ("json", &json)] {
        let url = server.url();
        // Four pages of one tool each (nextCursor followed).
        let tools: Value = serde_json::from_str(&turn(&host, id, &format!("{url} tools")).await)
            .expect("tools answers JSON");
        assert_eq!(
            tools,
            serde_json::json!(["add", "fail", "refuse", "headers"]),
            "{id}"
        );
        // On the event stream, a log notification comes before the result.
        let sum = turn(&host, id, &format!(r#"{url} call add {{"a": 2, "b": 3}}"#)).await;
        assert_eq!(sum, "5", "{id}");
        // isError: the tool's text, as an error.
        let failed = turn(&host, id, &format!("{url} call fail {{}}")).await;
        assert!(
            failed.starts_with("error ") && failed.ends_with("the tool failed on purpose"),
            "{id}: {failed}"
        );
        let unknown = turn(&host, id, &format!("{url} call nope {{}}")).await;
        assert_eq!(unknown, "error Unknown tool: nope", "{id}");
        // A JSON-RPC error.
        let refused = turn(&host, id, &format!("{url} call refuse {{}}")).await;
        assert_eq!(
            refused,
            "error the MCP server answered tools/call with error -32001: refused on purpose",
            "{id}"
        );
        // The host's key, the session of initialize and the agreed version.
        let seen: Value =
            serde_json::from_str(&turn(&host, id, &format!("{url} call headers {{}}")).await)
                .expect("headers answers JSON");
        assert_eq!(seen["authorization"], format!("Bearer {SECRET}"), "{id}");
        assert!(
            seen["mcp-session-id"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{id}: {seen}"
        );
        assert_eq!(seen["mcp-protocol-version"], "2025-11-25", "{id}");
    }

    // Deny by default: no origin, no connection.
    let denied = turn(&host, "denied", &format!("{} tools", streams.url())).await;
    assert!(denied.starts_with("error "), "{denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_lists_and_calls_tools() {
    scenario(plugins::MCP_PROBE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_lists_and_calls_tools() {
    scenario(plugins::PY_MCP_PROBE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_sdk_lists_and_calls_tools() {
    scenario(plugins::JS_MCP_PROBE).await;
}
