//! A Sentinel failover during a load of turns: the primary is killed, the sentinels
//! promote a replica, the host finds the new primary by itself, and every turn it
//! reported committed (with `WAIT` for one replica) is on the new primary.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent_host::{Host, PluginConfig, RedisStore, TurnError};
use agent_host_tests::sentinel::SentinelSet;
use agent_host_tests::{load, plugins, test_store_options};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WORKERS: usize = 4;
const BEFORE: usize = 200;
const AFTER: usize = 200;

#[derive(Default)]
struct Tally {
    committed: Vec<(String, String)>,
    failed: usize,
}

impl Tally {
    fn record(&mut self, event: Option<(String, String)>) {
        match event {
            Some(c) => self.committed.push(c),
            None => self.failed += 1,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_during_turns_loses_no_acknowledged_commit() {
    let mut set = SentinelSet::start().await;
    let old_port = set.primary.port();
    assert_eq!(set.primary_port().await, Some(old_port));
    let mut options = test_store_options();
    options.wait_replicas = 1;
    let store = RedisStore::open(&set.url(), options).expect("store");
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
                let session = format!("w{w}-{}", n % 4);
                let id = format!("w{w}-turn{n}");
                let ops = json!([{"op": "append", "session": session, "items": [id]}]);
                let outcome = host.run_turn("p", "load", &ops.to_string()).await;
                let committed = match outcome {
                    Ok(answer) => {
                        let results: Value = serde_json::from_str(&answer).unwrap();
                        results[0].get("ok").is_some()
                    }
                    Err(TurnError::StoreUnavailable { .. }) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        false
                    }
                    Err(e) => panic!("unexpected turn error: {e}"),
                };
                let event = committed.then_some((session, id));
                if events.send(event).is_err() {
                    break;
                }
            }
        }));
    }
    drop(events);

    let mut tally = Tally::default();
    while tally.committed.len() < BEFORE {
        tally.record(rx.recv().await.unwrap());
    }
    let killed_at = Instant::now();
    set.primary.stop(); // SIGKILL
    let at_kill = tally.committed.len();
    let recovered = tokio::time::timeout(Duration::from_secs(60), async {
        while tally.committed.len() < at_kill + AFTER {
            tally.record(rx.recv().await.unwrap());
        }
    })
    .await;
    let took = killed_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    while let Some(event) = rx.recv().await {
        tally.record(event);
    }
    let Tally { committed, failed } = tally;
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    assert!(
        recovered.is_ok(),
        "no turns committed within 60 s of the kill"
    );
    let new_port = set
        .primary_port()
        .await
        .expect("the sentinels name a primary");
    assert_ne!(new_port, old_port, "no failover happened");
    println!(
        "failover: {} turns committed ({at_kill} before the kill), {failed} failed, \
         {AFTER} more committed {took:?} after the kill; new primary on port {new_port}",
        committed.len()
    );

    // Every acknowledged id is on the new primary.
    let promoted = set
        .replicas
        .iter()
        .find(|r| r.port() == new_port)
        .expect("a replica was promoted");
    let mut conn = promoted.conn().await;
    let mut histories: HashMap<String, HashSet<String>> = HashMap::new();
    let mut missing = Vec::new();
    for (session, id) in &committed {
        if !histories.contains_key(session) {
            let items: Vec<String> = redis::cmd("LRANGE")
                .arg(format!("agent:t:s:{{{session}}}:hist"))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap();
            histories.insert(session.clone(), items.into_iter().collect());
        }
        if !histories[session].contains(id) {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}
