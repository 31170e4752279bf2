//! [`CapturePipe`]: a plugin's stdout or stderr, kept in memory up to a bound and
//! emptied at the start of each turn, so an instance that serves several turns
//! (`instance_reuse`) reports each turn's output on its own.
//!
//! It behaves as wasmtime-wasi's `MemoryOutputPipe` (which cannot be emptied): a
//! write beyond the bound is refused with a trap, as before.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// One captured stream; clones share the buffer.
#[derive(Clone)]
pub(crate) struct CapturePipe {
    capacity: usize,
    buffer: Arc<Mutex<BytesMut>>,
}

impl CapturePipe {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            buffer: Arc::default(),
        }
    }

    fn buffer(&self) -> MutexGuard<'_, BytesMut> {
        // A panic while the lock is held cannot leave the bytes half-written.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was written since the last `clear`.
    pub(crate) fn contents(&self) -> Bytes {
        Bytes::copy_from_slice(&self.buffer())
    }

    pub(crate) fn clear(&self) {
        self.buffer().clear();
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut buffer = self.buffer();
        if bytes.len() > self.capacity - buffer.len() {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "the plugin wrote more than max_stdio to one stream"
            )));
        }
        buffer.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        match self.capacity - self.buffer().len() {
            0 => Err(StreamError::Closed),
            room => Ok(room),
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturePipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut buffer = self.buffer();
        let n = bytes.len().min(self.capacity - buffer.len());
        buffer.extend_from_slice(&bytes[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturePipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
