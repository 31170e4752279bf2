//! The `wasi:keyvalue` part of the conformance suite: a plugin built from the
//! standard WIT alone (`tests/plugins/kv-probe`) gets persistent, isolated,
//! expiring, atomic-per-turn buckets on every store (`cargo test --test keyvalue`).

use std::time::Duration;

use agent_host::keys::{Name, Namespace};
use agent_host::store::{Commit, Expiry, ValueChange, ValueCheck, ValueWrite};
use agent_host::{Host, Limits, PluginConfig, RedisStore, StoreError};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use agent_host_tests::cluster::RedisCluster;
use agent_host_tests::{Backend, RedisServer, conformance, eventually, load, plugins, probe};

/// The `ok` value of each op, panicking on the first `err`.
async fn kv_ok(host: &Host, id: &str, ops: Value) -> Vec<Value> {
    probe(host, id, ops)
        .await
        .into_iter()
        .map(|r| match r.get("ok") {
            Some(v) => v.clone(),
            None => panic!("an op failed: {r}"),
        })
        .collect()
}

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
    let first = kv_ok(
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
    let later = kv_ok(
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
    let b = kv_ok(
        &host,
        "b",
        json!([{"op": "get", "key": "k"}, {"op": "set", "key": "k", "value": "b"}]),
    )
    .await;
    assert_eq!(b[0], json!(null), "tenant-b saw tenant-a's bucket");
    let a = kv_ok(
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
    let a = kv_ok(&host, "a", json!([{"op": "get", "key": "k"}])).await;
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
    kv_ok(&host, "kv", Value::Array(ops)).await;

    let listed = kv_ok(
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
    let next = kv_ok(
        &host,
        "kv",
        json!([{"op": "open", "bucket": "b"}, {"op": "list", "cursor": cursor}]),
    )
    .await;
    assert_eq!(next[1]["keys"], json!(keys[10..20]));

    // A turn's own creates and deletes show in its listing, and after it.
    let within = kv_ok(
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
    let after = kv_ok(
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
    kv_ok(
        &host,
        "kv",
        json!([
            {"op": "set", "key": "short", "value": "v"},
            {"op": "increment", "key": "counter", "delta": 1},
        ]),
    )
    .await;
    let listed = kv_ok(&host, "kv", json!([{"op": "list-all"}])).await;
    assert_eq!(listed[0]["keys"], json!(["counter", "short"]));
    let gone = eventually(Duration::from_secs(10), || async {
        let now = kv_ok(
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
    kv_ok(
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
    let listed = kv_ok(&host, "kv", json!([{"op": "list-all"}])).await;
    assert_eq!(listed[0]["keys"], json!(["fresh"]));
}

async fn a_failed_turn_writes_nothing(backend: Backend) {
    let host = kv_host(&backend, PluginConfig::new("kv", "tenant-a")).await;
    kv_ok(
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
    let now = kv_ok(
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
    let got = kv_ok(&host, "kv", json!([{"op": "get-many", "keys": ["n", "m"]}])).await;
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
    let got = kv_ok(&hosts[0], "kv", json!([{"op": "get", "key": "hot"}])).await;
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

/// The store-level guarantees the buckets rely on, on every store.
async fn stores_check_value_expectations_and_list_buckets(backend: Backend) {
    let store = backend.store();
    let ns = Namespace::new("agent-test", "tenant-a").unwrap();
    let name = |bucket: &str, key: &str| Name::bucket_key(bucket, key).unwrap();
    let set = |n: Name, v: &str, expect: Option<ValueCheck>| ValueWrite {
        name: n,
        change: ValueChange::Set(v.as_bytes().to_vec(), Expiry::Never),
        expect,
    };
    let commit = |values: Vec<ValueWrite>| Commit {
        values,
        ..Commit::default()
    };
    let a = name("b", "a");
    store
        .commit(
            &ns,
            commit(vec![set(a.clone(), "1", Some(ValueCheck::Absent))]),
        )
        .await
        .unwrap();
    // A failed expectation writes nothing of the commit.
    for expect in [ValueCheck::Absent, ValueCheck::Equals(b"2".to_vec())] {
        let refused = store
            .commit(
                &ns,
                commit(vec![
                    set(name("b", "other"), "x", None),
                    set(a.clone(), "3", Some(expect)),
                ]),
            )
            .await;
        assert_eq!(refused, Err(StoreError::Conflict));
    }
    assert_eq!(store.get(&ns, &name("b", "other")).await.unwrap(), None);
    store
        .commit(
            &ns,
            commit(vec![set(
                a.clone(),
                "2",
                Some(ValueCheck::Equals(b"1".to_vec())),
            )]),
        )
        .await
        .unwrap();
    assert_eq!(store.get(&ns, &a).await.unwrap(), Some(b"2".to_vec()));

    let more: Vec<ValueWrite> = ["c", "b", "d"]
        .iter()
        .map(|k| set(name("b", k), "v", None))
        .chain([
            set(name("", "a"), "v", None),
            set(name("bb", "a"), "v", None),
        ])
        .collect();
    store.commit(&ns, commit(more)).await.unwrap();
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_bucket(&ns, "b", after.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.keys.len() <= 2, "{page:?}");
        keys.extend(page.keys);
        match page.cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(keys, ["a", "b", "c", "d"]);
    let default = store.list_bucket(&ns, "", None, 10).await.unwrap();
    assert_eq!(default.keys, ["a"]);
    assert_eq!(default.cursor, None);
    store
        .commit(
            &ns,
            commit(vec![ValueWrite::new(name("b", "b"), ValueChange::Remove)]),
        )
        .await
        .unwrap();
    let page = store.list_bucket(&ns, "b", Some("a"), 10).await.unwrap();
    assert_eq!(page.keys, ["c", "d"]);
}

/// A component whose storage code is Spin's (its SDK's `wasi:keyvalue` bindings)
/// and which also uses `agent-state`: both persist, in the same turn's commit.
async fn a_spin_sdk_component_with_agent_state_too(backend: Backend) {
    let host = backend.host();
    load(
        &host,
        PluginConfig::new("spin", "tenant-a"),
        plugins::SPIN_KV,
    )
    .await;
    let turn = |session: &'static str, input: &'static str| {
        let host = host.clone();
        async move { host.run_turn("spin", session, input).await.expect("turn") }
    };
    assert_eq!(
        turn("alice", "hi").await,
        "session 1, plugin 1, keys input-1,turns"
    );
    assert_eq!(
        turn("bob", "yo").await,
        "session 1, plugin 2, keys input-1,input-2,turns"
    );
    drop(host);
    let host = backend.host();
    load(
        &host,
        PluginConfig::new("spin", "tenant-a"),
        plugins::SPIN_KV,
    )
    .await;
    let answer = host.run_turn("spin", "alice", "again").await.unwrap();
    assert_eq!(
        answer,
        "session 2, plugin 3, keys input-1,input-2,input-3,turns"
    );
    // The bucket's values are in the store, next to the session's state.
    let ns = Namespace::new("agent", "tenant-a").unwrap();
    let store = backend.store();
    let turns = store
        .get(&ns, &Name::bucket_key("", "turns").unwrap())
        .await;
    assert_eq!(turns.unwrap(), Some(b"3".to_vec()));
}

conformance!(
    a_spin_sdk_component_with_agent_state_too,
    every_function_reads_its_writes_and_persists,
    buckets_plugins_and_agent_state_are_apart,
    list_keys_pages_through_live_keys,
    keys_expire_after_their_last_write,
    a_failed_turn_writes_nothing,
    concurrent_increments_and_swaps_lose_no_update,
    increments_never_make_a_turn_run_again,
    guest_mistakes_and_denied_buckets_are_errors,
    stores_check_value_expectations_and_list_buckets,
);

/// A batch reads its keys in one round trip (one `MGET`: a bucket's keys share the
/// plugin's slot, on a cluster too), not one per key.
async fn batch_round_trips(store: RedisStore, expected: u64) {
    let counter = store.clone();
    let host = Host::builder().store(store).build().unwrap();
    load(
        &host,
        PluginConfig::new("kv", "tenant-a"),
        plugins::KV_PROBE,
    )
    .await;
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let pairs: Vec<_> = keys.iter().map(|k| json!([k, "v"])).collect();
    // Warm up: the default bucket is empty, and the scripts are loaded.
    kv_ok(
        &host,
        "kv",
        json!([{"op": "set", "key": "warm", "value": "v"}]),
    )
    .await;

    let before = counter.round_trips();
    let got = kv_ok(
        &host,
        "kv",
        json!([
            {"op": "get-many", "keys": keys},
            {"op": "set-many", "pairs": pairs},
            {"op": "get-many", "keys": keys},
            {"op": "delete-many", "keys": ["k0", "k1", "other"]},
        ]),
    )
    .await;
    let trips = counter.round_trips() - before;
    assert_eq!(got[0].as_array().unwrap().len(), 20);
    assert_eq!(got[2][19], json!(["k19", "v"]));
    // The session's prefetch, 20 reads in one MGET, 1 more for "other", the value
    // count (for the creates), the commit (on a cluster: its value limit check, then
    // the commit).
    assert_eq!(
        trips, expected,
        "round trips of a turn of batches over 21 keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_round_trip_on_redis() {
    let server = RedisServer::start();
    batch_round_trips(agent_host_tests::store(&server), 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_round_trip_on_a_cluster() {
    let cluster = RedisCluster::start();
    let options = agent_host_tests::test_store_options();
    batch_round_trips(RedisStore::open(&cluster.url(), options).unwrap(), 6).await;
}

/// `agent-host inspect`'s check: a component that imports only `wasi:keyvalue`
/// (and WASI) fits, and one built with Spin's SDK that also imports `agent-state`.
#[test]
fn keyvalue_components_fit() {
    let wasm = std::fs::read(plugins::SPIN_KV).expect("spin-kv is built");
    let report = agent_host::inspect_component(&wasm).expect("inspect");
    assert_eq!(report.fits, Ok(()));
    for import in [
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:keyvalue/atomics@0.2.0-draft2",
        "agent:state/agent-state@0.1.2",
    ] {
        assert!(
            report.imports.iter().any(|i| i == import),
            "{import}: {:?}",
            report.imports
        );
    }
    let wasm = std::fs::read(plugins::KV_PROBE).expect("kv-probe is built");
    let report = agent_host::inspect_component(&wasm).expect("inspect");
    assert_eq!(report.fits, Ok(()));
    assert!(
        report
            .imports
            .iter()
            .any(|i| i == "wasi:keyvalue/store@0.2.0-draft2"),
        "{:?}",
        report.imports
    );
    assert!(
        !report.imports.iter().any(|i| i.starts_with("agent:state/")),
        "{:?}",
        report.imports
    );
}
