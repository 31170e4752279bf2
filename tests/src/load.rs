//! A load of turns for fault tests: worker tasks that append unique ids to sessions
//! through the probe plugin and report each turn's outcome, and a check that every
//! id reported committed is in Redis.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent_host::{Host, TurnError};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How one turn of the load ended.
pub enum Outcome {
    /// Every op succeeded and the turn committed `id` to `session`.
    Committed {
        /// The session appended to.
        session: String,
        /// The appended id.
        id: String,
    },
    /// The turn failed.
    Failed {
        /// How long it took to fail.
        took: Duration,
        /// Whether the failure was the store being unavailable.
        unavailable: bool,
        /// What was reported.
        error: String,
    },
}

/// Running workers and what they reported so far.
pub struct AppendLoad {
    stop: Arc<AtomicBool>,
    rx: mpsc::UnboundedReceiver<Outcome>,
    workers: Vec<JoinHandle<()>>,
    /// (session, id) of every committed turn.
    pub committed: Vec<(String, String)>,
    /// Every failed turn: how long it took, whether the store was unavailable, and
    /// the error.
    pub failed: Vec<(Duration, bool, String)>,
}

impl AppendLoad {
    /// Starts `workers` tasks running turns of probe plugin `plugin` on `host`; each
    /// appends `w{worker}-turn{n}` to session `w{worker}-{n % sessions}`, plus the
    /// ops `extra(worker)` gives. A worker pauses 20 ms after a failed turn.
    pub fn start(
        host: &Host,
        plugin: &str,
        workers: usize,
        sessions: u64,
        extra: fn(usize) -> Vec<Value>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (events, rx) = mpsc::unbounded_channel();
        let workers = (0..workers)
            .map(|w| {
                let (host, stop, events) = (host.clone(), stop.clone(), events.clone());
                let plugin = plugin.to_string();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let session = format!("w{w}-{}", n % sessions);
                        let id = format!("w{w}-turn{n}");
                        let mut ops =
                            vec![json!({"op": "append", "session": session, "items": [id]})];
                        ops.extend(extra(w));
                        let outcome = turn(&host, &plugin, &Value::Array(ops), session, id).await;
                        let failed = matches!(outcome, Outcome::Failed { .. });
                        if events.send(outcome).is_err() {
                            break;
                        }
                        if failed {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            rx,
            workers,
            committed: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Records the next outcome.
    pub async fn next(&mut self) {
        let outcome = self.rx.recv().await.expect("the workers are running");
        self.record(outcome);
    }

    /// Records outcomes until `n` turns have committed in all.
    pub async fn until_committed(&mut self, n: usize) {
        while self.committed.len() < n {
            self.next().await;
        }
    }

    /// Stops the workers and records what they still report (a turn in flight
    /// may still commit).
    pub async fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The channel closes when the last worker has stopped.
        while self.rx.recv().await.is_some_and(|o| {
            self.record(o);
            true
        }) {}
        for worker in std::mem::take(&mut self.workers) {
            worker.await.expect("a worker panicked");
        }
    }

    /// Panics unless every failed turn failed because the store was unavailable;
    /// returns the longest a failure took.
    pub fn failures_were_unavailable(&self) -> Duration {
        let other = self.failed.iter().find(|f| !f.1);
        assert!(
            other.is_none(),
            "a turn failed for another reason: {other:?}"
        );
        self.failed.iter().map(|f| f.0).max().unwrap_or_default()
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Committed { session, id } => self.committed.push((session, id)),
            Outcome::Failed {
                took,
                unavailable,
                error,
            } => self.failed.push((took, unavailable, error)),
        }
    }
}

async fn turn(host: &Host, plugin: &str, ops: &Value, session: String, id: String) -> Outcome {
    let started = Instant::now();
    let failed = |unavailable, error| Outcome::Failed {
        took: started.elapsed(),
        unavailable,
        error,
    };
    match host.run_turn(plugin, "load", &ops.to_string()).await {
        Ok(answer) => {
            let results: Value = serde_json::from_str(&answer).expect("probe answers JSON");
            match results.as_array() {
                Some(r) if r.iter().all(|r| r.get("ok").is_some()) => {
                    Outcome::Committed { session, id }
                }
                Some(r) => {
                    let unavailable = r.iter().any(|r| r["err"]["kind"] == "unavailable");
                    failed(unavailable, answer)
                }
                None => failed(false, answer),
            }
        }
        Err(e @ TurnError::StoreUnavailable { .. }) => failed(true, e.to_string()),
        Err(e) => failed(false, e.to_string()),
    }
}

/// The committed ids that are not in their session's history, read through `host`
/// (so on whatever store it runs on).
pub async fn missing(host: &Host, plugin: &str, committed: &[(String, String)]) -> Vec<String> {
    let mut histories: HashMap<&str, HashSet<Vec<u8>>> = HashMap::new();
    let mut missing = Vec::new();
    for (session, id) in committed {
        if !histories.contains_key(session.as_str()) {
            let snapshot = host.inspect(plugin, session).await.expect("inspect");
            histories.insert(session, snapshot.history.into_iter().collect());
        }
        if !histories[session.as_str()].contains(id.as_bytes()) {
            missing.push(id.clone());
        }
    }
    missing
}
