//! The storage behind `agent-state`: the [`StateStore`] trait and its backends.
//!
//! The host validates everything that comes from the guest (ids, sizes, counts) and
//! resolves defaults (TTLs) before it calls a store, so a store sees only
//! [`Namespace`]s, validated [`Name`]s and concrete [`Expiry`]s. A store's job is to
//! keep one session's keys consistent (state, history and expiry change together)
//! and to answer within a bounded time.

pub mod embedded;
pub mod keys;
mod quota;
pub mod redis;
pub mod schedule;
pub mod spend;
pub(crate) mod token;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};

pub use self::embedded::EmbeddedStore;
pub use self::quota::{DEFAULT_MAX_SCHEDULES, ENTRY_OVERHEAD, Quota, Usage};
pub use self::redis::{RedisOptions, RedisStore};
pub use self::schedule::{Claimed, Claims, Finish, Schedule, ScheduleState, ScheduleWrite};
pub use self::spend::{ModelCount, Periods, Spender};

/// A session's state document and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bytes the plugin saved.
    pub value: Vec<u8>,
    /// 1 after the first save, +1 on every save.
    pub version: u64,
}

/// One page of a plugin's session ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Session ids in byte order.
    pub sessions: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<String>,
}

/// One page of the keys of a bucket (`wasi:keyvalue`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in byte order, without their bucket.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<String>,
}

/// When a session or value expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Never.
    Never,
    /// After this long from the write.
    After(Duration),
}

impl Expiry {
    /// `Never` for `None`.
    pub fn from_ttl(ttl: Option<Duration>) -> Self {
        ttl.map_or(Self::Never, Self::After)
    }
}

/// What a turn learns about a stored session when it first uses it: one round trip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The state document.
    pub state: Option<Entry>,
    /// Length of the history.
    pub history_len: u64,
    /// The newest history items (as many as asked for), oldest first.
    pub tail: Vec<Vec<u8>>,
    /// Time left before the session expires; `None`: never, or no session.
    pub ttl: Option<Duration>,
}

/// How a commit changes a session's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryChange {
    /// Leave it.
    Keep,
    /// Set it (on every key of the session).
    Set(Expiry),
    /// Extend it to at least this long from now, if the session expires at all.
    Extend(Duration),
}

/// How a commit changes a session's state document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// Leave it.
    Keep,
    /// Store this value with this version.
    Put {
        /// The document.
        value: Vec<u8>,
        /// Its new version.
        version: u64,
    },
    /// Delete it.
    Delete,
}

/// The staged writes of one session, applied in this order: clear, state, pops,
/// appends, expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCommit {
    /// The session.
    pub session: Name,
    /// Commit only if the stored state version (0: none) is this one.
    pub expect_version: Option<u64>,
    /// Commit only if the stored history has this length.
    pub expect_history_len: Option<u64>,
    /// Remove the whole session first.
    pub clear: bool,
    /// The state document.
    pub state: StateChange,
    /// How many items to remove from the end of the history.
    pub pops: u64,
    /// Items to append to the history.
    pub append: Vec<Vec<u8>>,
    /// The session's expiry.
    pub expiry: ExpiryChange,
    /// An idempotency record written with the session (see
    /// [`StateStore::claim_idempotency`]).
    pub idempotency: Option<IdempotencyWrite>,
    /// Versions of the state document to keep (`PluginConfig::keep_versions`): a
    /// commit that replaces or deletes the state keeps the one it replaced, the
    /// newest this many. 0: none are kept (those kept before stay until the next
    /// commit that keeps versions, or the session's end).
    pub keep_versions: u32,
}

/// A state document a session had (or has), as [`StateStore::versions`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    /// Its version number.
    pub version: u64,
    /// When it was committed (unix ms; 0 if it was written without versions kept).
    pub written_at_ms: u64,
    /// The history's length right after that commit (0 if unknown, as above).
    pub history_len: u64,
    /// The document.
    pub value: Vec<u8>,
}

impl SessionCommit {
    /// A commit of `session` that checks and writes nothing (yet).
    pub fn new(session: Name) -> Self {
        Self {
            session,
            expect_version: None,
            expect_history_len: None,
            clear: false,
            state: StateChange::Keep,
            pops: 0,
            append: Vec::new(),
            expiry: ExpiryChange::Keep,
            idempotency: None,
            keep_versions: 0,
        }
    }
}

/// Replaces a turn's claim on an idempotency key with the turn's record, in the
/// commit of the turn's session: the commit fails with [`StoreError::Conflict`] if
/// the key no longer holds `claim`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyWrite {
    /// The key, as [`StateStore::claim_idempotency`] got it.
    pub key: String,
    /// The claim the turn holds.
    pub claim: Vec<u8>,
    /// What the key holds after the commit.
    pub record: Vec<u8>,
    /// How long the record is kept.
    pub ttl: Duration,
}

/// A staged write of a plugin-wide value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueChange {
    /// Set it.
    Set(Vec<u8>, Expiry),
    /// Remove it.
    Remove,
    /// Add to the integer stored there (0 when absent), keeping its expiry (none
    /// for a new value), or with `Some(ttl)` making it expire `ttl` from now. Fails
    /// the commit with [`StoreError::Conflict`] if the value is not an integer (see
    /// [`parse_integer`]) or the sum does not fit in an `i64`: the turn read
    /// another value than the one stored now.
    Add(i64, Option<Duration>),
}

/// A plugin-wide value's write in a commit, with what the value must be when the
/// commit applies (a compare-and-swap), if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueWrite {
    /// Which value.
    pub name: Name,
    /// What happens to it.
    pub change: ValueChange,
    /// Fail the commit with [`StoreError::Conflict`] unless the stored value is
    /// this; `None` writes whatever is stored.
    pub expect: Option<ValueCheck>,
}

impl ValueWrite {
    /// A write without an expectation.
    pub fn new(name: Name, change: ValueChange) -> Self {
        Self {
            name,
            change,
            expect: None,
        }
    }
}

/// What a plugin-wide value must be for a [`ValueWrite`] to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueCheck {
    /// Absent (or expired).
    Absent,
    /// Present with these bytes.
    Equals(Vec<u8>),
}

/// A stored value as an integer, by the rules both stores share (those of Redis's
/// `INCRBY`): `0`, or an optional `-` and up to 19 digits without a leading zero,
/// within the `i64` range. `+7`, `-0`, `007`, ` 7` and `7.0` are not integers.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = bytes == b"0"
        || (matches!(digits.first(), Some(b'1'..=b'9'))
            && digits.len() <= 19
            && digits.iter().all(u8::is_ascii_digit));
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Everything one turn writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// Session writes.
    pub sessions: Vec<SessionCommit>,
    /// Plugin-wide value writes.
    pub values: Vec<ValueWrite>,
    /// Schedules added and cancelled (applied after the sessions and values).
    pub schedules: Vec<ScheduleWrite>,
    /// Fail the commit with [`StoreError::QuotaExceeded`] if the namespace would
    /// then hold more live plugin-wide values than this.
    pub max_values: Option<u64>,
    /// Fail the commit with [`StoreError::QuotaExceeded`] if it would grow the
    /// namespace past this (a commit that does not grow it always applies).
    pub quota: Option<Quota>,
}

impl Commit {
    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.values.is_empty() && self.schedules.is_empty()
    }
}

/// Storage for the state of many plugins, each in its own [`Namespace`].
///
/// Reads are single calls; every write goes through [`StateStore::commit`], which
/// applies all of a turn's writes or none.
///
/// ## Behavior
/// - A session is its state document, its history, and its index entry; they expire
///   together, and the index follows the session on every commit.
/// - [`StateStore::commit`] first checks every expectation (state versions, history
///   lengths, that added-to values are integers, [`ValueCheck`]s); if one fails it
///   writes nothing and returns [`StoreError::Conflict`]. If the value limit would
///   be exceeded it writes nothing and returns [`StoreError::QuotaExceeded`].
/// - Methods return [`StoreError::Unavailable`] within a bounded time when the
///   backend cannot be reached, and work again once it is back.
/// - Nothing here sees another namespace's keys.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The session's state, history length and newest `tail` items, and TTL.
    async fn snapshot(
        &self,
        ns: &Namespace,
        session: &Name,
        tail: u32,
    ) -> Result<Snapshot, StoreError>;

    /// The session's state document.
    async fn load(&self, ns: &Namespace, session: &Name) -> Result<Option<Entry>, StoreError>;

    /// The last `last` history items, oldest first.
    async fn items(
        &self,
        ns: &Namespace,
        session: &Name,
        last: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Up to `count` history items from position `start` (0: the oldest), oldest
    /// first: a long history read page by page.
    async fn items_from(
        &self,
        ns: &Namespace,
        session: &Name,
        start: u64,
        count: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Time left before the session expires; `None` if it never does or does not
    /// exist.
    async fn ttl(&self, ns: &Namespace, session: &Name) -> Result<Option<Duration>, StoreError>;

    /// Up to `limit` live sessions after `cursor` (exclusive), in byte order.
    async fn list_sessions(
        &self,
        ns: &Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StoreError>;

    /// A plugin-wide value.
    async fn get(&self, ns: &Namespace, key: &Name) -> Result<Option<Vec<u8>>, StoreError>;

    /// Several plugin-wide values, in the order of `keys`. A backend answers the
    /// keys of one `wasi:keyvalue` bucket (which share a slot) in one round trip;
    /// by default it is one [`StateStore::get`] per key.
    async fn get_many(
        &self,
        ns: &Namespace,
        keys: &[Name],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(ns, key).await?);
        }
        Ok(values)
    }

    /// Up to `limit` keys of `bucket` after `after` (exclusive), in byte order: the
    /// live plugin-wide values named [`Name::bucket_key`]`(bucket, key)`.
    async fn list_bucket(
        &self,
        ns: &Namespace,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, StoreError>;

    /// What the namespace keeps (expired entries are pruned first).
    async fn usage(&self, ns: &Namespace) -> Result<Usage, StoreError>;

    /// How many live plugin-wide values the namespace holds.
    async fn count_values(&self, ns: &Namespace) -> Result<u64, StoreError>;

    /// Applies all of `commit` in one atomic step, or nothing (see the trait's
    /// behaviour). Takes the commit by value: a turn is done with it, and a backend
    /// that writes on another thread (the embedded store) need not copy it.
    async fn commit(&self, ns: &Namespace, commit: Commit) -> Result<(), StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Adds `count` to each spender's model counters for the day and the month of
    /// `periods` (each kept [`spend::DAY_KEPT`] / [`spend::MONTH_KEPT`] from its
    /// last change). Not part of any commit: a model call is spent whether or not
    /// its turn commits.
    async fn add_model_usage(
        &self,
        spenders: &[Spender],
        periods: &Periods,
        count: &ModelCount,
    ) -> Result<(), StoreError>;

    /// A spender's model counters for the day and the month of `periods` (zero
    /// when none were kept).
    async fn model_usage(
        &self,
        spender: &Spender,
        periods: &Periods,
    ) -> Result<[ModelCount; 2], StoreError>;

    /// The session's current state document and its kept versions, newest first.
    async fn versions(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<StoredVersion>, StoreError>;

    /// Appends `events` to the buffer of stream `id` (printable ASCII) of `session`,
    /// which then lives `ttl` from now (streamed turns, for a client that
    /// reconnects). Events are numbered from 0 in the order they were appended.
    async fn append_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        events: Vec<Vec<u8>>,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The buffered events of stream `id` of `session` from number `from` on.
    async fn read_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Removes the buffer of stream `id` of `session`, and its bytes from the
    /// namespace's usage (a buffer no longer needed, before it expires).
    async fn drop_events(&self, ns: &Namespace, session: &Name, id: &str)
    -> Result<(), StoreError>;

    /// Claims idempotency key `key` (printable ASCII, see
    /// `host::TurnOptions::idempotency_key`) of `session` for a turn: if the key
    /// holds nothing it now holds `claim` for `ttl` and the answer is `None`;
    /// otherwise the answer is what it holds (another turn's claim or record). One
    /// atomic step: of concurrent claims, exactly one gets `None`. The key lives
    /// with the session's keys (same hash tag) but apart from its data: clearing the
    /// session leaves it.
    async fn claim_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes `key` of `session` if it still holds `claim` (a turn that failed
    /// gives its claim back, so a retry runs it again).
    async fn release_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
    ) -> Result<(), StoreError>;

    /// How many buckets a plugin's schedules are kept in (see [`schedule`]).
    fn schedule_buckets(&self) -> u32 {
        1
    }

    /// Claims up to `limit` schedules of `bucket` that are due, soonest first, for
    /// `lease` under the token `claim`: they stay pending, due when the lease runs
    /// out, so that another host runs them if this one does not finish them. Says
    /// too when the bucket's next schedule is due.
    async fn claim_schedules(
        &self,
        ns: &Namespace,
        bucket: u32,
        lease: Duration,
        limit: u32,
        claim: &str,
    ) -> Result<Claims, StoreError>;

    /// Reports how a claimed schedule's run went (`schedule` is its record from
    /// now on); false, and nothing written, if `claim` no longer holds it.
    async fn finish_schedule(
        &self,
        ns: &Namespace,
        schedule: &Schedule,
        claim: &str,
        finish: Finish,
    ) -> Result<bool, StoreError>;

    /// The kept schedule `id` (pending, running, or finished not long ago).
    async fn schedule(&self, ns: &Namespace, id: &str) -> Result<Option<Schedule>, StoreError>;

    /// The kept schedules of `session` (pending, running, finished not long ago),
    /// by due time.
    async fn session_schedules(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// How many schedules of the namespace are pending (running ones included).
    async fn count_schedules(&self, ns: &Namespace) -> Result<u64, StoreError>;
}
