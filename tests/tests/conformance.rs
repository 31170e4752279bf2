//! The conformance suite: every `agent-state` operation and turn behaviour, through
//! a real plugin, written once and run on every store (a real Redis and the
//! embedded file store): `cargo test --test conformance`. Limits and concurrent
//! turns are in `conformance_limits.rs`.

use std::time::Duration;

use agent_host::{Limits, PluginConfig};

use agent_host_tests::{
    Backend, conformance, eventually, load, plugins, probe, probe_err, probe_host, probe_ok,
};
use serde_json::json;

async fn save_load_versions_and_conflicts(backend: Backend) {
    let host = probe_host(&backend, Limits::default()).await;
    let h = &host;
    assert_eq!(
        probe_ok(h, "p", json!({"op": "load", "session": "s"})).await,
        json!(null)
    );
    assert_eq!(
        probe_ok(
            h,
            "p",
            json!({"op": "save", "session": "s", "value": "one"})
        )
        .await,
        json!(1)
    );
    assert_eq!(
        probe_ok(
            h,
            "p",
            json!({"op": "save", "session": "s", "value": "two"})
        )
        .await,
        json!(2)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "load", "session": "s"})).await,
        json!({"value": "two", "version": 2})
    );
    // A stale expected version is refused and writes nothing.
    let (kind, _) = probe_err(
        h,
        "p",
        json!({"op": "save", "session": "s", "value": "stale", "if_version": 1}),
    )
    .await;
    assert_eq!(kind, "conflict");
    assert_eq!(
        probe_ok(h, "p", json!({"op": "load", "session": "s"})).await["value"],
        json!("two")
    );
    assert_eq!(
        probe_ok(
            h,
            "p",
            json!({"op": "save", "session": "s", "value": "three", "if_version": 2})
        )
        .await,
        json!(3)
    );
    // if-version 0: create only.
    let (kind, _) = probe_err(
        h,
        "p",
        json!({"op": "save", "session": "s", "value": "x", "if_version": 0}),
    )
    .await;
    assert_eq!(kind, "conflict");
    assert_eq!(
        probe_ok(
            h,
            "p",
            json!({"op": "save", "session": "new", "value": "x", "if_version": 0})
        )
        .await,
        json!(1)
    );

    assert_eq!(
        probe_ok(h, "p", json!({"op": "delete", "session": "s"})).await,
        json!(true)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "delete", "session": "s"})).await,
        json!(false)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "load", "session": "s"})).await,
        json!(null)
    );
}

async fn history_append_items_pop(backend: Backend) {
    let host = probe_host(&backend, Limits::default()).await;
    let h = &host;
    let results = probe(
        h,
        "p",
        json!([
            {"op": "items", "session": "s", "last": null},
            {"op": "append", "session": "s", "items": ["a", "b"]},
            {"op": "append", "session": "s", "items": ["c"]},
            {"op": "append", "session": "s", "items": []},
            {"op": "items", "session": "s", "last": 2},
            {"op": "items", "session": "s", "last": null},
            {"op": "items", "session": "s", "last": 0},
            {"op": "items", "session": "s", "last": 99},
            {"op": "pop", "session": "s"},
            {"op": "items", "session": "s", "last": null},
            {"op": "pop", "session": "s"},
            {"op": "pop", "session": "s"},
            {"op": "pop", "session": "s"},
        ]),
    )
    .await;
    let oks: Vec<_> = results.iter().map(|r| r["ok"].clone()).collect();
    assert_eq!(
        oks,
        vec![
            json!([]),
            json!(2),
            json!(3),
            json!(3),
            json!(["b", "c"]),
            json!(["a", "b", "c"]),
            json!([]),
            json!(["a", "b", "c"]),
            json!("c"),
            json!(["a", "b"]),
            json!("b"),
            json!("a"),
            json!(null),
        ]
    );
}

async fn touch_ttl_and_clear(backend: Backend) {
    let host = probe_host(&backend, Limits::default()).await;
    let h = &host;
    // No session: touch reports it, ttl is none.
    assert_eq!(
        probe_ok(h, "p", json!({"op": "touch", "session": "s", "ttl": 60})).await,
        json!(false)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "ttl", "session": "s"})).await,
        json!(null)
    );
    probe_ok(h, "p", json!({"op": "save", "session": "s", "value": "v"})).await;
    probe_ok(
        h,
        "p",
        json!({"op": "append", "session": "s", "items": ["m"]}),
    )
    .await;
    // The plugin's default TTL is "never".
    assert_eq!(
        probe_ok(h, "p", json!({"op": "ttl", "session": "s"})).await,
        json!(null)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "touch", "session": "s", "ttl": 100})).await,
        json!(true)
    );
    let ttl = probe_ok(h, "p", json!({"op": "ttl", "session": "s"})).await;
    assert!((99..=100).contains(&ttl.as_u64().unwrap()), "{ttl}");
    // A save with its own TTL sets it on the whole session.
    probe_ok(
        h,
        "p",
        json!({"op": "save", "session": "s", "value": "v", "ttl": 5000}),
    )
    .await;
    let ttl = probe_ok(h, "p", json!({"op": "ttl", "session": "s"})).await;
    assert!((4990..=5000).contains(&ttl.as_u64().unwrap()), "{ttl}");
    // touch(none) removes the expiry.
    assert_eq!(
        probe_ok(h, "p", json!({"op": "touch", "session": "s", "ttl": null})).await,
        json!(true)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "ttl", "session": "s"})).await,
        json!(null)
    );

    assert_eq!(
        probe_ok(h, "p", json!({"op": "clear", "session": "s"})).await,
        json!(true)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "load", "session": "s"})).await,
        json!(null)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "items", "session": "s", "last": null})).await,
        json!([])
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "clear", "session": "s"})).await,
        json!(false)
    );
}

async fn list_sessions_pages_through_live_sessions(backend: Backend) {
    let host = probe_host(&backend, Limits::default()).await;
    let h = &host;
    let mut ops = Vec::new();
    for i in 0..25 {
        ops.push(json!({"op": "save", "session": format!("s{i:02}"), "value": "v"}));
    }
    ops.push(json!({"op": "append", "session": "history-only", "items": ["x"]}));
    probe(h, "p", json!(ops)).await;

    let mut seen = Vec::new();
    let mut cursor = serde_json::Value::Null;
    loop {
        let page = probe_ok(h, "p", json!({"op": "list", "cursor": cursor, "limit": 10})).await;
        let sessions = page["sessions"].as_array().unwrap();
        assert!(sessions.len() <= 10);
        seen.extend(sessions.iter().map(|s| s.as_str().unwrap().to_string()));
        cursor = page["cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let mut expected: Vec<String> = (0..25).map(|i| format!("s{i:02}")).collect();
    expected.insert(0, "history-only".into());
    assert_eq!(seen, expected);

    // A cleared session leaves the listing at once; a session whose state was
    // deleted and whose history is empty leaves it at the next listing.
    probe_ok(h, "p", json!({"op": "clear", "session": "s00"})).await;
    probe_ok(h, "p", json!({"op": "delete", "session": "s01"})).await;
    let page = probe_ok(h, "p", json!({"op": "list", "cursor": null, "limit": 100})).await;
    let listed = page["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 24);
    assert!(!listed.contains(&json!("s00")) && !listed.contains(&json!("s01")));
    assert!(page["cursor"].is_null());

    let (kind, _) = probe_err(h, "p", json!({"op": "list", "cursor": null, "limit": 0})).await;
    assert_eq!(kind, "invalid-argument");
}

async fn plugin_wide_values(backend: Backend) {
    let host = probe_host(&backend, Limits::default()).await;
    let h = &host;
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "k"})).await,
        json!(null)
    );
    probe_ok(
        h,
        "p",
        json!({"op": "set", "key": "k", "value": "hello", "ttl": null}),
    )
    .await;
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "k"})).await,
        json!("hello")
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "increment", "key": "n", "delta": 5})).await,
        json!(5)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "increment", "key": "n", "delta": -7})).await,
        json!(-2)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "n"})).await,
        json!("-2")
    );
    let (kind, _) = probe_err(h, "p", json!({"op": "increment", "key": "k", "delta": 1})).await;
    assert_eq!(kind, "internal");
    probe_ok(
        h,
        "p",
        json!({"op": "set", "key": "max", "value": i64::MAX.to_string(), "ttl": null}),
    )
    .await;
    let (kind, _) = probe_err(h, "p", json!({"op": "increment", "key": "max", "delta": 1})).await;
    assert_eq!(kind, "internal");
    assert_eq!(
        probe_ok(h, "p", json!({"op": "remove", "key": "k"})).await,
        json!(true)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "remove", "key": "k"})).await,
        json!(false)
    );
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "k"})).await,
        json!(null)
    );

    // A value with a TTL gets it.
    probe_ok(
        h,
        "p",
        json!({"op": "set", "key": "t", "value": "v", "ttl": 300}),
    )
    .await;
    if let Backend::Redis(server) = &backend {
        let mut conn = server.conn().await;
        let pttl: i64 = redis::cmd("PTTL")
            .arg("agent:tenant-a:kv:{t}")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((290_000..=300_000).contains(&pttl), "{pttl}");
    }
    probe_ok(
        h,
        "p",
        json!({"op": "set", "key": "short", "value": "v", "ttl": 1}),
    )
    .await;
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "short"})).await,
        json!("v")
    );
    let expired = eventually(Duration::from_secs(5), || async {
        probe_ok(h, "p", json!({"op": "get", "key": "short"})).await == json!(null)
    })
    .await;
    assert!(expired, "a value with a 1 s TTL still there after 5 s");
    assert_eq!(
        probe_ok(h, "p", json!({"op": "get", "key": "t"})).await,
        json!("v")
    );
}

async fn a_session_expires_as_a_whole(backend: Backend) {
    let host = backend.host();
    let ttl = Duration::from_millis(400);
    load(
        &host,
        PluginConfig::new("p", "t").with_default_ttl(Some(ttl)),
        plugins::PROBE,
    )
    .await;
    let results = probe(
        &host,
        "p",
        json!([
            {"op": "save", "session": "s", "value": "v"},
            {"op": "append", "session": "s", "items": ["a"]},
            {"op": "save", "session": "keep", "value": "v", "ttl": 600},
        ]),
    )
    .await;
    assert!(results.iter().all(|r| r.get("ok").is_some()), "{results:?}");
    // Listing reads what is committed, so it comes in the next turn.
    let results = probe(
        &host,
        "p",
        json!([
            {"op": "ttl", "session": "s"},
            {"op": "list", "cursor": null, "limit": 10},
        ]),
    )
    .await;
    assert!(
        results[0]["ok"].as_u64().is_some_and(|t| t <= 1),
        "{results:?}"
    );
    assert_eq!(results[1]["ok"]["sessions"], json!(["keep", "s"]));
    let snapshot = host.inspect("p", "s").await.unwrap();
    assert!(snapshot.ttl.is_some_and(|t| t <= ttl), "{:?}", snapshot.ttl);

    let gone = eventually(Duration::from_secs(5), || async {
        let s = host.inspect("p", "s").await.unwrap();
        s.state.is_none() && s.history.is_empty()
    })
    .await;
    assert!(gone, "session still there 5 s after a 400 ms TTL");
    let results = probe(
        &host,
        "p",
        json!([
            {"op": "load", "session": "s"},
            {"op": "items", "session": "s", "last": null},
            {"op": "ttl", "session": "s"},
            {"op": "list", "cursor": null, "limit": 10},
        ]),
    )
    .await;
    assert_eq!(results[0]["ok"], json!(null));
    assert_eq!(results[1]["ok"], json!([]));
    assert_eq!(results[2]["ok"], json!(null));
    assert_eq!(results[3]["ok"]["sessions"], json!(["keep"]));
    // A new session under the old id starts from nothing, without expiry.
    let results = probe(
        &host,
        "p",
        json!([
            {"op": "append", "session": "s", "items": ["b"]},
            {"op": "items", "session": "s", "last": null},
            {"op": "load", "session": "s"},
        ]),
    )
    .await;
    assert_eq!(results[1]["ok"], json!(["b"]));
    assert_eq!(results[2]["ok"], json!(null));
}

async fn sessions_survive_a_restart(mut backend: Backend) {
    let config =
        || PluginConfig::new("chat", "tenant-a").with_default_ttl(Some(Duration::from_secs(3600)));
    {
        let host = backend.host();
        load(&host, config(), plugins::CHAT_MEMORY).await;
        for line in ["my name is Ada", "I like tea"] {
            host.run_turn("chat", "alice", line).await.unwrap();
        }
    }
    backend.restart();
    let host = backend.host();
    load(&host, config(), plugins::CHAT_MEMORY).await;
    let snapshot = host.inspect("chat", "alice").await.unwrap();
    assert_eq!(
        snapshot.history.len(),
        4,
        "two turns, question and answer each"
    );
    assert!(snapshot.state.is_some_and(|s| s.version == 2));
    assert!(snapshot.ttl.is_some_and(|t| t > Duration::from_secs(3500)));
    let page = host.list_sessions("chat", None, 10).await.unwrap();
    assert_eq!(page.sessions, vec!["alice".to_string()]);
    let answer = host.run_turn("chat", "alice", "and cake").await.unwrap();
    assert!(answer.starts_with("Turn 3."), "{answer}");
    assert!(answer.contains("I like tea"), "{answer}");
}

conformance!(
    save_load_versions_and_conflicts,
    history_append_items_pop,
    touch_ttl_and_clear,
    list_sessions_pages_through_live_sessions,
    plugin_wide_values,
    a_session_expires_as_a_whole,
    sessions_survive_a_restart,
);
