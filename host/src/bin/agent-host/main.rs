//! `agent-host`: the command line. It parses arguments and delegates to the library.
//!
//! Layout: `run` and `inspect` are here; `sessions.rs` is the admin commands,
//! `serve/` the HTTP server, `views.rs` the JSON both show sessions in, and
//! `out.rs` how the commands print (a closed stdout ends them quietly).

mod out;
mod serve;
mod sessions;
mod views;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agent_host::{
    EmbeddedStore, Host, Limits, PluginConfig, RedisOptions, RedisStore, StateStore, TurnEvent,
    TurnOptions,
};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::sessions::SessionsArgs;

#[derive(Parser)]
#[command(
    version,
    about = "Runs sandboxed WebAssembly agent plugins with persistent, isolated session state"
)]
struct Cli {
    /// More log output (-v: turns and plugin output, -vv: every state call).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one turn of a plugin and print its answer.
    Run(Box<RunArgs>),
    /// Serve the plugins of a config file over HTTP.
    Serve(ServeArgs),
    /// The sessions of a configured plugin: list, show, delete, versions, rollback,
    /// fork, and what the plugin keeps against its quota.
    Sessions(SessionsArgs),
    /// Show a component's imports and exports and whether it is an agent plugin.
    Inspect(InspectArgs),
}

/// Where `run` keeps state when no Redis URL is given.
const DEFAULT_STATE_FILE: &str = ".agent-host/state.redb";

#[derive(clap::Args)]
struct RunArgs {
    /// The plugin component (.wasm).
    plugin: PathBuf,
    /// The session the turn belongs to.
    #[arg(long, short)]
    session: String,
    /// The turn's input; read from stdin when not given.
    #[arg(long, short)]
    input: Option<String>,
    /// A Redis store: redis://[user:password@]host[:port][/db] or rediss://...
    /// Without it, state goes to the embedded store file (--state-file).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    store: Option<String>,
    /// PEM file of the CA of the Redis server's certificate (rediss://).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate for Redis (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The embedded store's file, used when no Redis URL is given.
    #[arg(long, env = "AGENT_HOST_STATE", default_value = DEFAULT_STATE_FILE)]
    state_file: PathBuf,
    /// Key prefix of the plugin's state (one per tenant).
    #[arg(long, default_value = "default")]
    prefix: String,
    /// First segment of every key.
    #[arg(long, default_value = agent_host::host::DEFAULT_ROOT)]
    root: String,
    /// Session TTL, e.g. 30m, 7d; sessions never expire when not given.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    /// Reads extend the session's TTL (needs --ttl).
    #[arg(long, requires = "ttl")]
    sliding: bool,
    /// Wall-clock limit of the turn.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    deadline: Duration,
    /// Run the turn once for this key: running the same command again prints the
    /// stored answer without running the plugin (1 to 255 printable ASCII).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Memory limit of the plugin instance, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: u64,
    /// Where compiled plugins are kept, so the next run of the same component skips
    /// compiling it. Default: `agent-host` under $XDG_CACHE_HOME (or ~/.cache).
    #[arg(long, env = "AGENT_HOST_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Compile the plugin without reading or writing the cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The config file (TOML; see examples/agent-host.toml).
    #[arg(long, short, env = "AGENT_HOST_CONFIG")]
    config: PathBuf,
    /// Listen on this address instead of the file's `server.listen`.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[derive(clap::Args)]
struct InspectArgs {
    /// The component (.wasm).
    plugin: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match (cli.verbose, &cli.command) {
        // A server logs its turns; the one-shot commands print their error as one
        // line, and logs are opt-in.
        (0, Command::Serve(_)) => "info",
        (0, _) => "error",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(*args).await,
            Command::Serve(args) => serve::serve(args.config, args.listen).await,
            Command::Sessions(args) => sessions::sessions(args).await,
            Command::Inspect(args) => inspect(&args.plugin),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout took what it wanted (`| head`): nothing went wrong.
        Err(e) if out::is_closed(&e) => ExitCode::SUCCESS,
        // In JSON, every line on stderr is one JSON object, the last error too.
        Err(e) if matches!(cli.log_format, LogFormat::Json) => {
            tracing::error!(error = %format!("{e:#}"), "failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let input = match args.input {
        Some(input) => input,
        None => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the input from stdin")?;
            input
        }
    };
    let store: Arc<dyn StateStore> = match &args.store {
        Some(url) => {
            let mut options = RedisOptions::default();
            options.tls_ca.clone_from(&args.tls_ca);
            options.tls_client_cert = args.tls_cert.clone().zip(args.tls_key.clone());
            let store = RedisStore::open(url, options)?;
            let shown = store.url().to_string();
            store
                .ping()
                .await
                .with_context(|| format!("store {shown}"))?;
            Arc::new(store)
        }
        None => Arc::new(open_embedded(&args.state_file)?),
    };
    let mut builder = Host::builder().shared_store(store).root(args.root);
    match (args.no_cache, args.cache_dir.or_else(default_cache_dir)) {
        (false, Some(dir)) => builder = builder.cache_dir(dir),
        _ => tracing::info!("compiled plugins are not cached"),
    }
    let host = builder.build()?;

    let mut limits = Limits::default();
    limits.deadline = args.deadline;
    limits.memory_bytes = args.memory_mib.saturating_mul(1 << 20);
    let config = PluginConfig::new(plugin_id(&args.plugin), args.prefix)
        .with_default_ttl(args.ttl)
        .with_sliding_ttl(args.sliding)
        .with_limits(limits);
    let id = config.id.clone();
    host.load_plugin_file(config, &args.plugin).await?;
    let options = match args.idempotency_key {
        Some(key) => TurnOptions::idempotency_key(key),
        None => TurnOptions::default(),
    };
    // What the plugin emits is printed as it comes. A reader that went away
    // stops the printing, not the turn: it commits all the same.
    let (events, mut emitted) = tokio::sync::mpsc::channel(256);
    let printer = tokio::spawn(async move {
        let mut shown = String::new();
        let mut printing = true;
        while let Some(event) = emitted.recv().await {
            match event {
                TurnEvent::Chunk(chunk) => {
                    printing = printing && out::chunk(&chunk).is_ok();
                    shown.push_str(&chunk);
                }
                TurnEvent::Restart => {
                    let again = "\n(the session changed meanwhile: the turn runs again)";
                    let _ = writeln!(std::io::stderr(), "{again}");
                    shown.clear();
                }
                _ => {}
            }
        }
        shown
    });
    let outcome = host
        .run_turn_with(&id, &args.session, &input, options.with_stream(events))
        .await;
    let shown = printer.await.unwrap_or_default();
    // The chunks' line ends before what comes next, the answer or an error.
    let line_ended = match !shown.is_empty() && !shown.ends_with('\n') {
        true => outln!(""),
        false => Ok(()),
    };
    let answer = outcome?;
    line_ended?;
    if answer.replayed {
        let replayed = "(the stored answer of an earlier run with this idempotency key)";
        let _ = writeln!(std::io::stderr(), "{replayed}");
    }
    // The answer, unless the chunks already showed it.
    if answer.output != shown.trim_end_matches('\n') || shown.is_empty() {
        outln!("{}", answer.output)?;
    }
    Ok(())
}

/// `agent-host` in the user's cache directory: `$XDG_CACHE_HOME`, else `~/.cache`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("agent-host"))
}

/// Opens the embedded store at `path`, creating its directory.
fn open_embedded(path: &Path) -> anyhow::Result<EmbeddedStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
    }
    Ok(EmbeddedStore::open(path)?)
}

fn inspect(path: &Path) -> anyhow::Result<()> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report = agent_host::inspect_component(&wasm)?;
    outln!("imports:")?;
    for name in &report.imports {
        outln!("  {name}")?;
    }
    outln!("exports:")?;
    for name in &report.exports {
        outln!("  {name}")?;
    }
    match &report.fits {
        Ok(()) => outln!("fits a world the host serves: yes"),
        Err(reason) => {
            outln!("fits a world the host serves: no")?;
            anyhow::bail!("{} is not an agent plugin: {reason}", path.display())
        }
    }
}

/// A plugin id from the file name: `chat_memory.wasm` -> `chat_memory`.
fn plugin_id(path: &std::path::Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if id.is_empty() { "plugin".into() } else { id }
}
