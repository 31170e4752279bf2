//! Expiry: default and per-call TTLs, whole-session expiry, sliding refresh.

use std::time::Duration;

use agent_host::PluginConfig;
use agent_host_tests::{RedisServer, eventually, host, load, plugins, probe, probe_ok};
use redis::aio::MultiplexedConnection;
use serde_json::json;

async fn pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

/// What expiry looks like in Redis (the behaviour itself is in the conformance
/// suite): both keys get the TTL, go together, and take the index entry with them.
#[tokio::test]
async fn a_sessions_redis_keys_expire_together_with_its_index_entry() {
    let server = RedisServer::start();
    let host = host(&server);
    let ttl = Duration::from_millis(400);
    load(
        &host,
        PluginConfig::new("p", "t").with_default_ttl(Some(ttl)),
        plugins::PROBE,
    )
    .await;
    probe(
        &host,
        "p",
        json!([
            {"op": "save", "session": "s", "value": "v"},
            {"op": "append", "session": "s", "items": ["a"]},
            {"op": "save", "session": "keep", "value": "v", "ttl": 600},
        ]),
    )
    .await;
    let mut conn = server.conn().await;
    for key in ["agent:t:s:{s}:state", "agent:t:s:{s}:hist"] {
        let left = pttl(&mut conn, key).await;
        assert!((1..=400).contains(&left), "{key}: {left}");
    }
    let gone = eventually(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg("agent:t:s:{s}:state")
                .arg("agent:t:s:{s}:hist")
                .query_async(&mut conn)
                .await
                .unwrap();
            n == 0
        }
    })
    .await;
    assert!(gone, "session keys still there 5 s after a 400 ms TTL");
    // A listing prunes the index: the entry went with the session.
    let listed = probe_ok(
        &host,
        "p",
        json!({"op": "list", "cursor": null, "limit": 10}),
    )
    .await;
    assert_eq!(listed["sessions"], json!(["keep"]));
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg("agent:t:index:{agent:t}:expiry")
        .arg("s")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, None);
}

#[tokio::test]
async fn sliding_refresh_extends_on_read_and_only_when_enabled() {
    let server = RedisServer::start();
    let host = host(&server);
    let ttl = Duration::from_secs(60);
    load(
        &host,
        PluginConfig::new("sliding", "a")
            .with_default_ttl(Some(ttl))
            .with_sliding_ttl(true),
        plugins::PROBE,
    )
    .await;
    load(
        &host,
        PluginConfig::new("fixed", "b").with_default_ttl(Some(ttl)),
        plugins::PROBE,
    )
    .await;
    let mut conn = server.conn().await;
    for (id, prefix) in [("sliding", "a"), ("fixed", "b")] {
        probe(
            &host,
            id,
            json!([
                {"op": "save", "session": "s", "value": "v"},
                {"op": "append", "session": "s", "items": ["x"]},
            ]),
        )
        .await;
        // Make the session look old: 5 s left.
        let keys = [
            format!("agent:{prefix}:s:{{s}}:state"),
            format!("agent:{prefix}:s:{{s}}:hist"),
        ];
        for key in &keys {
            let _: i64 = redis::cmd("PEXPIRE")
                .arg(key)
                .arg(5000)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        probe_ok(&host, id, json!({"op": "load", "session": "s"})).await;
        for key in &keys {
            let left = pttl(&mut conn, key).await;
            if id == "sliding" {
                assert!(left > 55_000, "{key} not refreshed by load: {left}");
            } else {
                assert!(left <= 5000, "{key} refreshed without sliding: {left}");
            }
        }
    }

    // `items` refreshes too.
    let state = "agent:a:s:{s}:state";
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(state)
        .arg(5000)
        .query_async(&mut conn)
        .await
        .unwrap();
    probe_ok(
        &host,
        "sliding",
        json!({"op": "items", "session": "s", "last": 1}),
    )
    .await;
    assert!(pttl(&mut conn, state).await > 55_000);

    // A session without expiry stays without one.
    probe_ok(
        &host,
        "sliding",
        json!({"op": "touch", "session": "s", "ttl": null}),
    )
    .await;
    probe_ok(&host, "sliding", json!({"op": "load", "session": "s"})).await;
    assert_eq!(pttl(&mut conn, state).await, -1);
}
