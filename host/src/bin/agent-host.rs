//! `agent-host`: the command line. It parses arguments and delegates to the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent_host::{Host, Limits, PluginConfig, RedisOptions, RedisStore, StateStore};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "Runs sandboxed WebAssembly agent plugins with state in Redis"
)]
struct Cli {
    /// More log output (-v: plugin output and turns, -vv: every state call).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one turn of a plugin and print its answer.
    Run(RunArgs),
}

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
    /// The store: redis://[user:password@]host[:port][/db] or rediss://...
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    store: Option<String>,
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
    /// Memory limit of the plugin instance, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        // The error itself is printed as one line; logs are opt-in.
        0 => "error",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(url) = args.store else {
        bail!("no store: give --store redis://HOST:PORT or set REDIS_URL");
    };
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
    let store = RedisStore::open(&url, RedisOptions::default())?;
    let shown = store.url().to_string();
    store
        .ping()
        .await
        .with_context(|| format!("store {shown}"))?;
    let host = Host::builder().store(store).root(args.root).build()?;

    let mut limits = Limits::default();
    limits.deadline = args.deadline;
    limits.memory_bytes = args.memory_mib.saturating_mul(1 << 20);
    let config = PluginConfig::new(plugin_id(&args.plugin), args.prefix)
        .with_default_ttl(args.ttl)
        .with_sliding_ttl(args.sliding)
        .with_limits(limits);
    let id = config.id.clone();
    host.load_plugin_file(config, &args.plugin).await?;
    let answer = host.run_turn(&id, &args.session, &input).await?;
    println!("{answer}");
    Ok(())
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
