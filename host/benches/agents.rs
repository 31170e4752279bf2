//! Density for agents that wait on their model (issue 26): how many conversations a
//! server carries at once, at what CPU and memory per turn, against two floors.
//!
//! ```text
//! cargo bench -p agent-host --bench agents
//! AGENT_BENCH_SECONDS=3 AGENT_BENCH_CONNECTIONS=64 AGENT_BENCH_ONLY=rust,floor-rust \
//!   cargo bench -p agent-host --bench agents
//! ```
//!
//! A model server (this program again, in a process of its own) answers
//! OpenAI-compatible chat completions on loopback, streaming ten words over
//! `AGENT_BENCH_MODEL_DELAY_MS` (default 1000). The servers under test, each a
//! process of its own on a `redis-server` of its own, fresh for every row, all on
//! `POST /v1/plugins/{p}/sessions/{s}/turns`:
//! - `floor-rust`: this program again as an axum + reqwest + redis-rs server doing
//!   the chat turn by hand: LRANGE the last 20 messages, call the model streamed,
//!   RPUSH both messages + EXPIRE in one MULTI/EXEC, answer `{"output": ...}`;
//! - `floor-python`: the same service in plain asyncio (`tests/servers/agent_floor.py`:
//!   aiohttp server and client, redis-py), in `target/agent-floor-venv` (tests/setup.sh);
//! - `rust`, `python`, `js`: `agent-host serve` (this build's release binary) with
//!   `examples/llm-chat`, `py-chat` or `js-chat`, default settings but for limits
//!   large enough for the load.
//!
//! A load generator in this process runs C workers (`AGENT_BENCH_CONNECTIONS`,
//! default 64,256,1024), each on its own keep-alive HTTP/1.1 connection, each turn
//! on a new session, for `AGENT_BENCH_SECONDS` (default 15) per row after a 2 s
//! warm-up. Per row: turns/s (answered 200) and its ratio to the ideal C / delay,
//! p50 and p99 of those turns, the server process's CPU and its Redis's CPU per
//! such turn, the server's peak resident memory and (peak - memory before the row)
//! / C, both as RSS and as PSS (a page shared by n mappings, as a component's
//! memory image is by its instances, counts 1/n in each: what the server adds to
//! the machine's memory), and the other answers by status and error kind. `AGENT_BENCH_ONLY` (comma
//! separated: rust, python, js, floor-rust, floor-python) picks the servers. Serve's
//! settings: `AGENT_BENCH_WORKERS` (`[server] workers`, default 1),
//! `AGENT_BENCH_REUSE` (the plugin's `instance_reuse`, default off),
//! `AGENT_BENCH_QUEUE_DELAY_MS` (`[server] max_queue_delay`, default serve's);
//! `AGENT_BENCH_MODEL_STREAM=false` has the plugins ask for whole answers (their
//! `MODEL_STREAM`; the floors still stream), to tell the streamed call's cost. The
//! load generator honours serve's `Retry-After: 1` on a 503 (it waits a second).

mod common;
#[path = "common/agent_floor.rs"]
mod floor;
#[path = "common/model_server.rs"]
mod model_server;
#[path = "common/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agent_host_tests::{RedisServer, plugins};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use process::{Memory, MemoryPeak, Server};
use tokio::time::Instant;

const TOKEN: &str = "bench-token-0123456789abcdef";
const INPUT: &str = "What could I cook tonight with leeks, potatoes and a little cream?";
const WARM_UP: Duration = Duration::from_secs(2);
/// Longest a turn may take before the load generator gives up on it (serve's
/// deadline is 30 s).
const TURN_TIMEOUT: Duration = Duration::from_secs(60);
/// In the environment of this program's copies: the model server's delay in ms, and
/// the Rust floor's Redis URL and model base URL.
const MODEL_MODE: &str = "AGENT_BENCH_MODEL_SERVER";
const FLOOR_REDIS: &str = "AGENT_BENCH_FLOOR_REDIS";
const FLOOR_MODEL: &str = "AGENT_BENCH_FLOOR_MODEL";
/// The model name the agents send.
const MODEL: &str = "bench";

/// The servers, in the order of a group's rows.
const SERVERS: [&str; 5] = ["floor-rust", "floor-python", "rust", "python", "js"];

fn main() {
    if let Ok(delay) = std::env::var(MODEL_MODE) {
        let ms = delay.parse().expect("the model server's delay in ms");
        return model_server::serve(Duration::from_millis(ms));
    }
    if let (Ok(redis), Ok(model)) = (std::env::var(FLOOR_REDIS), std::env::var(FLOOR_MODEL)) {
        return floor::serve(&redis, &model);
    }
    let settings = Settings::from_env();
    let largest = settings.connections.iter().max().copied().unwrap_or(0) as u64;
    process::raise_open_files(largest * 3 + 256);
    common::runtime().block_on(run(settings));
}

struct Settings {
    /// `[server] workers` of serve (`AGENT_BENCH_WORKERS`, default 1).
    workers: u64,
    /// `instance_reuse` of the plugin (`AGENT_BENCH_REUSE`, default 0: off).
    reuse: u64,
    /// `[server] max_queue_delay` in ms (`AGENT_BENCH_QUEUE_DELAY_MS`; default:
    /// serve's own).
    queue_delay_ms: Option<u64>,
    /// Whether the plugins ask for a streamed answer (`AGENT_BENCH_MODEL_STREAM`,
    /// default true).
    stream: bool,
    delay: Duration,
    seconds: Duration,
    connections: Vec<usize>,
    servers: Vec<&'static str>,
}

impl Settings {
    /// From the `AGENT_BENCH_*` variables; exits with a message on a bad value.
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| match var(name) {
            None => default,
            Some(v) => (v.trim().parse())
                .unwrap_or_else(|_| fail(&format!("{name}={v:?} is not a whole number"))),
        };
        let connections = match var("AGENT_BENCH_CONNECTIONS") {
            None => vec![64, 256, 1024],
            Some(list) => list
                .split(',')
                .map(|c| match c.trim().parse::<usize>() {
                    Ok(c) if c > 0 => c,
                    _ => fail(&format!(
                        "AGENT_BENCH_CONNECTIONS={list:?}: expected numbers above 0 \
                         separated by commas, like 64,256"
                    )),
                })
                .collect(),
        };
        let servers = match var("AGENT_BENCH_ONLY") {
            None => SERVERS.to_vec(),
            Some(list) => {
                let names: Vec<&str> = list.split(',').map(str::trim).collect();
                if let Some(bad) = names.iter().find(|n| !SERVERS.contains(n)) {
                    fail(&format!(
                        "AGENT_BENCH_ONLY: unknown server {bad:?}; choose among {}",
                        SERVERS.join(", ")
                    ));
                }
                SERVERS.into_iter().filter(|s| names.contains(s)).collect()
            }
        };
        let seconds = number("AGENT_BENCH_SECONDS", 15);
        if seconds == 0 {
            fail("AGENT_BENCH_SECONDS must be at least 1");
        }
        Self {
            workers: number("AGENT_BENCH_WORKERS", 1).max(1),
            reuse: number("AGENT_BENCH_REUSE", 0),
            queue_delay_ms: var("AGENT_BENCH_QUEUE_DELAY_MS")
                .map(|_| number("AGENT_BENCH_QUEUE_DELAY_MS", 100)),
            stream: match var("AGENT_BENCH_MODEL_STREAM").as_deref().map(str::trim) {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => fail(&format!(
                    "AGENT_BENCH_MODEL_STREAM={v:?}: expected true or false"
                )),
            },
            delay: Duration::from_millis(number("AGENT_BENCH_MODEL_DELAY_MS", 1000)),
            seconds: Duration::from_secs(seconds),
            connections,
            servers,
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("agents bench: {message}");
    std::process::exit(2);
}

/// The workspace's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
}

/// The Python floor's interpreter, checked to import its packages.
fn floor_python() -> PathBuf {
    let python = root().join("target/agent-floor-venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import aiohttp, redis"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        fail(&format!(
            "the Python floor needs aiohttp and redis-py in {}: run tests/setup.sh \
             (or leave floor-python out of AGENT_BENCH_ONLY)",
            python.display()
        ));
    }
    python
}

async fn run(settings: Settings) {
    let python = settings
        .servers
        .contains(&"floor-python")
        .then(floor_python);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command.env(MODEL_MODE, settings.delay.as_millis().to_string());
    let model = Server::spawn(command, &dir.path().join("model.log"));
    let ideal_per_turn = settings.delay.as_secs_f64().max(1e-3);
    println!(
        "model: {} words streamed over {} ms (ideal turns/s = C / {:.3} s); {} s per row \
         after a {} s warm-up; a new session per turn; turns/s, p50, p99 and CPU per turn \
         count the turns answered 200 in the window (p50 and p99: of those begun in it); CPU and memory (RSS, and PSS: a shared page split among its mappings) of the server's processes; \
         serve: workers = {}, instance_reuse = {}, max_queue_delay = {}, plugins stream: {}\n",
        model_server::WORDS.len(),
        settings.delay.as_millis(),
        ideal_per_turn,
        settings.seconds.as_secs(),
        WARM_UP.as_secs(),
        settings.workers,
        settings.reuse,
        settings
            .queue_delay_ms
            .map_or_else(|| "default".to_string(), |ms| format!("{ms} ms")),
        settings.stream,
    );
    println!(
        "| server | C | turns/s | / ideal | p50 | p99 | CPU/turn | Redis CPU/turn | peak RSS / PSS | RSS/in-flight | PSS/in-flight | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let largest = settings.connections.iter().max().copied().unwrap_or(1);
    // Each plugin is compiled into its cache before the rows, by a server started
    // and stopped for it: every row's server then loads it, and its memory before
    // the row holds none of the compiler's garbage, which an allocator keeps and
    // hands to the turns (the memory per turn in flight came out near 0).
    for &plugin in settings.servers.iter().filter(|s| !s.starts_with("floor")) {
        let redis = RedisServer::start();
        drop(serve(
            plugin,
            &redis,
            &model,
            &settings,
            largest,
            dir.path(),
        ));
    }
    let sessions = Arc::new(AtomicU64::new(0));
    let mut messages = BTreeMap::new();
    for &c in &settings.connections {
        for &name in &settings.servers {
            let redis = RedisServer::start();
            let mut server = match name {
                "floor-rust" => {
                    let mut command = Command::new(std::env::current_exe().expect("own path"));
                    command
                        .env(FLOOR_REDIS, redis.url())
                        .env(FLOOR_MODEL, format!("{}/v1", model.origin()));
                    Server::spawn(command, &dir.path().join("floor-rust.log"))
                }
                "floor-python" => {
                    let mut command = Command::new(python.as_ref().expect("checked"));
                    command
                        .arg(root().join("tests/servers/agent_floor.py"))
                        .args(["--redis", &redis.url(), "--model-url"])
                        .arg(format!("{}/v1", model.origin()));
                    Server::spawn(command, &dir.path().join("floor-python.log"))
                }
                plugin => serve(plugin, &redis, &model, &settings, largest, dir.path()),
            };
            let row = drive(&server, &redis, c, &settings, &sessions).await;
            server.check_alive();
            model_alive(&model);
            let ideal = c as f64 / ideal_per_turn;
            row.print(name, c, ideal);
            for (kind, message) in row.messages {
                messages.entry(kind).or_insert(message);
            }
        }
    }
    if !messages.is_empty() {
        println!("\nFirst message of each error:");
        for (kind, message) in messages {
            println!("- {kind}: {message}");
        }
    }
}

/// Panics (so every child is killed on the way out) if the model server is gone.
fn model_alive(model: &Server) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", model.pid()));
    // A process that exited is a zombie until waited for.
    if status.is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    }) {
        panic!("the model server exited");
    }
}

/// `agent-host serve` with the chat example `plugin` (rust, python or js) on
/// `redis`, its limits sized for `largest` connections, defaults otherwise.
fn serve(
    plugin: &str,
    redis: &RedisServer,
    model: &Server,
    settings: &Settings,
    largest: usize,
    dir: &Path,
) -> Server {
    let wasm = match plugin {
        "rust" => plugins::LLM_CHAT,
        "python" => plugins::PY_CHAT,
        _ => plugins::JS_CHAT,
    };
    let config = dir.join(format!("serve-{plugin}.toml"));
    let text = format!(
        r#"[store]
url = "{url}"

[server]
listen = "127.0.0.1:0"
cache_dir = "{cache}"
instance_slots = {slots}
max_connections = {connections}
workers = {workers}
{queue_delay}

[[plugin]]
id = "chat"
wasm = "{wasm}"
prefix = "bench"
env = {{ MODEL_URL = "{origin}/v1", MODEL = "{MODEL}"{stream} }}
limits = {{ max_concurrent_turns = {turns}, deadline = "30s" }}
quota = {{ sessions = 100000000, bytes = "1TiB" }}
{reuse}

[[plugin.outbound]]
origin = "{origin}"

[[token]]
tenant = "bench"
secret = "{TOKEN}"
plugins = ["chat"]
"#,
        url = redis.url(),
        cache = dir.join(format!("cache-{plugin}")).display(),
        slots = largest.max(256),
        connections = (largest * 2 + 256).max(1024),
        turns = largest.max(64),
        origin = model.origin(),
        workers = settings.workers,
        stream = match settings.stream {
            true => "",
            false => ", MODEL_STREAM = \"false\"",
        },
        queue_delay = settings
            .queue_delay_ms
            .map_or_else(String::new, |ms| format!("max_queue_delay = \"{ms}ms\"")),
        reuse = match settings.reuse {
            0 => String::new(),
            n => format!("instance_reuse = {n}"),
        },
    );
    std::fs::write(&config, text).expect("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-host"));
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("REDIS_URL");
    Server::spawn(command, &dir.join(format!("serve-{plugin}.log")))
}

/// One row's figures.
struct Row {
    /// Turns answered 200 in the window, per second.
    turns_per_s: f64,
    p50: Duration,
    p99: Duration,
    cpu_per_turn: Duration,
    redis_per_turn: Duration,
    /// The server's peak resident memory (both ways) during the row.
    peak: Memory,
    /// (peak - resident memory before the row) / C, each way.
    rss_per_turn_kib: f64,
    pss_per_turn_kib: f64,
    /// "status kind" -> answers in the window.
    errors: BTreeMap<String, u64>,
    /// "status kind" -> the first message seen.
    messages: BTreeMap<String, String>,
}

/// What one worker saw in the window.
#[derive(Default)]
struct Seen {
    /// Turns answered 200 in the window.
    answered: usize,
    /// The latencies of those begun in the window.
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    messages: BTreeMap<String, String>,
}

/// Runs `c` workers against `server` for the warm-up and the window, and measures
/// the window.
async fn drive(
    server: &Server,
    redis: &RedisServer,
    c: usize,
    settings: &Settings,
    sessions: &Arc<AtomicU64>,
) -> Row {
    let pid = server.pid();
    let before = process::memory(pid);
    let peak = MemoryPeak::start(pid);
    let start = Instant::now();
    let (from, to) = (start + WARM_UP, start + WARM_UP + settings.seconds);
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let sessions = sessions.clone();
            let addr = server.addr();
            tokio::spawn(async move {
                let mut conn = Connection { addr, sender: None };
                let mut seen = Seen::default();
                while Instant::now() < to {
                    let session = sessions.fetch_add(1, Ordering::Relaxed);
                    let began = Instant::now();
                    let outcome = conn.turn(session).await;
                    let ended = Instant::now();
                    if ended < from || ended > to {
                        continue;
                    }
                    match outcome {
                        Ok(()) => {
                            seen.answered += 1;
                            // Latencies only of turns begun in the row: the cold
                            // start's burst, begun in the warm-up, would be its p99.
                            if began >= from {
                                seen.latencies.push(ended - began);
                            }
                        }
                        Err((kind, message)) => {
                            if kind == "connection" {
                                // Not a spin when the server refuses: back off.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            } else if kind.starts_with("503") {
                                // As a client does with serve's `Retry-After: 1`.
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            *seen.errors.entry(kind.clone()).or_default() += 1;
                            seen.messages.entry(kind).or_insert(message);
                        }
                    }
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep_until(from).await;
    let (cpu, redis_cpu) = (process::cpu(pid), process::redis_cpu(redis).await);
    tokio::time::sleep_until(to).await;
    let cpu = process::cpu(pid).saturating_sub(cpu);
    let redis_cpu = process::redis_cpu(redis).await.saturating_sub(redis_cpu);
    let mut all = Seen::default();
    for worker in workers {
        let seen = worker.await.expect("a load worker panicked");
        all.latencies.extend(seen.latencies);
        all.answered += seen.answered;
        for (kind, n) in seen.errors {
            *all.errors.entry(kind).or_default() += n;
        }
        for (kind, message) in seen.messages {
            all.messages.entry(kind).or_insert(message);
        }
    }
    let peak = peak.stop().await;
    all.latencies.sort_unstable();
    let ok = all.answered;
    let timed = all.latencies.len();
    let at = |q: f64| {
        all.latencies
            .get(((timed as f64 * q) as usize).min(timed.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let per_turn = |d: Duration| d.checked_div(ok as u32).unwrap_or_default();
    Row {
        turns_per_s: ok as f64 / settings.seconds.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        cpu_per_turn: per_turn(cpu),
        redis_per_turn: per_turn(redis_cpu),
        peak,
        rss_per_turn_kib: peak.rss.saturating_sub(before.rss) as f64 / c as f64,
        pss_per_turn_kib: peak.pss.saturating_sub(before.pss) as f64 / c as f64,
        errors: all.errors,
        messages: all.messages,
    }
}

impl Row {
    fn print(&self, server: &str, c: usize, ideal: f64) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let kib = |k: f64| match k {
            k if k >= 1024.0 => format!("{:.1} MiB", k / 1024.0),
            k => format!("{k:.0} KiB"),
        };
        let errors = match self.errors.is_empty() {
            true => "none".to_string(),
            false => (self.errors.iter())
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        println!(
            "| {server} | {c} | {:.1} | {:.2} | {:.0} ms | {:.0} ms | {:.2} ms | {:.0} us | {} / {} | {} | {} | {errors} |",
            self.turns_per_s,
            self.turns_per_s / ideal,
            ms(self.p50),
            ms(self.p99),
            ms(self.cpu_per_turn),
            self.redis_per_turn.as_secs_f64() * 1e6,
            kib(self.peak.rss as f64),
            kib(self.peak.pss as f64),
            kib(self.rss_per_turn_kib),
            kib(self.pss_per_turn_kib),
        );
    }
}

/// One worker's keep-alive HTTP/1.1 connection to the server under test, opened
/// again when the server closed it.
struct Connection {
    addr: std::net::SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// One turn on session `session`: `Ok` for a 200 with an output, else the
    /// answer's "status kind" and message.
    async fn turn(&mut self, session: u64) -> Result<(), (String, String)> {
        let request = hyper::Request::post(format!("/v1/plugins/chat/sessions/s{session}/turns"))
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(hyper::header::CONTENT_TYPE, "text/plain")
            .body(Full::new(Bytes::from_static(INPUT.as_bytes())))
            .expect("request");
        let exchange = async {
            let sender = self.ready().await?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| ("connection".to_string(), e.to_string()))?;
            let status = response.status();
            let body = (response.into_body().collect().await)
                .map_err(|e| ("connection".to_string(), e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = match tokio::time::timeout(TURN_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(e);
            }
            Err(_) => {
                self.sender = None;
                let message = format!("no answer in {} s", TURN_TIMEOUT.as_secs());
                return Err(("timeout".into(), message));
            }
        };
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if status == hyper::StatusCode::OK {
            return match json["output"].as_str() {
                Some(output) if output == model_server::WORDS.concat() => Ok(()),
                _ => Err(("200 other output".into(), excerpt(&body))),
            };
        }
        let error = &json["error"];
        let kind = error["kind"].as_str().or(error["code"].as_str());
        let message = error["message"]
            .as_str()
            .map_or_else(|| excerpt(&body), str::to_string);
        Err((
            format!("{} {}", status.as_u16(), kind.unwrap_or("")),
            message,
        ))
    }

    /// The connection's sender once it can take a request (connecting first when
    /// there is none or the server closed it).
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, (String, String)> {
        let failed = |e: &dyn std::fmt::Display| ("connection".to_string(), e.to_string());
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| failed(&e))?;
            stream.set_nodelay(true).map_err(|e| failed(&e))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| failed(&e))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await.map_err(|e| failed(&e))?;
        Ok(sender)
    }
}

/// The first 200 characters of `body`.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}
