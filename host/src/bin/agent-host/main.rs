//! `agent-host`: the command line. It parses arguments and delegates to the library.
//!
//! Layout: `inspect` is here; `run.rs` is `run` and its flags, `sessions.rs` the admin commands,
//! `usage.rs` what plugins and tenants use, `budgets.rs` the tenants' model
//! budgets, `serve/` the HTTP server, `views.rs` the JSON both show sessions and
//! usage in, and
//! `out.rs` how the commands print (a closed stdout ends them quietly). `new.rs`
//! and `build.rs` make and build plugin projects (`project.rs` finds one,
//! `toolchain.rs` installs the Python and JavaScript build tools). `check.rs` checks
//! a config file without serving; `completions.rs` prints the shells' completion
//! scripts; `telemetry.rs` exports `serve`'s traces when they are on.

mod budgets;
mod build;
mod check;
mod completions;
mod new;
mod out;
mod project;
mod run;
mod serve;
mod sessions;
mod telemetry;
mod toolchain;
mod usage;
mod views;

// mimalloc instead of glibc's malloc: serve's CPU per Rust turn 1.07-1.10 ->
// 0.81-0.82 ms (BENCHMARKS.md, agents bench at C=256, same run). Only the binary:
// a service that embeds the library keeps its own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::run::RunArgs;
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
    /// Check a config file without serving: it parses, its secrets are set, every
    /// plugin compiles and fits, the store answers. One line per problem; exit 0
    /// only if there is none.
    Check(CheckArgs),
    /// The sessions of a configured plugin: list, show, delete, versions, rollback,
    /// fork, and what the plugin keeps against its quota.
    Sessions(SessionsArgs),
    /// What the configured plugins keep in the store and spent on model calls
    /// today and this month, and what each tenant spent, against their budgets,
    /// as JSON.
    Usage(usage::UsageArgs),
    /// Show a component's imports and exports and whether it is an agent plugin.
    Inspect(InspectArgs),
    /// Make a plugin project (Rust, Python or JavaScript): source, build file,
    /// README, sample config.
    New(new::NewArgs),
    /// Build the plugin project in a directory into DIR/target/NAME.wasm.
    Build(build::BuildArgs),
    /// Print the shell completion script for bash, zsh or fish (e.g.
    /// `agent-host completions bash > /etc/bash_completion.d/agent-host`).
    Completions(completions::CompletionsArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The config file (TOML; see examples/agent-host.toml).
    #[arg(long, short, env = "AGENT_HOST_CONFIG")]
    config: PathBuf,
    /// Listen on this address instead of the file's `server.listen`.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Server processes sharing the address, each single-threaded (instead of the
    /// file's `server.workers`; default 1, one multi-threaded process). One per
    /// core makes Python and JavaScript turns about half as costly (see
    /// docs/operators.md).
    #[arg(long, env = "AGENT_HOST_WORKERS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,
    /// Check the config as `agent-host check` does, and exit instead of serving.
    #[arg(long)]
    check: bool,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The config file (TOML; see examples/agent-host.toml).
    #[arg(long, short, env = "AGENT_HOST_CONFIG")]
    config: PathBuf,
}

#[derive(clap::Args)]
struct InspectArgs {
    /// The component (.wasm).
    plugin: PathBuf,
}

impl Cli {
    /// The global options as arguments, for the processes `serve --workers`
    /// starts.
    fn globals(&self) -> Vec<String> {
        let format = match self.log_format {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        };
        let mut args = vec!["--log-format".to_string(), format.to_string()];
        args.extend((0..self.verbose).map(|_| "-v".to_string()));
        args
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let globals = cli.globals();
    let default = match (cli.verbose, &cli.command) {
        // A server logs its turns; the one-shot commands print their error as one
        // line, and logs are opt-in.
        (0, Command::Serve(_)) => "info",
        (0, _) => "error",
        (1, _) => "info",
        _ => "debug",
    };
    // A `serve` worker is single-threaded (serve/workers.rs).
    let runtime = match serve::workers::number() {
        Some(_) => tokio::runtime::Builder::new_current_thread()
            .thread_name("blocking-io")
            .enable_all()
            .build(),
        None => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    // Traces of `serve`, when they are on; the exporter is a task of the runtime.
    let traces = match &cli.command {
        Command::Serve(args) => {
            let _inside = runtime.enter();
            telemetry::Settings::of_serve(&args.config, args.workers, |name| {
                std::env::var(name).ok()
            })
            .and_then(|settings| {
                settings
                    .map(|settings| {
                        let summary = settings.summary();
                        telemetry::Telemetry::start(settings).map(|(t, layer)| (t, layer, summary))
                    })
                    .transpose()
            })
        }
        _ => Ok(None),
    };
    let (telemetry, trace_layer, traces_to) = match traces {
        Ok(Some((telemetry, layer, summary))) => (Some(telemetry), Some(layer), Some(summary)),
        Ok(None) => (None, None, None),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // The spans meant for traces stay out of the logs (agent_host::trace).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default))
        .add_directive("agent_host::trace=off".parse().expect("a valid directive"));
    let ansi = std::io::stderr().is_terminal();
    match trace_layer {
        // With traces, each layer has its own filter.
        Some(traces) => {
            let logs = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi);
            let logs: telemetry::BoxedLayer = match cli.log_format {
                LogFormat::Human => logs.with_filter(filter).boxed(),
                LogFormat::Json => logs.json().flatten_event(true).with_filter(filter).boxed(),
            };
            tracing_subscriber::registry()
                .with(vec![logs, traces])
                .init();
        }
        // Without, the filter is the subscriber's: what it leaves out is never
        // built (per-layer filtering cost a Rust turn ~0.17 ms of CPU, BENCHMARKS.md).
        None => {
            let logs = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi);
            match cli.log_format {
                LogFormat::Human => logs.init(),
                LogFormat::Json => logs.json().flatten_event(true).init(),
            }
        }
    }
    if let Some(summary) = traces_to {
        tracing::info!(%summary, "traces on");
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(*args).await,
            Command::Serve(args) if args.check => check::check(&args.config).await,
            Command::Serve(args) => {
                serve::serve(args.config, args.listen, args.workers, globals).await
            }
            Command::Check(args) => check::check(&args.config).await,
            Command::Sessions(args) => sessions::sessions(args).await,
            Command::Usage(args) => usage::usage(args).await,
            Command::Inspect(args) => inspect(&args.plugin),
            Command::New(args) => new::new(args),
            Command::Build(args) => build::build(args),
            Command::Completions(args) => completions::completions(args),
        }
    });
    if let Some(telemetry) = telemetry {
        telemetry.shutdown(&runtime);
    }
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
    if let Some(world) = &report.world {
        outln!("world: {world}")?;
    }
    match &report.fits {
        Ok(()) => outln!("fits a world the host serves: yes"),
        Err(reason) => {
            outln!("fits a world the host serves: no")?;
            anyhow::bail!("{} is not an agent plugin: {reason}", path.display())
        }
    }
}
