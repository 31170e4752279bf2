//! The `wasi:keyvalue` part of the conformance suite: a plugin built from the
//! standard WIT alone (`tests/plugins/kv-probe`) gets persistent, isolated,
//! expiring, atomic-per-turn buckets on every store (`cargo test --test keyvalue`).
//! The store's side of it, round trips and components built with other SDKs are
//! in `keyvalue_store.rs`.

use std::time::Duration;

use agent_host::{Host, Limits, PluginConfig};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use agent_host_tests::{Backend, conformance, eventually, load, plugins, probe, probe_all_ok};

/// The `err` text of one op, panicking if it succeeded.
async fn kv_err(host: &Host, id: &str, op: Value) -> String {
    let result = probe(host, id, json!([op])).await.remove(0);
    match result["err"].as_str() {
        Some(e) => e.to_owned(),
        None => panic!("{op} should have failed: {result}"),
    }
}

async fn kv_host(backend: &Backend, config: PluginConfig) -> Host {
    let host = backend.host();
    load(&host, config, plugins::KV_PROBE).await;
    host
}

async fn every_function_reads_its_writes_and_persists(backend: Backend) {
    let host = kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await;
    let h = &host;
    let first = probe_all_ok(
        h,
        "kv",
        json!([
            {"op": "get", "key": "a"},
            {"op": "set", "key": "a", "value": "one"},
            {"op": "get", "key": "a"},
            {"op": "exists", "key": "a"},
            {"op": "exists", "key": "nope"},
            {"op": "set-many", "pairs": [["b", "two"], ["c", "three"], ["gone", "x"]]},
            {"op": "delete", "key": "gone"},
            {"op": "delete", "key": "never-was"},
            {"op": "get-many", "keys": ["a", "b", "gone", "c"]},
            {"op": "increment", "key": "n", "delta": 5},
            {"op": "increment", "key": "n", "delta": -2},
            {"op": "cas", "key": "a", "expect": "one", "value": "uno"},
            {"op": "cas", "key": "fresh", "expect": null, "value": "new"},
            {"op": "delete-many", "keys": ["c", "never-was"]},
            {"op": "list-all"},
        ]),
    )
    .await;
    assert_eq!(first[0], json!(null));
    assert_eq!(first[2], json!("one"));
    assert_eq!((&first[3], &first[4]), (&json!(true), &json!(false)));
    assert_eq!(
        first[8],
        json!([["a", "one"], ["b", "two"], ["gone", null], ["c", "three"]])
    );
    assert_eq!((&first[9], &first[10]), (&json!(5), &json!(3)));
    assert_eq!(
        (&first[11], &first[12]),
        (&json!("swapped"), &json!("swapped"))
    );
    assert_eq!(first[14]["keys"], json!(["a", "b", "fresh", "n"]));

    // Another host on the same store, in a later turn, sees all of it.
    let other = kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await;
    let later = probe_all_ok(
        &other,
        "kv",
        json!([
            {"op": "get-many", "keys": ["a", "b", "c", "fresh", "n", "gone"]},
            {"op": "increment", "key": "n", "delta": 1},
            {"op": "list-all"},
        ]),
    )
    .await;
    assert_eq!(
        later[0],
        json!([
            ["a", "uno"],
            ["b", "two"],
            ["c", null],
            ["fresh", "new"],
            ["n", "3"],
            ["gone", null]
        ])
    );
    assert_eq!(later[1], json!(4));
    assert_eq!(later[2]["keys"], json!(["a", "b", "fresh", "n"]));
}

async fn buckets_plugins_and_agent_state_are_apart(backend: Backend) {
    let host = backend.host();
    load(&host, PluginConfig::new("a", "tenant-a"), plugins::KV_PROBE).await;
    load(&host, PluginConfig::new("b", "tenant-b"), plugins::KV_PROBE).await;
    // An agent-state plugin on tenant-a's namespace.
    load(
        &host,
        PluginConfig::new("state", "tenant-a"),
        plugins::PROBE,
    )
    .await;
    let got = probe(
        &host,
        "a",
        json!([
            {"op": "set", "key": "k", "value": "a-default"},
            {"op": "open", "bucket": "x"},
            {"op": "set", "key": "k", "value": "a-x"},
            {"op": "open", "bucket": "x\u{1}k"},
            {"op": "open", "bucket": "xk"},
            {"op": "get", "key": "k"},
        ]),
    )
    .await;
    assert!(
        got[3]["err"].as_str().unwrap().starts_with("other: "),
        "{got:?}"
    );
    assert_eq!(got[5]["ok"], json!(null), "bucket xk is not x: {got:?}");
    let b = probe_all_ok(
        &host,
        "b",
        json!([{"op": "get", "key": "k"}, {"op": "set", "key": "k", "value": "b"}]),
    )
    .await;
    assert_eq!(b[0], json!(null), "tenant-b saw tenant-a's bucket");
    let a = probe_all_ok(
        &host,
        "a",
        json!([
            {"op": "get", "key": "k"},
            {"op": "open", "bucket": "x"},
            {"op": "get", "key": "k"},
            {"op": "list-all"},
        ]),
    )
    .await;
    assert_eq!((&a[0], &a[2]), (&json!("a-default"), &json!("a-x")));
    assert_eq!(a[3]["keys"], json!(["k"]));
    // agent-state's key "k" of the same namespace is another value.
    let state = probe(&host, "state", json!([{"op": "get", "key": "k"}])).await;
    assert_eq!(state[0]["ok"], json!(null), "{state:?}");
    probe(
        &host,
        "state",
        json!([{"op": "set", "key": "k", "value": "state"}]),
    )
    .await;
    let a = probe_all_ok(&host, "a", json!([{"op": "get", "key": "k"}])).await;
    assert_eq!(a[0], json!("a-default"));
}

async fn list_keys_pages_through_live_keys(backend: Backend) {
    let mut limits = Limits::default();
    limits.max_items_per_call = 10;
    let config = PluginConfig::new("kv", "tenant-a").with_limits(limits);
    let host = kv_host(&backend, config).await;
    let keys: Vec<String> = (0..25).map(|i| format!("key-{i:02}")).collect();
    let mut ops = vec![json!({"op": "open", "bucket": "b"})];
    for chunk in keys.chunks(10) {
        let pairs: Vec<_> = chunk.iter().map(|k| json!([k, "v"])).collect();
        ops.push(json!({"op": "set-many", "pairs": pairs}));
    }
    // Neighbours that must not show: another bucket starting like it, the default.
    ops.extend([
        json!({"op": "open", "bucket": "ba"}),
        json!({"op": "set", "key": "key-00", "value": "v"}),
        json!({"op": "open", "bucket": ""}),
        json!({"op": "set", "key": "key-99", "value": "v"}),
    ]);
    probe_all_ok(&host, "kv", Value::Array(ops)).await;

    let listed = probe_all_ok(
        &host,
        "kv",
        json!([{"op": "open", "bucket": "b"}, {"op": "list-all"}, {"op": "list"}]),
    )
    .await;
    assert_eq!(listed[1]["keys"], json!(keys));
    assert!(listed[1]["pages"].as_u64().unwrap() >= 3, "{listed:?}");
    assert_eq!(listed[2]["keys"].as_array().unwrap().len(), 10);
    let cursor = listed[2]["cursor"].clone();
    assert_eq!(cursor, json!("key-09"));
    let next = probe_all_ok(
        &host,
        "kv",
        json!([{"op": "open", "bucket": "b"}, {"op": "list", "cursor": cursor}]),
    )
    .await;
    assert_eq!(next[1]["keys"], json!(keys[10..20]));

    // A turn's own creates and deletes show in its listing, and after it.
    let within = probe_all_ok(
        &host,
        "kv",
        json!([
            {"op": "open", "bucket": "b"},
            {"op": "delete-many", "keys": ["key-00", "key-13"]},
            {"op": "set", "key": "key-05a", "value": "v"},
            {"op": "set", "key": "zzz", "value": "v"},
            {"op": "list-all"},
        ]),
    )
    .await;
    let mut expected: Vec<String> = keys
        .iter()
        .filter(|k| *k != "key-00" && *k != "key-13")
        .cloned()
        .collect();
    expected.extend(["key-05a".to_owned(), "zzz".to_owned()]);
    expected.sort();
    assert_eq!(within[4]["keys"], json!(expected));
    let after = probe_all_ok(
        &host,
        "kv",
        json!([{"op": "open", "bucket": "b"}, {"op": "list-all"}]),
    )
    .await;
    assert_eq!(after[1]["keys"], json!(expected));
}

async fn keys_expire_after_their_last_write(backend: Backend) {
    let config =
        PluginConfig::new("kv", "tenant-a").with_default_ttl(Some(Duration::from_millis(1500)));
    let host = kv_host(&backend, config).await;
    probe_all_ok(
        &host,
        "kv",
        json!([
            {"op": "set", "key": "short", "value": "v"},
            {"op": "increment", "key": "counter", "delta": 1},
        ]),
    )
    .await;
    let listed = probe_all_ok(&host, "kv", json!([{"op": "list-all"}])).await;
    assert_eq!(listed[0]["keys"], json!(["counter", "short"]));
    let gone = eventually(Duration::from_secs(10), || async {
        let now = probe_all_ok(
            &host,
            "kv",
            json!([{"op": "get-many", "keys": ["short", "counter"]}]),
        )
        .await;
        now[0] == json!([["short", null], ["counter", null]])
    })
    .await;
    assert!(
        gone,
        "bucket keys did not expire with the plugin's default TTL"
    );
    // The next commit drops their index entries; listing shows only live keys.
    probe_all_ok(
        &host,
        "kv",
        json!([{"op": "set", "key": "fresh", "value": "v"}]),
    )
    .await;
    if let Backend::Redis(server) = &backend {
        let mut conn = server.conn().await;
        let entries: Vec<String> = redis::cmd("ZRANGE")
            .arg("agent:tenant-a:index:{agent:tenant-a}:bucket-keys")
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(entries, ["\u{1}\u{1}fresh"]);
    }
    let listed = probe_all_ok(&host, "kv", json!([{"op": "list-all"}])).await;
    assert_eq!(listed[0]["keys"], json!(["fresh"]));
}

async fn a_failed_turn_writes_nothing(backend: Backend) {
    let host = kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await;
    probe_all_ok(
        &host,
        "kv",
        json!([{"op": "set", "key": "kept", "value": "before"}]),
    )
    .await;
    let failed = host
        .run_turn(
            "kv",
            "probe",
            &json!([
                {"op": "set", "key": "kept", "value": "after"},
                {"op": "set-many", "pairs": [["new", "v"]]},
                {"op": "increment", "key": "n", "delta": 1},
                {"op": "trap"},
            ])
            .to_string(),
        )
        .await;
    assert!(failed.is_err(), "a trapping turn answered: {failed:?}");
    let now = probe_all_ok(
        &host,
        "kv",
        json!([{"op": "get-many", "keys": ["kept", "new", "n"]}, {"op": "list-all"}]),
    )
    .await;
    assert_eq!(
        now[0],
        json!([["kept", "before"], ["new", null], ["n", null]])
    );
    assert_eq!(now[1]["keys"], json!(["kept"]));
}

async fn concurrent_increments_and_swaps_lose_no_update(backend: Backend) {
    const HOSTS: usize = 2;
    const WORKERS: usize = 3;
    const TURNS: usize = 5;
    let mut tasks = JoinSet::new();
    for h in 0..HOSTS {
        let host = kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await;
        for w in 0..WORKERS {
            let host = host.clone();
            tasks.spawn(async move {
                // Sessions differ: nothing but the bucket's values serialises them.
                let session = format!("h{h}w{w}");
                for _ in 0..TURNS {
                    let ops = json!([
                        {"op": "increment", "key": "n", "delta": 1},
                        {"op": "cas-add", "key": "m"},
                    ]);
                    let answer = host
                        .run_turn("kv", &session, &ops.to_string())
                        .await
                        .expect("turn");
                    assert!(!answer.contains("\"err\""), "{answer}");
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a worker panicked");
    }
    let host = kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await;
    let total = (HOSTS * WORKERS * TURNS).to_string();
    let got = probe_all_ok(&host, "kv", json!([{"op": "get-many", "keys": ["n", "m"]}])).await;
    assert_eq!(got[0], json!([["n", total], ["m", total]]));
}

/// Increments add at commit: concurrent turns that only increment one key never
/// conflict, so none runs twice.
async fn increments_never_make_a_turn_run_again(backend: Backend) {
    let hosts = [
        kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await,
        kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await,
    ];
    let mut tasks = JoinSet::new();
    for (h, host) in hosts.iter().enumerate() {
        for w in 0..4 {
            let host = host.clone();
            tasks.spawn(async move {
                for _ in 0..5 {
                    let ops = json!([{"op": "increment", "key": "hot", "delta": 2}]);
                    host.run_turn("kv", &format!("h{h}w{w}"), &ops.to_string())
                        .await
                        .expect("turn");
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a worker panicked");
    }
    let got = probe_all_ok(&hosts[0], "kv", json!([{"op": "get", "key": "hot"}])).await;
    assert_eq!(got[0], json!("80"));
    for host in &hosts {
        assert_eq!(host.stats().conflicts, 0, "{:?}", host.stats());
    }
}

async fn guest_mistakes_and_denied_buckets_are_errors(backend: Backend) {
    let mut limits = Limits::default();
    limits.max_value_bytes = 64;
    limits.max_items_per_call = 4;
    let config = PluginConfig::new("kv", "tenant-a")
        .with_limits(limits)
        .with_buckets(Some(vec!["allowed".into()]));
    let host = kv_host(&backend, config).await;
    let h = &host;
    // The default bucket is not on the list: the probe has no bucket open.
    assert_eq!(
        kv_err(h, "kv", json!({"op": "get", "key": "k"})).await,
        "no bucket is open"
    );
    assert_eq!(
        kv_err(h, "kv", json!({"op": "open", "bucket": ""})).await,
        "access-denied"
    );
    assert_eq!(
        kv_err(h, "kv", json!({"op": "open", "bucket": "other"})).await,
        "access-denied"
    );
    let long = "x".repeat(65);
    let results = probe(
        h,
        "kv",
        json!([
            {"op": "open", "bucket": "allowed"},
            {"op": "set", "key": "", "value": "v"},
            {"op": "get", "key": "bad\nkey"},
            {"op": "set", "key": "big", "value": long},
            {"op": "set-many", "pairs": [["ok", "v"], ["big", long]]},
            {"op": "get-many", "keys": ["a", "b", "c", "d", "e"]},
            {"op": "list", "cursor": ""},
            {"op": "set", "key": "text", "value": "not a number"},
            {"op": "increment", "key": "text", "delta": 1},
            {"op": "set", "key": "max", "value": "9223372036854775807"},
            {"op": "increment", "key": "max", "delta": 1},
            {"op": "set", "key": "k", "value": "1"},
            {"op": "cas", "key": "k", "expect": "1", "value": "2", "meddle": "9"},
            {"op": "get-many", "keys": ["k", "ok", "big"]},
        ]),
    )
    .await;
    for i in [1, 2, 3, 4, 5, 6, 8, 10] {
        let err = results[i]["err"].as_str().unwrap_or_default();
        assert!(err.starts_with("other: "), "op {i}: {}", results[i]);
    }
    assert!(results[1]["err"].as_str().unwrap().contains("empty"));
    assert!(results[3]["err"].as_str().unwrap().contains("64"));
    assert!(results[5]["err"].as_str().unwrap().contains("at most 4"));
    // The turn went on after each error; set-many wrote nothing of a refused list.
    assert_eq!(results[12]["ok"], json!({"cas-failed": "9"}));
    assert_eq!(
        results[13]["ok"],
        json!([["k", "9"], ["ok", null], ["big", null]])
    );
}
conformance!(
    every_function_reads_its_writes_and_persists,
    buckets_plugins_and_agent_state_are_apart,
    list_keys_pages_through_live_keys,
    keys_expire_after_their_last_write,
    a_failed_turn_writes_nothing,
    concurrent_increments_and_swaps_lose_no_update,
    increments_never_make_a_turn_run_again,
    guest_mistakes_and_denied_buckets_are_errors,
);
