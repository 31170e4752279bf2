//! Model spend through `agent-host serve`: two tenants, each with the llm-chat
//! example calling the model fixture through a metered origin. Tenant a has a
//! small daily token budget: its turns go through until it is spent, then its
//! plugin answers "model budget spent" and nothing more reaches the model, while
//! tenant b's turns go on. The spend is seen in the turns' answers, over HTTP
//! (`/v1/usage`, `/v1/plugins/{plugin}/usage`), in `/metrics`, and from
//! `agent-host usage` on the store afterwards; the model key in none of them.
//!
//! The fixture's token counts are not pinned here: every check is a relation
//! (the totals are the sums of the turns' `usage`, a fresh store's day is its
//! month, one request per turn).

mod support;

use std::process::Command;

use agent_host_tests::model_server::ModelServer;
use agent_host_tests::plugins;
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Server, TOKEN_A, TOKEN_B, get, kind, sse_events, turn};

const KEY: &str = "sk-live-spend-0123456789-never-shown";
/// A second token of tenant a (a rotation), with a looser budget: the smaller
/// limit of each period applies.
const TOKEN_A2: &str = "token-of-tenant-a-rotated-0123456789";
/// Tenant a's tokens per day.
const BUDGET: u64 = 20;
/// Tenant a's tokens per month (from its second token).
const MONTH: u64 = 5_000_000;
/// Plugin chat-b's own monthly budget.
const B_MONTH: u64 = 1_000_000;

fn config(model: &ModelServer) -> String {
    let plugin = |id: &str, env: &str, budget: &str| {
        format!(
            r#"
[[plugin]]
id = "{id}"
wasm = "{wasm}"
prefix = "tenant-{id}"
env = {{ MODEL_URL = "{origin}/v1", {env} }}
{budget}
[[plugin.outbound]]
origin = "{origin}"
secret_headers = {{ Authorization = "Bearer ${{env:LLM_API_KEY}}" }}
meter = "openai"
"#,
            wasm = plugins::LLM_CHAT,
            origin = model.origin(),
        )
    };
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"
{a}{b}
[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["chat-a"]
budget = {{ tokens_per_day = {BUDGET} }}

[[token]]
tenant = "a"
secret = "{TOKEN_A2}"
plugins = ["chat-a"]
budget = {{ tokens_per_day = 1000000, tokens_per_month = {MONTH} }}

[[token]]
tenant = "b"
secret = "{TOKEN_B}"
plugins = ["chat-b"]
"#,
        // Tenant a's model streams (usage in its last event); tenant b's answers
        // whole (a plain JSON answer).
        a = plugin("chat-a", r#"MODEL = "model-a""#, ""),
        b = plugin(
            "chat-b",
            r#"MODEL = "model-b", MODEL_STREAM = "false""#,
            &format!("budget = {{ tokens_per_month = {B_MONTH} }}"),
        ),
    )
}

/// A turn answered as events: (status, body) as the JSON answer would be, from
/// its final event (`done`: its data; `error`: the error body and status).
async fn streamed_turn(
    s: &Server,
    token: &str,
    plugin: &str,
    session: &str,
    input: &str,
) -> (StatusCode, Value) {
    let text = reqwest::Client::new()
        .post(s.url(&format!("/v1/plugins/{plugin}/sessions/{session}/turns")))
        .bearer_auth(token)
        .header("Accept", "text/event-stream")
        .body(input.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = sse_events(&text);
    let (_, name, data) = events.last().expect("a final event").clone();
    match name.as_str() {
        "done" => (StatusCode::OK, data),
        "error" => {
            let status = data["status"].as_u64().expect("an error event's status");
            (StatusCode::from_u16(status as u16).unwrap(), data)
        }
        other => panic!("the last event is {other}: {text}"),
    }
}

/// Input plus output tokens of a count.
fn tokens(count: &Value) -> u64 {
    count["input_tokens"].as_u64().unwrap() + count["output_tokens"].as_u64().unwrap()
}

/// The turns' `usage` fields added up.
fn sum(usages: &[Value], field: &str) -> u64 {
    usages.iter().map(|u| u[field].as_u64().unwrap()).sum()
}

/// A period's count without its period.
fn counts(period: &Value) -> Value {
    let mut period = period.clone();
    period.as_object_mut().unwrap().remove("period");
    period
}

/// Requests the model server got for `model`.
fn requests_for(model: &ModelServer, name: &str) -> usize {
    model
        .requests()
        .iter()
        .filter(|r| r.json()["model"] == name)
        .count()
}

/// The sum of the samples of metric `name` whose labels include all of `labels`.
fn metric_sum(metrics: &str, name: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| l.split_once("} "))
        .filter(|(set, _)| labels.iter().all(|want| set.split(',').any(|l| l == *want)))
        .map(|(_, value)| value.trim().parse::<u64>().unwrap())
        .sum()
}

/// Checks a day and month of a tenant's or plugin's `model` against the turns'
/// `usage`s: on a fresh store today is this month.
fn assert_spend(model: &Value, usages: &[Value]) {
    let day = &model["day"];
    for field in ["input_tokens", "output_tokens", "requests", "estimated"] {
        assert_eq!(day[field], json!(sum(usages, field)), "{field}: {model}");
    }
    assert_eq!(day["requests"], json!(usages.len()), "{model}");
    assert_eq!(counts(day), counts(&model["month"]), "{model}");
    let period = day["period"].as_str().unwrap();
    assert_eq!(period.len(), "2026-12-05".len(), "{model}");
    assert_eq!(model["month"]["period"], json!(&period[..7]), "{model}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_budget_stops_reaching_the_model_and_another_goes_on() {
    let model = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(&path, config(&model)).unwrap();
    let s = Server::spawn(dir, &path, &[("LLM_API_KEY", KEY)], &[]);

    // Tenant a's turns, as JSON and as events in turn, until one is refused.
    let mut a_usages: Vec<Value> = Vec::new();
    let refusal = loop {
        let input = format!("question {}", a_usages.len());
        let (status, body) = if a_usages.len().is_multiple_of(2) {
            turn(&s, TOKEN_A, "chat-a", "alice", &input).await
        } else {
            streamed_turn(&s, TOKEN_A, "chat-a", "alice", &input).await
        };
        if status != StatusCode::OK {
            break (status, body);
        }
        let usage = body["usage"].clone();
        assert_eq!(usage["requests"], 1, "one model call per turn: {body}");
        assert!(tokens(&usage) > 0, "{body}");
        a_usages.push(usage);
        if a_usages.len() == 1 {
            // Counted in the store before the turn answered.
            let (_, spent) = get(&s, Some(TOKEN_A), "/v1/usage").await;
            assert_spend(&spent["model"], &a_usages);
        }
        assert!(a_usages.len() < 40, "tenant a was never refused");
    };
    // Every turn went through while the budget was not spent, none after.
    let spent: u64 = a_usages.iter().map(tokens).sum();
    let before_last = spent - tokens(a_usages.last().unwrap());
    assert!(before_last < BUDGET && BUDGET <= spent, "{a_usages:?}");
    let (status, body) = refusal;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(kind(&body), "plugin_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("model budget spent"), "{message}");
    assert_eq!(requests_for(&model, "model-a"), a_usages.len());
    // Refused again, as events too, and still nothing reaches the model.
    let (status, body) = streamed_turn(&s, TOKEN_A, "chat-a", "alice", "again").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model budget spent")
    );
    let (status, _) = turn(&s, TOKEN_A2, "chat-a", "alice", "rotated").await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the tenant's budget"
    );
    assert_eq!(requests_for(&model, "model-a"), a_usages.len());

    // Tenant b goes on.
    let mut b_usages = Vec::new();
    for i in 0..3 {
        let (status, body) = turn(&s, TOKEN_B, "chat-b", "bob", &format!("hello {i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["usage"]["requests"], 1, "{body}");
        assert!(tokens(&body["usage"]) > 0, "{body}");
        b_usages.push(body["usage"].clone());
    }
    assert_eq!(requests_for(&model, "model-b"), 3);

    // Over HTTP: the tenant across its plugins, and each plugin it may call.
    let (status, a) = get(&s, Some(TOKEN_A), "/v1/usage").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["tenant"], "a");
    assert_spend(&a["model"], &a_usages);
    let budget = json!({"tokens_per_day": BUDGET, "tokens_per_month": MONTH, "usd_per_day": null, "usd_per_month": null});
    assert_eq!(a["model"]["budget"], budget, "{a}");
    let plugins: Vec<&String> = a["plugins"].as_object().unwrap().keys().collect();
    assert_eq!(plugins, ["chat-a"], "{a}");
    let (status, chat_a) = get(&s, Some(TOKEN_A), "/v1/plugins/chat-a/usage").await;
    assert_eq!(status, StatusCode::OK, "{chat_a}");
    assert_eq!(a["plugins"]["chat-a"]["model"], chat_a["model"]);
    assert_spend(&chat_a["model"], &a_usages);
    let unlimited = json!({"tokens_per_day": null, "tokens_per_month": null, "usd_per_day": null, "usd_per_month": null});
    assert_eq!(chat_a["model"]["budget"], unlimited, "{chat_a}");
    assert_eq!(chat_a["sessions"], 1, "{chat_a}");
    let (_, a2) = get(&s, Some(TOKEN_A2), "/v1/usage").await;
    assert_eq!(a2, a, "one tenant, whichever of its tokens asks");

    let (status, b) = get(&s, Some(TOKEN_B), "/v1/usage").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["tenant"], "b");
    assert_spend(&b["model"], &b_usages);
    assert_eq!(b["model"]["budget"], unlimited, "{b}");
    let plugins: Vec<&String> = b["plugins"].as_object().unwrap().keys().collect();
    assert_eq!(plugins, ["chat-b"], "{b}");
    let (_, chat_b) = get(&s, Some(TOKEN_B), "/v1/plugins/chat-b/usage").await;
    assert_spend(&chat_b["model"], &b_usages);
    let b_budget = json!({"tokens_per_day": null, "tokens_per_month": B_MONTH, "usd_per_day": null, "usd_per_month": null});
    assert_eq!(chat_b["model"]["budget"], b_budget, "{chat_b}");

    // The token is checked as on every /v1 route.
    for token in [None, Some("not-a-token-0123456789")] {
        let (status, body) = get(&s, token, "/v1/usage").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(kind(&body), "unauthorized");
    }
    let (status, _) = get(&s, Some(TOKEN_B), "/v1/plugins/chat-a/usage").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // In /metrics: the tokens and requests per plugin and tenant, and the refusals.
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let origin = format!("origin=\"{}\"", model.origin());
    for (plugin, tenant, usages) in [("chat-a", "a", &a_usages), ("chat-b", "b", &b_usages)] {
        let (plugin, tenant) = (
            format!("plugin=\"{plugin}\""),
            format!("tenant=\"{tenant}\""),
        );
        let labels = |kind: &'static str| {
            [
                plugin.clone(),
                tenant.clone(),
                origin.clone(),
                kind.to_string(),
            ]
        };
        for (kind, field) in [
            ("kind=\"input\"", "input_tokens"),
            ("kind=\"output\"", "output_tokens"),
        ] {
            let want = labels(kind);
            let want: Vec<&str> = want.iter().map(String::as_str).collect();
            let counted = metric_sum(&metrics, "agent_host_model_tokens_total", &want);
            assert_eq!(
                counted,
                sum(usages, field),
                "{field} of {plugin}:\n{metrics}"
            );
        }
        let requests = metric_sum(
            &metrics,
            "agent_host_model_requests_total",
            &[&plugin, &tenant, &origin],
        );
        assert_eq!(requests, usages.len() as u64, "{plugin}:\n{metrics}");
    }
    let refused = format!(
        r#"agent_host_outbound_requests_total{{plugin="chat-a",{origin},outcome="budget"}} 3"#
    );
    assert!(metrics.contains(&refused), "{metrics}");
    let b_refused = format!(r#"{{plugin="chat-b",{origin},outcome="budget"}}"#);
    assert!(!metrics.contains(&b_refused), "{metrics}");

    // The key: on the wire to the model, and nowhere else.
    for request in model.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    for shown in [
        &metrics,
        &a.to_string(),
        &b.to_string(),
        &chat_a.to_string(),
        &chat_b.to_string(),
    ] {
        assert!(!shown.contains(KEY), "{shown}");
        assert!(!shown.contains("never-shown"), "{shown}");
    }

    // From the CLI, on the store the server left (the embedded store is one
    // process's at a time), without the model key in its environment.
    let dir = s.stop();
    let path = dir.path().join("agent-host.toml");
    let all = cli(&path, &["usage"]);
    assert_eq!(all["plugins"]["chat-a"], chat_a, "{all}");
    assert_eq!(all["plugins"]["chat-b"], chat_b, "{all}");
    assert_eq!(all["tenants"]["a"]["model"], a["model"], "{all}");
    assert_eq!(all["tenants"]["b"]["model"], b["model"], "{all}");
    let one = cli(&path, &["usage", "--plugin", "chat-b"]);
    assert_eq!(
        one,
        json!({"plugins": {"chat-b": chat_b}, "tenants": {"b": b_tenant(&b)}})
    );
    let sessions = cli(&path, &["sessions", "--plugin", "chat-a", "usage"]);
    assert_eq!(sessions, chat_a);
    let out = agent_host(&path, &["usage", "--plugin", "nope"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no plugin \"nope\""), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
}

/// What `agent-host usage` shows of a tenant: its `model`, as `/v1/usage` does.
fn b_tenant(usage: &Value) -> Value {
    json!({ "model": usage["model"] })
}

fn agent_host(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("REDIS_URL")
        .env_remove("LLM_API_KEY")
        .env_remove("AGENT_HOST_CONFIG")
        .output()
        .unwrap()
}

/// `agent-host ARGS --config CONFIG`'s JSON, which never holds the key.
fn cli(config: &std::path::Path, args: &[&str]) -> Value {
    let out = agent_host(config, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(KEY), "{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}
