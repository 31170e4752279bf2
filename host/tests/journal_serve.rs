//! A turn's model answer outlives the server that paid for it: `serve` is killed
//! (SIGKILL) after its plugin got the model's answer and before the turn
//! committed; the same turn, retried with the same `Idempotency-Key` on a second
//! server once the dead one's claim has run out, gets that answer from the
//! journal kept in the store. The model gets no second request, and the turn
//! commits with the first answer.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agent_host_tests::{RedisServer, eventually, plugins};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::Value;

use support::gate::Gate;
use support::{Server, TOKEN_A};

/// A model that answers `answer N` to its Nth request.
struct Model {
    origin: String,
    received: Arc<AtomicU64>,
}

impl Model {
    async fn start() -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let router = Router::new()
            .route(
                "/model",
                post(|State(n): State<Arc<AtomicU64>>| async move {
                    format!("answer {}", n.fetch_add(1, Ordering::SeqCst) + 1)
                }),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { origin, received }
    }
}

fn config(redis: &RedisServer, model: &Model, gate: &Gate) -> String {
    format!(
        r#"
[store]
url = "{url}"

[server]
listen = "127.0.0.1:0"

[[plugin]]
id = "hostile"
wasm = "{wasm}"
prefix = "tenant-a"
limits = {{ deadline = "3s" }}
[[plugin.outbound]]
origin = "{model}"
[[plugin.outbound]]
origin = "{gate}"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["hostile"]
"#,
        url = redis.url(),
        wasm = plugins::HOSTILE,
        model = model.origin,
        gate = gate.origin(),
    )
}

async fn keyed_turn(s: &Server, input: &str) -> reqwest::Result<(StatusCode, Value)> {
    let response = reqwest::Client::new()
        .post(s.url("/v1/plugins/hostile/sessions/alice/turns"))
        .bearer_auth(TOKEN_A)
        .header("Idempotency-Key", "order-1")
        .body(input.to_owned())
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// The keys of kept journals in Redis.
fn journals(redis: &RedisServer) -> Vec<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("KEYS")
        .arg("*:stream:journal*")
        .query(&mut conn)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_answer_is_not_paid_twice_when_the_server_dies_mid_turn() {
    let redis = RedisServer::start();
    let (model, gate) = (Model::start().await, Gate::start().await);
    let input = format!(
        "post-then-hold 5 {}/model {}/v1/chat/completions",
        model.origin,
        gate.origin()
    );
    let mut first = Server::start(&config(&redis, &model, &gate));
    let in_flight = {
        let (url, input) = (first.url(""), input.clone());
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(format!("{url}/v1/plugins/hostile/sessions/alice/turns"))
                .bearer_auth(TOKEN_A)
                .header("Idempotency-Key", "order-1")
                .body(input)
                .send()
                .await;
        })
    };
    // The plugin got the model's answer and waits at the gate; its answer is kept.
    tokio::time::timeout(Duration::from_secs(30), gate.arrived())
        .await
        .expect("the plugin reached the gate");
    assert!(
        eventually(Duration::from_secs(10), || async {
            journals(&redis).len() == 1
        })
        .await
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let _ = in_flight.await;
    assert_eq!(model.received.load(Ordering::SeqCst), 1);

    let second = Server::start(&config(&redis, &model, &gate));
    gate.release();
    // The dead server's claim on the key holds until its deadline and slack pass.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let answer = loop {
        match keyed_turn(&second, &input).await {
            Ok((StatusCode::OK, body)) => break body,
            Ok((StatusCode::CONFLICT, body)) => {
                assert_eq!(body["error"]["kind"], "in_progress", "{body}");
                assert!(std::time::Instant::now() < deadline, "the retry never ran");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("unexpected answer: {other:?}\n{}", second.log()),
        }
    };
    assert_eq!(answer["output"], "200 answer 1", "{answer}");
    assert_eq!(
        model.received.load(Ordering::SeqCst),
        1,
        "the model was paid twice"
    );
    let metrics = reqwest::get(second.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let replayed = format!(
        "agent_host_outbound_requests_total{{plugin=\"hostile\",origin=\"{}\",outcome=\"replayed\"}} 1",
        model.origin
    );
    assert!(metrics.contains(&replayed), "{metrics}");
    // The turn committed: its journal is dropped, and a retry gets the record.
    assert!(
        eventually(Duration::from_secs(5), || async {
            journals(&redis).is_empty()
        })
        .await
    );
    let (status, again) = keyed_turn(&second, &input).await.unwrap();
    assert_eq!(
        (status, &again["output"]),
        (StatusCode::OK, &answer["output"])
    );
    assert_eq!(model.received.load(Ordering::SeqCst), 1);
}
