//! Reloading `agent-host serve`'s config without a restart, on Redis and on the
//! embedded store: turns run the whole time, some held in flight across every
//! reload. A plugin added, one changed (config, then component file), one
//! removed, a token added; a broken file and a broken component change nothing;
//! SIGHUP reloads as `POST /admin/reload` does. No turn fails because of a
//! reload, and each turn ran on one version: the model named in its answer is
//! the one its plugin's config had when the turn started.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use agent_host_tests::{RedisServer, eventually, plugins};
use reqwest::StatusCode;
use serde_json::Value;
use support::gate::Gate;
use support::{Server, TOKEN_A, TOKEN_B, call, get, kind, turn};

const ADMIN: &str = "the-operators-admin-token-0123";

/// One version of the config: `model` is llm's model (named in its answers),
/// `counter` adds the counter plugin, `token_b` adds tenant b's token.
struct Version<'a> {
    model: &'a str,
    counter: bool,
    token_b: bool,
    extra: &'a str,
}

fn config(gate: &Gate, store: &str, v: &Version) -> String {
    let counter = if v.counter {
        format!(
            "[[plugin]]\nid = \"counter\"\nwasm = \"{}\"\nprefix = \"tenant-a\"\n",
            plugins::COUNTER
        )
    } else {
        String::new()
    };
    let token_b = if v.token_b {
        // Read from a file at each load: a token added by a reload.
        "[[token]]\ntenant = \"b\"\nsecret_file = \"token-b.secret\"\nplugins = [\"llm\"]\n"
            .to_string()
    } else {
        String::new()
    };
    format!(
        r#"
[store]
{store}

[server]
listen = "127.0.0.1:0"
{extra}

[[plugin]]
id = "llm"
wasm = "llm.wasm"
prefix = "tenant-a"
env = {{ MODEL_URL = "{origin}/v1", MODEL = "{model}" }}
[[plugin.outbound]]
origin = "{origin}"

{counter}

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["*"]

{token_b}

[[admin]]
name = "ops"
secret_env = "TEST_ADMIN_TOKEN"
"#,
        origin = gate.origin(),
        model = v.model,
        extra = v.extra,
    )
}

/// The component's bytes with a custom section added: another file (another
/// digest) with the same code.
fn touched(wasm: &[u8]) -> Vec<u8> {
    let name = b"reload-test";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(b"v3");
    let mut out = wasm.to_vec();
    out.push(0); // a custom section
    out.push(content.len() as u8);
    out.extend_from_slice(&content);
    out
}

async fn reload(s: &Server) -> (StatusCode, Value) {
    call(
        reqwest::Method::POST,
        s.url("/admin/reload"),
        Some(ADMIN),
        None,
    )
    .await
}

async fn admin_config(s: &Server) -> Value {
    let (status, body) = get(s, Some(ADMIN), "/admin/config").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn digest_of(config: &Value, id: &str) -> Option<String> {
    config["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)
        .and_then(|p| p["digest"].as_str())
        .map(str::to_string)
}

/// A new turn of llm answers 200 from the config whose model is `model`.
async fn llm_runs(s: &Server, session: &str, model: &str) {
    let (status, body) = turn(s, TOKEN_A, "llm", session, "x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(version(&body["output"]), model, "{body}");
}

/// The model named in an llm answer: `You said "x". [v2]` is "v2".
fn version(output: &Value) -> String {
    let text = output.as_str().unwrap_or_default();
    let start = text.rfind('[').map_or(text.len(), |i| i + 1);
    text[start..].trim_end_matches(']').to_string()
}

async fn reload_under_load(store: &str) {
    let gate = Gate::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    let write = |text: String| std::fs::write(&path, text).unwrap();
    let llm = std::fs::read(plugins::LLM_CHAT).unwrap();
    std::fs::write(dir.path().join("llm.wasm"), &llm).unwrap();
    let v1 = Version {
        model: "v1",
        counter: false,
        token_b: false,
        extra: "",
    };
    write(config(&gate, store, &v1));
    let s = Server::spawn(dir, &path, &[("TEST_ADMIN_TOKEN", ADMIN)], &[]);

    // Turns held in flight on v1 across every reload.
    let held: Vec<_> = (0..3)
        .map(|i| {
            let url = s.url(&format!("/v1/plugins/llm/sessions/held-{i}/turns"));
            tokio::spawn(async move {
                support::call(reqwest::Method::POST, url, Some(TOKEN_A), Some("hold")).await
            })
        })
        .collect();
    for _ in 0..3 {
        gate.arrived().await;
    }
    // And turns one after another the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, done) = (stop.clone(), done.clone());
        let url = s.url("");
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let url = format!("{url}/v1/plugins/llm/sessions/load-{n}/turns");
                let answer =
                    support::call(reqwest::Method::POST, url, Some(TOKEN_A), Some("go")).await;
                answers.push(answer);
                done.fetch_add(1, Ordering::SeqCst);
            }
            answers
        })
    };
    let turns_done = |n: usize| {
        let done = done.clone();
        async move {
            eventually(Duration::from_secs(30), || async {
                done.load(Ordering::SeqCst) >= n
            })
            .await
        }
    };
    assert!(turns_done(3).await);

    // Not the operator: 401, whoever the caller.
    for token in [None, Some(TOKEN_A)] {
        let (status, body) = call(reqwest::Method::POST, s.url("/admin/reload"), token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, _) = get(&s, Some(ADMIN), "/v1/plugins").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an admin token runs no turn"
    );
    let (status, _) = turn(&s, TOKEN_B, "llm", "b", "hi").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token b yet");

    // v2: llm's config changes, counter is added, token b too (its secret in a
    // file written now, after the start).
    std::fs::write(
        path.with_file_name("token-b.secret"),
        format!("{TOKEN_B}\n"),
    )
    .unwrap();
    let before = admin_config(&s).await;
    let llm_digest = digest_of(&before, "llm").expect("llm is listed");
    write(config(
        &gate,
        store,
        &Version {
            model: "v2",
            counter: true,
            token_b: true,
            extra: "",
        },
    ));
    let (status, body) = reload(&s).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["report"]["added"],
        serde_json::json!(["counter"]),
        "{body}"
    );
    assert_eq!(
        body["report"]["changed"],
        serde_json::json!(["llm"]),
        "{body}"
    );
    llm_runs(&s, "after-v2", "v2").await;
    let (status, body) = turn(&s, TOKEN_A, "counter", "c", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = turn(&s, TOKEN_B, "llm", "b", "hi").await;
    assert_eq!(status, StatusCode::OK, "token b, added: {body}");
    let after = admin_config(&s).await;
    assert_eq!(
        digest_of(&after, "llm"),
        Some(llm_digest.clone()),
        "same component file"
    );
    assert!(turns_done(done.load(Ordering::SeqCst) + 2).await);

    // A file that does not parse, then a component that does not compile: 400,
    // every problem named, and nothing changed.
    std::fs::write(
        path.with_file_name("agent-host.toml"),
        "[server]\nlisten = 12\n",
    )
    .unwrap();
    let (status, body) = reload(&s).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(kind(&body), "invalid_config");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("agent-host.toml:2:"),
        "file:line: {message}"
    );
    write(config(
        &gate,
        store,
        &Version {
            model: "v9",
            counter: true,
            token_b: true,
            extra: "",
        },
    ));
    let broken = path.with_file_name("llm.wasm");
    std::fs::write(&broken, b"\0asm this is no component").unwrap();
    let (status, body) = reload(&s).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("plugin \"llm\""), "{message}");
    assert!(message.contains("agent-host.toml:"), "file:line: {message}");
    llm_runs(&s, "after-broken", "v2").await;

    // v3 by SIGHUP: llm's component file changes, counter is removed.
    std::fs::write(&broken, touched(&llm)).unwrap();
    write(config(
        &gate,
        store,
        &Version {
            model: "v3",
            counter: false,
            token_b: true,
            extra: "",
        },
    ));
    let hup = std::process::Command::new("/usr/bin/kill")
        .arg("-HUP")
        .arg(s.child.id().to_string())
        .status()
        .unwrap();
    assert!(hup.success());
    let reloaded = eventually(Duration::from_secs(30), || async {
        digest_of(&admin_config(&s).await, "llm").is_some_and(|d| d != llm_digest)
    })
    .await;
    assert!(reloaded, "SIGHUP did not reload:\n{}", s.log());
    llm_runs(&s, "after-v3", "v3").await;
    let (status, body) = turn(&s, TOKEN_A, "counter", "c", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "counter removed: {body}");
    assert!(turns_done(done.load(Ordering::SeqCst) + 2).await);

    // The turns held since v1 finish on v1; the load saw v1, v2, v3 in order.
    gate.release();
    for held in held {
        let (status, body) = held.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["output"], r#"You said "hold". [v1]"#);
    }
    stop.store(true, Ordering::SeqCst);
    let answers = load.await.unwrap();
    let mut last = String::new();
    for (status, body) in &answers {
        assert_eq!(
            *status,
            StatusCode::OK,
            "a turn failed during the reloads: {body}"
        );
        let v = version(&body["output"]);
        assert!(["v1", "v2", "v3"].contains(&v.as_str()), "{body}");
        assert!(v >= last, "{v} after {last}: versions went back");
        last = v;
    }
    assert_eq!(last, "v3");

    // What /admin/config shows holds no secret.
    let shown = admin_config(&s).await.to_string();
    for secret in [TOKEN_A, TOKEN_B, ADMIN] {
        assert!(
            !shown.contains(secret),
            "a secret in /admin/config: {shown}"
        );
    }
    let log = s.log();
    assert!(log.contains("config reloaded"), "{log}");
    assert!(log.contains("config not reloaded"), "{log}");
    assert!(!log.contains(ADMIN), "the admin token in the log");
    // Then SIGTERM stops it the orderly way, as before.
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_on_the_embedded_store() {
    reload_under_load("path = \"data/state.redb\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_on_redis() {
    let redis = RedisServer::start();
    reload_under_load(&format!("url = \"{}\"", redis.url())).await;
}

/// With `start_with_failed_plugins`, a plugin that cannot load is left out and
/// reported, and the rest is served; without it, the start fails and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_plugin_stops_the_start_unless_the_config_allows_it() {
    let gate = Gate::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(
        dir.path().join("llm.wasm"),
        std::fs::read(plugins::LLM_CHAT).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"not wasm at all").unwrap();
    let broken = "[[plugin]]\nid = \"broken\"\nwasm = \"broken.wasm\"\nprefix = \"tenant-a\"\n";
    let v = Version {
        model: "v1",
        counter: false,
        token_b: false,
        extra: "",
    };
    std::fs::write(&path, format!("{}\n{broken}", config(&gate, "", &v))).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("TEST_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("plugin \"broken\""), "{stderr}");

    let v = Version {
        extra: "start_with_failed_plugins = true",
        ..v
    };
    std::fs::write(&path, format!("{}\n{broken}", config(&gate, "", &v))).unwrap();
    let s = Server::spawn(dir, &path, &[("TEST_ADMIN_TOKEN", ADMIN)], &[]);
    let (status, body) = get(&s, None, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["failed"]["broken"].is_string(), "{body}");
    assert!(admin_config(&s).await["failed"]["broken"].is_string());
    let (status, _) = turn(&s, TOKEN_A, "broken", "s", "x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    gate.release();
    let (status, body) = turn(&s, TOKEN_A, "llm", "s", "x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// With `--workers 2`, a reload asked of one worker, and SIGHUP sent to the
/// supervisor, reach every worker: soon every turn, whichever worker takes it,
/// runs the new config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_reloads() {
    let gate = Gate::start().await;
    gate.release();
    let redis = RedisServer::start();
    let store = format!("url = \"{}\"", redis.url());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(
        dir.path().join("llm.wasm"),
        std::fs::read(plugins::LLM_CHAT).unwrap(),
    )
    .unwrap();
    let config_of = |model| Version {
        model,
        counter: false,
        token_b: false,
        extra: "workers = 2",
    };
    std::fs::write(&path, config(&gate, &store, &config_of("v1"))).unwrap();
    let s = Server::spawn(dir, &path, &[("TEST_ADMIN_TOKEN", ADMIN)], &[]);
    // Each call is a new connection, which the kernel gives either worker.
    let all_on = |model: &'static str| {
        let s = &s;
        async move {
            eventually(Duration::from_secs(30), || async {
                let mut all = true;
                for n in 0..16 {
                    let (status, body) = turn(s, TOKEN_A, "llm", &format!("w{n}"), "x").await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    all &= version(&body["output"]) == model;
                }
                all
            })
            .await
        }
    };
    assert!(all_on("v1").await);

    std::fs::write(&path, config(&gate, &store, &config_of("v2"))).unwrap();
    let (status, body) = reload(&s).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        all_on("v2").await,
        "not every worker reloaded:\n{}",
        s.log()
    );

    std::fs::write(&path, config(&gate, &store, &config_of("v3"))).unwrap();
    let hup = std::process::Command::new("/usr/bin/kill")
        .arg("-HUP")
        .arg(s.child.id().to_string())
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        all_on("v3").await,
        "SIGHUP did not reach every worker:\n{}",
        s.log()
    );
    s.stop();
}
