//! Streamed turns over HTTP: `Accept: text/event-stream` on the turn endpoint of
//! `agent-host serve`.

mod support;

use std::time::Duration;

use agent_host_tests::{RedisServer, eventually, plugins};
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Server, TOKEN_A, get, sse_events as events, turn};

fn config() -> String {
    config_on("path = \"data/state.redb\"")
}

/// The config with `store` as its `[store]` table.
fn config_on(store: &str) -> String {
    format!(
        r#"
[store]
{store}

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "p"
wasm = "{probe}"
prefix = "tenant-a"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["p"]
"#,
        probe = plugins::PROBE,
    )
}

fn request(s: &Server, ops: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(s.url("/v1/plugins/p/sessions/probe/turns"))
        .bearer_auth(TOKEN_A)
        .header("Accept", "text/event-stream")
        .body(ops.to_string())
}

/// `GET .../turns/{id}/events` on `s`, with `Last-Event-ID: last` if given.
async fn resume(s: &Server, id: &str, last: Option<&str>) -> reqwest::Response {
    let url = s.url(&format!("/v1/plugins/p/sessions/probe/turns/{id}/events"));
    let mut request = reqwest::Client::new().get(url).bearer_auth(TOKEN_A);
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    request.send().await.unwrap()
}

/// The `Stream-Id` of a streamed answer.
fn stream_id(response: &reqwest::Response) -> String {
    response.headers()["stream-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// Reads `response` until at least one whole event came; the text read.
async fn first_events(response: &mut reqwest::Response) -> String {
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = response.chunk().await.unwrap();
        let chunk = chunk.expect("the stream ended early");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn chunks_then_one_final_event() {
    let s = Server::start(&config());
    let ops = json!([
        {"op": "emit", "chunk": "Hel"},
        {"op": "emit", "chunk": "lo\nthere"},
        {"op": "save", "session": "probe", "value": "kept"},
    ]);
    let response = request(&s, &ops).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let id = stream_id(&response);
    let got = events(&response.text().await.unwrap());
    // The embedded store keeps the stream too: after event 1, the other two.
    let resumed = resume(&s, &id, Some("1")).await;
    let rest = events(&resumed.text().await.unwrap());
    assert_eq!(rest, got[1..].to_vec());
    let names: Vec<&str> = got.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["chunk", "chunk", "done"]);
    assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        (got[0].2.clone(), got[1].2.clone()),
        (json!("Hel"), json!("lo\nthere"))
    );
    let output: Value = serde_json::from_str(got[2].2["output"].as_str().unwrap()).unwrap();
    assert_eq!(output[2], json!({"ok": 1}));
    // The final event comes once the turn has committed.
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/p/sessions/probe").await;
    assert_eq!(body["state"], "kept");

    // A trap after a chunk: the chunk, then the error, and nothing stored.
    let ops = json!([
        {"op": "emit", "chunk": "seen"},
        {"op": "save", "session": "probe", "value": "lost"},
        {"op": "panic"},
    ]);
    let got = events(
        &request(&s, &ops)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].1.as_str(), got[0].2.clone()),
        ("chunk", json!("seen"))
    );
    assert_eq!(got[1].1, "error");
    assert_eq!(got[1].2["error"]["kind"], "trap");
    assert_eq!(got[1].2["status"], 500);
    let (_, body) = get(&s, Some(TOKEN_A), "/v1/plugins/p/sessions/probe").await;
    assert_eq!(body["state"], "kept");

    // Without Accept: text/event-stream, the JSON answer as before.
    let ops = json!([{"op": "emit", "chunk": "dropped"}]);
    let response = reqwest::Client::new()
        .post(s.url("/v1/plugins/p/sessions/probe/turns"))
        .bearer_auth(TOKEN_A)
        .body(ops.to_string())
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let none = json!({"input_tokens": 0, "output_tokens": 0, "requests": 0, "estimated": 0, "cost_usd": 0.0});
    assert_eq!(body, json!({"output": "[{\"ok\":null}]", "usage": none}));
}

#[tokio::test]
async fn a_client_that_leaves_does_not_stop_the_turn() {
    let s = Server::start(&config());
    let ops = json!([
        {"op": "emit", "chunk": "working"},
        {"op": "sleep", "ms": 300},
        {"op": "save", "session": "probe", "value": "finished anyway"},
    ]);
    let mut response = request(&s, &ops).send().await.unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("working"));
    drop(response);
    let committed = eventually(Duration::from_secs(10), || async {
        let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/p/sessions/probe").await;
        status == StatusCode::OK && body["state"] == "finished anyway"
    })
    .await;
    assert!(committed, "the turn of a client that left did not commit");
}

#[test]
fn run_prints_the_chunks_then_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ops = json!([{"op": "emit", "chunk": "Hel"}, {"op": "emit", "chunk": "lo"}]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(["run", plugins::PROBE, "--session", "probe", "--no-cache"])
        .args(["--input", &ops.to_string(), "--state-file"])
        .arg(dir.path().join("state.redb"))
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello\n[{\"ok\":null},{\"ok\":null}]\n");
}

#[tokio::test]
async fn a_client_that_reconnects_to_another_replica_gets_exactly_what_it_missed() {
    let redis = RedisServer::start();
    let store = format!("url = \"{}\"", redis.url());
    let (a, b) = (
        Server::start(&config_on(&store)),
        Server::start(&config_on(&store)),
    );
    let ops = json!([
        {"op": "emit", "chunk": "c0"},
        {"op": "emit", "chunk": "c1"},
        {"op": "sleep", "ms": 400},
        {"op": "emit", "chunk": "c2"},
        {"op": "emit", "chunk": "c3"},
        {"op": "save", "session": "probe", "value": "streamed"},
    ]);
    let mut response = request(&a, &ops).send().await.unwrap();
    let id = stream_id(&response);
    // Read until at least one whole event came, then leave.
    let text = first_events(&mut response).await;
    let whole = &text[..text.rfind("\n\n").unwrap() + 2];
    let seen = events(whole);
    drop(response);
    let last = seen.last().unwrap().0;

    // Replica B, from what A's client saw last.
    let resumed = resume(&b, &id, Some(&last.to_string())).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let rest = events(&resumed.text().await.unwrap());
    let ids: Vec<u64> = rest.iter().map(|e| e.0).collect();
    assert_eq!(ids, ((last + 1)..=5).collect::<Vec<_>>(), "{rest:?}");
    let chunks: Vec<Value> = seen
        .iter()
        .chain(&rest)
        .filter(|e| e.1 == "chunk")
        .map(|e| e.2.clone())
        .collect();
    assert_eq!(chunks, [json!("c0"), json!("c1"), json!("c2"), json!("c3")]);
    assert_eq!(rest.last().unwrap().1, "done");

    // All of it again without Last-Event-ID; a stream nobody kept; a bad id.
    let all = resume(&b, &id, None).await;
    let all = events(&all.text().await.unwrap());
    assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let (status, body) = get(
        &b,
        Some(TOKEN_A),
        "/v1/plugins/p/sessions/probe/turns/0123abcd/events",
    )
    .await;
    assert_eq!(
        (status, body["error"]["kind"].clone()),
        (StatusCode::NOT_FOUND, json!("no_stream"))
    );
    let bad = resume(&b, &id, Some("yesterday")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_stream_over_its_buffer_is_kept_only_in_part() {
    let listen = "listen = \"127.0.0.1:0\"";
    let text = config().replace(listen, &format!("{listen}\nstream_buffer = \"120B\""));
    let s = Server::start(&text);
    let ops: Vec<Value> = (0..6)
        .map(|i| json!({"op": "emit", "chunk": format!("chunk number {i}")}))
        .collect();
    let response = request(&s, &json!(ops)).send().await.unwrap();
    let id = stream_id(&response);
    // The client that stays gets everything.
    let live = events(&response.text().await.unwrap());
    assert_eq!(live.len(), 7);
    // A reconnect gets what was kept, then says the rest was not.
    let resumed = resume(&s, &id, None).await.text().await.unwrap();
    let blocks: Vec<&str> = resumed.split("\n\n").filter(|b| !b.is_empty()).collect();
    assert!(blocks.len() < 7, "{resumed}");
    assert!(
        blocks.last().unwrap().contains("stream_truncated"),
        "{resumed}"
    );
}

#[tokio::test]
async fn a_conflict_retry_sends_restart_before_the_new_attempts_chunks() {
    let redis = RedisServer::start();
    let store = format!("url = \"{}\"", redis.url());
    let (a, b) = (
        Server::start(&config_on(&store)),
        Server::start(&config_on(&store)),
    );
    // The turn on replica A reads the session, shows a chunk and takes its time;
    // replica B saves the session meanwhile, so A's commit conflicts and A runs the
    // turn again.
    let ops = json!([
        {"op": "load", "session": "probe"},
        {"op": "emit", "chunk": "thinking"},
        {"op": "sleep", "ms": 1500},
        {"op": "save", "session": "probe", "value": "mine"},
    ]);
    let mut response = request(&a, &ops).send().await.unwrap();
    let mut text = first_events(&mut response).await;
    let other = json!([{"op": "save", "session": "probe", "value": "theirs"}]);
    let (status, body) = turn(&b, TOKEN_A, "p", "probe", &other.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let got = events(&text);
    let names: Vec<&str> = got.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, ["chunk", "restart", "chunk", "done"], "{text}");
    let (_, session) = get(&a, Some(TOKEN_A), "/v1/plugins/p/sessions/probe").await;
    assert_eq!(
        (session["state"].clone(), session["version"].clone()),
        (json!("mine"), json!(2))
    );
}

#[tokio::test]
async fn a_resume_at_or_past_the_end_of_a_finished_stream_ends_at_once() {
    let s = Server::start(&config());
    let ops = json!([{"op": "emit", "chunk": "a"}, {"op": "emit", "chunk": "b"}]);
    let response = request(&s, &ops).send().await.unwrap();
    let id = stream_id(&response);
    let got = events(&response.text().await.unwrap());
    assert_eq!(got.last().unwrap().1, "done");
    let end = got.last().unwrap().0;
    // The store gets the events just after the client: a resume from the start
    // ends once the store has the final event too.
    let all = events(&resume(&s, &id, None).await.text().await.unwrap());
    assert_eq!(all, got);

    // Bounded well below the ~40 s a follower of a live stream waits for more.
    let within = std::time::Duration::from_secs(10);
    for last in [end, end + 1, 1000] {
        let resumed = tokio::time::timeout(within, async {
            let response = resume(&s, &id, Some(&last.to_string())).await;
            (response.status(), response.text().await.unwrap())
        })
        .await;
        let (status, text) = resumed.unwrap_or_else(|_| panic!("Last-Event-ID {last}: held"));
        // 204: nothing more, and an EventSource stops reconnecting.
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::NO_CONTENT, ""),
            "{last}"
        );
    }
    // Just before the end: the final event, then the end.
    let resumed = tokio::time::timeout(within, async {
        let response = resume(&s, &id, Some(&(end - 1).to_string())).await;
        response.text().await.unwrap()
    })
    .await
    .expect("held");
    let rest = events(&resumed);
    assert_eq!(rest, got[got.len() - 1..].to_vec());
}
