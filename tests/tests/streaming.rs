//! Streamed turns through the library: chunks in order before the answer, a
//! restart on a conflict retry, a trap mid-stream, a caller that does not read.

use agent_host::{Host, Limits, PluginConfig, TurnError, TurnEvent, TurnOptions};
use agent_host_tests::{Backend, conformance, load, plugins};
use serde_json::json;
use tokio::sync::mpsc;

conformance!(
    chunks_arrive_in_order_before_the_answer,
    a_trap_after_chunks_stores_nothing,
    a_caller_that_does_not_read_is_cut_off_and_the_turn_goes_on,
    a_conflict_retry_restarts_the_stream,
    emits_past_the_limits_are_refused,
);

async fn probe_host(backend: &Backend) -> Host {
    let host = backend.host();
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    host
}

/// Runs the probe on `ops` with a stream of `capacity`; the events then the outcome.
async fn streamed(
    host: &Host,
    ops: serde_json::Value,
    capacity: usize,
) -> (Vec<TurnEvent>, Result<String, TurnError>) {
    let (tx, mut rx) = mpsc::channel(capacity);
    let options = TurnOptions::default().with_stream(tx);
    let outcome = host
        .run_turn_with("p", "probe", &ops.to_string(), options)
        .await
        .map(|a| a.output);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (events, outcome)
}

async fn chunks_arrive_in_order_before_the_answer(backend: Backend) {
    let host = probe_host(&backend).await;
    let ops = json!([
        {"op": "emit", "chunk": "Hel"},
        {"op": "save", "session": "probe", "value": "v"},
        {"op": "emit", "chunk": "lo\nworld"},
        {"op": "emit", "chunk": ""},
    ]);
    let (events, outcome) = streamed(&host, ops, 16).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(
        events,
        [
            TurnEvent::Chunk("Hel".into()),
            TurnEvent::Chunk("lo\nworld".into()),
            TurnEvent::Chunk(String::new()),
        ]
    );
    // Without a stream the chunks are dropped and the turn is the same.
    let ops = json!([{"op": "emit", "chunk": "x"}]);
    let answer = host.run_turn("p", "probe", &ops.to_string()).await.unwrap();
    assert_eq!(answer, "[{\"ok\":null}]");
}

async fn a_trap_after_chunks_stores_nothing(backend: Backend) {
    let host = probe_host(&backend).await;
    let ops = json!([
        {"op": "emit", "chunk": "seen"},
        {"op": "save", "session": "probe", "value": "never stored"},
        {"op": "panic"},
    ]);
    let (events, outcome) = streamed(&host, ops, 16).await;
    assert_eq!(events, [TurnEvent::Chunk("seen".into())]);
    assert!(
        matches!(outcome, Err(TurnError::Trap { .. })),
        "{outcome:?}"
    );
    let session = host.inspect("p", "probe").await.unwrap();
    assert!(!session.exists, "a trapped turn left state");
}

async fn a_caller_that_does_not_read_is_cut_off_and_the_turn_goes_on(backend: Backend) {
    let host = probe_host(&backend).await;
    let emits: Vec<_> = (0..10)
        .map(|i| json!({"op": "emit", "chunk": format!("c{i}")}))
        .chain([json!({"op": "save", "session": "probe", "value": "done"})])
        .collect();
    let (events, outcome) = streamed(&host, json!(emits), 3).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    // The first three fit the caller's channel; then it was cut off for good.
    let chunks: Vec<_> = (0..3).map(|i| TurnEvent::Chunk(format!("c{i}"))).collect();
    assert_eq!(events, chunks);
    let session = host.inspect("p", "probe").await.unwrap();
    assert_eq!(session.state.unwrap().value, b"done");
}

async fn a_conflict_retry_restarts_the_stream(backend: Backend) {
    let host = Host::builder()
        .shared_store(backend.store())
        .serialize_sessions(false)
        .build()
        .unwrap();
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    // The turn reads the session, shows a chunk, then takes its time; another
    // turn saves the session meanwhile, so the first one's commit conflicts and it
    // runs again.
    let ops = json!([
        {"op": "load", "session": "probe"},
        {"op": "emit", "chunk": "thinking"},
        {"op": "sleep", "ms": 1500},
        {"op": "save", "session": "probe", "value": "mine"},
    ]);
    let (tx, mut rx) = mpsc::channel(16);
    let turn = {
        let host = host.clone();
        let options = TurnOptions::default().with_stream(tx);
        tokio::spawn(async move {
            host.run_turn_with("p", "probe", &ops.to_string(), options)
                .await
        })
    };
    assert_eq!(rx.recv().await, Some(TurnEvent::Chunk("thinking".into())));
    let other = json!([{"op": "save", "session": "probe", "value": "theirs"}]);
    host.run_turn("p", "probe", &other.to_string())
        .await
        .unwrap();
    let mut rest = Vec::new();
    while let Some(event) = rx.recv().await {
        rest.push(event);
    }
    assert_eq!(
        rest,
        [TurnEvent::Restart, TurnEvent::Chunk("thinking".into())]
    );
    turn.await.unwrap().unwrap();
    let state = host.inspect("p", "probe").await.unwrap().state.unwrap();
    assert_eq!((state.value.as_slice(), state.version), (&b"mine"[..], 2));
}

async fn emits_past_the_limits_are_refused(backend: Backend) {
    let mut limits = Limits::default();
    (limits.max_emit_chunks, limits.max_emit_bytes) = (2, 10);
    let host = backend.host();
    load(
        &host,
        PluginConfig::new("p", "t").with_limits(limits),
        plugins::PROBE,
    )
    .await;
    let ops = json!([
        {"op": "emit", "chunk": "12345"},
        {"op": "emit", "chunk": "123456"},
        {"op": "emit", "chunk": "12345"},
        {"op": "emit", "chunk": "1"},
    ]);
    let (events, outcome) = streamed(&host, ops, 16).await;
    let results: serde_json::Value = serde_json::from_str(&outcome.unwrap()).unwrap();
    let kinds: Vec<_> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["err"]["kind"].as_str().unwrap_or("ok").to_string())
        .collect();
    // 5 + 6 bytes is over 10; then the third chunk fits the bytes, the fourth not
    // the count.
    assert_eq!(kinds, ["ok", "quota-exceeded", "ok", "quota-exceeded"]);
    assert_eq!(
        events,
        [
            TurnEvent::Chunk("12345".into()),
            TurnEvent::Chunk("12345".into())
        ]
    );
}
