//! Over HTTP, where users compare us: `agent-host serve` against the floor, in one run.
//!
//! ```text
//! cargo bench -p agent-host --bench http                          # 10,000 requests per row
//! AGENT_BENCH_REQUESTS=2000 cargo bench -p agent-host --bench http
//! ```
//!
//! It starts two servers, each a process of its own on its own `redis-server`:
//! - **serve**: `agent-host serve` (this build's release binary) with the
//!   `bench-agent` plugin behind a tenant token; a turn is a fresh instance,
//!   prefetch, `handle` (load, last 10, append 2, save with TTL), commit;
//! - **serve, reuse**: the same server and plugin loaded a second time with
//!   `instance_reuse = 1000` (its commands are not in the command table);
//! - **floor**: a minimal axum + redis-rs server (this program, started again in
//!   floor mode) doing the same Redis work with plain commands (`common::baseline_turn`)
//!   and answering the same JSON.
//!
//! A load generator in this process drives `POST /v1/plugins/bench/sessions/{s}/turns`
//! over 1,000 sessions at 1, 16 and 64 connections (a fixed number of requests per
//! row, after a warm-up) and prints req/s, p50, p99, and per request the CPU of the
//! server process, of its Redis (`INFO cpu`) and of the load generator
//! (`/proc/.../stat`), then serve / floor; and the commands each Redis ran per
//! request, with their time (`INFO commandstats`; a script's time includes the
//! commands it calls, which are also listed).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent_host_tests::{RedisServer, plugins};
use common::{Row, env_u64, measure};

const SESSIONS: u64 = 1000;
const CONNECTIONS: [usize; 3] = [1, 16, 64];
const TOKEN: &str = "bench-token-0123456789abcdef";
/// Set in the environment of the copy of this program that serves the floor.
const FLOOR_REDIS: &str = "AGENT_BENCH_FLOOR_REDIS";

fn main() {
    if let Ok(url) = std::env::var(FLOOR_REDIS) {
        return floor::serve(&url);
    }
    let requests = env_u64("AGENT_BENCH_REQUESTS", 10_000);
    common::runtime().block_on(run(requests));
}

async fn run(requests: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve_redis = RedisServer::start();
    let floor_redis = RedisServer::start();
    let serve = Server::serve(&serve_redis, dir.path());
    let floor = Server::floor(&floor_redis, dir.path());
    println!(
        "{requests} requests per row over {SESSIONS} sessions; CPU in us per request \
         (server process / its Redis / load generator)\n"
    );
    println!(
        "| mode | conns | req/s | p50 | p99 | server CPU | server switches | Redis CPU | loadgen CPU | serve / floor |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut commands: [BTreeMap<String, (u64, u64)>; 2] = Default::default();
    for connections in CONNECTIONS {
        let floor_row = drive(&floor, &floor_redis, "bench", connections, requests).await;
        let serve_row = drive(&serve, &serve_redis, "bench", connections, requests).await;
        let reuse_row = drive(&serve, &serve_redis, "bench-reuse", connections, requests).await;
        for (total, row) in commands.iter_mut().zip([&floor_row, &serve_row]) {
            for (name, (calls, usec)) in &row.commands {
                let sum = total.entry(name.clone()).or_default();
                *sum = (sum.0 + calls, sum.1 + usec);
            }
        }
        floor_row.print("floor", connections, None);
        let ratio = serve_row.row.turns_per_s / floor_row.row.turns_per_s;
        serve_row.print("serve", connections, Some(ratio));
        let ratio = reuse_row.row.turns_per_s / floor_row.row.turns_per_s;
        reuse_row.print("serve, reuse", connections, Some(ratio));
    }
    let total = requests * CONNECTIONS.len() as u64;
    for (mode, stats) in ["floor", "serve"].into_iter().zip(commands) {
        println!("\n{mode}'s Redis, per request of the measured rows (INFO commandstats):");
        println!("| command | calls | us |");
        println!("|---|---|---|");
        let mut stats: Vec<_> = stats.into_iter().collect();
        stats.sort_by_key(|(_, (_, usec))| std::cmp::Reverse(*usec));
        for (command, (calls, usec)) in stats {
            let (calls, us) = (calls as f64 / total as f64, usec as f64 / total as f64);
            if calls >= 0.01 {
                println!("| {command} | {calls:.2} | {us:.1} |");
            }
        }
    }
}

/// `INFO section` of `redis`.
async fn info(redis: &RedisServer, section: &str) -> String {
    let mut conn = redis.conn().await;
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("INFO {section}: {e}"))
}

/// Command name -> (calls, usec) of `INFO commandstats` so far.
async fn command_stats(redis: &RedisServer) -> BTreeMap<String, (u64, u64)> {
    let info = info(redis, "commandstats").await;
    let field = |line: &str, name: &str| -> u64 {
        line.split(&[',', ':'][..])
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| !l.starts_with("info:") && !l.starts_with("config|"))
        .map(|l| {
            let name = l.split(':').next().unwrap_or_default().to_string();
            (name, (field(l, "calls="), field(l, "usec=")))
        })
        .collect()
}

/// One row: the load's figures and what it cost each process.
struct Measured {
    row: Row,
    server_us: f64,
    /// Context switches of the server's threads per request.
    server_switches: f64,
    redis_us: f64,
    loadgen_us: f64,
    /// Command name -> (calls, usec) in Redis during the row.
    commands: BTreeMap<String, (u64, u64)>,
}

impl Measured {
    fn print(&self, mode: &str, connections: usize, ratio: Option<f64>) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {mode} | {connections} | {:.0} | {:.0} us | {:.0} us | {:.0} us | {:.1} | {:.0} us | {:.0} us | {} |",
            self.row.turns_per_s,
            us(self.row.p50),
            us(self.row.p99),
            self.server_us,
            self.server_switches,
            self.redis_us,
            self.loadgen_us,
            ratio.map_or(String::new(), |r| format!("{r:.2}")),
        );
    }
}

/// Sends `requests` turns of `plugin` to `server` over `connections` connections,
/// after a warm-up.
async fn drive(
    server: &Server,
    redis: &RedisServer,
    plugin: &'static str,
    connections: usize,
    requests: u64,
) -> Measured {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    let base = server.base.clone();
    let send = move |i: u64| {
        let client = client.clone();
        let url = format!(
            "{base}/v1/plugins/{plugin}/sessions/s{}/turns",
            i % SESSIONS
        );
        Box::pin(async move {
            let response = client
                .post(url)
                .bearer_auth(TOKEN)
                .body("hello")
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body = response.text().await.expect("body");
            assert!(status.is_success(), "{status}: {body}");
            assert!(body.contains("turn "), "{body}");
        }) as common::BoxedTurn
    };
    let send = std::sync::Arc::new(send);
    let warm = {
        let send = send.clone();
        move |i| send(i)
    };
    measure((connections as u64 * 20).max(200), connections, warm).await;
    let commands = command_stats(redis).await;
    let switches = context_switches(server.child.id());
    let (server_cpu, redis_cpu, own_cpu) = (
        process_cpu(server.child.id()),
        redis_cpu(redis).await,
        process_cpu(std::process::id()),
    );
    let row = measure(requests, connections, move |i| send(i)).await;
    let mut after = command_stats(redis).await;
    for (name, (calls, usec)) in &commands {
        if let Some(now) = after.get_mut(name) {
            *now = (now.0 - calls, now.1 - usec);
        }
    }
    let per_request = |before: Duration, after: Duration| {
        after.saturating_sub(before).as_secs_f64() * 1e6 / requests as f64
    };
    Measured {
        row,
        server_us: per_request(server_cpu, process_cpu(server.child.id())),
        server_switches: (context_switches(server.child.id()) - switches) as f64 / requests as f64,
        redis_us: per_request(redis_cpu, self::redis_cpu(redis).await),
        loadgen_us: per_request(own_cpu, process_cpu(std::process::id())),
        commands: after,
    }
}

/// Voluntary and involuntary context switches of every thread of process `pid` so
/// far (`/proc/PID/task/*/status`).
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// User + system CPU of process `pid` so far (`/proc/PID/stat` fields 14 and 15,
/// in clock ticks of 10 ms: Linux's USER_HZ is 100).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // The command name, in parentheses, may hold spaces: count after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the line are 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// `used_cpu_user` + `used_cpu_sys` of `INFO cpu`.
async fn redis_cpu(redis: &RedisServer) -> Duration {
    let seconds: f64 = info(redis, "cpu")
        .await
        .lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_user:")
                .or_else(|| l.strip_prefix("used_cpu_sys:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum();
    Duration::from_secs_f64(seconds)
}

/// A server process that printed `listening on URL`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// `agent-host serve` with the bench plugin on `redis`.
    fn serve(redis: &RedisServer, dir: &Path) -> Self {
        let config = dir.join("agent-host.toml");
        let text = format!(
            r#"[store]
url = "{url}"

[server]
listen = "127.0.0.1:0"
cache_dir = "{cache}"

[[plugin]]
id = "bench"
wasm = "{wasm}"
prefix = "bench"

[[plugin]]
id = "bench-reuse"
wasm = "{wasm}"
prefix = "bench"
instance_reuse = 1000

[[token]]
tenant = "bench"
secret = "{TOKEN}"
plugins = ["bench", "bench-reuse"]
"#,
            url = redis.url(),
            cache = dir.join("cache").display(),
            wasm = plugins::BENCH_AGENT,
        );
        std::fs::write(&config, text).expect("config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_agent-host"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("REDIS_URL");
        Self::spawn(command, &dir.join("serve.log"))
    }

    /// This program in floor mode on `redis`.
    fn floor(redis: &RedisServer, dir: &Path) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        command.env(FLOOR_REDIS, redis.url());
        Self::spawn(command, &dir.join("floor.log"))
    }

    fn spawn(mut command: Command, log: &Path) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("listening on ").map(str::to_string));
        let Some(base) = base else {
            let _ = child.kill();
            panic!(
                "the server did not start:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        // Keep reading, so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The floor: axum + redis-rs, the same Redis work as a turn, no WASM.
mod floor {
    use axum::Json;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::post;
    use redis::aio::MultiplexedConnection;

    pub fn serve(redis_url: &str) {
        super::common::runtime().block_on(async {
            let client = redis::Client::open(redis_url).expect("redis url");
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            let app = axum::Router::new()
                .route("/v1/plugins/{plugin}/sessions/{session}/turns", post(turn))
                .with_state(conn);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            println!(
                "listening on http://{}",
                listener.local_addr().expect("addr")
            );
            axum::serve(listener, app).await.expect("serve");
        });
    }

    async fn turn(
        State(mut conn): State<MultiplexedConnection>,
        Path((_plugin, session)): Path<(String, String)>,
        _input: String,
    ) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
        let output = super::common::baseline_turn(&mut conn, &session)
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(Json(serde_json::json!({ "output": output })))
    }
}
