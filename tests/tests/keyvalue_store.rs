//! `wasi:keyvalue` below and beside the plugin: the store's value expectations and
//! bucket listing on every store, a batch in one round trip, and components built
//! with other SDKs (Spin's) that fit and run (`cargo test --test keyvalue_store`).

use agent_host::keys::{Name, Namespace};
use agent_host::store::{Commit, Expiry, ValueChange, ValueCheck, ValueWrite};
use agent_host::{Host, PluginConfig, RedisStore, StoreError};
use serde_json::json;

use agent_host_tests::cluster::RedisCluster;
use agent_host_tests::{Backend, RedisServer, conformance, load, plugins, probe_all_ok};

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
    stores_check_value_expectations_and_list_buckets,
    a_spin_sdk_component_with_agent_state_too,
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
    probe_all_ok(
        &host,
        "kv",
        json!([{"op": "set", "key": "warm", "value": "v"}]),
    )
    .await;

    let before = counter.round_trips();
    let got = probe_all_ok(
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
        "agent:state/agent-state@0.1.3",
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
