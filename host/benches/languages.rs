//! The same chat agent in Rust, Python and JavaScript through the host, in one run.
//!
//! ```text
//! cargo bench -p agent-host --bench languages                  # 2,000 turns per row
//! AGENT_BENCH_TURNS=500 cargo bench -p agent-host --bench languages
//! AGENT_BENCH_LANGUAGES=python cargo bench -p agent-host --bench languages
//! ```
//!
//! It starts its own `redis-server` and an OpenAI-compatible model server on loopback
//! (the test fixture, answering at once), and for `examples/llm-chat`,
//! `examples/py-chat` and `examples/js-chat` prints: component size, compile time,
//! load from the compiled-artifact cache, the first turn of a fresh host, steady-state
//! turns (turns/s, p50, p99 at C=1 and C=16 over 100 sessions; each turn reads the
//! session, calls the model over HTTP and commits), and the memory one running
//! instance adds (peak RSS during the C=16 run above the idle RSS, divided by 16),
//! and the minor page faults of the whole process per turn at C=1. Each language
//! runs three times: on a host with the default pool, on one that keeps 32 MiB of a
//! finished instance's memory resident (`HostBuilder::keep_resident`, row `+keep`),
//! and with an instance that serves up to 1,000 turns (`instance_reuse`, row
//! `+reuse`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent_host::{AllowedOrigin, Host, PluginConfig};
use agent_host_tests::model_server::ModelServer;
use agent_host_tests::{RedisServer, plugins};
use common::{env_u64, measure, minor_faults, rss_mib};

const SESSIONS: u64 = 100;

fn main() {
    let turns = env_u64("AGENT_BENCH_TURNS", 2000);
    common::runtime().block_on(run(turns));
}

async fn run(turns: u64) {
    let redis = RedisServer::start();
    let model = ModelServer::start().await;
    println!(
        "{:<18} {:>8} {:>10} {:>9} {:>10} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>11} {:>11}",
        "language",
        "size MB",
        "compile ms",
        "cached ms",
        "1st turn",
        "C=1 t/s",
        "p50 ms",
        "p99 ms",
        "C=16 t/s",
        "p50 ms",
        "p99 ms",
        "MiB/instance",
        "faults/turn"
    );
    let languages = [
        ("Rust", plugins::LLM_CHAT),
        ("Python", plugins::PY_CHAT),
        ("JavaScript", plugins::JS_CHAT),
    ];
    for (language, wasm) in languages {
        if !chosen(language) {
            continue;
        }
        for (suffix, pool) in [
            ("", Pool::default()),
            (
                " +keep",
                Pool {
                    keep_resident: KEEP_RESIDENT,
                    reuse: 0,
                },
            ),
            (
                " +reuse",
                Pool {
                    keep_resident: 0,
                    reuse: REUSE,
                },
            ),
        ] {
            let label = format!("{language}{suffix}");
            row(&label, wasm, pool, turns, &redis, &model).await;
        }
    }
}

/// 32 MiB: above the Python (14 MiB) and JavaScript (10 MiB) chat plugins' memory.
const KEEP_RESIDENT: u64 = 32 << 20;
/// Turns per instance in the `+reuse` rows.
const REUSE: u32 = 1000;

/// How a row's host keeps memory and instances.
#[derive(Clone, Copy, Default)]
struct Pool {
    keep_resident: u64,
    reuse: u32,
}

/// Loads `wasm` on a fresh host and prints its row.
async fn row(
    label: &str,
    wasm: &str,
    pool: Pool,
    turns: u64,
    redis: &RedisServer,
    model: &ModelServer,
) {
    let size = std::fs::metadata(wasm).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    let cache = tempfile::tempdir().expect("temp dir");
    let (host, compile) = load(redis, model, wasm, cache.path(), pool).await;
    drop(host);
    let (host, cached) = load(redis, model, wasm, cache.path(), pool).await;
    let started = Instant::now();
    host.run_turn("chat", "first", "hello")
        .await
        .expect("first turn");
    let first = started.elapsed();
    let faults = minor_faults();
    let c1 = measure(turns, 1, turn_on(&host)).await;
    let faults_per_turn = (minor_faults() - faults) as f64 / turns as f64;
    let idle = rss_mib();
    let peak = Arc::new(std::sync::Mutex::new(idle));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let now = rss_mib();
                {
                    let mut max = peak.lock().unwrap();
                    *max = max.max(now);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let c16 = measure(turns, 16, turn_on(&host)).await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let per_instance = (*peak.lock().unwrap() - idle).max(0.0) / 16.0;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<18} {:>8.1} {:>10.0} {:>9.1} {:>10.1} | {:>9.0} {:>8.2} {:>8.2} | {:>9.0} {:>8.2} {:>8.2} | {:>11.1} {:>11.0}",
        label,
        size,
        ms(compile),
        ms(cached),
        ms(first),
        c1.turns_per_s,
        ms(c1.p50),
        ms(c1.p99),
        c16.turns_per_s,
        ms(c16.p50),
        ms(c16.p99),
        per_instance,
        faults_per_turn,
    );
}

/// Whether `AGENT_BENCH_LANGUAGES` (a comma-separated list, all when unset) names
/// `language`.
fn chosen(language: &str) -> bool {
    std::env::var("AGENT_BENCH_LANGUAGES").map_or(true, |list| {
        list.split(',')
            .any(|name| name.trim().eq_ignore_ascii_case(language))
    })
}

/// A host on `redis` with the chat plugin `wasm` loaded (compiled, or from
/// `cache`), and the time the load took.
async fn load(
    redis: &RedisServer,
    model: &ModelServer,
    wasm: &str,
    cache: &Path,
    pool: Pool,
) -> (Host, Duration) {
    let host = Host::builder()
        .store(agent_host_tests::store(redis))
        .cache_dir(cache)
        .keep_resident(pool.keep_resident)
        .build()
        .expect("host");
    let config = PluginConfig::new("chat", "bench")
        .with_env(vec![
            ("MODEL_URL".into(), format!("{}/v1", model.origin())),
            ("MODEL".into(), "small".into()),
        ])
        .with_origin(AllowedOrigin::parse(&model.origin()).expect("origin"))
        .with_instance_reuse(pool.reuse);
    let info = host.load_plugin_file(config, wasm).await.expect("load");
    (host, info.compile_time)
}

fn turn_on(host: &Host) -> impl Fn(u64) -> common::BoxedTurn + Send + Sync + 'static {
    let host = host.clone();
    move |i| {
        let host = host.clone();
        Box::pin(async move {
            host.run_turn("chat", &format!("s{}", i % SESSIONS), "hello")
                .await
                .expect("turn");
        })
    }
}
