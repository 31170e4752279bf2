//! `serve --workers N`: N single-threaded server processes sharing one address.
//!
//! Why: a turn's guest writes pages of its instance's copy-on-write heap image,
//! and in a multi-threaded process every such fault flushes the TLB of each core
//! running one of its threads. One single-threaded process per core needs no
//! such flush and no cross-thread wake-up: measured with the agents benchmark,
//! a Python turn's CPU fell from 12.8 to 6.8 ms (BENCHMARKS.md).
//!
//! How: this process (the supervisor) loads the config to check it, reserves the
//! address (binding, not listening, with `SO_REUSEPORT`, so port 0 becomes one
//! port for all), and starts the workers one after another: each is this
//! program's `serve` again with `AGENT_HOST_WORKER` set, listening on the same
//! address with `SO_REUSEPORT` (the kernel spreads connections over them) on a
//! single-threaded runtime. One at a time, so the first compiles the plugins
//! into the cache and the others load them from it. Once all listen, the
//! supervisor prints `listening on ...`.
//!
//! A worker stops when its standard input closes: the supervisor closes it on
//! SIGTERM or SIGINT, and the kernel closes it if the supervisor dies, so no
//! worker outlives it. On SIGHUP the supervisor writes `reload` to each worker's
//! standard input, and each reloads the config; a worker asked to reload by
//! `POST /admin/reload` prints `reload-all` on its standard output once it has,
//! and the supervisor has every worker reload (the one that asked finds nothing
//! changed). A worker that stops by itself stops the others and the
//! supervisor exits with an error, for the service manager to restart it all.
//!
//! What is per worker: `/metrics` (each worker counts its own turns, labelled
//! `worker`; every store count, quotas and usage, is shared), `max_concurrent_turns` of plugins and
//! tenants, and `max_connections`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use std::sync::Arc;

use agent_host::config_file::ConfigFile;
use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::{App, reload};

/// Set in a worker's environment: its number, from 1.
const WORKER: &str = "AGENT_HOST_WORKER";

/// This process's worker number, if it is a worker.
pub(crate) fn number() -> Option<u32> {
    std::env::var(WORKER).ok()?.parse().ok()
}

/// A listener that shares its address with the other workers.
pub(super) fn listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = shared_socket(addr)?;
    socket.listen(1024)
}

fn shared_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Completes when the supervisor closes this worker's standard input (or dies);
/// until then reloads `app`'s config at each `reload` line.
pub(super) async fn supervisor_gone(app: Arc<App>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line == RELOAD {
            let app = app.clone();
            // Failures are logged; the old config keeps serving.
            tokio::spawn(async move { reload::reload(&app, "the supervisor (SIGHUP)").await });
        }
    }
}

/// In a worker, asks the supervisor to have every worker reload (after
/// `POST /admin/reload` reloaded this one); nothing elsewhere.
pub(super) fn reload_the_others() {
    if number().is_some() {
        crate::out::line_or_ignore(format_args!("{RELOAD_ALL}"));
    }
}

/// The line that asks a worker to reload, and the one a worker prints to have
/// them all reload.
const RELOAD: &str = "reload";
const RELOAD_ALL: &str = "reload-all";

/// Runs `workers` workers until a signal, then stops them the orderly way.
pub(super) async fn supervise(
    file: ConfigFile,
    listen: Option<SocketAddr>,
    workers: u32,
    globals: Vec<String>,
) -> anyhow::Result<()> {
    if file.store.url.is_none() {
        anyhow::bail!(
            "{}: serving with {workers} workers needs a store every worker shares ([store] url, \
             Redis); the embedded store is a file one process opens",
            file.path.display()
        );
    }
    let config = file.path.clone();
    let wanted = listen.unwrap_or(file.server.listen);
    // Held until the end: port 0 picks one port, which stays ours.
    let reserved = shared_socket(wanted).with_context(|| format!("listening on {wanted}"))?;
    let addr = reserved.local_addr()?;
    let (signals, mut hangups) = super::signals::Signals::install()?;
    let (reload_tx, mut reloads) = tokio::sync::mpsc::unbounded_channel();
    let exe = std::env::current_exe().context("finding this program to start the workers")?;
    // Each worker's stdin (closed: stop) and its end, reported here.
    let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
    let mut stdins = Vec::new();
    for n in 1..=workers {
        match start(&exe, &globals, &config, addr, n, reload_tx.clone()).await {
            Ok(mut child) => {
                stdins.push(child.stdin.take());
                let ended_tx = ended_tx.clone();
                tokio::spawn(async move {
                    let _ = ended_tx.send((n, child.wait().await));
                });
            }
            Err(e) => {
                drop(ended_tx);
                stop(stdins, &mut ended).await;
                return Err(e);
            }
        }
    }
    drop(ended_tx);
    tracing::info!(%addr, workers, "listening");
    crate::out::line_or_ignore(format_args!("listening on http://{addr}"));
    let stopped = signals.recv();
    tokio::pin!(stopped);
    let result = loop {
        tokio::select! {
            () = &mut stopped => {
                tracing::info!("stopping the workers: they finish the turns in flight");
                break Ok(());
            }
            Some((n, status)) = ended.recv() => break Err(anyhow::anyhow!(
                "worker {n} stopped by itself ({}); stopped the others",
                describe(status)
            )),
            true = hangups.recv() => tell_all(&mut stdins).await,
            Some(()) = reloads.recv() => tell_all(&mut stdins).await,
        }
    };
    stop(stdins, &mut ended).await;
    drop(reserved);
    tracing::info!("stopped");
    result
}

/// Starts worker `n` and waits until it listens.
/// Has every worker reload its config.
async fn tell_all(stdins: &mut [Option<tokio::process::ChildStdin>]) {
    for stdin in stdins.iter_mut().flatten() {
        let line = format!("{RELOAD}\n");
        if let Err(e) = stdin.write_all(line.as_bytes()).await {
            tracing::warn!(error = %e, "a worker was not told to reload");
        }
    }
}

async fn start(
    exe: &Path,
    globals: &[String],
    config: &Path,
    addr: SocketAddr,
    n: u32,
    reload_all: tokio::sync::mpsc::UnboundedSender<()>,
) -> anyhow::Result<Child> {
    let mut child = Command::new(exe)
        .args(globals)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(addr.to_string())
        .env(WORKER, n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting worker {n}"))?;
    let stdout = child.stdout.take().context("the worker's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.starts_with("listening on ") => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                let status = child.wait().await;
                anyhow::bail!(
                    "worker {n} stopped before it listened ({}); its log above says why",
                    describe(status)
                );
            }
        }
    }
    // Nothing more is expected on its stdout; drained so it never blocks.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == RELOAD_ALL {
                let _ = reload_all.send(());
            }
        }
    });
    Ok(child)
}

/// Closes every worker's stdin (its signal to stop) and waits for them all.
async fn stop(
    stdins: Vec<Option<tokio::process::ChildStdin>>,
    ended: &mut tokio::sync::mpsc::UnboundedReceiver<(
        u32,
        std::io::Result<std::process::ExitStatus>,
    )>,
) {
    drop(stdins);
    while let Some((n, status)) = ended.recv().await {
        if !matches!(&status, Ok(s) if s.success()) {
            tracing::warn!(worker = n, status = %describe(status), "a worker ended badly");
        }
    }
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("cannot wait for it: {e}"),
    }
}
