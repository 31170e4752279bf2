//! What the benchmarks share: running turns at a concurrency and measuring them.
// Each benchmark uses part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

/// The benchmarks' runtime: two workers, one per core of the machine they were
/// written for.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
pub fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count after it.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One turn of a benchmark, as a future.
pub type BoxedTurn = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

pub struct Row {
    pub turns_per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs `turns` turns, `concurrency` at a time, and measures them.
pub async fn measure<F, Fut>(turns: u64, concurrency: usize, turn: F) -> Row
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let turn = Arc::new(turn);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, turn) = (next.clone(), turn.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= turns {
                    break latencies;
                }
                let t = Instant::now();
                turn(i).await;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(turns as usize);
    for task in tasks {
        all.extend(task.await.expect("a benchmark task panicked"));
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Row {
        turns_per_s: turns as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// The baseline's state, the same shape as the plugin's.
#[derive(Serialize, Deserialize)]
pub struct State {
    pub turns: u64,
    pub profile: String,
}

/// The Redis work of one agent turn with no WASM, on `session`: read the ~2 KB JSON
/// state and the last 10 history items in one round trip, decode and encode the
/// state, write it with a TTL, append 2 items and set their TTL in one MULTI/EXEC.
/// Answers what the bench plugin answers.
pub async fn baseline_turn(
    conn: &mut MultiplexedConnection,
    session: &str,
) -> redis::RedisResult<String> {
    let state_key = format!("baseline:s:{{{session}}}:state");
    let hist_key = format!("baseline:s:{{{session}}}:hist");
    let (state, recent): (Option<Vec<u8>>, Vec<Vec<u8>>) = redis::pipe()
        .get(&state_key)
        .lrange(&hist_key, -10, -1)
        .query_async(conn)
        .await?;
    let mut state = state
        .and_then(|b| serde_json::from_slice::<State>(&b).ok())
        .unwrap_or_else(|| State {
            turns: 0,
            profile: "x".repeat(2000),
        });
    state.turns += 1;
    let answer = format!("turn {} after {} messages", state.turns, recent.len());
    let bytes = serde_json::to_vec(&state).expect("encodes");
    redis::pipe()
        .atomic()
        .set_ex(&state_key, bytes, 3600)
        .ignore()
        .rpush(&hist_key, &["hello", answer.as_str()])
        .ignore()
        .expire(&hist_key, 3600)
        .ignore()
        .query_async::<()>(conn)
        .await?;
    Ok(answer)
}
