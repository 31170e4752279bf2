//! The signals of `serve`: SIGTERM (what a service manager sends) and SIGINT
//! (Ctrl-C) stop the server the orderly way (the turns in flight finish); SIGHUP
//! reloads the config file (`reload.rs`), as daemons do.

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stop handlers, installed: from then on these signals no longer kill the
/// process.
pub(super) struct Signals {
    term: Signal,
    interrupt: Signal,
}

/// The SIGHUP handler, installed.
pub(super) struct Hangups(Signal);

impl Signals {
    /// Installs the handlers (inside the Tokio runtime), SIGHUP's included.
    pub(super) fn install() -> anyhow::Result<(Self, Hangups)> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        let signals = Self {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
        };
        Ok((signals, Hangups(install(SignalKind::hangup(), "SIGHUP")?)))
    }

    /// Completes at the first of them, once it is logged.
    pub(super) async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM"),
            _ = self.interrupt.recv() => tracing::info!("SIGINT"),
        }
    }
}

impl Hangups {
    /// Waits for the next SIGHUP; false if no more can come.
    pub(super) async fn recv(&mut self) -> bool {
        let got = self.0.recv().await.is_some();
        if got {
            tracing::info!("SIGHUP: reloading the config");
        }
        got
    }
}
