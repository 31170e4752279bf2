//! The host against raw redis-rs, in one run.
//!
//! ```text
//! cargo bench -p agent-host --bench turns                 # 20,000 turns per row
//! AGENT_BENCH_TURNS=2000 cargo bench -p agent-host --bench turns
//! AGENT_BENCH_SOAK=1000000 cargo bench -p agent-host --bench turns   # RSS over 1M turns
//! AGENT_BENCH_NULL_ONLY=1 cargo bench -p agent-host --bench turns     # host overhead only
//! ```
//!
//! It starts its own `redis-server` on a free port and measures, at concurrency 1, 16
//! and 64 over 1,000 sessions:
//! - **baseline**: redis-rs doing the Redis work of one agent turn (read the ~2 KB
//!   JSON state and the last 10 history items in one round trip; write the state with
//!   a TTL, append 2 items and set their TTL in one MULTI/EXEC), no WASM;
//! - **host**: the same turn done by the `bench-agent` plugin through the host;
//! - **host, null store**: the host on a store that does nothing: the WASM and host
//!   overhead of a turn;
//! - **host, reuse** and **host, null store, reuse**: the same with instance reuse
//!   on (an instance serves up to 1,000 turns).
//!
//! It prints turns/s, p50/p99 latency, commands and round trips per turn, RSS, and
//! the ratio host / baseline; and the cold-start figures.

mod common;

use std::time::{Duration, Instant};

use common::{BoxedTurn, Row, baseline_turn, env_u64, measure, rss_mib};

use agent_host::keys::{Name, Namespace};
use agent_host::store::{
    Claims, Commit, Entry, Finish, KeyPage, Page, Schedule, Snapshot, StoredVersion,
};
use agent_host::{Host, PluginConfig, StateStore, StoreError};
use agent_host_tests::{RedisServer, plugins};
use redis::aio::MultiplexedConnection;

const SESSIONS: u64 = 1000;
/// Turns per instance in the rows with instance reuse.
const REUSE: u32 = 1000;
const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// A store that stores nothing: isolates the host's own cost per turn.
struct NullStore;

#[async_trait::async_trait]
impl StateStore for NullStore {
    async fn snapshot(&self, _: &Namespace, _: &Name, _: u32) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::default())
    }
    async fn load(&self, _: &Namespace, _: &Name) -> Result<Option<Entry>, StoreError> {
        Ok(None)
    }
    async fn items(&self, _: &Namespace, _: &Name, _: u32) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(Vec::new())
    }
    async fn ttl(&self, _: &Namespace, _: &Name) -> Result<Option<Duration>, StoreError> {
        Ok(None)
    }
    async fn list_sessions(
        &self,
        _: &Namespace,
        _: Option<&str>,
        _: u32,
    ) -> Result<Page, StoreError> {
        Ok(Page::default())
    }
    async fn get(&self, _: &Namespace, _: &Name) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    async fn list_bucket(
        &self,
        _: &Namespace,
        _: &str,
        _: Option<&str>,
        _: u32,
    ) -> Result<KeyPage, StoreError> {
        Ok(KeyPage::default())
    }
    async fn count_values(&self, _: &Namespace) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn usage(&self, _: &Namespace) -> Result<agent_host::Usage, StoreError> {
        Ok(agent_host::Usage::default())
    }
    async fn items_from(
        &self,
        _: &Namespace,
        _: &Name,
        _: u64,
        _: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(Vec::new())
    }
    async fn commit(&self, _: &Namespace, _: Commit) -> Result<(), StoreError> {
        Ok(())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn add_model_usage(
        &self,
        _: &[agent_host::Spender],
        _: &agent_host::Periods,
        _: &agent_host::ModelCount,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn model_usage(
        &self,
        _: &agent_host::Spender,
        _: &agent_host::Periods,
    ) -> Result<[agent_host::ModelCount; 2], StoreError> {
        Ok(Default::default())
    }
    async fn versions(&self, _: &Namespace, _: &Name) -> Result<Vec<StoredVersion>, StoreError> {
        Ok(Vec::new())
    }
    async fn append_events(
        &self,
        _: &Namespace,
        _: &Name,
        _: &str,
        _: Vec<Vec<u8>>,
        _: Duration,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn read_events(
        &self,
        _: &Namespace,
        _: &Name,
        _: &str,
        _: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(Vec::new())
    }
    async fn claim_idempotency(
        &self,
        _: &Namespace,
        _: &Name,
        _: &str,
        _: &[u8],
        _: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    async fn release_idempotency(
        &self,
        _: &Namespace,
        _: &Name,
        _: &str,
        _: &[u8],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn drop_events(&self, _: &Namespace, _: &Name, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn claim_schedules(
        &self,
        _: &Namespace,
        _: u32,
        _: Duration,
        _: u32,
        _: &str,
    ) -> Result<Claims, StoreError> {
        Ok(Claims::default())
    }
    async fn finish_schedule(
        &self,
        _: &Namespace,
        _: &Schedule,
        _: &str,
        _: Finish,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn schedule(&self, _: &Namespace, _: &str) -> Result<Option<Schedule>, StoreError> {
        Ok(None)
    }
    async fn session_schedules(
        &self,
        _: &Namespace,
        _: &Name,
    ) -> Result<Vec<Schedule>, StoreError> {
        Ok(Vec::new())
    }
    async fn count_schedules(&self, _: &Namespace) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// Turn `i` of the benchmark plugin on `host`, on session `i % SESSIONS`.
fn turns_on(host: &Host) -> impl Fn(u64) -> BoxedTurn + Send + Sync + 'static {
    plugin_turns_on(host, "bench")
}

/// Turn `i` of `plugin` on `host`, on session `i % SESSIONS`.
fn plugin_turns_on(
    host: &Host,
    plugin: &'static str,
) -> impl Fn(u64) -> BoxedTurn + Send + Sync + 'static {
    let host = host.clone();
    move |i| {
        let host = host.clone();
        Box::pin(async move {
            host.run_turn(plugin, &format!("s{}", i % SESSIONS), "hello")
                .await
                .expect("host turn");
        })
    }
}

async fn command_calls(conn: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO");
    agent_host_tests::command_calls(&info, |name| name != "info")
}

fn main() {
    let turns = env_u64("AGENT_BENCH_TURNS", 20_000);
    let soak = env_u64("AGENT_BENCH_SOAK", 0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(turns, soak));
}

async fn run(turns: u64, soak: u64) {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    let host = Host::builder().store(store.clone()).build().expect("host");
    let null_host = Host::builder().store(NullStore).build().expect("host");
    let mut raw = server.conn().await;
    let config = || PluginConfig::new("bench", "bench");

    println!("# agent-host benchmark: {turns} turns per row, {SESSIONS} sessions");
    println!(
        "# machine: {} cores; redis-server on loopback, same cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let wasm = std::fs::read(plugins::BENCH_AGENT).expect("bench plugin");
    let t = Instant::now();
    host.load_plugin(config(), wasm.clone())
        .await
        .expect("load");
    let load = t.elapsed();
    let t = Instant::now();
    host.run_turn("bench", "cold", "hello")
        .await
        .expect("first turn");
    let first = t.elapsed();
    null_host
        .load_plugin(config(), wasm.clone())
        .await
        .expect("load");
    // The same plugin with instance reuse on (`REUSE` turns per instance).
    let reused = || PluginConfig::new("bench-reuse", "bench").with_instance_reuse(REUSE);
    for h in [&host, &null_host] {
        h.load_plugin(reused(), wasm.clone()).await.expect("load");
    }
    println!(
        "cold start: compile + link + describe {:.1} ms, first turn {:.2} ms",
        load.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3
    );
    // A restart with the compiled-artifact cache: the first host writes it, a new
    // host (new engine, as after a restart) loads from it.
    let cache = tempfile::tempdir().expect("temp dir");
    let cached = || {
        Host::builder()
            .store(NullStore)
            .instance_slots(4)
            .cache_dir(cache.path())
            .build()
            .expect("host")
    };
    cached()
        .load_plugin(config(), wasm.clone())
        .await
        .expect("load");
    let restarted = cached();
    let t = Instant::now();
    let info = restarted.load_plugin(config(), wasm).await.expect("load");
    let cached_load = t.elapsed();
    assert!(info.from_cache, "the second load did not use the cache");
    println!(
        "precompiled artifact: load {:.2} ms (of which reading the artifact {:.2} ms; \
         the rest is linking and describe)",
        cached_load.as_secs_f64() * 1e3,
        info.compile_time.as_secs_f64() * 1e3
    );

    println!(
        "\n| mode | C | turns/s | p50 | p99 | cmds/turn | round trips/turn | RSS MiB | host/baseline |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // AGENT_BENCH_NULL_ONLY=1: only the null-store rows (for profiling the host).
    let null_only = env_u64("AGENT_BENCH_NULL_ONLY", 0) == 1;
    for c in CONCURRENCY {
        if null_only {
            let null = measure(turns, c, turns_on(&null_host)).await;
            print_row("host, null store", c, &null, 0.0, 0.0, None);
            let null = measure(turns, c, plugin_turns_on(&null_host, "bench-reuse")).await;
            print_row("host, null store, reuse", c, &null, 0.0, 0.0, None);
            continue;
        }
        let calls = command_calls(&mut raw).await;
        let conn = raw.clone();
        let base = measure(turns, c, move |i| {
            let mut conn = conn.clone();
            async move {
                baseline_turn(&mut conn, &format!("s{}", i % SESSIONS))
                    .await
                    .expect("baseline turn");
            }
        })
        .await;
        let base_cmds = (command_calls(&mut raw).await - calls - 1) as f64 / turns as f64;
        print_row("baseline (redis-rs)", c, &base, base_cmds, 2.0, None);

        let calls = command_calls(&mut raw).await;
        let trips = store.round_trips();
        let row = measure(turns, c, turns_on(&host)).await;
        let cmds = (command_calls(&mut raw).await - calls - 1) as f64 / turns as f64;
        let rt = (store.round_trips() - trips) as f64 / turns as f64;
        print_row(
            "host",
            c,
            &row,
            cmds,
            rt,
            Some(row.turns_per_s / base.turns_per_s),
        );

        let null = measure(turns, c, turns_on(&null_host)).await;
        print_row("host, null store", c, &null, 0.0, 0.0, None);

        let row = measure(turns, c, plugin_turns_on(&host, "bench-reuse")).await;
        let ratio = row.turns_per_s / base.turns_per_s;
        print_row("host, reuse", c, &row, cmds, rt, Some(ratio));
        let reused_null = measure(turns, c, plugin_turns_on(&null_host, "bench-reuse")).await;
        print_row("host, null store, reuse", c, &reused_null, 0.0, 0.0, None);
        if c == 1 {
            println!(
                "|  | | host overhead per turn (null store, C=1): {:.1} us, with reuse {:.1} us |||||||",
                1e6 / null.turns_per_s,
                1e6 / reused_null.turns_per_s
            );
        }
    }

    if soak > 0 {
        println!("\nRSS over {soak} null-store turns at C=16:");
        let chunk = (soak / 10).max(1);
        for done in (chunk..=soak).step_by(chunk as usize) {
            measure(chunk, 16, turns_on(&null_host)).await;
            println!("  after {done:>8} turns: RSS {:.1} MiB", rss_mib());
        }
    }
}

fn print_row(mode: &str, c: usize, row: &Row, cmds: f64, trips: f64, ratio: Option<f64>) {
    println!(
        "| {mode} | {c} | {:.0} | {:.0} us | {:.0} us | {cmds:.1} | {trips:.1} | {:.0} | {} |",
        row.turns_per_s,
        row.p50.as_secs_f64() * 1e6,
        row.p99.as_secs_f64() * 1e6,
        rss_mib(),
        ratio.map_or(String::new(), |r| format!("{r:.2}")),
    );
}
