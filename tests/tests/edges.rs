//! The conformance suite at the edges of the limits: what a turn may do within the
//! documented limits succeeds on every store, and the first step past them is the
//! same typed error on every store (`cargo test --test edges`).

use agent_host::keys::{Name, Namespace};
use agent_host::store::{Commit, Expiry, ValueChange, ValueWrite};
use agent_host::{Limits, PluginConfig, StoreError};
use agent_host_tests::{Backend, conformance, load, plugins, probe};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

/// A turn that appends exactly `max_history_items` items (in calls of at most
/// `max_items_per_call`) commits on every store; one more item is a quota error.
async fn a_turn_can_fill_the_history_to_its_limit(backend: Backend) {
    let host = backend.host();
    let limits = Limits::default();
    let max = limits.max_history_items;
    load(&host, PluginConfig::new("h", "edges"), plugins::HOSTILE).await;
    let answer = host
        .run_turn("h", "full", &format!("append-many {max}"))
        .await
        .unwrap_or_else(|e| panic!("appending {max} items in one turn: {e}"));
    assert_eq!(answer, max.to_string());
    let snapshot = host.inspect("h", "full").await.unwrap();
    assert_eq!(snapshot.history_len, max);
    assert_eq!(
        snapshot.history.last().map(Vec::as_slice),
        Some(&b"item 999"[..])
    );
    let over = host
        .run_turn("h", "full", "append-many 1")
        .await
        .unwrap_err();
    assert_eq!(over.kind(), "plugin_error", "{over}");
    assert!(over.to_string().contains("QuotaExceeded"), "{over}");
    assert_eq!(host.inspect("h", "full").await.unwrap().history_len, max);
}

/// Integers near both ends of the i64 range, and around zero.
fn integers() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        (i64::MAX - 2000)..=i64::MAX,
        i64::MIN..=(i64::MIN + 2000),
        -2000i64..2000,
    ]
}

/// `increment` across the whole i64 range: a turn increments values another turn
/// stored (so the store adds at commit); the answer is the exact sum, or an
/// `internal` error from the call itself when the sum does not fit, never a
/// conflict; the same on every store.
async fn increments_are_exact_across_the_i64_range(backend: Backend) {
    let host = backend.host();
    load(&host, PluginConfig::new("p", "edges"), plugins::PROBE).await;
    let mut runner = TestRunner::deterministic();
    let pairs = prop::collection::vec((integers(), integers()), 300)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let sets: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, _))| json!({"op": "set", "key": format!("n{i}"), "value": a.to_string(), "ttl": null}))
        .collect();
    probe(&host, "p", Value::Array(sets)).await;
    let adds: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, (_, b))| json!({"op": "increment", "key": format!("n{i}"), "delta": b}))
        .collect();
    let results = probe(&host, "p", Value::Array(adds)).await;
    for ((a, b), result) in pairs.iter().zip(&results) {
        match a.checked_add(*b) {
            Some(sum) => assert_eq!(result["ok"], json!(sum), "{a} + {b}: {result}"),
            None => {
                assert_eq!(result["err"]["kind"], "internal", "{a} + {b}: {result}");
                let detail = result["err"]["detail"].to_string();
                assert!(detail.contains("overflow"), "{a} + {b}: {detail}");
            }
        }
    }
    // What was stored is what the turn answered.
    let gets: Vec<Value> = (0..pairs.len())
        .map(|i| json!({"op": "get", "key": format!("n{i}")}))
        .collect();
    let stored = probe(&host, "p", Value::Array(gets)).await;
    for (((a, b), result), got) in pairs.iter().zip(&results).zip(&stored) {
        let expected = a.checked_add(*b).unwrap_or(*a).to_string();
        assert_eq!(got["ok"], json!(expected), "{a} + {b}: {result}");
    }

    // Values that are not integers by Redis's rules are refused the same way.
    for text in [
        "+7",
        "-0",
        "007",
        " 7",
        "7 ",
        "",
        "7.0",
        "1e3",
        "99999999999999999999",
    ] {
        let ops = json!([{"op": "set", "key": "odd", "value": text, "ttl": null}]);
        probe(&host, "p", ops).await;
        let ops = json!([{"op": "increment", "key": "odd", "delta": 1}]);
        let result = probe(&host, "p", ops).await.remove(0);
        assert_eq!(result["err"]["kind"], "internal", "{text:?}: {result}");
        assert!(
            result["err"]["detail"]
                .to_string()
                .contains("not a 64-bit integer"),
            "{text:?}: {result}"
        );
    }
    assert_eq!(host.stats().conflicts, 0, "no increment may be a conflict");
}

/// At the store itself, an `add` whose stored value changed under it to a
/// non-integer or to one the sum overflows is a conflict (the turn runs again and
/// its own call reports it); every fitting sum is exact.
async fn the_store_adds_exactly_or_reports_a_conflict(backend: Backend) {
    let store = backend.store();
    let ns = Namespace::new("agent", "edges").unwrap();
    let key = Name::key("n").unwrap();
    let set = |v: &str| Commit {
        values: vec![ValueWrite::new(
            key.clone(),
            ValueChange::Set(v.into(), Expiry::Never),
        )],
        ..Commit::default()
    };
    let add = |d: i64| Commit {
        values: vec![ValueWrite::new(key.clone(), ValueChange::Add(d, None))],
        ..Commit::default()
    };
    let cases: &[(&str, i64, Option<i64>)] = &[
        ("9223372036854775806", 1, Some(i64::MAX)),
        ("9223372036854775807", 1, None),
        ("9223372036854775807", -9223372036854775807, Some(0)),
        ("-9223372036854775807", -1, Some(i64::MIN)),
        ("-9223372036854775808", -1, None),
        ("-9223372036854775808", i64::MAX, Some(-1)),
        ("4611686018427387904", 4611686018427387903, Some(i64::MAX)),
        ("4611686018427387904", 4611686018427387904, None),
        ("-4611686018427387904", -4611686018427387904, Some(i64::MIN)),
        ("1999999999", 8000000001, Some(10_000_000_000)),
        ("0", i64::MIN, Some(i64::MIN)),
        ("+7", 1, None),
        ("-0", 1, None),
        ("007", 1, None),
        ("abc", 1, None),
    ];
    for (start, delta, sum) in cases {
        store.commit(&ns, set(start)).await.unwrap();
        let result = store.commit(&ns, add(*delta)).await;
        let stored = store.get(&ns, &key).await.unwrap().unwrap();
        let stored = String::from_utf8(stored).unwrap();
        match sum {
            Some(sum) => {
                assert_eq!(result, Ok(()), "{start} + {delta}");
                assert_eq!(stored, sum.to_string(), "{start} + {delta}");
            }
            None => {
                assert_eq!(result, Err(StoreError::Conflict), "{start} + {delta}");
                assert_eq!(&stored, start, "{start} + {delta} changed the value");
            }
        }
    }
}

conformance!(
    a_turn_can_fill_the_history_to_its_limit,
    increments_are_exact_across_the_i64_range,
    the_store_adds_exactly_or_reports_a_conflict,
);
