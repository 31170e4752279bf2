//! Redis killed with SIGKILL in the middle of a load of turns and restarted from its
//! append-only file: every turn the host reported as committed is still there, the
//! turns made while Redis is down fail fast with `unavailable`, and the host
//! recovers by itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent_host::{PluginConfig, TurnError};
use agent_host_tests::{RedisServer, host, load, plugins};
use serde_json::{Value, json};
use tokio::sync::mpsc;

enum Event {
    Committed { session: String, id: String },
    Failed { took: Duration },
}

#[derive(Default)]
struct Tally {
    committed: Vec<(String, String)>,
    failures: Vec<Duration>,
}

impl Tally {
    fn record(&mut self, event: Event) {
        match event {
            Event::Committed { session, id } => self.committed.push((session, id)),
            Event::Failed { took } => self.failures.push(took),
        }
    }
}

const WORKERS: usize = 4;
const BEFORE_KILL: usize = 300;
const DOWN_FAILURES: usize = 40;
const AFTER_RESTART: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_turns_survive_a_sigkill_with_appendfsync_always() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let host = host(&server);
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
                let session = format!("w{w}-{}", n % 8);
                let id = format!("w{w}-turn{n}");
                let ops = json!([{"op": "append", "session": session, "items": [id]}]);
                let started = Instant::now();
                let outcome = host.run_turn("p", "load", &ops.to_string()).await;
                let event = match outcome {
                    Ok(answer) => {
                        let results: Value = serde_json::from_str(&answer).unwrap();
                        if results[0].get("ok").is_some() {
                            Event::Committed { session, id }
                        } else {
                            Event::Failed {
                                took: started.elapsed(),
                            }
                        }
                    }
                    Err(TurnError::StoreUnavailable { .. }) => Event::Failed {
                        took: started.elapsed(),
                    },
                    Err(e) => panic!("unexpected turn error: {e}"),
                };
                if events.send(event).is_err() {
                    break;
                }
            }
        }));
    }
    drop(events);

    let mut tally = Tally::default();
    while tally.committed.len() < BEFORE_KILL {
        tally.record(rx.recv().await.unwrap());
    }
    server.stop(); // SIGKILL
    let committed_at_kill = tally.committed.len();
    let failed_before = tally.failures.len();
    while tally.failures.len() - failed_before < DOWN_FAILURES {
        // Committed events here are turns acknowledged just before the kill.
        tally.record(rx.recv().await.unwrap());
    }
    server.restart();
    let target = tally.committed.len() + AFTER_RESTART;
    let recovered = tokio::time::timeout(Duration::from_secs(30), async {
        while tally.committed.len() < target {
            tally.record(rx.recv().await.unwrap());
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    while let Some(event) = rx.recv().await {
        tally.record(event);
    }
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    assert!(recovered.is_ok(), "no recovery within 30 s of the restart");
    let Tally {
        committed,
        failures,
    } = tally;

    let slowest = failures.iter().max().copied().unwrap_or_default();
    println!(
        "{} turns committed ({committed_at_kill} before the kill), {} failed while Redis was down, slowest failure {slowest:?}",
        committed.len(),
        failures.len()
    );
    assert!(
        slowest < Duration::from_secs(10),
        "a failing turn took {slowest:?}"
    );

    // Every committed id is in its session's history after the restart.
    let mut conn = server.conn().await;
    let mut missing = Vec::new();
    let mut histories = std::collections::HashMap::new();
    for (session, id) in &committed {
        if !histories.contains_key(session) {
            let key = format!("agent:t:s:{{{session}}}:hist");
            let items: Vec<String> = redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap();
            histories.insert(session.clone(), items.into_iter().collect::<HashSet<_>>());
        }
        if !histories[session].contains(id) {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "committed but lost: {missing:?}");
}
