//! `agent-host serve --workers N`: N single-threaded processes on one address
//! (`SO_REUSEPORT`), started one after another, stopped together: on SIGTERM the
//! turns in flight finish; if the supervisor is killed outright, no worker
//! outlives it; the embedded store, one process's file, is refused.

mod support;

use std::time::Duration;

use agent_host_tests::{RedisServer, eventually, plugins};
use reqwest::StatusCode;
use support::gate::Gate;
use support::{Server, TOKEN_A};

fn config(gate: &Gate, store: &str) -> String {
    format!(
        r#"
[store]
{store}

[server]
listen = "127.0.0.1:0"
workers = 2

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

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The names of the threads of process `pid`.
fn threads(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_address_and_finish_their_turns_on_sigterm() {
    let redis = RedisServer::start();
    let gate = Gate::start().await;
    let store = format!("url = \"{}\"", redis.url());
    let s = Server::start(&config(&gate, &store));
    let workers = children(s.child.id());
    assert_eq!(
        workers.len(),
        2,
        "two worker processes: {workers:?}\n{}",
        s.log()
    );
    // Single-threaded runtimes: turns run on the main thread; no runtime worker
    // threads (besides it: the epoch ticker and the blocking-io pool).
    for worker in &workers {
        let names = threads(*worker);
        assert!(!names.is_empty(), "worker {worker} has no threads");
        assert!(
            !names.iter().any(|n| n.starts_with("tokio-runtime")),
            "worker {worker} runs a multi-threaded runtime: {names:?}"
        );
    }
    // Each turn on a connection of its own, which the kernel gives either worker:
    // every one is answered.
    for n in 0..8 {
        let (status, body) = support::turn(&s, TOKEN_A, "llm", &format!("s{n}"), "hi").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let log = s.log();
    for n in 1..=2 {
        assert!(
            log.contains(&format!("\"worker\":{n}")),
            "worker {n} never listened:\n{log}"
        );
    }

    // A turn in flight when SIGTERM arrives is answered; then all exit cleanly.
    let held = {
        let url = s.url("/v1/plugins/llm/sessions/alice/turns");
        tokio::spawn(async move {
            support::call(reqwest::Method::POST, url, Some(TOKEN_A), Some("hold")).await
        })
    };
    gate.arrived().await;
    s.terminate();
    let asked = eventually(Duration::from_secs(10), || async {
        s.log().contains("the supervisor asks to stop")
    })
    .await;
    assert!(asked, "the workers were not asked to stop:\n{}", s.log());
    gate.release();
    let (status, body) = held.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let _ = s.exited();
    for worker in workers {
        assert!(!alive(worker), "worker {worker} outlived the server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_outlives_a_supervisor_killed_outright() {
    let redis = RedisServer::start();
    let gate = Gate::start().await;
    let store = format!("url = \"{}\"", redis.url());
    let mut s = Server::start(&config(&gate, &store));
    let workers = children(s.child.id());
    assert_eq!(workers.len(), 2, "{workers:?}");
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let gone = eventually(Duration::from_secs(10), || async {
        workers.iter().all(|w| !alive(*w))
    })
    .await;
    assert!(
        gone,
        "workers still running after their supervisor was killed"
    );
}

#[tokio::test]
async fn workers_on_the_embedded_store_are_refused_with_the_reason() {
    let gate = Gate::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(&path, config(&gate, "path = \"data/state.redb\"")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serving with 2 workers needs a store every worker shares"),
        "{stderr}"
    );
}
