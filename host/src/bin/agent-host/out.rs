//! What the commands print on stdout.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader has gone
//! (`agent-host sessions list | head -5`) fails with `EPIPE`, and `println!`
//! panics on it. The commands write through here instead: a closed stdout is
//! the error [`StdoutClosed`], which `main` ends quietly with exit code 0, as
//! the reader took what it wanted.

use std::io::{self, Write};

/// Stdout's reader has gone.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// `println!` that returns an error instead of panicking: `outln!("{x}")?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

/// Writes `args` and a newline.
pub(crate) fn line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    written(out.write_fmt(args).and_then(|()| out.write_all(b"\n")))
}

/// Writes `text` and flushes it (a streamed chunk, which has no newline yet).
pub(crate) fn chunk(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    written(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Writes `args` and a newline, for a program that goes on whether or not
/// anyone reads its stdout (`serve`).
pub(crate) fn line_or_ignore(args: std::fmt::Arguments<'_>) {
    let _ = line(args);
}

/// Whether `e` is, or was caused by, a closed stdout.
pub(crate) fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.is::<StdoutClosed>())
}

fn written(result: io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other.map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))?),
    }
}
