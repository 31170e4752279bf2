//! Scheduled turns at scale: `SCHEDULE_BENCH_COUNT` schedules (default 100,000)
//! pending at once on one Redis, due `SCHEDULE_BENCH_RATE` per second (default
//! 1,000), run by `SCHEDULE_BENCH_HOSTS` hosts (default 3, in this process, each
//! with its own store connection, as replicas sharing the store). Each schedule is
//! a turn of the `remind` test plugin that appends to its session's history.
//!
//! Prints how many ran and how many ran twice (the target: each exactly once), the
//! lag from due to started (p50, p99, max; the target: p99 under 1 s) and the CPU
//! per scheduled turn. The floor in the same run: the lag of a bare claim loop on
//! the same Redis (the claim script and nothing else), which is the least the
//! polling costs.
//!
//! `cargo bench -p agent-host --bench schedules`

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_host::host::DEFAULT_ROOT;
use agent_host::keys::Namespace;
use agent_host::ops::schedules::Due;
use agent_host::{Host, PluginConfig, Quota, RunOutcome, ScheduleRun, Scheduling, StateStore};
use agent_host_tests::{RedisServer, plugins, store};
use common::env_u64;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Adds `count` schedules due `rate` per second from `base` (unix ms), 64 at once.
async fn add_all(host: &Host, count: u64, rate: u64, base: u64) {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (host, next) = (host.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let at = base + i * 1000 / rate;
                    let session = format!("s{}", i % 10_000);
                    host.add_schedule("remind", &session, Due::At(at), format!("reminder: {i}"))
                        .await
                        .expect("add a schedule");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn main() {
    let count = env_u64("SCHEDULE_BENCH_COUNT", 100_000);
    let rate = env_u64("SCHEDULE_BENCH_RATE", 1_000).max(1);
    let replicas = env_u64("SCHEDULE_BENCH_HOSTS", 3).max(1);
    let runtime = common::runtime();
    runtime.block_on(async {
        let redis = RedisServer::start();
        let config = PluginConfig::new("remind", "bench").with_quota(Quota::UNLIMITED);
        let mut hosts = Vec::new();
        for _ in 0..replicas {
            let host = Host::builder().store(store(&redis)).build().unwrap();
            host.load_plugin_file(config.clone(), plugins::REMIND)
                .await
                .unwrap();
            hosts.push(host);
        }
        // Every schedule is added before the first is due (assuming at least 20,000
        // adds a second; the report says if not).
        let base = now_ms() + 2_000 + count * 1000 / 20_000;
        let adding = Instant::now();
        add_all(&hosts[0], count, rate, base).await;
        let added_at = now_ms();
        println!(
            "added {count} schedules in {:.1} s; {} pending; the first is due in {:.1} s",
            adding.elapsed().as_secs_f64(),
            hosts[0].pending_schedules("remind").await.unwrap(),
            (base as f64 - added_at as f64) / 1e3,
        );

        let runs: Arc<Mutex<Vec<ScheduleRun>>> = Arc::default();
        let cpu = cpu_seconds();
        let started = Instant::now();
        let loops: Vec<_> = hosts
            .iter()
            .map(|host| {
                let runs = runs.clone();
                let options =
                    Scheduling::default().on_run(move |run| runs.lock().unwrap().push(run.clone()));
                let host = host.clone();
                tokio::spawn(async move { host.run_schedules(options).await })
            })
            .collect();
        let last_due = base + (count.saturating_sub(1)) * 1000 / rate;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let done = runs
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.outcome == RunOutcome::Done)
                .count() as u64;
            if done >= count || now_ms() > last_due + 60_000 {
                break;
            }
        }
        let elapsed = started.elapsed();
        let cpu = cpu_seconds() - cpu;
        // Then nothing is due: what the hosts still ask of the store.
        let idle = Duration::from_secs(5);
        let before = claims(&redis).await;
        tokio::time::sleep(idle).await;
        let idle_claims = (claims(&redis).await - before) as f64 / idle.as_secs_f64();
        for l in loops {
            l.abort();
        }
        let runs = runs.lock().unwrap().clone();
        report(&runs, count, rate, replicas, cpu, elapsed);
        println!(
            "idle (nothing due), {replicas} hosts: {idle_claims:.1} claims a second, {:.1} per \
             host and plugin (a claim every `poll`, 200 ms, would be 5)",
            idle_claims / replicas as f64
        );
        floor(&redis, count.min(20_000), rate).await;
    });
}

fn report(runs: &[ScheduleRun], count: u64, rate: u64, replicas: u64, cpu: f64, elapsed: Duration) {
    let mut by_id: HashMap<&str, u32> = HashMap::new();
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    for run in runs {
        *outcomes.entry(format!("{:?}", run.outcome)).or_default() += 1;
        if run.outcome == RunOutcome::Done {
            *by_id.entry(&run.id).or_default() += 1;
        }
    }
    let twice = by_id.values().filter(|n| **n > 1).count();
    let mut lags: Vec<Duration> = runs
        .iter()
        .filter(|r| r.outcome == RunOutcome::Done)
        .map(|r| r.lag)
        .collect();
    lags.sort();
    let late = runs.iter().filter(|r| r.late).count();
    println!();
    println!(
        "| schedules | hosts | due per s | ran once | ran twice | lag p50 | lag p99 | lag max | late | CPU per turn | took |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {count} | {replicas} | {rate} | {} | {twice} | {} ms | {} ms | {} ms | {late} | {:.2} ms | {:.0} s |",
        by_id.len(),
        percentile(&lags, 0.5).as_millis(),
        percentile(&lags, 0.99).as_millis(),
        lags.last().copied().unwrap_or_default().as_millis(),
        cpu * 1e3 / lags.len().max(1) as f64,
        elapsed.as_secs_f64(),
    );
    println!("runs by outcome: {outcomes:?}");
    let met = by_id.len() as u64 == count
        && twice == 0
        && percentile(&lags, 0.99) < Duration::from_secs(1);
    println!(
        "target (each once, lag p99 < 1 s): {}",
        if met { "met" } else { "NOT met" }
    );
}

/// How many scripts Redis has run so far (`INFO commandstats`; an idle host's only
/// calls are its claims).
async fn claims(redis: &RedisServer) -> u64 {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO commandstats");
    agent_host_tests::command_calls(&info, |c| c == "evalsha" || c == "eval")
}

/// The floor: a bare loop claiming the same kind of schedules (the claim script
/// and nothing else) every 200 ms on the same Redis.
async fn floor(redis: &RedisServer, count: u64, rate: u64) {
    let store: Arc<dyn StateStore> = Arc::new(store(redis));
    let host = Host::builder().shared_store(store.clone()).build().unwrap();
    let config = PluginConfig::new("remind", "floor").with_quota(Quota::UNLIMITED);
    host.load_plugin_file(config, plugins::REMIND)
        .await
        .unwrap();
    let base = now_ms() + 2_000 + count * 1000 / 20_000;
    add_all(&host, count, rate, base).await;
    let ns = Namespace::new(DEFAULT_ROOT, "floor").unwrap();
    let mut lags = Vec::new();
    while (lags.len() as u64) < count {
        let claimed = store
            .claim_schedules(&ns, 0, Duration::from_secs(60), 256, "floor")
            .await
            .unwrap()
            .claimed;
        let now = now_ms();
        lags.extend(
            claimed
                .iter()
                .map(|c| Duration::from_millis(now.saturating_sub(c.due_ms))),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lags.sort();
    println!(
        "floor (claims only, {count} schedules, 200 ms poll): lag p50 {} ms, p99 {} ms",
        percentile(&lags, 0.5).as_millis(),
        percentile(&lags, 0.99).as_millis()
    );
}
