//! How `agent-host serve` stops: SIGHUP (which would reload a config, were there
//! a reload) stops it as SIGTERM does, with a log line that says so, after the
//! turns in flight have finished; never by the signal's default action.

mod support;

use std::time::Duration;

use agent_host_tests::{eventually, plugins};
use reqwest::StatusCode;
use support::gate::Gate;
use support::{Server, TOKEN_A};

fn config(gate: &Gate) -> String {
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "llm"
wasm = "{wasm}"
prefix = "tenant-a"
env = {{ MODEL_URL = "{origin}/v1", MODEL = "small" }}
[[plugin.outbound]]
origin = "{origin}"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["llm"]
"#,
        wasm = plugins::LLM_CHAT,
        origin = gate.origin(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_drains_and_stops_the_server_like_sigterm() {
    let gate = Gate::start().await;
    let s = Server::start(&config(&gate));
    let held = {
        let url = s.url("/v1/plugins/llm/sessions/alice/turns");
        tokio::spawn(async move {
            support::call(reqwest::Method::POST, url, Some(TOKEN_A), Some("hold")).await
        })
    };
    gate.arrived().await;

    let status = std::process::Command::new("/usr/bin/kill")
        .arg("-HUP")
        .arg(s.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    // The log is a file: looked at until the line is there (or 10 s passed).
    let logged = eventually(Duration::from_secs(10), || async {
        s.log().contains("reload is not supported yet")
    })
    .await;
    assert!(logged, "no SIGHUP line in the log:\n{}", s.log());

    // The turn in flight finishes and is answered; then the server exits 0.
    gate.release();
    let (status, body) = held.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["output"], r#"You said "hold"."#);
    let dir = s.exited();
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let at = |text: &str| {
        lines
            .iter()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no {text:?} in:\n{log}"))
    };
    assert!(at("SIGHUP: shutting down") < at("finishing the turns in flight"));
}
