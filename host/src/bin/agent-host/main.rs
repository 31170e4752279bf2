//! `agent-host`: the command line. It parses arguments and delegates to the library
//! (and, for `serve`, to the HTTP layer in `serve.rs`).

mod serve;
mod views;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agent_host::config_file::ConfigFile;
use agent_host::{
    EmbeddedStore, Host, Limits, PluginConfig, RedisOptions, RedisStore, StateStore, TurnEvent,
    TurnOptions, admin, checkpoints,
};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

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
    /// List, show or delete the sessions of a configured plugin.
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
struct SessionsArgs {
    /// The config file that names the plugin and the store.
    #[arg(long, short, env = "AGENT_HOST_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The plugin id (as in the config file).
    #[arg(long, short, global = true)]
    plugin: Option<String>,
    #[command(subcommand)]
    action: SessionsAction,
}

#[derive(Subcommand)]
enum SessionsAction {
    /// One session id per line, in byte order.
    List {
        /// Start after this session id.
        #[arg(long)]
        after: Option<String>,
        /// At most this many (default: all).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// A session as JSON: state, version, history, TTL.
    Show {
        /// The session id.
        session: String,
    },
    /// Delete a session (state and history).
    Delete {
        /// The session id.
        session: String,
    },
    /// A session's current state version and its kept ones (`keep_versions`) as
    /// JSON, newest first; with --version, that version's document.
    Versions {
        /// The session id.
        session: String,
        /// Show this version's document.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Write a kept version's document as the session's new version (nothing is
    /// erased); prints the new version number.
    Rollback {
        /// The session id.
        session: String,
        /// The version to go back to.
        #[arg(long)]
        to: u64,
    },
    /// What the plugin keeps in the store, as its quota counts it, and its quota,
    /// as JSON.
    Usage,
    /// Copy a version of a session, and its history up to then, into a new session.
    Fork {
        /// The session id.
        session: String,
        /// The version to copy.
        #[arg(long)]
        from_version: u64,
        /// The new session's id (it must not exist).
        #[arg(long)]
        to: String,
    },
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
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(*args).await,
            Command::Serve(args) => serve::serve(args.config, args.listen).await,
            Command::Sessions(args) => sessions(args).await,
            Command::Inspect(args) => inspect(&args.plugin),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // In JSON, every line on stderr is one JSON object, the last error too.
        Err(e) if matches!(cli.log_format, LogFormat::Json) => {
            tracing::error!(error = %format!("{e:#}"), "failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
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
    // What the plugin emits is printed as it comes.
    let (events, mut emitted) = tokio::sync::mpsc::channel(256);
    let printer = tokio::spawn(async move {
        let mut shown = String::new();
        while let Some(event) = emitted.recv().await {
            match event {
                TurnEvent::Chunk(chunk) => {
                    print!("{chunk}");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                    shown.push_str(&chunk);
                }
                TurnEvent::Restart => {
                    eprintln!("\n(the session changed meanwhile: the turn runs again)");
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
    if !shown.is_empty() && !shown.ends_with('\n') {
        println!();
    }
    let answer = outcome?;
    if answer.replayed {
        eprintln!("(the stored answer of an earlier run with this idempotency key)");
    }
    // The answer, unless the chunks already showed it.
    if answer.output != shown.trim_end_matches('\n') || shown.is_empty() {
        println!("{}", answer.output);
    }
    Ok(())
}

/// The configuration the file gives `plugin`.
fn plugin_config(file: &ConfigFile, plugin: &str) -> anyhow::Result<PluginConfig> {
    match file.plugin(plugin) {
        Some(section) => Ok(section.config()),
        None => anyhow::bail!("the config file has no plugin {plugin:?}"),
    }
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

async fn sessions(args: SessionsArgs) -> anyhow::Result<()> {
    let Some(config) = args.config else {
        anyhow::bail!("give the config file with --config FILE (or AGENT_HOST_CONFIG)");
    };
    let Some(plugin) = args.plugin else {
        anyhow::bail!("give the plugin with --plugin ID");
    };
    let file = ConfigFile::load(&config)?;
    let ns = file.namespace(&plugin)?;
    let limits = file.plugin(&plugin).map(|p| p.config().limits);
    let page_size = limits.map_or(1000, |l| l.max_items_per_call);
    let store = file.open_store()?;
    let store = store.as_ref();
    match args.action {
        SessionsAction::List { after, limit } => {
            let mut cursor = after;
            let mut left = limit.unwrap_or(u64::MAX);
            while left > 0 {
                let want = u32::try_from(left.min(u64::from(page_size))).unwrap_or(page_size);
                let page = admin::list_sessions(store, &ns, cursor.as_deref(), want).await?;
                for session in &page.sessions {
                    println!("{session}");
                }
                left = left.saturating_sub(page.sessions.len() as u64);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        SessionsAction::Show { session } => {
            let snapshot = admin::inspect(store, &ns, &session, page_size).await?;
            if !snapshot.exists {
                anyhow::bail!("plugin {plugin} has no session {session:?}");
            }
            let body = views::session_json(&session, &snapshot);
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        SessionsAction::Delete { session } => {
            if !admin::clear_session(store, &ns, &session).await? {
                anyhow::bail!("plugin {plugin} has no session {session:?}");
            }
            println!("deleted {session}");
        }
        SessionsAction::Versions { session, version } => {
            let body = match version {
                None => views::versions_json(&checkpoints::versions(store, &ns, &session).await?),
                Some(v) => match checkpoints::load_version(store, &ns, &session, v).await? {
                    Some(found) => views::version_json(&found),
                    None => anyhow::bail!("session {session:?} has no version {v}"),
                },
            };
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        SessionsAction::Rollback { session, to } => {
            let config = plugin_config(&file, &plugin)?;
            let version = checkpoints::rollback(store, &ns, &config, &session, to).await?;
            println!("{session} is at version {version} (the document of version {to})");
        }
        SessionsAction::Usage => {
            let config = plugin_config(&file, &plugin)?;
            let usage = store.usage(&ns).await?;
            let body = views::usage_json(&usage, &config.quota);
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        SessionsAction::Fork {
            session,
            from_version,
            to,
        } => {
            let config = plugin_config(&file, &plugin)?;
            let forked =
                checkpoints::fork(store, &ns, &config, &session, from_version, &to).await?;
            println!(
                "forked {session} version {from_version} into {to} ({} history items)",
                forked.history_len
            );
        }
    }
    Ok(())
}

fn inspect(path: &Path) -> anyhow::Result<()> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report = agent_host::inspect_component(&wasm)?;
    println!("imports:");
    for name in &report.imports {
        println!("  {name}");
    }
    println!("exports:");
    for name in &report.exports {
        println!("  {name}");
    }
    match &report.fits {
        Ok(()) => {
            println!("fits a world the host serves: yes");
            Ok(())
        }
        Err(reason) => {
            println!("fits a world the host serves: no");
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
