//! Errors, one type per audience: the guest ([`StateError`]), storage
//! ([`StoreError`]), a turn's caller ([`TurnError`]) and set-up ([`Error`]).
//!
//! None of them ever holds a Redis URL or password: store errors are classified and
//! reworded when they are made (see `store::redis`).

use std::time::Duration;

use crate::guest_text::escaped;

/// Why a state call of the guest did not happen. Becomes the WIT `error` variant in
/// exactly one place (`state.rs`, `convert_error`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A session id, key or cursor broke a rule.
    #[error("invalid {what}: {reason}")]
    InvalidKey {
        /// What was invalid ("session id", "key", "cursor").
        what: &'static str,
        /// The rule it broke.
        reason: String,
    },
    /// A number or option is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A value or an append is over the plugin's size limit.
    #[error("{size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// Size of what the guest sent.
        size: u64,
        /// The plugin's limit.
        limit: u64,
    },
    /// A per-plugin quota would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The store refused or failed the operation.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failed store operation, classified so callers can decide what to do.
///
/// The messages are short, stable and safe to show to a guest: no URL, no password,
/// no server dump.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer in time, refused the connection or lost it. Retrying
    /// later may work; the store reconnects by itself.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A conditional write found another version.
    #[error("version conflict")]
    Conflict,
    /// A store-side quota (history length) would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// `increment` on a value that is not a 64-bit integer (see
    /// [`crate::store::parse_integer`]).
    #[error("the value is not a 64-bit integer")]
    NotAnInteger,
    /// `increment` whose result would not fit in a 64-bit integer.
    #[error("the result would overflow a 64-bit integer")]
    Overflow,
    /// Anything else the store reported.
    #[error("store error: {0}")]
    Internal(String),
    /// The embedded store's file is open in another process: redb lets one
    /// process at a time open a file (a running `agent-host serve` holds its
    /// store's), and the other gets this at open, never later. It names the file
    /// (never a secret), so it is for the operator, not a guest.
    #[error(
        "the store file {} is open in another process (one process at a time may open an embedded store)",
        path.display()
    )]
    InUse {
        /// The store file.
        path: std::path::PathBuf,
    },
}

impl StoreError {
    /// True for errors that may go away by themselves (timeouts, refused or lost
    /// connections).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Why a turn did not produce an answer.
///
/// A plugin's own `Err(message)` is [`TurnError::Plugin`]; the others mean the host
/// stopped the plugin or could not run it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    /// No plugin with that id is loaded.
    #[error("no plugin {0:?} is loaded")]
    UnknownPlugin(String),
    /// The session id broke a rule.
    #[error("{0}")]
    InvalidSession(StateError),
    /// The plugin answered `Err(message)`. The message is shown with its control
    /// characters escaped (one line, nothing that passes for other output).
    #[error("plugin {plugin} failed: {}", escaped(message, usize::MAX))]
    Plugin {
        /// Plugin id.
        plugin: String,
        /// What the plugin said.
        message: String,
    },
    /// The plugin failed while the store was unreachable; the plugin's own message
    /// is kept.
    #[error(
        "plugin {plugin} failed because the store is unavailable ({reason}): {}",
        escaped(message, usize::MAX)
    )]
    StoreUnavailable {
        /// Plugin id.
        plugin: String,
        /// The store's error.
        reason: String,
        /// What the plugin said, if it answered.
        message: String,
    },
    /// The session kept changing under the turn (other turns committed first) and
    /// the turn gave up after this many attempts. Nothing of it was written.
    #[error(
        "plugin {plugin}: the session kept changing during the turn; gave up after {attempts} attempts"
    )]
    Conflict {
        /// Plugin id.
        plugin: String,
        /// How many times the turn ran.
        attempts: u32,
    },
    /// The turn's writes would go over the plugin's quota (what it keeps in the
    /// store, or its number of plugin-wide values). Nothing was written; deleting
    /// sessions or values, or their expiry, makes room.
    #[error("plugin {plugin}: the turn's writes were refused: {reason}")]
    QuotaExceeded {
        /// Plugin id.
        plugin: String,
        /// What would have been exceeded.
        reason: String,
    },
    /// The store failed the turn's commit for another reason. Nothing was written.
    #[error("plugin {plugin}: the store refused the turn's writes: {error}")]
    Store {
        /// Plugin id.
        plugin: String,
        /// The store's error.
        error: StoreError,
    },
    /// The turn ran past the plugin's wall-clock deadline and was stopped.
    #[error("plugin {plugin} ran past its deadline of {} and was stopped", humantime::format_duration(*limit))]
    Deadline {
        /// Plugin id.
        plugin: String,
        /// The deadline.
        limit: Duration,
    },
    /// The plugin asked for more memory than its cap and was stopped.
    #[error("plugin {plugin} went over its memory limit of {limit} bytes and was stopped")]
    MemoryLimit {
        /// Plugin id.
        plugin: String,
        /// The cap in bytes.
        limit: u64,
    },
    /// The plugin runs `Limits::max_concurrent_turns` turns already, or every
    /// instance slot of the host is in use; try again later.
    #[error(
        "plugin {plugin} runs as many turns as it may, or the host has no free instance; try again"
    )]
    Busy {
        /// Plugin id.
        plugin: String,
    },
    /// The host is past what its cores can carry: guest code waits in line for a
    /// core longer than `HostBuilder::max_queue_delay`, so a new turn is refused
    /// before it starts; try again later. Nothing was run.
    #[error(
        "the host is overloaded: guest code waits {delay_ms} ms for a core (at most {limit_ms} ms before new turns are refused); try again"
    )]
    Overloaded {
        /// How long the last guest to get a core had waited for it.
        delay_ms: u64,
        /// `max_queue_delay`, in milliseconds.
        limit_ms: u64,
    },
    /// The plugin trapped (a panic, an uncaught exception, an abort, a bad memory
    /// access...). Nothing of the turn was written. The message names what
    /// happened (see [`CrashCause`]), says where the plugin's whole stderr is, and
    /// ends with its last meaningful stderr line.
    #[error(
        "plugin {plugin} crashed: {}; agent-host -v (or the server's log) shows its stderr{}",
        cause.describe(reason),
        said(stderr)
    )]
    Trap {
        /// Plugin id.
        plugin: String,
        /// What happened, as far as the host can tell.
        cause: CrashCause,
        /// The trap, as wasmtime reports it.
        reason: String,
        /// The last lines the plugin wrote to stderr that say something (toolchain
        /// footers left out), oldest first, each escaped and bounded: for the
        /// operator's log; only the last one is in the message.
        stderr: Vec<String>,
    },
    /// The turn's idempotency key is not 1 to 255 printable ASCII characters.
    #[error("invalid idempotency key: {0}")]
    InvalidIdempotencyKey(String),
    /// The idempotency key was used before with another input.
    #[error(
        "plugin {plugin}: the idempotency key was used with another input; use a new key for a new turn"
    )]
    IdempotencyMismatch {
        /// Plugin id.
        plugin: String,
    },
    /// A turn with the same idempotency key is still running (on this host or
    /// another one sharing the store); the plugin was not run again.
    #[error(
        "plugin {plugin}: a turn with this idempotency key is still running; retry in {}",
        humantime::format_duration(*retry_after)
    )]
    InProgress {
        /// Plugin id.
        plugin: String,
        /// When to ask again.
        retry_after: Duration,
    },
    /// The plugin's answer or error text is over its `max_output_bytes`. Nothing
    /// of the turn was written.
    #[error("plugin {plugin} answered {size} bytes, over its limit of {limit} bytes")]
    OutputTooLarge {
        /// Plugin id.
        plugin: String,
        /// Size of the answer.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// What made a plugin crash ([`TurnError::Trap`]), as far as the host can tell
/// from the trap and from what the toolchains write to the plugin's stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashCause {
    /// A Rust panic (`panicked at` on stderr).
    Panic,
    /// An exception nothing caught: a Python traceback, or the JavaScript SDK's
    /// report (a thrown value, a rejected Promise, an answer that is not a string).
    UncaughtException,
    /// An allocation failed although the host refused no memory growth (Rust's
    /// `memory allocation of N bytes failed`, Python's `MemoryError`). A plugin
    /// stopped at its memory cap is [`TurnError::MemoryLimit`] instead.
    OutOfMemory,
    /// The plugin stopped itself (wasm `unreachable`: Rust's `abort`, the
    /// JavaScript engine's abort) and stderr does not say why.
    Abort,
    /// Another trap (a bad memory access, stack exhaustion...): the trap says which.
    Other,
}

impl CrashCause {
    /// What happened, in words, with the trap where it says more than the cause.
    fn describe(self, trap: &str) -> String {
        match self {
            Self::Panic => "a Rust panic".into(),
            Self::UncaughtException => "an uncaught exception".into(),
            Self::OutOfMemory => "out of memory".into(),
            Self::Abort => format!("an abort ({trap})"),
            Self::Other => trap.into(),
        }
    }
}

/// The last stderr line of a trapped plugin, as a suffix of its message.
fn said(stderr: &[String]) -> String {
    stderr
        .last()
        .map(|line| format!(" (stderr: {line})"))
        .unwrap_or_default()
}

impl TurnError {
    /// A stable, short name of the kind of failure (`unknown_plugin`,
    /// `invalid_session`, `plugin_error`, `store_unavailable`, `conflict`, `store`,
    /// `deadline`, `memory_limit`, `busy`, `trap`, `output_too_large`,
    /// `invalid_idempotency_key`, `idempotency_mismatch`, `in_progress`), for
    /// metrics and API bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownPlugin(_) => "unknown_plugin",
            Self::InvalidSession(_) => "invalid_session",
            Self::Plugin { .. } => "plugin_error",
            Self::StoreUnavailable { .. } => "store_unavailable",
            Self::Conflict { .. } => "conflict",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::Store { .. } => "store",
            Self::Deadline { .. } => "deadline",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::Busy { .. } | Self::Overloaded { .. } => "busy",
            Self::Trap { .. } => "trap",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::IdempotencyMismatch { .. } => "idempotency_mismatch",
            Self::InProgress { .. } => "in_progress",
        }
    }
}

/// A failure to build the host or load a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A plugin could not be read, compiled or linked.
    #[error("plugin {id}: {reason}")]
    Plugin {
        /// Plugin id.
        id: String,
        /// What went wrong.
        reason: String,
    },
    /// The store could not be set up.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No plugin with that id is loaded.
    #[error("no plugin {0:?} is loaded")]
    UnknownPlugin(String),
    /// A session id or argument is invalid.
    #[error(transparent)]
    Invalid(StateError),
    /// The wasm engine could not be set up.
    #[error("engine: {0}")]
    Engine(String),
    /// What the call names does not exist (a kept version).
    #[error("{0}")]
    NotFound(String),
    /// The call conflicts with what is stored (a fork into a session that exists,
    /// a session that kept changing).
    #[error("{0}")]
    Conflict(String),
}
