//! How a turn's run ended, in the caller's terms: why wasmtime stopped the guest
//! (memory, deadline, trap), and for a crash what the plugin's stderr says: its
//! last meaningful lines and what happened (a Rust panic, an uncaught exception,
//! out of memory, an abort).

use wasmtime::{PoolConcurrencyLimitError, Trap};

use crate::error::{CrashCause, TurnError};
use crate::guest_text::{LOG_FIELD_BYTES, escaped};
use crate::host::sandbox::{self, TurnCtx};
use crate::turn::scope::PluginScope;

pub(crate) fn deadline_error(scope: &PluginScope) -> TurnError {
    TurnError::Deadline {
        plugin: scope.config.id.clone(),
        limit: scope.config.limits.deadline,
    }
}

/// Why wasmtime stopped the guest: the memory cap, the deadline, or a trap.
pub(crate) fn stopped(
    scope: &PluginScope,
    store: &wasmtime::Store<TurnCtx>,
    output: &sandbox::Output,
    error: wasmtime::Error,
) -> TurnError {
    let plugin = scope.config.id.clone();
    if error.is::<PoolConcurrencyLimitError>() {
        return TurnError::Busy { plugin };
    }
    // The deadline first: a plugin refused memory that then ran out of time was
    // stopped by the clock.
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return deadline_error(scope);
    }
    if store.data().limiter.refused > 0 {
        return TurnError::MemoryLimit {
            plugin,
            limit: scope.config.limits.memory_bytes,
        };
    }
    let trap = error.downcast_ref::<Trap>();
    // A trap's text can hold the guest's own function names (its name section).
    let reason = match trap {
        Some(trap) => trap.to_string(),
        None => escaped(&format!("{error:#}"), LOG_FIELD_BYTES),
    };
    let bytes = output.stderr.contents();
    let stderr = String::from_utf8_lossy(&bytes);
    let tail = stderr_tail(&stderr);
    TurnError::Trap {
        plugin,
        cause: crash_cause(trap, &stderr, &tail),
        reason,
        stderr: tail,
    }
}

/// Lines of stderr a trap's error keeps.
const STDERR_TAIL_LINES: usize = 8;
/// Bytes of one stderr line a trap's error keeps.
const STDERR_LINE_BYTES: usize = 300;

/// The line the JavaScript SDK writes last before it crashes a turn on purpose
/// (an uncaught exception, an answer that is not a string); what follows is the
/// engine's abort. Written in `guest-sdk/js/agent-sdk.js`.
const JS_SDK_CRASH: &str = "agent-sdk: uncaught exception; the turn crashes and writes nothing";
/// What componentize-py prints after a Python traceback that reached it.
const PYTHON_UNCAUGHT: &str = "Python function threw an unexpected exception";

/// Lines toolchains print after the message that matters.
const FOOTERS: &[&str] = &[
    "note: run with `RUST_BACKTRACE=1`",
    "note: Some details are omitted",
    "stack backtrace:",
    PYTHON_UNCAUGHT,
    // The JavaScript engine (StarlingMonkey), when it aborts.
    "Redirecting call to abort() to mozalloc_abort",
];
/// How the JavaScript engine heads the frames of an exception it reports, after
/// the exception's message.
const JS_ENGINE_STACK: &str = "Stack:";

/// A line a toolchain prints after the message that matters: a known footer, or
/// the panic of componentize-py's runtime that follows a Python traceback.
fn is_footer(line: &str) -> bool {
    FOOTERS.iter().any(|f| line.starts_with(f))
        || (line.starts_with("thread '") && line.contains("panicked at runtime/src/"))
}

/// `name@file:line:column`, as SpiderMonkey prints a stack frame.
fn is_js_frame(line: &str) -> bool {
    let Some((_, place)) = line.split_once('@') else {
        return false;
    };
    let mut parts = place.rsplitn(3, ':');
    let numbers = [parts.next(), parts.next()];
    parts.next().is_some_and(|file| !file.is_empty())
        && numbers
            .iter()
            .all(|n| n.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// The last lines of stderr that say something, oldest first, escaped and bounded:
/// a Rust panic's message, a Python exception, the JavaScript SDK's report. Left
/// out: blank lines, toolchain footers (Rust's `note: run with RUST_BACKTRACE=1`),
/// the frames of the JavaScript engine's own report (its message stays), and what
/// follows the JavaScript SDK's crash line (the engine aborting).
fn stderr_tail(stderr: &str) -> Vec<String> {
    let said = match stderr.rfind(JS_SDK_CRASH) {
        Some(at) => &stderr[..at],
        None => stderr,
    };
    let mut kept = Vec::new();
    let mut in_engine_stack = false;
    for line in said.lines().map(str::trim_end) {
        let trimmed = line.trim_start();
        if in_engine_stack && line.starts_with(' ') && is_js_frame(trimmed) {
            continue;
        }
        in_engine_stack = trimmed == JS_ENGINE_STACK;
        if !trimmed.is_empty() && !in_engine_stack && !is_footer(trimmed) {
            kept.push(line);
        }
    }
    let from = kept.len().saturating_sub(STDERR_TAIL_LINES);
    kept[from..]
        .iter()
        .map(|l| escaped(l, STDERR_LINE_BYTES))
        .collect()
}

/// What happened, from the toolchains' own words on stderr, else from the trap.
fn crash_cause(trap: Option<&Trap>, stderr: &str, tail: &[String]) -> CrashCause {
    let lines = || stderr.lines().map(str::trim);
    let last = tail.last().map(String::as_str).unwrap_or_default();
    if lines().any(|l| l == JS_SDK_CRASH || l == PYTHON_UNCAUGHT) {
        return if last == "MemoryError" || last.starts_with("MemoryError:") {
            CrashCause::OutOfMemory
        } else {
            CrashCause::UncaughtException
        };
    }
    // Rust's allocation error handler, which then aborts.
    if lines().any(|l| l.starts_with("memory allocation of ") && l.ends_with(" failed")) {
        return CrashCause::OutOfMemory;
    }
    if lines().any(|l| l.starts_with("thread '") && l.contains(" panicked at ")) {
        return CrashCause::Panic;
    }
    match trap {
        Some(Trap::UnreachableCodeReached) => CrashCause::Abort,
        _ => CrashCause::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(trap: Trap, stderr: &str) -> CrashCause {
        crash_cause(Some(&trap), stderr, &stderr_tail(stderr))
    }

    const PANIC: &str = "thread '<unnamed>' (1) panicked at src/lib.rs:21:23:\n\
        wreck: trapping after writing\n\
        note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";

    const PYTHON: &str = "Traceback (most recent call last):\n  \
        File \"/1/app.py\", line 8, in handle\n\
        TypeError: x\n\n\
        thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
        Python function threw an unexpected exception\n\
        note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";

    const JAVASCRIPT: &str = "Stack (most recent call first):\n  \
        handler<@bundle.js:170:30\n\
        TypeError: x\n\
        agent-sdk: uncaught exception; the turn crashes and writes nothing\n\
        expected a string, received [undefined]\n\
        Stack:\n  \
        _utf8AllocateAndEncode@/tmp/8f44/sources/initializer.js:140:11\n\n\
        Redirecting call to abort() to mozalloc_abort\n\n";

    #[test]
    fn a_rust_panic_is_named_by_its_message() {
        assert_eq!(
            cause(Trap::UnreachableCodeReached, PANIC),
            CrashCause::Panic
        );
        assert_eq!(
            stderr_tail(PANIC).last().unwrap(),
            "wreck: trapping after writing"
        );
    }

    #[test]
    fn a_python_exception_is_named_by_its_last_line() {
        assert_eq!(
            cause(Trap::UnreachableCodeReached, PYTHON),
            CrashCause::UncaughtException
        );
        assert_eq!(stderr_tail(PYTHON).last().unwrap(), "TypeError: x");
        let oom = PYTHON.replace("TypeError: x", "MemoryError");
        assert_eq!(
            cause(Trap::UnreachableCodeReached, &oom),
            CrashCause::OutOfMemory
        );
    }

    #[test]
    fn the_javascript_sdks_report_ends_before_the_engine_aborts() {
        assert_eq!(
            cause(Trap::UnreachableCodeReached, JAVASCRIPT),
            CrashCause::UncaughtException
        );
        assert_eq!(
            stderr_tail(JAVASCRIPT),
            [
                "Stack (most recent call first):",
                "  handler<@bundle.js:170:30",
                "TypeError: x"
            ]
        );
    }

    #[test]
    fn the_javascript_engines_own_report_is_named_by_its_message() {
        let stderr = "expected a string, received [number]\nStack:\n  \
            _utf8AllocateAndEncode@/tmp/x/initializer.js:140:11\n\n\
            Redirecting call to abort() to mozalloc_abort\n";
        assert_eq!(
            stderr_tail(stderr),
            ["expected a string, received [number]"]
        );
        assert_eq!(
            cause(Trap::UnreachableCodeReached, stderr),
            CrashCause::Abort
        );
    }

    #[test]
    fn out_of_memory_abort_and_other_traps() {
        let oom = "memory allocation of 1024 bytes failed\n";
        assert_eq!(
            cause(Trap::UnreachableCodeReached, oom),
            CrashCause::OutOfMemory
        );
        assert_eq!(cause(Trap::UnreachableCodeReached, ""), CrashCause::Abort);
        assert_eq!(
            cause(Trap::MemoryOutOfBounds, "said something\n"),
            CrashCause::Other
        );
        assert_eq!(crash_cause(None, "", &[]), CrashCause::Other);
    }

    #[test]
    fn frames_are_told_from_text() {
        assert!(is_js_frame("handle@bundle.js:101:20"));
        assert!(is_js_frame("@bundle.js:1:2"));
        assert!(!is_js_frame("mail me at a@b.c"));
        assert!(!is_js_frame("a@b:1:"));
        assert!(!is_js_frame("a@:1:2"));
        // Frames the plugin printed itself, not after the engine's `Stack:`, stay.
        assert_eq!(
            stderr_tail("  handle@bundle.js:101:20\nsaid\n"),
            ["  handle@bundle.js:101:20", "said"]
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let many: String = (0..20).map(|n| format!("line {n}\n")).collect();
        let tail = stderr_tail(&many);
        assert_eq!(tail.len(), STDERR_TAIL_LINES);
        assert_eq!(tail.last().unwrap(), "line 19");
        assert_eq!(stderr_tail("a\n\u{1b}[31mred\n"), ["a", "\\u{1b}[31mred"]);
    }
}
