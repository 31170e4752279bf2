//! Turn semantics: a turn is written entirely when `handle` returns or not at all,
//! costs two round trips, and concurrent turns never lose each other's updates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agent_host::{Host, Limits, PluginConfig, RedisStore, TurnError};
use agent_host_tests::{RedisServer, load, plugins};
use redis::aio::MultiplexedConnection;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Every key and its value/type, to compare the database before and after.
async fn dump(conn: &mut MultiplexedConnection) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let bytes: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        // Only whether it expires: the remaining time moves on by itself.
        out.insert(format!("{key} expires={}", ttl >= 0), bytes);
    }
    out
}

fn host_on(store: RedisStore) -> Host {
    Host::builder().store(store).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_that_is_stopped_writes_nothing() {
    let server = RedisServer::start();
    let host = host_on(agent_host_tests::store(&server));
    // Three ids, one prefix: the same state, each with the limit its mode hits.
    let mut limits = Limits::default();
    limits.memory_bytes = 16 << 20;
    load(
        &host,
        PluginConfig::new("wreck", "t").with_limits(limits.clone()),
        plugins::WRECK,
    )
    .await;
    limits.deadline = Duration::from_millis(20);
    load(
        &host,
        PluginConfig::new("wreck-spin", "t").with_limits(limits),
        plugins::WRECK,
    )
    .await;
    // One normal turn first, so the kills below have state to damage.
    assert_eq!(host.run_turn("wreck", "s", "ok").await.unwrap(), "written");
    let mut conn = server.conn().await;
    let before = dump(&mut conn).await;
    // s state + history, other state, two values, three index keys, three keys of
    // the usage ledger.
    assert_eq!(before.len(), 11, "{:?}", before.keys());

    const TURNS: usize = 1000;
    for (id, mode, check) in [
        (
            "wreck",
            "trap",
            (|e: &TurnError| matches!(e, TurnError::Trap { .. })) as fn(&TurnError) -> bool,
        ),
        ("wreck-spin", "spin", |e| {
            matches!(e, TurnError::Deadline { .. })
        }),
        ("wreck", "hog", |e| {
            matches!(e, TurnError::MemoryLimit { .. })
        }),
    ] {
        let mut turns = JoinSet::new();
        // 16 in flight: a busy host, not one so overloaded that store calls time out.
        let in_flight = Arc::new(Semaphore::new(16));
        for i in 0..TURNS {
            let host = host.clone();
            let in_flight = in_flight.clone();
            // Half on the seeded session, half on new ones.
            let session = if i % 2 == 0 {
                "s".to_string()
            } else {
                format!("n{i}")
            };
            turns.spawn(async move {
                let _permit = in_flight.acquire().await.unwrap();
                host.run_turn(id, &session, mode).await
            });
        }
        let mut stopped = 0;
        while let Some(result) = turns.join_next().await {
            match result.unwrap() {
                Err(e) if check(&e) => stopped += 1,
                other => panic!("{mode}: unexpected outcome {other:?}"),
            }
        }
        assert_eq!(stopped, TURNS);
        assert_eq!(dump(&mut conn).await, before, "a {mode} turn left a trace");
    }

    // A turn whose caller goes away mid-turn (cancellation) writes nothing either.
    let mut limits = Limits::default();
    limits.deadline = Duration::from_secs(30);
    load(
        &host,
        PluginConfig::new("slow", "t").with_limits(limits),
        plugins::WRECK,
    )
    .await;
    for _ in 0..20 {
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            host.run_turn("slow", "s", "spin"),
        )
        .await;
        assert!(cancelled.is_err(), "the turn should still be running");
    }
    assert_eq!(
        dump(&mut conn).await,
        before,
        "a cancelled turn left a trace"
    );
}

#[tokio::test]
async fn a_typical_turn_costs_two_round_trips() {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    let counter = store.clone();
    let host = host_on(store);
    load(&host, PluginConfig::new("chat", "t"), plugins::CHAT_MEMORY).await;
    host.run_turn("chat", "s", "warm up the script cache")
        .await
        .unwrap();

    let mut conn = server.conn().await;
    let stats = |info: String| -> BTreeMap<String, u64> {
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_string(), calls))
            })
            .collect()
    };
    let before = stats(info(&mut conn).await);
    let trips_before = counter.round_trips();
    const TURNS: u64 = 50;
    for i in 0..TURNS {
        host.run_turn("chat", "s", &format!("message number {i}"))
            .await
            .unwrap();
    }
    let trips = counter.round_trips() - trips_before;
    let after = stats(info(&mut conn).await);
    let delta: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(k, v)| *v > 0 && k != "info")
        .collect();
    println!("per {TURNS} turns: {trips} round trips, commands {delta:?}");
    assert_eq!(trips, 2 * TURNS, "round trips per turn");
    // Prefetch: HMGET, LLEN, LRANGE, 2 PTTL; commit: one EVALSHA.
    assert_eq!(delta.get("evalsha"), Some(&TURNS));
    assert_eq!(delta.get("hmget"), Some(&TURNS));
    assert_eq!(delta.get("lrange"), Some(&TURNS));
    assert_eq!(delta.get("get"), None);
}

/// `INFO commandstats`.
async fn info(conn: &mut MultiplexedConnection) -> String {
    redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap()
}

/// The round trips and `LRANGE` calls of one probe turn running `ops`, and its results.
async fn probe_costs(
    host: &Host,
    store: &RedisStore,
    conn: &mut MultiplexedConnection,
    ops: serde_json::Value,
) -> (u64, u64, Vec<serde_json::Value>) {
    let lranges = |info: String| agent_host_tests::command_calls(&info, |c| c == "lrange");
    let (trips, before) = (store.round_trips(), lranges(info(conn).await));
    let results = agent_host_tests::probe(host, "p", ops).await;
    let trips = store.round_trips() - trips;
    (trips, lranges(info(conn).await) - before, results)
}

#[tokio::test]
async fn the_prefetch_learns_how_much_history_the_plugin_reads() {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    let host = host_on(store.clone());
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    let mut conn = server.conn().await;
    // The probe's turns run in session "probe", which the host prefetches first.
    let items: Vec<String> = (0..100).map(|i| format!("item {i}")).collect();
    let append = json!([{"op": "append", "session": "probe", "items": items}]);
    agent_host_tests::probe(&host, "p", append).await;
    let last_50 = json!([{"op": "items", "session": "probe", "last": 50}]);
    let expected = json!({"ok": items[50..]});

    // Reading further back than the prefetch costs a second read, once.
    let (trips, _, results) = probe_costs(&host, &store, &mut conn, last_50.clone()).await;
    assert_eq!(results, std::slice::from_ref(&expected));
    assert_eq!(trips, 2, "prefetch, then the rest of the 50 items");
    let (trips, _, results) = probe_costs(&host, &store, &mut conn, last_50.clone()).await;
    assert_eq!(results, std::slice::from_ref(&expected));
    assert_eq!(trips, 1, "the prefetch now reads 50 items");

    // A plugin that stops reading history stops prefetching it (the prefetch size is
    // learned over windows of 64 prefetches: within two windows)...
    let load_only = json!([{"op": "load", "session": "probe"}]);
    for _ in 0..128 {
        probe_costs(&host, &store, &mut conn, load_only.clone()).await;
    }
    let (trips, lranges, _) = probe_costs(&host, &store, &mut conn, load_only).await;
    assert_eq!(
        (trips, lranges),
        (1, 0),
        "round trips and LRANGEs of a load"
    );
    // ...and a turn that reads it again still gets all of it.
    let (trips, _, results) = probe_costs(&host, &store, &mut conn, last_50).await;
    assert_eq!(results, [expected]);
    assert_eq!(trips, 2);
}

#[tokio::test]
async fn a_conflict_that_outlasts_the_retries_is_an_error() {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    let host = Host::builder()
        .store(store)
        .serialize_sessions(false)
        .max_attempts(1)
        .build()
        .unwrap();
    load(&host, PluginConfig::new("counter", "t"), plugins::COUNTER).await;
    let mut running = JoinSet::new();
    for _ in 0..50 {
        let host = host.clone();
        running.spawn(async move { host.run_turn("counter", "hot", "+1").await });
    }
    let (mut ok, mut conflicts) = (0u64, 0u64);
    while let Some(result) = running.join_next().await {
        match result.unwrap() {
            Ok(_) => ok += 1,
            Err(TurnError::Conflict { attempts: 1, .. }) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        conflicts > 0,
        "50 unserialised turns with one attempt each never conflicted"
    );
    let snapshot = host.inspect("counter", "hot").await.unwrap();
    let value: u64 = String::from_utf8(snapshot.state.unwrap().value)
        .unwrap()
        .parse()
        .unwrap();
    // Exactly the turns reported as committed are counted.
    assert_eq!(value, ok);
}
