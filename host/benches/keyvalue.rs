//! The standard `wasi:keyvalue` against `agent-state` and raw redis-rs, in one run.
//!
//! ```text
//! cargo bench -p agent-host --bench keyvalue                   # 5,000 turns per row
//! AGENT_BENCH_TURNS=1000 cargo bench -p agent-host --bench keyvalue
//! ```
//!
//! Each turn reads a ~2 KB value, writes it back and increments a counter (keys
//! `doc-N` and `n-N`, N the turn's number modulo 1,000, so concurrent turns rarely
//! meet). The same input runs through:
//! - **baseline**: redis-rs doing that Redis work (GET, then SET and INCRBY in one
//!   MULTI/EXEC), no WASM;
//! - **agent-state**: the `probe` test plugin (plugin-wide values of `agent-state`);
//! - **wasi:keyvalue**: the `kv-probe` test plugin (the default bucket);
//!
//! on a `redis-server` it starts and on the embedded store in a temp dir, at
//! concurrency 1 and 16. It prints turns/s, p50, p99, round trips per turn (Redis)
//! and each row's ratio to `agent-state` on the same store.

mod common;

use std::sync::Arc;

use agent_host::{EmbeddedStore, Host, PluginConfig, StateStore};
use agent_host_tests::{RedisServer, plugins};
use common::{BoxedTurn, Row, env_u64, measure};

const KEYS: u64 = 1000;
const CONCURRENCY: [usize; 2] = [1, 16];

fn main() {
    let turns = env_u64("AGENT_BENCH_TURNS", 5000);
    common::runtime().block_on(run(turns));
}

/// The input of turn `i`: the same ops for both plugins (their JSON agrees).
fn input(i: u64, value: &str) -> String {
    let k = i % KEYS;
    serde_json::json!([
        {"op": "get", "key": format!("doc-{k}")},
        {"op": "set", "key": format!("doc-{k}"), "value": value},
        {"op": "increment", "key": format!("n-{k}"), "delta": 1},
    ])
    .to_string()
}

/// Turn `i` of `plugin` on `host`, on session `s{i % KEYS}`; fails on any op error.
fn turns_of(
    host: &Host,
    plugin: &'static str,
) -> impl Fn(u64) -> BoxedTurn + Send + Sync + 'static {
    let host = host.clone();
    let value: Arc<str> = "x".repeat(2000).into();
    move |i| {
        let (host, value) = (host.clone(), value.clone());
        Box::pin(async move {
            let answer = host
                .run_turn(plugin, &format!("s{}", i % KEYS), &input(i, &value))
                .await
                .expect("turn");
            assert!(!answer.contains("\"err\""), "{plugin}: {answer}");
        })
    }
}

async fn host_with_plugins(store: Arc<dyn StateStore>) -> Host {
    let host = Host::builder().shared_store(store).build().expect("host");
    // A prefix each: neither counts the other's values against its limit.
    for (id, path) in [("state", plugins::PROBE), ("kv", plugins::KV_PROBE)] {
        host.load_plugin_file(PluginConfig::new(id, format!("bench-{id}")), path)
            .await
            .expect("load");
    }
    host
}

async fn run(turns: u64) {
    let server = RedisServer::start();
    let redis = agent_host_tests::store(&server);
    let redis_host = host_with_plugins(Arc::new(redis.clone())).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let embedded = EmbeddedStore::open(dir.path().join("bench.redb")).expect("embedded store");
    let embedded_host = host_with_plugins(Arc::new(embedded)).await;
    let conn = server.conn().await;

    println!("# wasi:keyvalue benchmark: {turns} turns per row, {KEYS} keys");
    println!(
        "# machine: {} cores; redis-server on loopback, same cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("\n| store | mode | C | turns/s | p50 | p99 | round trips/turn | / agent-state |");
    println!("|---|---|---|---|---|---|---|---|");
    for c in CONCURRENCY {
        let value: Arc<str> = "x".repeat(2000).into();
        let conn = conn.clone();
        let base = measure(turns, c, move |i| {
            let (mut conn, value) = (conn.clone(), value.clone());
            async move {
                let k = i % KEYS;
                let doc = format!("baseline:doc-{k}");
                let _: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&doc)
                    .query_async(&mut conn)
                    .await
                    .expect("GET");
                let _: () = redis::pipe()
                    .atomic()
                    .set(&doc, &*value)
                    .ignore()
                    .incr(format!("baseline:n-{k}"), 1)
                    .ignore()
                    .query_async(&mut conn)
                    .await
                    .expect("MULTI");
            }
        })
        .await;
        print_row("redis", "baseline (redis-rs)", c, &base, Some(2.0), None);
        for (store, host) in [("redis", &redis_host), ("embedded", &embedded_host)] {
            let trips = redis.round_trips();
            let state = measure(turns, c, turns_of(host, "state")).await;
            let state_trips = (redis.round_trips() - trips) as f64 / turns as f64;
            let trips = redis.round_trips();
            let kv = measure(turns, c, turns_of(host, "kv")).await;
            let kv_trips = (redis.round_trips() - trips) as f64 / turns as f64;
            let on_redis = store == "redis";
            print_row(
                store,
                "agent-state",
                c,
                &state,
                on_redis.then_some(state_trips),
                Some(1.0),
            );
            print_row(
                store,
                "wasi:keyvalue",
                c,
                &kv,
                on_redis.then_some(kv_trips),
                Some(kv.turns_per_s / state.turns_per_s),
            );
        }
    }
}

fn print_row(store: &str, mode: &str, c: usize, row: &Row, trips: Option<f64>, ratio: Option<f64>) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {store} | {mode} | {c} | {:.0} | {:.2} ms | {:.2} ms | {} | {} |",
        row.turns_per_s,
        ms(row.p50),
        ms(row.p99),
        trips.map_or("-".into(), |t| format!("{t:.2}")),
        ratio.map_or("-".into(), |r| format!("{r:.2}x")),
    );
}
