//! Write agent plugins for `agent-host`.
//!
//! A plugin is a WebAssembly component that handles one turn of a session at a
//! time. Its state (a document per session, a history per session, and plugin-wide
//! values) lives in the host's store, under a prefix the operator chose: the plugin
//! only names sessions and keys. Values are JSON-encoded with `serde`.
//!
//! ```no_run
//! use agent_sdk::{Agent, Result, Session};
//!
//! struct Echo;
//!
//! impl Agent for Echo {
//!     fn handle(session: &Session, input: &str) -> Result<String> {
//!         let turns = session.load::<u32>()?.unwrap_or(0) + 1;
//!         session.save(&turns)?;
//!         session.push(&input)?;
//!         Ok(format!("turn {turns}: {input}"))
//!     }
//! }
//!
//! agent_sdk::export_agent!(Echo);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and run it with `agent-host run target/wasm32-wasip2/release/NAME.wasm
//! --session ID --input TEXT`.
//!
//! Nothing a plugin does with its state can trap: every call returns a
//! [`Result`], and [`StateError`] says what went wrong (an invalid id, a value over
//! the size limit, a version conflict, a store that is unavailable...).
//!
//! A turn can schedule another turn of a session for later with [`schedule`]
//! (`schedule::after(session, Duration::from_secs(60), "remind")`).
//!
//! A plugin's unit tests run natively with `cargo test`: in a native build the
//! state calls go to an in-memory store with the host's semantics, which
//! `testing` (native builds only) runs turns on and shows
//! (`testing::Store::new().run(Echo, "alice", "hi")`).

pub mod http;
pub mod llm;
pub mod mcp;
pub mod schedule;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod wire;

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The bindings generated from the WIT package, for what the typed API does not
/// cover. Most plugins never need them.
#[allow(missing_docs)]
pub mod raw {
    wit_bindgen::generate!({
        path: "wit",
        world: "agent-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "agent_sdk::raw",
    });
}

// In a component the state calls go to the host; in a native build (a plugin's
// `cargo test`) to the in-memory store of `testing`, which has no host to call.
#[cfg(target_arch = "wasm32")]
use raw::agent::state::agent_state as wit;
#[cfg(not(target_arch = "wasm32"))]
use testing::backend as wit;

/// The error a state call returns, as the host sent it.
pub use wit::Error as StateError;
/// Shows `chunk` to the caller now, while the turn runs (a caller that asked for a
/// stream gets it at once; others get only the answer). Chunks are shown before
/// the turn commits: if the turn then fails they were seen but not stored.
pub fn emit(chunk: &str) -> Result<()> {
    #[cfg(target_arch = "wasm32")]
    let emitted = raw::agent::state::output::emit(chunk);
    #[cfg(not(target_arch = "wasm32"))]
    let emitted = testing::backend::emit(chunk);
    Ok(emitted?)
}

/// A kept state version of a session ([`Session::versions`]).
pub use wit::VersionInfo;

/// What can go wrong in a plugin.
#[derive(Debug)]
pub enum Error {
    /// The host refused or failed a state call.
    State(StateError),
    /// A stored value could not be decoded as the asked type, or a value could
    /// not be encoded.
    Codec(String),
    /// The plugin's own message (see [`Error::msg`]).
    Message(String),
    /// An HTTP request failed (refused by the host, unreachable, a bad answer).
    Http(String),
    /// An MCP server answered an error ([`mcp`]): a JSON-RPC error, an answer
    /// that is not JSON-RPC, or a tool result marked `isError` (then the message
    /// is the tool's text, as it is).
    Mcp(String),
}

impl Error {
    /// An error with the plugin's own message; it becomes the turn's error.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::Message(message.to_string())
    }

    /// True if the store was unreachable (retrying the turn later may work).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::State(StateError::Unavailable(_)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::State(e) => match e {
                StateError::InvalidKey(m) => write!(f, "invalid key: {m}"),
                StateError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
                StateError::TooLarge(limit) => write!(f, "value over the limit of {limit} bytes"),
                StateError::QuotaExceeded(m) => write!(f, "quota exceeded: {m}"),
                StateError::Conflict => f.write_str("version conflict"),
                StateError::Unavailable(m) => write!(f, "state store unavailable: {m}"),
                StateError::Internal(m) => write!(f, "state store error: {m}"),
            },
            Self::Codec(m) => write!(f, "cannot encode or decode a value: {m}"),
            Self::Message(m) => f.write_str(m),
            Self::Http(m) => write!(f, "http: {m}"),
            Self::Mcp(m) => write!(f, "mcp: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Codec(e.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

fn seconds(ttl: Duration) -> u32 {
    // Round up so a sub-second TTL does not become "0".
    let secs = ttl.as_millis().div_ceil(1000).max(1);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A value and the version it was saved as.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version (1 after the first save).
    pub version: u64,
}

/// Options of [`Session::save_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SaveOptions {
    /// Expire the session after this long (default: the plugin's TTL).
    pub ttl: Option<Duration>,
    /// Save only if the stored version is this one (0: only if none is stored).
    pub if_version: Option<u64>,
}

/// One session of this plugin: its state document and its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    id: String,
}

impl Session {
    /// Any session of this plugin by id (the turn's own is given to
    /// [`Agent::handle`]).
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The state document, decoded.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        Ok(self.load_versioned()?.map(|v| v.value))
    }

    /// The state document with its version, for [`SaveOptions::if_version`].
    pub fn load_versioned<T: DeserializeOwned>(&self) -> Result<Option<Versioned<T>>> {
        match wit::load(&self.id)? {
            None => Ok(None),
            Some(entry) => Ok(Some(Versioned {
                value: decode(&entry.value)?,
                version: entry.version,
            })),
        }
    }

    /// Saves the state document; returns its new version.
    pub fn save<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64> {
        self.save_with(value, SaveOptions::default())
    }

    /// Saves the state document with a TTL or a version check.
    pub fn save_with<T: Serialize + ?Sized>(&self, value: &T, options: SaveOptions) -> Result<u64> {
        let options = wit::SaveOptions {
            ttl_seconds: options.ttl.map(seconds),
            if_version: options.if_version,
        };
        Ok(wit::save(&self.id, &encode(value)?, options)?)
    }

    /// The session's committed state version and the earlier ones the operator
    /// keeps (`keep_versions`), newest first, without their documents. This
    /// turn's own saves show once it has committed.
    pub fn versions(&self) -> Result<Vec<VersionInfo>> {
        Ok(wit::versions(&self.id)?)
    }

    /// A committed or kept version of the state document, decoded.
    pub fn load_version<T: DeserializeOwned>(&self, version: u64) -> Result<Option<T>> {
        match wit::load_version(&self.id, version)? {
            None => Ok(None),
            Some(entry) => Ok(Some(decode(&entry.value)?)),
        }
    }

    /// Deletes the state document (the history stays); true if it existed.
    pub fn delete(&self) -> Result<bool> {
        Ok(wit::delete(&self.id)?)
    }

    /// Appends one item to the history; returns the new length.
    pub fn push<T: Serialize + ?Sized>(&self, item: &T) -> Result<u64> {
        Ok(wit::append(&self.id, &[encode(item)?])?)
    }

    /// Appends items to the history in one step; returns the new length.
    pub fn append<T: Serialize>(&self, items: &[T]) -> Result<u64> {
        let encoded = items.iter().map(encode).collect::<Result<Vec<_>>>()?;
        Ok(wit::append(&self.id, &encoded)?)
    }

    /// The last `n` history items, oldest first.
    pub fn last<T: DeserializeOwned>(&self, n: u32) -> Result<Vec<T>> {
        wit::items(&self.id, Some(n))?
            .iter()
            .map(|b| decode(b))
            .collect()
    }

    /// The history, oldest first (up to the host's per-call limit).
    pub fn history<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        wit::items(&self.id, None)?
            .iter()
            .map(|b| decode(b))
            .collect()
    }

    /// Removes and returns the newest history item.
    pub fn pop<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        wit::pop(&self.id)?.map(|b| decode(&b)).transpose()
    }

    /// Expires the session after `ttl` from now, or never (`None`); false if the
    /// session does not exist.
    pub fn touch(&self, ttl: Option<Duration>) -> Result<bool> {
        Ok(wit::touch(&self.id, ttl.map(seconds))?)
    }

    /// Time left before the session expires (`None`: never, or no such session).
    pub fn ttl(&self) -> Result<Option<Duration>> {
        Ok(wit::ttl(&self.id)?.map(|s| Duration::from_secs(u64::from(s))))
    }

    /// Removes the whole session; true if anything of it existed.
    pub fn clear(&self) -> Result<bool> {
        Ok(wit::clear(&self.id)?)
    }
}

/// Every live session of this plugin, in byte order, fetched a page at a time.
pub fn sessions() -> Sessions {
    Sessions {
        page: Vec::new().into_iter(),
        cursor: None,
        done: false,
    }
}

/// The iterator of [`sessions`].
pub struct Sessions {
    page: std::vec::IntoIter<String>,
    cursor: Option<String>,
    done: bool,
}

impl Iterator for Sessions {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(id) = self.page.next() {
                return Some(Ok(id));
            }
            if self.done {
                return None;
            }
            match wit::list_sessions(self.cursor.as_deref(), 100) {
                Ok(page) => {
                    self.done = page.cursor.is_none();
                    self.cursor = page.cursor;
                    self.page = page.sessions.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

/// Plugin-wide values: shared by every session of this plugin (and tenant).
pub mod values {
    use std::time::Duration;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{Result, decode, encode, seconds, wit};

    /// The value at `key`, decoded.
    pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
        wit::get(key)?.map(|b| decode(&b)).transpose()
    }

    /// Sets `key`, expiring after `ttl` if given.
    pub fn set<T: Serialize + ?Sized>(key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
        Ok(wit::set(key, &encode(value)?, ttl.map(seconds))?)
    }

    /// Removes `key`; true if it existed.
    pub fn remove(key: &str) -> Result<bool> {
        Ok(wit::remove(key)?)
    }

    /// Adds `delta` to the integer at `key` (0 when absent) and returns the result.
    /// Read it back with `get::<i64>`.
    pub fn increment(key: &str, delta: i64) -> Result<i64> {
        Ok(wit::increment(key, delta)?)
    }
}

/// An agent: handles one turn of a session.
pub trait Agent {
    /// Answers `input` in `session`. An `Err` is reported to the caller of the
    /// turn; what the plugin saved before is kept.
    fn handle(session: &Session, input: &str) -> Result<String>;
}

/// Exports an [`Agent`] as the plugin's `handler`, with the crate's name and version
/// as its description.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        struct __AgentSdkExport;

        impl $crate::raw::exports::agent::state::handler::Guest for __AgentSdkExport {
            fn describe() -> $crate::raw::exports::agent::state::handler::Info {
                $crate::raw::exports::agent::state::handler::Info {
                    name: ::std::string::String::from(env!("CARGO_PKG_NAME")),
                    version: ::std::string::String::from(env!("CARGO_PKG_VERSION")),
                }
            }

            fn handle(
                session: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                let session = $crate::Session::new(session);
                <$agent as $crate::Agent>::handle(&session, &input).map_err(|e| e.to_string())
            }
        }

        $crate::raw::__export_world!(__AgentSdkExport with_types_in $crate::raw);
    };
}
