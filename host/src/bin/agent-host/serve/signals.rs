//! The signals that stop `serve`: SIGTERM (what a service manager sends), SIGINT
//! (Ctrl-C) and SIGHUP. SIGHUP asks a daemon to reload its config; there is no
//! reload yet, so it stops the server the same orderly way (the turns in flight
//! finish) and says so, rather than let the signal's default action kill the
//! process at once.

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The handlers, installed: from then on these signals no longer kill the
/// process.
pub(super) struct Signals {
    term: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers (inside the Tokio runtime).
    pub(super) fn install() -> anyhow::Result<Self> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(Self {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            hangup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Completes at the first of them, once it is logged.
    pub(super) async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM"),
            _ = self.interrupt.recv() => tracing::info!("SIGINT"),
            _ = self.hangup.recv() => {
                tracing::warn!("SIGHUP: shutting down; reload is not supported yet");
            }
        }
    }
}
