//! Property tests over ids, keys, values and sizes, through the store and through a
//! plugin: nothing panics, every accepted id round-trips exactly, every rejected one
//! is a typed error for exactly the documented reasons.

use std::time::Duration;

use agent_host::keys::{MAX_NAME_BYTES, Name, Namespace};
use agent_host::store::{
    Commit, Expiry, ExpiryChange, SessionCommit, StateChange, ValueChange, ValueWrite,
};
use agent_host::{PluginConfig, StateError};
use agent_host_tests::{Backend, RedisServer, host, plugins};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Arbitrary strings, control characters and multi-byte characters included, some
/// longer than the limit.
fn ids() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..40).prop_map(|c| c.into_iter().collect()),
        prop::collection::vec(
            prop::sample::select(vec![
                '*', '?', '[', ']', '{', '}', ':', '\\', '%', 'a', '\n'
            ]),
            0..40
        )
        .prop_map(|c| c.into_iter().collect()),
        (1usize..700).prop_map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2)),
    ]
}

/// The error kind of one probe result, "ok" if it succeeded.
fn kind(result: &Value) -> &str {
    result["err"]["kind"].as_str().unwrap_or("ok")
}

fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NAME_BYTES && !id.chars().any(char::is_control)
}

fn put(name: Name, value: Vec<u8>) -> Commit {
    Commit {
        sessions: vec![SessionCommit {
            session: name,
            expect_version: None,
            expect_history_len: None,
            clear: false,
            state: StateChange::Put {
                value: value.clone(),
                version: 1,
            },
            pops: 0,
            append: vec![value],
            expiry: ExpiryChange::Set(Expiry::After(Duration::from_secs(60))),
            idempotency: None,
            keep_versions: 0,
        }],
        ..Commit::default()
    }
}

#[test]
fn ids_and_values_round_trip_through_redis() {
    ids_and_values_round_trip(Backend::redis());
}

#[test]
fn ids_and_values_round_trip_through_the_embedded_store() {
    ids_and_values_round_trip(Backend::embedded());
}

fn ids_and_values_round_trip(backend: Backend) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let store = backend.store();
    let ns = Namespace::new("agent", "props").unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(
            &(ids(), prop::collection::vec(any::<u8>(), 0..3000)),
            |(id, value)| {
                match Name::session(id.clone()) {
                    Ok(name) => {
                        prop_assert!(valid(&id), "accepted {id:?}");
                        rt.block_on(async {
                            store
                                .commit(&ns, put(name.clone(), value.clone()))
                                .await
                                .unwrap();
                            let snap = store.snapshot(&ns, &name, 1).await.unwrap();
                            assert_eq!(snap.state.map(|e| e.value), Some(value.clone()));
                            assert_eq!(snap.tail, vec![value.clone()]);
                            let mut cursor = None;
                            let mut found = false;
                            loop {
                                let page = store
                                    .list_sessions(&ns, cursor.as_deref(), 100)
                                    .await
                                    .unwrap();
                                found |= page.sessions.contains(&id);
                                cursor = page.cursor;
                                if cursor.is_none() {
                                    break;
                                }
                            }
                            assert!(found, "{id:?} not listed");
                        });
                    }
                    Err(StateError::InvalidKey { .. }) => {
                        prop_assert!(!valid(&id), "refused {id:?}")
                    }
                    Err(other) => prop_assert!(false, "{id:?}: untyped error {other:?}"),
                }
                Ok(())
            },
        )
        .unwrap();

    // Plugin-wide keys follow the same rules.
    runner
        .run(&(ids(), any::<i64>()), |(key, delta)| {
            match Name::key(key.clone()) {
                Ok(name) => rt.block_on(async {
                    let commit = Commit {
                        values: vec![ValueWrite::new(
                            name.clone(),
                            ValueChange::Set(delta.to_string().into_bytes(), Expiry::Never),
                        )],
                        ..Commit::default()
                    };
                    store.commit(&ns, commit).await.unwrap();
                    let got = store.get(&ns, &name).await.unwrap();
                    assert_eq!(got, Some(delta.to_string().into_bytes()));
                }),
                Err(e) => {
                    let typed = matches!(e, StateError::InvalidKey { .. });
                    prop_assert!(typed && !valid(&key), "{key:?}: {e:?}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_plugin_sending_arbitrary_ids_and_sizes_gets_answers_never_traps() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let host = host(&server);
    let mut limits = agent_host::Limits::default();
    limits.max_value_bytes = 4096;
    rt.block_on(host.load_plugin_file(
        PluginConfig::new("p", "t").with_limits(limits),
        plugins::PROBE,
    ))
    .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    runner
        .run(
            &(ids(), 0usize..6000, prop::option::of(0u32..5)),
            |(id, size, ttl)| {
                let ops = json!([
                    {"op": "clear", "session": id},
                    {"op": "save-big", "session": id, "size": size},
                    {"op": "load", "session": id},
                    {"op": "save", "session": id, "value": "v", "ttl": ttl, "if_version": null},
                    {"op": "set-big", "key": id, "size": size},
                    {"op": "list", "cursor": id, "limit": 5},
                ]);
                let answer = rt
                    .block_on(host.run_turn("p", "probe", &ops.to_string()))
                    .unwrap();
                let results: Vec<Value> = serde_json::from_str(&answer).unwrap();
                if !valid(&id) {
                    for r in &results {
                        prop_assert_eq!(kind(r), "invalid-key", "{}", r);
                    }
                    return Ok(());
                }
                if size > 4096 {
                    prop_assert_eq!(kind(&results[1]), "too-large");
                    prop_assert_eq!(kind(&results[4]), "too-large");
                } else {
                    prop_assert_eq!(&results[1]["ok"], &json!(1));
                    prop_assert_eq!(&results[2]["ok"]["value"], &json!("x".repeat(size)));
                }
                match ttl {
                    Some(0) => {
                        prop_assert_eq!(kind(&results[3]), "invalid-argument")
                    }
                    _ => prop_assert!(results[3].get("ok").is_some()),
                }
                prop_assert!(results[5].get("ok").is_some());
                Ok(())
            },
        )
        .unwrap();
}
