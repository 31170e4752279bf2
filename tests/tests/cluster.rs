//! A Redis Cluster under a load of turns while slots move between primaries
//! (`redis-cli --cluster reshard`): every turn commits (the client follows the
//! redirects; nothing surfaces to the caller) and every committed item is there.
//! The conformance suite runs on a cluster too (`conformance.rs`, `::cluster`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agent_host::{Host, PluginConfig, RedisStore};
use agent_host_tests::cluster::RedisCluster;
use agent_host_tests::{load, plugins, test_store_options};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WORKERS: usize = 4;
const SESSIONS_PER_WORKER: u64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_keep_committing_while_slots_move() {
    let cluster = Arc::new(RedisCluster::start());
    let store = RedisStore::open(&cluster.url(), test_store_options()).expect("store");
    let host = Host::builder().store(store).build().unwrap();
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (events, mut rx) = mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (host, stop, events) = (host.clone(), stop.clone(), events.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let session = format!("w{w}-{}", n % SESSIONS_PER_WORKER);
                let id = format!("w{w}-turn{n}");
                let ops = json!([
                    {"op": "append", "session": session, "items": [id]},
                    {"op": "increment", "key": format!("count-{w}"), "delta": 1},
                ]);
                let outcome = match host.run_turn("p", "load", &ops.to_string()).await {
                    Ok(answer) => {
                        let results: Value = serde_json::from_str(&answer).unwrap();
                        match results.as_array() {
                            Some(r) if r.iter().all(|r| r.get("ok").is_some()) => Ok((session, id)),
                            _ => Err(answer),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                if events.send(outcome).is_err() {
                    break;
                }
            }
        }));
    }
    drop(events);

    let mut committed = Vec::new();
    let mut errors = Vec::new();
    while committed.len() < 200 {
        match rx.recv().await.unwrap() {
            Ok(c) => committed.push(c),
            Err(e) => errors.push(e),
        }
    }
    let mover = cluster.clone();
    let mut reshard = tokio::task::spawn_blocking(move || mover.reshard(2000));
    let during = committed.len();
    let output = loop {
        tokio::select! {
            out = &mut reshard => break out.unwrap(),
            event = rx.recv() => match event.unwrap() {
                Ok(c) => committed.push(c),
                Err(e) => errors.push(e),
            },
        }
    };
    assert!(
        output.status.success(),
        "reshard failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let moved_during = committed.len() - during;
    let target = committed.len() + 200;
    while committed.len() < target {
        match rx.recv().await.unwrap() {
            Ok(c) => committed.push(c),
            Err(e) => errors.push(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(event) = rx.recv().await {
        match event {
            Ok(c) => committed.push(c),
            Err(e) => errors.push(e),
        }
    }
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    println!(
        "{} turns committed, {moved_during} while 2000 slots moved; errors: {}",
        committed.len(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "turns failed: {:?}",
        &errors[..errors.len().min(5)]
    );
    // Some of the sessions did live in the slots that moved (0..2000 of the first
    // node), so their keys migrated under the load.
    let mut conn = cluster.nodes[0].conn().await;
    let mut moved = 0;
    for w in 0..WORKERS {
        for n in 0..SESSIONS_PER_WORKER {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(format!("agent:t:s:{{w{w}-{n}}}:state"))
                .query_async(&mut conn)
                .await
                .unwrap();
            moved += u32::from(slot < 2000);
        }
    }
    println!("{moved} of the sessions were in the moved slots");
    assert!(moved > 0);

    // Every committed item is in its session, and the counters add up.
    let mut missing = Vec::new();
    let mut histories = std::collections::HashMap::new();
    for (session, id) in &committed {
        if !histories.contains_key(session) {
            let snapshot = host.inspect("p", session).await.unwrap();
            let items: HashSet<String> = snapshot
                .history
                .into_iter()
                .map(|i| String::from_utf8(i).unwrap())
                .collect();
            histories.insert(session.clone(), items);
        }
        if !histories[session].contains(&format!("\"{id}\"")) && !histories[session].contains(id) {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "committed but lost: {missing:?}");
    let ops = json!(
        (0..WORKERS)
            .map(|w| json!({"op": "get", "key": format!("count-{w}")}))
            .collect::<Vec<_>>()
    );
    let answer = host.run_turn("p", "check", &ops.to_string()).await.unwrap();
    let results: Vec<Value> = serde_json::from_str(&answer).unwrap();
    let total: u64 = results
        .iter()
        .map(|r| {
            r["ok"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(total, committed.len() as u64, "{results:?}");
}
