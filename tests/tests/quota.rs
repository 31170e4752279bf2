//! Storage quotas: what a plugin keeps in the store is bounded (sessions and bytes),
//! counted in the same step that writes it, freed by deletes and expiry, on every
//! store: `cargo test --test quota`.

use std::time::Duration;

use agent_host::{
    Error, Host, Limits, PluginConfig, Quota, StateError, StoreError, TurnError, TurnOptions, Usage,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use agent_host_tests::{Backend, conformance, eventually, load, plugins, probe, probe_ok};

async fn host_with(backend: &Backend, quota: Quota, ttl: Option<Duration>) -> Host {
    let host = backend.host();
    let config = PluginConfig::new("p", "tenant-a")
        .with_quota(quota)
        .with_default_ttl(ttl)
        .with_keep_versions(3)
        .with_idempotency_ttl(Duration::from_secs(1));
    load(&host, config, plugins::PROBE).await;
    // Another tenant with the same quota: never affected by the first.
    let other = PluginConfig::new("q", "tenant-b").with_quota(quota);
    load(&host, other, plugins::PROBE).await;
    host
}

async fn usage(host: &Host, plugin: &str) -> Usage {
    host.usage(plugin).await.expect("usage").0
}

/// Runs `ops` as one probe turn and expects the store to refuse its writes.
async fn refused(host: &Host, plugin: &str, ops: Value) -> String {
    match host.run_turn(plugin, "probe", &ops.to_string()).await {
        Err(e @ TurnError::QuotaExceeded { .. }) => e.to_string(),
        other => panic!("{ops} should have been refused for the quota: {other:?}"),
    }
}

fn save(session: &str, value: &str) -> Value {
    json!({"op": "save", "session": session, "value": value})
}

fn save_big(session: &str, size: usize) -> Value {
    json!({"op": "save-big", "session": session, "size": size})
}

async fn value_of(host: &Host, plugin: &str, session: &str) -> Value {
    probe_ok(host, plugin, json!({"op": "load", "session": session})).await["value"].clone()
}

async fn sessions_are_bounded(backend: Backend) {
    let host = host_with(&backend, Quota::new(Some(3), None), None).await;
    for s in ["a", "b", "c"] {
        probe_ok(&host, "p", save(s, "first")).await;
    }
    assert_eq!(usage(&host, "p").await.sessions, 3);
    // A fourth session is refused, and nothing of its turn is written.
    let message = refused(&host, "p", json!([save("a", "changed"), save("d", "x")])).await;
    assert!(message.contains("quota of 3 sessions"), "{message}");
    assert_eq!(value_of(&host, "p", "a").await, json!("first"));
    assert_eq!(value_of(&host, "p", "d").await, Value::Null);
    // Sessions it has can still be written and read; another tenant is unaffected.
    probe_ok(&host, "p", save("a", "second")).await;
    assert_eq!(value_of(&host, "p", "a").await, json!("second"));
    for s in ["a", "b", "c"] {
        probe_ok(&host, "q", save(s, "q")).await;
    }
    // Deleting a session makes room.
    assert!(host.clear_session("p", "b").await.expect("clear"));
    probe_ok(&host, "p", save("d", "x")).await;
    assert_eq!(usage(&host, "p").await.sessions, 3);
}

async fn bytes_are_bounded(backend: Backend) {
    let host = host_with(&backend, Quota::new(None, Some(10_000)), None).await;
    probe_ok(&host, "p", save_big("s1", 4_000)).await;
    let one = usage(&host, "p").await;
    assert!((4_000..4_400).contains(&one.bytes), "{one:?}");
    probe_ok(&host, "p", save_big("s2", 4_000)).await;
    let message = refused(&host, "p", json!([save_big("s3", 4_000)])).await;
    assert!(message.contains("quota of 10000 bytes"), "{message}");
    assert_eq!(value_of(&host, "p", "s3").await, Value::Null);
    assert_eq!(usage(&host, "p").await.bytes, 2 * one.bytes);
    // A smaller document frees room (the replaced one is kept as a version, and
    // counted, until versions are dropped: here 3 are kept).
    probe_ok(&host, "p", json!({"op": "delete", "session": "s2"})).await;
    let after_delete = usage(&host, "p").await;
    assert!(after_delete.bytes < 2 * one.bytes, "{after_delete:?}");
    probe_ok(&host, "p", save_big("s3", 2_000)).await;
    // Every kind of entry counts: history items and plugin-wide values.
    let before = usage(&host, "p").await.bytes;
    probe_ok(
        &host,
        "p",
        json!({"op": "append", "session": "s3", "items": ["x".repeat(500), "y".repeat(500)]}),
    )
    .await;
    let appended = usage(&host, "p").await.bytes;
    assert_eq!(appended, before + 1_000, "two history items of 500 bytes");
    probe_ok(
        &host,
        "p",
        json!({"op": "set-big", "key": "cache", "size": 700}),
    )
    .await;
    let valued = usage(&host, "p").await.bytes;
    assert!(
        (appended + 700..appended + 900).contains(&valued),
        "{valued}"
    );
    // Over the quota, a value is refused like a session.
    refused(
        &host,
        "p",
        json!([{"op": "set-big", "key": "huge", "size": 5_000}]),
    )
    .await;
    // Reads still work at the quota, and the other tenant writes as much as it may.
    assert_eq!(
        probe_ok(&host, "p", json!({"op": "items", "session": "s3"}))
            .await
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    probe_ok(&host, "q", save_big("s1", 9_000)).await;
}

/// Deletes, pops and clears give back exactly what writes took: after removing
/// everything, the plugin keeps nothing.
async fn usage_returns_to_zero(backend: Backend) {
    let host = host_with(&backend, Quota::default(), None).await;
    for i in 0..5 {
        probe_ok(&host, "p", save("s", &format!("version {i}"))).await;
    }
    probe(
        &host,
        "p",
        json!([
            {"op": "append", "session": "s", "items": ["one", "two", "three"]},
            {"op": "pop", "session": "s"},
            {"op": "append", "session": "t", "items": ["only history"]},
            {"op": "set", "key": "k", "value": "a value"},
            {"op": "increment", "key": "n", "delta": 12345},
            {"op": "increment", "key": "n", "delta": -12000},
        ]),
    )
    .await;
    let used = usage(&host, "p").await;
    assert_eq!(used.sessions, 2);
    assert!(used.bytes > 0);
    probe(
        &host,
        "p",
        json!([
            {"op": "clear", "session": "s"},
            {"op": "pop", "session": "t"},
            {"op": "remove", "key": "k"},
            {"op": "remove", "key": "n"},
        ]),
    )
    .await;
    assert_eq!(usage(&host, "p").await, Usage::default());
    // An idempotency record counts while it is kept (1 s here), then not.
    host.run_turn_with(
        "p",
        "s",
        &json!([save("s", "once")]).to_string(),
        TurnOptions::idempotency_key("key-1"),
    )
    .await
    .expect("turn");
    probe_ok(&host, "p", json!({"op": "delete", "session": "s"})).await;
    let recorded = usage(&host, "p").await;
    assert_eq!(recorded.sessions, 0);
    assert!(recorded.bytes > 0, "the idempotency record counts");
    let gone = eventually(Duration::from_secs(5), || async {
        usage(&host, "p").await == Usage::default()
    })
    .await;
    assert!(
        gone,
        "the expired record still counts: {:?}",
        usage(&host, "p").await
    );
}

/// Expired sessions stop counting as soon as they expire: the quota check prunes
/// them before it refuses.
async fn expired_sessions_stop_counting(backend: Backend) {
    let ttl = Duration::from_secs(1);
    let host = host_with(&backend, Quota::new(Some(2), Some(10_000)), Some(ttl)).await;
    probe_ok(&host, "p", save_big("a", 4_000)).await;
    probe_ok(&host, "p", save_big("b", 4_000)).await;
    refused(&host, "p", json!([save("c", "x")])).await;
    let expired = eventually(Duration::from_secs(5), || async {
        value_of(&host, "p", "a").await.is_null() && value_of(&host, "p", "b").await.is_null()
    })
    .await;
    assert!(expired, "the sessions did not expire");
    // Nothing was pruned yet: the commit's own check does not count them.
    probe_ok(&host, "p", save_big("c", 4_000)).await;
    let used = usage(&host, "p").await;
    assert_eq!(used.sessions, 1, "{used:?}");
    assert!(used.bytes < 4_400, "{used:?}");
}

/// Many turns at once never take a plugin past its quota on one Redis or the
/// embedded store; on a cluster (checked in the plugin's slot before the sessions'
/// slots are written) by at most what the other concurrent turns add.
async fn concurrent_turns_stay_bounded(backend: Backend) {
    const QUOTA: u64 = 50_000;
    const WORKERS: u64 = 8;
    let host = host_with(&backend, Quota::new(None, Some(QUOTA)), None).await;
    let mut tasks = JoinSet::new();
    for w in 0..WORKERS {
        let host = host.clone();
        tasks.spawn(async move {
            let mut refused = 0;
            for i in 0..10 {
                let ops = json!([save_big(&format!("w{w}-{i}"), 4_000)]).to_string();
                match host.run_turn("p", "probe", &ops).await {
                    Ok(_) => {}
                    Err(TurnError::QuotaExceeded { .. }) => refused += 1,
                    Err(e) => panic!("turn failed: {e}"),
                }
            }
            refused
        });
    }
    let refused: u64 = tasks.join_all().await.into_iter().sum();
    assert!(
        refused > 0,
        "80 turns of 4 kB should not fit in {QUOTA} bytes"
    );
    let used = usage(&host, "p").await;
    let entry = 4_000 + 200;
    let bound = match backend {
        Backend::Cluster(_) => QUOTA + (WORKERS - 1) * entry,
        _ => QUOTA,
    };
    assert!(used.bytes <= bound, "{used:?} over {bound}");
    assert!(
        used.bytes + entry > QUOTA,
        "{used:?}: room for another turn was left"
    );
}

/// A fork copies no more than a turn may write, reads the history page by page,
/// and counts against the quota like a turn.
async fn forks_are_bounded(backend: Backend) {
    let host = backend.host();
    let mut limits = Limits::default();
    limits.max_turn_bytes = 20_000;
    let config = PluginConfig::new("p", "tenant-a")
        .with_keep_versions(2)
        .with_limits(limits)
        .with_quota(Quota::new(Some(3), None));
    load(&host, config, plugins::PROBE).await;
    probe_ok(&host, "p", save("small", "v")).await;
    probe_ok(
        &host,
        "p",
        json!({"op": "append", "session": "small", "items": ["a", "b"]}),
    )
    .await;
    probe_ok(&host, "p", save("small", "w")).await;
    let forked = host.fork("p", "small", 2, "copy").await.expect("fork");
    assert_eq!(forked.history_len, 2);
    // 30 items of 1 kB: more than a turn may write.
    let items: Vec<String> = (0..30).map(|i| format!("{i:04}").repeat(250)).collect();
    for chunk in items.chunks(10) {
        probe_ok(
            &host,
            "p",
            json!({"op": "append", "session": "big", "items": chunk}),
        )
        .await;
    }
    probe_ok(&host, "p", save("big", "v")).await;
    match host.fork("p", "big", 1, "big-copy").await {
        Err(Error::Invalid(StateError::TooLarge { size, limit })) => {
            assert_eq!(limit, 20_000);
            assert!(size > limit, "{size}");
        }
        other => panic!("a fork over max_turn_bytes should be refused: {other:?}"),
    }
    assert!(
        host.inspect("p", "big-copy")
            .await
            .expect("inspect")
            .history
            .is_empty()
    );
    // At the sessions quota (small, copy, big), a fork is refused like a turn.
    match host.fork("p", "small", 2, "third-copy").await {
        Err(Error::Store(StoreError::QuotaExceeded(reason))) => {
            assert!(reason.contains("3 sessions"), "{reason}");
        }
        other => panic!("a fork past the quota should be refused: {other:?}"),
    }
}

conformance!(
    forks_are_bounded,
    sessions_are_bounded,
    bytes_are_bounded,
    usage_returns_to_zero,
    expired_sessions_stop_counting,
    concurrent_turns_stay_bounded,
);
