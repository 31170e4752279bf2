//! Streamed output: what a plugin emits while its turn runs (`agent:state/output`),
//! on its way to a caller that asked for a stream ([`crate::TurnOptions::stream`]).
//!
//! Chunks go out before the turn commits, so a turn that then fails was seen but
//! not stored. A conflict retry sends [`TurnEvent::Restart`] before the new
//! attempt's chunks. The plugin never waits for the caller: its chunks go into the
//! caller's bounded channel, and a caller that lets it fill up is cut off (it gets
//! no more events) while the turn goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::Limits;
use crate::error::StateError;

/// A new stream id: 32 hex digits no other stream has.
pub fn new_stream_id() -> String {
    crate::turn::idempotency::token()
}

/// An event of a streamed turn before its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnEvent {
    /// A chunk the plugin emitted.
    Chunk(String),
    /// The turn runs again after a conflict: the chunks sent so far were of an
    /// attempt that was not stored.
    Restart,
}

/// Where one turn's events go, for all its attempts.
pub(crate) struct Stream {
    to: Sender<TurnEvent>,
    cut: AtomicBool,
}

impl Stream {
    pub(crate) fn new(to: Sender<TurnEvent>) -> Arc<Self> {
        Arc::new(Self {
            to,
            cut: AtomicBool::new(false),
        })
    }

    /// Sends `event` unless the caller was cut off or is gone; cuts it off if its
    /// channel is full.
    pub(crate) fn send(&self, event: TurnEvent) {
        if self.cut.load(Ordering::Relaxed) {
            return;
        }
        match self.to.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("the caller does not keep up with the stream; cut off");
                self.cut.store(true, Ordering::Relaxed);
            }
            Err(TrySendError::Closed(_)) => self.cut.store(true, Ordering::Relaxed),
        }
    }
}

/// One attempt's emitter.
pub(crate) struct Emitter {
    to: Option<Arc<Stream>>,
    bytes: u64,
    chunks: u64,
    max_bytes: u64,
    max_chunks: u64,
    /// The span in traces of what the attempt streamed (`crate::trace`), from its
    /// first chunk to the attempt's end.
    span: Option<tracing::Span>,
}

impl Emitter {
    /// Emits to `to` (nowhere if `None`) within the plugin's limits
    /// (`max_emit_bytes`, `max_emit_chunks`, per attempt).
    pub(crate) fn new(to: Option<Arc<Stream>>, limits: &Limits) -> Self {
        Self {
            to,
            bytes: 0,
            chunks: 0,
            max_bytes: limits.max_emit_bytes,
            max_chunks: limits.max_emit_chunks,
            span: None,
        }
    }

    pub(crate) fn emit(&mut self, chunk: String) -> Result<(), StateError> {
        let bytes = self.bytes.saturating_add(chunk.len() as u64);
        if bytes > self.max_bytes {
            return Err(StateError::QuotaExceeded(format!(
                "a turn may emit at most {} bytes",
                self.max_bytes
            )));
        }
        if self.chunks >= self.max_chunks {
            return Err(StateError::QuotaExceeded(format!(
                "a turn may emit at most {} chunks",
                self.max_chunks
            )));
        }
        (self.bytes, self.chunks) = (bytes, self.chunks + 1);
        if let Some(to) = &self.to {
            if self.span.is_none() {
                self.span = Some(tracing::info_span!(
                    target: crate::trace::TARGET,
                    "emit",
                    chunks = tracing::field::Empty,
                    bytes = tracing::field::Empty,
                ));
            }
            to.send(TurnEvent::Chunk(chunk));
        }
        Ok(())
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        if let Some(span) = &self.span {
            span.record("chunks", self.chunks);
            span.record("bytes", self.bytes);
        }
    }
}
