//! Traces of `agent-host serve` (docs/operators.md#traces), received by a real
//! OTLP/HTTP receiver that this test runs (protobuf decoded with
//! `opentelemetry-proto`): a turn sent with a `traceparent` continues the caller's
//! trace, its store calls, its model request and its streamed output are its
//! children, the model server gets the trace context, and no attribute holds a
//! token, the model's API key, the Redis password or the session's name.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_host_tests::RedisServer;
use agent_host_tests::model_server::ModelServer;
use agent_host_tests::plugins;
use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::StatusCode;
use support::{Server, TOKEN_A};
use tokio::sync::watch;

const KEY: &str = "sk-live-0123456789-never-in-a-trace";
const REDIS_PASSWORD: &str = "redis-password-never-in-a-trace";
/// A session name that says too much: traces carry a digest of it.
const SESSION: &str = "alice-at-example-com";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const STREAM_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// What the receiver got: every export request, decoded, and a counter that
/// changes with each.
#[derive(Clone)]
struct Received {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    count: watch::Sender<usize>,
}

impl Received {
    fn spans(&self) -> Vec<Span> {
        let requests = self.requests.lock().unwrap();
        let resources = requests.iter().flat_map(|r| &r.resource_spans);
        let scopes = resources.flat_map(|r| &r.scope_spans);
        scopes.flat_map(|s| s.spans.clone()).collect()
    }
}

/// `POST /v1/traces`: OTLP/HTTP with a protobuf body, as a collector takes it.
async fn export(
    State(received): State<Received>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    received.requests.lock().unwrap().push(request);
    received.count.send_modify(|n| *n += 1);
    // An empty ExportTraceServiceResponse: all accepted.
    (StatusCode::OK, Vec::new())
}

/// Starts the receiver on a free loopback port; its base URL.
async fn receiver() -> (String, Received) {
    let received = Received {
        requests: Arc::default(),
        count: watch::channel(0).0,
    };
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(export))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An attribute of `span` as text (strings as they are, numbers printed).
fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|a| a.key == key)?;
    match value.value.as_ref()?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// True if `span`'s parents lead to `ancestor` (by span id, within `spans`).
fn descends_from(span: &Span, ancestor: &Span, spans: &HashMap<Vec<u8>, &Span>) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..16 {
        if parent == ancestor.span_id {
            return true;
        }
        match spans.get(&parent) {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

/// Waits, without sleeping, until `done` finds what it looks for in the spans
/// received, or 30 s have passed.
async fn until<T>(received: &Received, done: impl Fn(&[Span]) -> Option<T>) -> T {
    let mut changed = received.count.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = done(&received.spans()) {
            return found;
        }
        let waited = tokio::time::timeout_at(deadline, changed.changed()).await;
        assert!(
            matches!(waited, Ok(Ok(()))),
            "not received within 30 s; spans: {:#?}",
            received.spans()
        );
    }
}

fn config(redis: &RedisServer, model: &ModelServer, otlp: &str) -> String {
    format!(
        r#"
[store]
url = "{redis}"

[server]
listen = "127.0.0.1:0"

[telemetry]
otlp_endpoint = "{otlp}"
service_name = "agent-host-test"

[[plugin]]
id = "llm-chat"
wasm = "{wasm}"
prefix = "tenant-a"
env = {{ MODEL_URL = "{origin}/v1", MODEL = "small" }}
[[plugin.outbound]]
origin = "{origin}"
meter = "openai"
secret_headers = {{ Authorization = "Bearer ${{env:LLM_API_KEY}}" }}

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["llm-chat"]
"#,
        redis = redis.url(),
        wasm = plugins::LLM_CHAT,
        origin = model.origin(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_continues_the_callers_trace_with_its_store_and_model_calls_and_no_secret() {
    let (otlp, received) = receiver().await;
    let model = ModelServer::start().await;
    let redis = RedisServer::start_with_password(REDIS_PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(&path, config(&redis, &model, &otlp)).unwrap();
    let env = [
        ("LLM_API_KEY", KEY),
        // A short batch delay, so the test waits 0.1 s for spans, not 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        // The file's endpoint, whatever this shell has.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
        ("OTEL_SDK_DISABLED", ""),
        ("OTEL_SERVICE_NAME", ""),
    ];
    let s = Server::spawn(dir, &path, &env, &[]);
    // The start says that traces are on and where they go.
    assert!(s.log().contains("traces on"), "{}", s.log());
    assert!(s.log().contains("sample_ratio"), "{}", s.log());

    let client = reqwest::Client::new();
    let turn_url = s.url(&format!("/v1/plugins/llm-chat/sessions/{SESSION}/turns"));
    let answer = client
        .post(&turn_url)
        .bearer_auth(TOKEN_A)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body("Hello, model.")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    let (turn, spans) = until(&received, |spans| {
        let turn = spans
            .iter()
            .find(|s| s.name == "turn" && hex(&s.trace_id) == TRACE_ID)?;
        let ours: Vec<Span> = spans
            .iter()
            .filter(|s| s.trace_id == turn.trace_id)
            .cloned()
            .collect();
        let store_ops: Vec<String> = ours
            .iter()
            .filter(|s| s.name == "store")
            .filter_map(|s| attr(s, "op"))
            .collect();
        let has = |op: &str| store_ops.iter().any(|o| o == op);
        let outbound = ours.iter().any(|s| s.name == "outbound");
        (outbound && has("snapshot") && has("commit")).then(|| (turn.clone(), ours))
    })
    .await;

    // The turn is the caller's span's child, in the caller's trace.
    assert_eq!(hex(&turn.parent_span_id), CALLER_SPAN, "{turn:#?}");
    assert_eq!(attr(&turn, "plugin").as_deref(), Some("llm-chat"));
    assert_eq!(attr(&turn, "tenant").as_deref(), Some("a"));
    assert_eq!(attr(&turn, "outcome").as_deref(), Some("ok"));
    assert_eq!(attr(&turn, "attempts").as_deref(), Some("1"));
    let digest = attr(&turn, "session.digest").expect("a session digest");
    assert_eq!(digest.len(), 16, "{digest}");

    // Store calls and the model request are the turn's descendants.
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    for span in spans
        .iter()
        .filter(|s| s.name == "store" || s.name == "outbound")
    {
        assert!(
            descends_from(span, &turn, &by_id),
            "{span:#?} is not under the turn {turn:#?}"
        );
    }
    let outbound = spans.iter().find(|s| s.name == "outbound").unwrap();
    assert_eq!(outbound.parent_span_id, turn.span_id);
    assert_eq!(attr(outbound, "origin"), Some(model.origin()));
    assert_eq!(attr(outbound, "method").as_deref(), Some("POST"));
    assert_eq!(attr(outbound, "status").as_deref(), Some("200"));
    assert_eq!(attr(outbound, "outcome").as_deref(), Some("ok"));
    let received_bytes: u64 = attr(outbound, "bytes.received").unwrap().parse().unwrap();
    assert!(received_bytes > 0, "{outbound:#?}");
    let input_tokens: u64 = attr(outbound, "model.input_tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(input_tokens > 0, "{outbound:#?}");

    // The model server's request carried the trace, under the outbound span.
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", hex(&outbound.span_id)).as_str()),
    );

    // A streamed turn: what the plugin emitted is a span of its turn.
    let streamed = client
        .post(&turn_url)
        .bearer_auth(TOKEN_A)
        .header("Accept", "text/event-stream")
        .header(
            "traceparent",
            format!("00-{STREAM_TRACE_ID}-{CALLER_SPAN}-01"),
        )
        .body("Stream it.")
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::OK);
    let text = streamed.text().await.unwrap();
    assert!(text.contains("event: done"), "{text}");
    let (stream_turn, emit) = until(&received, |spans| {
        let turn = spans
            .iter()
            .find(|s| s.name == "turn" && hex(&s.trace_id) == STREAM_TRACE_ID)?;
        let emit = spans
            .iter()
            .find(|s| s.name == "emit" && s.trace_id == turn.trace_id)?;
        Some((turn.clone(), emit.clone()))
    })
    .await;
    assert_eq!(hex(&stream_turn.parent_span_id), CALLER_SPAN);
    assert_eq!(attr(&stream_turn, "session.digest"), Some(digest));
    assert_eq!(emit.parent_span_id, stream_turn.span_id, "{emit:#?}");
    let chunks: u64 = attr(&emit, "chunks").unwrap().parse().unwrap();
    assert!(chunks >= 2, "{emit:#?}");

    // Nothing secret, nor the session's name, anywhere in what was exported.
    let everything = format!("{:?}", received.requests.lock().unwrap());
    for secret in [TOKEN_A, KEY, REDIS_PASSWORD, SESSION] {
        assert!(!everything.contains(secret), "{secret:?} was exported");
    }
    assert!(everything.contains("agent-host-test"), "no service.name");
}

/// With `sample_ratio = 0` the traces that start here are dropped, a caller's
/// sampled trace is kept (parent-based), and the spans still waiting in the batch
/// are sent when the server stops; with `--workers 2`, by whichever worker ran
/// the turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_follows_the_caller_and_stopping_sends_what_is_left() {
    let (otlp, received) = receiver().await;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    let config = format!(
        r#"
[store]
url = "{redis}"

[server]
listen = "127.0.0.1:0"

[telemetry]
otlp_endpoint = "{otlp}"
sample_ratio = 0

[[plugin]]
id = "chat"
wasm = "{wasm}"
prefix = "tenant-a"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["chat"]
"#,
        wasm = plugins::CHAT_MEMORY,
        redis = redis.url(),
    );
    std::fs::write(&path, config).unwrap();
    let env = [
        // Nothing is sent on a schedule during this test: only the flush at the end.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
        ("OTEL_SDK_DISABLED", ""),
    ];
    // Each worker (single-threaded) exports its own spans.
    let s = Server::spawn(dir, &path, &env, &["--workers", "2"]);
    let client = reqwest::Client::new();
    let url = s.url("/v1/plugins/chat/sessions/s1/turns");
    let unsampled = client.post(&url).bearer_auth(TOKEN_A).body("one");
    assert_eq!(unsampled.send().await.unwrap().status(), StatusCode::OK);
    let sampled = client
        .post(&url)
        .bearer_auth(TOKEN_A)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body("two");
    assert_eq!(sampled.send().await.unwrap().status(), StatusCode::OK);
    assert!(received.spans().is_empty(), "sent before the schedule");

    // The server exits only after its exporter sent what it held.
    s.stop();
    let spans = received.spans();
    let turns: Vec<&Span> = spans.iter().filter(|s| s.name == "turn").collect();
    assert_eq!(turns.len(), 1, "{turns:#?}");
    assert_eq!(hex(&turns[0].trace_id), TRACE_ID);
    assert_eq!(hex(&turns[0].parent_span_id), CALLER_SPAN);
    assert!(
        spans
            .iter()
            .filter(|s| s.name == "store")
            .all(|s| s.trace_id == turns[0].trace_id && s.parent_span_id == turns[0].span_id),
        "{spans:#?}"
    );
}
