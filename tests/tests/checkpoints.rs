//! Kept state versions and time travel (`keep_versions`): listing, reading, rolling
//! back and forking, on every store, with concurrent turns.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_host::{Error, Host, PluginConfig};
use agent_host_tests::{Backend, conformance, eventually, load, plugins, probe};
use serde_json::json;

conformance!(
    saves_keep_the_newest_versions_with_when_and_how_much_history,
    a_rollback_writes_a_new_version_and_erases_nothing,
    a_fork_copies_a_version_and_the_history_it_had,
    versions_expire_and_go_with_their_session,
    rollbacks_among_concurrent_turns_lose_no_update,
    a_plugin_reads_its_sessions_kept_versions,
    a_plugin_built_against_the_first_wit_still_runs,
);

async fn probe_host(backend: &Backend, config: PluginConfig) -> Host {
    let host = backend.host();
    load(&host, config, plugins::PROBE).await;
    host
}

/// One turn of probe plugin "p": append `item` to `session`, then save `value`.
async fn append_and_save(host: &Host, session: &str, item: &str, value: &str) {
    let ops = json!([
        {"op": "append", "session": session, "items": [item]},
        {"op": "save", "session": session, "value": value},
    ]);
    for result in probe(host, "p", ops).await {
        assert!(result.get("ok").is_some(), "{result}");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn saves_keep_the_newest_versions_with_when_and_how_much_history(backend: Backend) {
    let host = probe_host(&backend, PluginConfig::new("p", "t").with_keep_versions(3)).await;
    let before = now_ms();
    for (i, value) in ["a", "bb", "ccc", "dddd", "eeeee"].iter().enumerate() {
        append_and_save(&host, "s", &format!("item {i}"), value).await;
    }
    let versions = host.versions("p", "s").await.unwrap();
    let listed: Vec<(u64, u64, u64)> = versions
        .iter()
        .map(|v| (v.version, v.bytes, v.history_len))
        .collect();
    // The current document and the three before it, newest first.
    assert_eq!(listed, [(5, 5, 5), (4, 4, 4), (3, 3, 3), (2, 2, 2)]);
    for v in &versions {
        assert!(
            (before..=now_ms()).contains(&v.written_at_ms),
            "{v:?} written at {}",
            v.written_at_ms
        );
    }
    let third = host.load_version("p", "s", 3).await.unwrap().unwrap();
    assert_eq!((third.value.as_slice(), third.version), (&b"ccc"[..], 3));
    assert_eq!(host.load_version("p", "s", 1).await.unwrap(), None);
    assert!(host.versions("p", "nobody").await.unwrap().is_empty());

    // A plugin that keeps none lists only the current document.
    let plain = probe_host(&backend, PluginConfig::new("q", "u")).await;
    for value in ["a", "b"] {
        let ops = json!([{"op": "save", "session": "s", "value": value}]);
        probe(&plain, "q", ops).await;
    }
    let versions = plain.versions("q", "s").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [2]);
}

async fn a_rollback_writes_a_new_version_and_erases_nothing(backend: Backend) {
    let host = probe_host(&backend, PluginConfig::new("p", "t").with_keep_versions(10)).await;
    for value in ["first", "second", "third"] {
        append_and_save(&host, "s", value, value).await;
    }
    assert_eq!(host.rollback("p", "s", 1).await.unwrap(), 4);
    let load = json!([{"op": "load", "session": "s"}]);
    let loaded = probe(&host, "p", load).await;
    assert_eq!(loaded[0]["ok"], json!({"value": "first", "version": 4}));
    let versions = host.versions("p", "s").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [4, 3, 2, 1]
    );
    // Rolling back the rollback: version 3's document comes back as version 5.
    assert_eq!(host.rollback("p", "s", 3).await.unwrap(), 5);
    let third = host.load_version("p", "s", 5).await.unwrap().unwrap();
    assert_eq!(third.value, b"third");

    let missing = host.rollback("p", "s", 99).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing:?}");
    let bad = host.rollback("p", "bad\nid", 1).await.unwrap_err();
    assert!(matches!(bad, Error::Invalid(_)), "{bad:?}");
}

async fn a_fork_copies_a_version_and_the_history_it_had(backend: Backend) {
    let host = probe_host(&backend, PluginConfig::new("p", "t").with_keep_versions(10)).await;
    for (item, value) in [("x1", "a"), ("x2", "b"), ("x3", "c")] {
        append_and_save(&host, "s", item, value).await;
    }
    let forked = host.fork("p", "s", 2, "t").await.unwrap();
    assert_eq!((forked.version, forked.history_len), (1, 2));
    let copy = host.inspect("p", "t").await.unwrap();
    let state = copy.state.unwrap();
    assert_eq!((state.value.as_slice(), state.version), (&b"b"[..], 1));
    assert_eq!(copy.history, [b"x1".to_vec(), b"x2".to_vec()]);
    // The source is untouched.
    let source = host.inspect("p", "s").await.unwrap();
    assert_eq!(source.state.unwrap().version, 3);
    assert_eq!(source.history_len, 3);

    let exists = host.fork("p", "s", 3, "t").await.unwrap_err();
    assert!(matches!(exists, Error::Conflict(_)), "{exists:?}");
    let missing = host.fork("p", "s", 99, "u").await.unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing:?}");
    let itself = host.fork("p", "s", 3, "s").await.unwrap_err();
    assert!(matches!(itself, Error::Conflict(_)), "{itself:?}");
}

async fn versions_expire_and_go_with_their_session(backend: Backend) {
    let config = PluginConfig::new("p", "t")
        .with_keep_versions(5)
        .with_default_ttl(Some(Duration::from_millis(400)));
    let host = probe_host(&backend, config).await;
    for value in ["a", "b", "c"] {
        append_and_save(&host, "s", value, value).await;
    }
    assert_eq!(host.versions("p", "s").await.unwrap().len(), 3);
    let gone = eventually(Duration::from_secs(10), || async {
        host.versions("p", "s").await.unwrap().is_empty()
    })
    .await;
    assert!(gone, "kept versions outlived their session");

    // Deleting a session deletes its versions.
    let host = probe_host(&backend, PluginConfig::new("p", "u").with_keep_versions(5)).await;
    for value in ["a", "b"] {
        append_and_save(&host, "s", value, value).await;
    }
    assert!(host.clear_session("p", "s").await.unwrap());
    assert!(host.versions("p", "s").await.unwrap().is_empty());
    append_and_save(&host, "s", "new", "new").await;
    let versions = host.versions("p", "s").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);
}

async fn rollbacks_among_concurrent_turns_lose_no_update(backend: Backend) {
    let config = PluginConfig::new("counter", "t").with_keep_versions(100);
    let hosts = [backend.host(), backend.host()];
    for host in &hosts {
        load(host, config.clone(), plugins::COUNTER).await;
    }
    for _ in 0..10 {
        hosts[0].run_turn("counter", "s", "x").await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..16 {
        let host = hosts[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 == 0 {
                host.rollback("counter", "s", 5)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                host.run_turn("counter", "s", "x")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Every commit made one version: 10 + 12 turns + 4 rollbacks, none lost.
    let versions = hosts[1].versions("counter", "s").await.unwrap();
    let numbers: Vec<u64> = versions.iter().map(|v| v.version).collect();
    let expected: Vec<u64> = (1..=26).rev().collect();
    assert_eq!(numbers, expected);
}

async fn a_plugin_reads_its_sessions_kept_versions(backend: Backend) {
    let host = probe_host(&backend, PluginConfig::new("p", "t").with_keep_versions(2)).await;
    for value in ["one", "two", "three"] {
        append_and_save(&host, "s", value, value).await;
    }
    let ops = json!([
        {"op": "versions", "session": "s"},
        {"op": "load-version", "session": "s", "version": 2},
        {"op": "load-version", "session": "s", "version": 1},
        {"op": "save", "session": "s", "value": "four"},
        {"op": "versions", "session": "s"},
        {"op": "versions", "session": "bad\nid"},
    ]);
    let results = probe(&host, "p", ops).await;
    // [version, bytes, history length, written at known]
    let listed = json!([[3, 5, 3, true], [2, 3, 2, true], [1, 3, 1, true]]);
    assert_eq!(results[0], json!({"ok": listed}));
    assert_eq!(results[1], json!({"ok": {"value": "two", "version": 2}}));
    // Kept: the current one and the two before it.
    assert_eq!(results[2], json!({"ok": {"value": "one", "version": 1}}));
    // The turn's own save shows once it commits.
    assert_eq!(results[4], json!({"ok": listed}));
    assert_eq!(results[5]["err"]["kind"], "invalid-key", "{}", results[5]);
    let after = host.versions("p", "s").await.unwrap();
    assert_eq!(
        after.iter().map(|v| v.version).collect::<Vec<_>>(),
        [4, 3, 2]
    );
}

async fn a_plugin_built_against_the_first_wit_still_runs(backend: Backend) {
    let host = backend.host();
    load(&host, PluginConfig::new("legacy", "t"), plugins::LEGACY).await;
    assert_eq!(host.run_turn("legacy", "s", "x").await.unwrap(), "1");
    assert_eq!(host.run_turn("legacy", "s", "x").await.unwrap(), "2");
}
