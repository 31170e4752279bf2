//! The Rust floor of the `agents` benchmark: the chat turn of `examples/llm-chat`
//! written by hand with axum, reqwest and redis-rs, no WASM. On the route `agent-host
//! serve` answers, a turn reads the last 20 messages of the session's history
//! (LRANGE), calls the model streamed (reqwest, the deltas concatenated), appends
//! both messages (RPUSH + EXPIRE in one MULTI/EXEC) and answers `{"output": reply}`;
//! errors answer `{"error": {"kind", "message"}}` as serve does.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

const CONTEXT: isize = 20;
const SYSTEM: &str = "You are a helpful assistant. Answer briefly.";
const TTL: i64 = 3600;

struct App {
    redis: MultiplexedConnection,
    http: reqwest::Client,
    /// `.../v1/chat/completions`.
    url: String,
}

pub fn serve(redis_url: &str, model_url: &str) {
    super::common::runtime().block_on(async {
        let client = redis::Client::open(redis_url).expect("redis url");
        let redis = (client.get_multiplexed_async_connection().await).expect("redis");
        let app = Arc::new(App {
            redis,
            http: reqwest::Client::new(),
            url: format!("{}/chat/completions", model_url.trim_end_matches('/')),
        });
        let router = axum::Router::new()
            .route("/v1/plugins/{plugin}/sessions/{session}/turns", post(turn))
            .with_state(app);
        let listener = super::model_server::bind_loopback();
        let addr = listener.local_addr().expect("address");
        println!("listening on http://{addr}");
        axum::serve(listener, router).await.expect("serve");
    });
}

async fn turn(
    State(app): State<Arc<App>>,
    Path((_plugin, session)): Path<(String, String)>,
    input: String,
) -> Response {
    match answer(&app, &session, input).await {
        Ok(reply) => Json(json!({ "output": reply })).into_response(),
        Err((status, kind, message)) => {
            let body = json!({"error": {"kind": kind, "message": message}});
            (status, Json(body)).into_response()
        }
    }
}

type Failure = (StatusCode, &'static str, String);

fn store(e: redis::RedisError) -> Failure {
    let message = format!("redis call failed: {e}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        message,
    )
}

fn model(e: impl std::fmt::Display) -> Failure {
    let message = format!("the model is unavailable ({e})");
    (StatusCode::UNPROCESSABLE_ENTITY, "plugin", message)
}

async fn answer(app: &App, session: &str, input: String) -> Result<String, Failure> {
    let key = format!("floor:{{{session}}}:hist");
    let mut conn = app.redis.clone();
    let history: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(-CONTEXT)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .map_err(store)?;
    let mut messages = vec![json!({"role": "system", "content": SYSTEM})];
    messages.extend(history.iter().filter_map(|m| serde_json::from_str(m).ok()));
    let user = json!({"role": "user", "content": input});
    messages.push(user.clone());
    let request = json!({
        "model": super::MODEL,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut response = (app.http.post(&app.url).json(&request).send().await).map_err(model)?;
    if !response.status().is_success() {
        return Err(model(format!("it answered {}", response.status())));
    }
    let (mut reply, mut pending) = (String::new(), Vec::new());
    'stream: while let Some(chunk) = response.chunk().await.map_err(model)? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let data = data.trim_ascii();
            if data == b"[DONE]" {
                break 'stream;
            }
            let event: Value = serde_json::from_slice(data).map_err(model)?;
            if let Some(piece) = event["choices"][0]["delta"]["content"].as_str() {
                reply.push_str(piece);
            }
        }
    }
    if reply.is_empty() {
        return Err(model("it answered no text"));
    }
    let assistant = json!({"role": "assistant", "content": reply});
    redis::pipe()
        .atomic()
        .rpush(&key, &[user.to_string(), assistant.to_string()])
        .ignore()
        .expire(&key, TTL)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(store)?;
    Ok(reply)
}
