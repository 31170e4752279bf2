//! The conformance suite, second part: limits and bad arguments as typed errors,
//! and concurrent turns that lose no update, on every store:
//! `cargo test --test conformance_limits`.

use agent_host::{Host, Limits, PluginConfig};
use tokio::task::JoinSet;

use agent_host_tests::{
    Backend, conformance, load, plugins, probe, probe_err, probe_host, probe_ok,
};
use serde_json::json;

async fn limits_and_bad_arguments_are_typed_errors(backend: Backend) {
    let mut limits = Limits::default();
    limits.max_value_bytes = 1000;
    limits.max_history_items = 3;
    limits.max_items_per_call = 5;
    let host = probe_host(&backend, limits).await;
    let h = &host;

    let (kind, detail) = probe_err(
        h,
        "p",
        json!({"op": "save-big", "session": "s", "size": 1001}),
    )
    .await;
    assert_eq!((kind.as_str(), detail), ("too-large", json!(1000)));
    assert_eq!(
        probe_ok(
            h,
            "p",
            json!({"op": "save-big", "session": "s", "size": 1000})
        )
        .await,
        json!(1)
    );
    let (kind, _) = probe_err(h, "p", json!({"op": "set-big", "key": "k", "size": 1001})).await;
    assert_eq!(kind, "too-large");

    probe_ok(
        h,
        "p",
        json!({"op": "append", "session": "s", "items": ["a", "b"]}),
    )
    .await;
    let (kind, _) = probe_err(
        h,
        "p",
        json!({"op": "append", "session": "s", "items": ["c", "d"]}),
    )
    .await;
    assert_eq!(kind, "quota-exceeded");
    // Nothing of the refused append was written.
    assert_eq!(
        probe_ok(h, "p", json!({"op": "items", "session": "s", "last": null})).await,
        json!(["a", "b"])
    );
    let (kind, _) = probe_err(
        h,
        "p",
        json!({"op": "append", "session": "t", "items": ["1", "2", "3", "4", "5", "6"]}),
    )
    .await;
    assert_eq!(kind, "quota-exceeded");

    let (kind, _) = probe_err(
        h,
        "p",
        json!({"op": "save", "session": "s", "value": "v", "ttl": 0}),
    )
    .await;
    assert_eq!(kind, "invalid-argument");
    let (kind, _) = probe_err(h, "p", json!({"op": "touch", "session": "s", "ttl": 0})).await;
    assert_eq!(kind, "invalid-argument");

    for bad in [
        String::new(),
        "a\u{0}b".into(),
        "tab\there".into(),
        "x".repeat(513),
    ] {
        for op in [
            json!({"op": "load", "session": bad}),
            json!({"op": "get", "key": bad}),
        ] {
            let (kind, _) = probe_err(h, "p", op).await;
            assert_eq!(kind, "invalid-key");
        }
    }
    let (kind, _) = probe_err(h, "p", json!({"op": "list", "cursor": "", "limit": 1})).await;
    assert_eq!(kind, "invalid-key");
}

async fn the_bytes_one_turn_writes_are_limited(backend: Backend) {
    let mut limits = Limits::default();
    limits.max_value_bytes = 1000;
    limits.max_turn_bytes = 2500;
    let host = probe_host(&backend, limits).await;
    let results = probe(
        &host,
        "p",
        json!([
            {"op": "save-big", "session": "a", "size": 1000},
            {"op": "set-big", "key": "k", "size": 1000},
            {"op": "save-big", "session": "b", "size": 1000},
            {"op": "append", "session": "a", "items": ["12345"]},
        ]),
    )
    .await;
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| r["err"]["kind"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(kinds, ["ok", "ok", "quota-exceeded", "ok"]);
    // The budget is per turn: the next turn may write again.
    assert_eq!(
        probe_ok(
            &host,
            "p",
            json!({"op": "save-big", "session": "b", "size": 1000})
        )
        .await,
        json!(1)
    );
}

async fn the_number_of_plugin_wide_values_is_limited(backend: Backend) {
    let mut limits = Limits::default();
    limits.max_values = 3;
    let host = probe_host(&backend, limits).await;
    let h = &host;
    let results = probe(
        h,
        "p",
        json!([
            {"op": "set", "key": "a", "value": "1", "ttl": null},
            {"op": "set", "key": "b", "value": "1", "ttl": null},
            {"op": "increment", "key": "c", "delta": 1},
            {"op": "set", "key": "d", "value": "1", "ttl": null},
            {"op": "increment", "key": "d", "delta": 1},
            {"op": "set", "key": "a", "value": "overwrite", "ttl": null},
            {"op": "remove", "key": "b"},
            {"op": "set", "key": "d", "value": "1", "ttl": null},
        ]),
    )
    .await;
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| r["err"]["kind"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        kinds,
        [
            "ok",
            "ok",
            "ok",
            "quota-exceeded",
            "quota-exceeded",
            "ok",
            "ok",
            "ok"
        ]
    );
    // Three values committed (a, c, d); a fourth is refused in a later turn too.
    let (kind, _) = probe_err(
        h,
        "p",
        json!({"op": "set", "key": "e", "value": "1", "ttl": null}),
    )
    .await;
    assert_eq!(kind, "quota-exceeded");
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "b"})).await,
        json!(null)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "d"})).await,
        json!("1")
    );
    probe_ok(h, "p", json!({"op": "remove", "key": "a"})).await;
    probe_ok(
        h,
        "p",
        json!({"op": "set", "key": "e", "value": "1", "ttl": null}),
    )
    .await;
}

/// `turns` concurrent increments of one session's counter, spread over two hosts
/// that share one store. Returns the final value and the hosts' conflict counts.
async fn increment_concurrently(backend: &Backend, serialize: bool, turns: u64) -> (u64, u64) {
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let host = Host::builder()
            .shared_store(backend.store())
            .serialize_sessions(serialize)
            .max_attempts(1000)
            .build()
            .unwrap();
        load(&host, PluginConfig::new("counter", "t"), plugins::COUNTER).await;
        hosts.push(host);
    }
    let mut running = JoinSet::new();
    for i in 0..turns {
        let host = hosts[i as usize % 2].clone();
        running.spawn(async move { host.run_turn("counter", "shared", "+1").await });
    }
    let mut answers = Vec::new();
    while let Some(result) = running.join_next().await {
        answers.push(
            result
                .unwrap()
                .expect("every turn commits")
                .parse::<u64>()
                .unwrap(),
        );
    }
    // Each turn saw a different value: no two turns committed on the same read.
    answers.sort_unstable();
    assert_eq!(answers, (1..=turns).collect::<Vec<_>>());
    let snapshot = hosts[0].inspect("counter", "shared").await.unwrap();
    let value: u64 = String::from_utf8(snapshot.state.unwrap().value)
        .unwrap()
        .parse()
        .unwrap();
    let conflicts = hosts.iter().map(|h| h.stats().conflicts).sum();
    (value, conflicts)
}

async fn concurrent_turns_on_two_hosts_lose_no_update(backend: Backend) {
    const TURNS: u64 = 200;
    let (value, conflicts) = increment_concurrently(&backend, true, TURNS).await;
    println!("serialised per session: {TURNS} turns, {conflicts} conflicts retried");
    assert_eq!(value, TURNS);
}

async fn without_serialisation_conflicts_are_retried_and_nothing_is_lost(backend: Backend) {
    const TURNS: u64 = 100;
    let (value, conflicts) = increment_concurrently(&backend, false, TURNS).await;
    println!("not serialised: {TURNS} turns, {conflicts} conflicts retried");
    assert_eq!(value, TURNS);
}

conformance!(
    limits_and_bad_arguments_are_typed_errors,
    the_bytes_one_turn_writes_are_limited,
    the_number_of_plugin_wide_values_is_limited,
    concurrent_turns_on_two_hosts_lose_no_update,
    without_serialisation_conflicts_are_retried_and_nothing_is_lost,
);
