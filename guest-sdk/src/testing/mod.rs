//! Unit tests of a plugin with plain `cargo test`: an in-memory store with the
//! host's semantics behind the SDK's state calls (native builds only; in a
//! component the calls go to the host).
//!
//! ```
//! use agent_sdk::testing::Store;
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
//! let store = Store::new();
//! assert_eq!(store.run(Echo, "alice", "hi")?, "turn 1: hi");
//! assert_eq!(store.run(Echo, "alice", "again")?, "turn 2: again");
//! assert_eq!(store.session("alice").state::<u32>()?, Some(2));
//! assert_eq!(store.session("alice").history::<String>()?, ["hi", "again"]);
//! # Ok::<(), agent_sdk::Error>(())
//! ```
//!
//! ## Behavior
//! What the host does, for one plugin under one prefix:
//! - **A turn** ([`Store::run`]) commits its writes when `handle` returns, `Ok` or
//!   `Err`; a panic writes nothing (the store is put back as the turn found it)
//!   and goes on unwinding, so the test fails with it.
//! - **Versions**: every save bumps the session's version; `if_version` saves only
//!   over that version (0: only if there is no state), else
//!   [`StateError::Conflict`](crate::StateError::Conflict), writing nothing. A
//!   save after a delete or clear starts again at 1. `versions` and
//!   `load_version` read what is committed (a turn's own saves show after it),
//!   with the documents kept by [`Store::with_keep_versions`].
//! - **History**: `push`/`append`/`last`/`history`/`pop`; at most 1,000 items per
//!   call and 10,000 per session.
//! - **Expiry** runs on a clock of the store's own that moves only with
//!   [`Store::advance`]: a save expires after its TTL or the default
//!   ([`Store::with_default_ttl`]), as does an append; `touch` sets it or removes
//!   it; with [`Store::with_sliding_ttl`] reads extend it. An expired session is
//!   gone whole; an expired value too.
//! - **Limits and names**: the host's defaults (1 MiB a value, 8 MiB a turn,
//!   10,000 values; ids and keys of 1 to 512 bytes without control characters), as
//!   the same [`StateError`](crate::StateError)s.
//! - `sessions()` lists the committed sessions in byte order, as the host does.
//! - `emit` collects chunks ([`Store::emitted`]).
//! - **Schedules** ([`crate::schedule`]) and cancels are written with the turn's
//!   commit, like its state writes: a turn that returns `Err` keeps them (so a
//!   plugin can answer an error and schedule its own retry); a panic schedules
//!   and cancels nothing. A due time must be 1 s to 366 days ahead on the store's
//!   clock and an input at most 64 KiB; ids count up in 24 hex digits.
//!   [`Store::scheduled`] lists them and [`Store::run_due`] runs the ones due
//!   (move the clock with [`Store::advance`] first).
//!
//! Not here: conflicts between turns running at once (the host retries those; a
//! test runs one turn at a time), quotas and the limit of schedules per turn,
//! retry backoff, and HTTP (`agent_sdk::http` and `agent_sdk::llm` need the host).
//!
//! Each thread has a store of its own for [`run`] and [`store`] (libtest runs each
//! test on its own thread); [`Store::new`] makes one you pass around.

pub(crate) mod backend;
mod memory;
mod schedules;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use self::memory::{Config, Data};
use crate::schedule::Scheduled;
use crate::{Agent, Error, Result, Session, decode};

/// An in-memory store for one plugin, with the host's semantics (see the module
/// docs). Clones share the same state.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    data: Data,
    config: Config,
    /// Unix ms; moves only with `advance`.
    now: u64,
    /// What was committed when the running turn began (`None`: no turn).
    committed: Option<Data>,
    turn_bytes: u64,
    emitted: Vec<String>,
}

thread_local! {
    /// The store a running turn (or a direct read) uses.
    static CURRENT: RefCell<Option<Store>> = const { RefCell::new(None) };
    /// The store of calls made outside [`Store::run`], and of [`run`].
    static THREAD: Store = Store::new();
}

/// The store the SDK's state calls go to now.
fn current() -> Store {
    CURRENT
        .with(|c| c.borrow().clone())
        .unwrap_or_else(|| THREAD.with(Store::clone))
}

/// Runs one turn of `agent` on this thread's store (see [`Store::run`]).
pub fn run<A: Agent>(agent: A, session: &str, input: &str) -> Result<String> {
    store().run(agent, session, input)
}

/// This thread's store: the one [`run`] uses, and state calls made outside a turn.
pub fn store() -> Store {
    THREAD.with(Store::clone)
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store with the host's defaults: no TTL, no kept versions.
    pub fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                data: Data::default(),
                config: Config::default(),
                now,
                committed: None,
                turn_bytes: 0,
                emitted: Vec::new(),
            })),
        }
    }

    /// The plugin's default TTL (`default_ttl`): saves and appends expire the
    /// session this long after them.
    pub fn with_default_ttl(self, ttl: Duration) -> Self {
        self.lock().config.default_ttl = Some(ttl);
        self
    }

    /// Reads (`load`, `last`, `history`) extend the session's expiry to the
    /// default TTL (`sliding_ttl`).
    pub fn with_sliding_ttl(self, on: bool) -> Self {
        self.lock().config.sliding_ttl = on;
        self
    }

    /// Keeps the `n` documents each session's commits replaced (`keep_versions`),
    /// for `versions` and `load_version`.
    pub fn with_keep_versions(self, n: usize) -> Self {
        self.lock().config.keep_versions = n;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic in a test leaves the data as it was: go on with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one turn: `A::handle` on `session` with `input`, as the host does.
    /// Its writes, schedules and cancels included, are committed when it returns
    /// `Ok` or `Err`; if it panics, nothing of it is written and the panic goes
    /// on. Chunks it emits are in [`Store::emitted`] until the next turn.
    pub fn run<A: Agent>(&self, _agent: A, session: &str, input: &str) -> Result<String> {
        self.turn::<A>(session, input)
    }

    fn turn<A: Agent>(&self, session: &str, input: &str) -> Result<String> {
        memory::check_name("session id", session).map_err(Error::State)?;
        {
            let mut inner = self.lock();
            if inner.committed.is_some() {
                return Err(Error::msg("a turn is already running on this store"));
            }
            let now = inner.now;
            inner.data.expire(now);
            inner.committed = Some(inner.data.clone());
            inner.turn_bytes = 0;
            inner.emitted.clear();
        }
        let outcome = self.enter(|| {
            catch_unwind(AssertUnwindSafe(|| {
                A::handle(&Session::new(session), input)
            }))
        });
        let mut inner = self.lock();
        let committed = inner.committed.take().unwrap_or_default();
        match outcome {
            Ok(result) => {
                let (now, config) = (inner.now, inner.config.clone());
                memory::commit(&mut inner.data, &committed, &config, now);
                result
            }
            Err(panic) => {
                inner.data = committed;
                drop(inner);
                resume_unwind(panic)
            }
        }
    }

    /// Runs `f` with this store as the one the SDK's calls go to.
    fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Store>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        let _restore = Restore(previous);
        f()
    }

    /// One session of the store, to look at or write to outside a turn.
    pub fn session(&self, id: &str) -> StoredSession<'_> {
        StoredSession {
            store: self,
            id: id.to_string(),
        }
    }

    /// The plugin-wide value at `key`, decoded.
    pub fn value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.enter(|| crate::values::get(key))
    }

    /// Sets the plugin-wide value at `key`, as another turn would.
    pub fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.enter(|| crate::values::set(key, value, None))
    }

    /// The live sessions, in byte order.
    pub fn sessions(&self) -> Vec<String> {
        let mut inner = self.lock();
        let now = inner.now;
        inner.data.expire(now);
        inner.data.sessions.keys().cloned().collect()
    }

    /// What the last turn emitted, chunk by chunk.
    pub fn emitted(&self) -> Vec<String> {
        self.lock().emitted.clone()
    }

    /// The pending schedules of every session, soonest first.
    pub fn scheduled(&self) -> Vec<Scheduled> {
        let inner = self.lock();
        let all = schedules::soonest_first(inner.data.schedules.values());
        all.into_iter().map(Scheduled::from).collect()
    }

    /// Runs the schedules due on the store's clock, soonest first, each as a turn
    /// of `A` ([`Store::run`]) in its session with its input, and returns them
    /// with their turns' outcomes. One whose turn returns `Err` stays pending with
    /// one more attempt: the host retries it later (with backoff, up to
    /// `schedule_retries`); here the next `run_due` runs it again. What that turn
    /// scheduled or cancelled is kept, as with any turn that returns `Err`.
    pub fn run_due<A: Agent>(&self, _agent: A) -> Vec<(Scheduled, Result<String>)> {
        let due: Vec<String> = {
            let inner = self.lock();
            let all = schedules::soonest_first(inner.data.schedules.values());
            all.into_iter()
                .filter(|s| s.at_ms <= inner.now)
                .map(|s| s.id)
                .collect()
        };
        let mut ran = Vec::new();
        for id in due {
            // An earlier turn of these may have cancelled it.
            let Some(mut scheduled) = self.lock().data.schedules.remove(&id) else {
                continue;
            };
            let outcome = self.turn::<A>(&scheduled.session, &scheduled.input);
            if outcome.is_err() {
                scheduled.attempts += 1;
                let mut inner = self.lock();
                inner.data.schedules.insert(id, scheduled.clone());
            }
            ran.push((scheduled.into(), outcome));
        }
        ran
    }

    /// Moves the store's clock on: TTLs run out as if `by` had passed.
    pub fn advance(&self, by: Duration) {
        let mut inner = self.lock();
        inner.now = inner.now.saturating_add(by.as_millis() as u64);
    }
}

/// A session of a [`Store`], seen from outside any turn.
pub struct StoredSession<'a> {
    store: &'a Store,
    id: String,
}

impl StoredSession<'_> {
    /// Whether the session has a state document or history.
    pub fn exists(&self) -> bool {
        self.store.sessions().contains(&self.id)
    }

    /// The state document, decoded.
    pub fn state<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        Ok(self.versioned()?.map(|v| v.value))
    }

    /// The state document's version (`None`: no state).
    pub fn version(&self) -> Option<u64> {
        let inner = self.store.lock();
        let session = inner.data.sessions.get(&self.id)?;
        session.state.as_ref().map(|d| d.version)
    }

    fn versioned<T: DeserializeOwned>(&self) -> Result<Option<crate::Versioned<T>>> {
        let (value, version) = {
            let mut inner = self.store.lock();
            let now = inner.now;
            inner.data.expire(now);
            match inner
                .data
                .sessions
                .get(&self.id)
                .and_then(|s| s.state.clone())
            {
                Some(doc) => (doc.value, doc.version),
                None => return Ok(None),
            }
        };
        Ok(Some(crate::Versioned {
            value: decode(&value)?,
            version,
        }))
    }

    /// The whole history, oldest first, decoded.
    pub fn history<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let items = {
            let mut inner = self.store.lock();
            let now = inner.now;
            inner.data.expire(now);
            let session = inner.data.sessions.get(&self.id);
            session.map(|s| s.history.clone()).unwrap_or_default()
        };
        items.iter().map(|item| decode(item)).collect()
    }

    /// Time left before the session expires (`None`: never, or no session).
    pub fn ttl(&self) -> Option<Duration> {
        let mut inner = self.store.lock();
        let now = inner.now;
        inner.data.expire(now);
        let expires = inner.data.sessions.get(&self.id)?.expires?;
        Some(Duration::from_millis(expires.saturating_sub(now)))
    }

    /// Saves the state document as another turn would (its version goes up, so
    /// a turn that read the old one and saves with `if_version` conflicts).
    pub fn save<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64> {
        self.store
            .enter(|| Session::new(self.id.clone()).save(value))
    }

    /// Appends items to the history as another turn would.
    pub fn append<T: Serialize>(&self, items: &[T]) -> Result<u64> {
        self.store
            .enter(|| Session::new(self.id.clone()).append(items))
    }
}
