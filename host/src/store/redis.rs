//! The Redis backend: standalone `redis://` or `rediss://` (TLS), with user,
//! password and `/db` in the URL.
//!
//! One shared [`ConnectionManager`] carries every call of every plugin; it is cloned
//! per call (a handle clone) and multiplexes commands on one connection.
//!
//! ## Behavior
//! - Connecting is lazy: building the store never fails because Redis is down; the
//!   first call does, with [`StoreError::Unavailable`].
//! - Every call returns within `RedisOptions::op_timeout`. A failed call returns its
//!   error and the manager reconnects in the background, so the store recovers by
//!   itself when Redis is back.
//! - Each session write is one Lua script over the session's keys (one hash tag),
//!   so state, history and expiry change together. The session index is updated in
//!   the same round trip but is a separate step: it may briefly list a session that
//!   is gone, never hide one that exists; listing checks every candidate.
//! - No URL or password ever appears in an error or a log line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, FromRedisValue, Pipeline, RedisError, ServerErrorKind};

use super::{Entry, Expiry, Page, StateStore};
use crate::error::StoreError;
use crate::keys::{Name, Namespace};

/// Connection settings of a [`RedisStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisOptions {
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long the server may take to answer one command.
    pub response_timeout: Duration,
    /// Upper bound on one store call, reconnection included.
    pub op_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            op_timeout: Duration::from_secs(3),
        }
    }
}

/// A [`StateStore`] on one Redis server.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    op_timeout: Duration,
    url: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisStore {
    /// A store for `url` (`redis://[user:password@]host[:port][/db]` or `rediss://…`).
    ///
    /// Only the URL is checked here; the connection is made on first use (see the
    /// type's behaviour).
    pub fn open(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        if url.starts_with("rediss://") {
            // rustls needs a process-wide crypto provider; keep one an embedder set.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Internal(format!("invalid store URL {shown}: {}", e.kind_str()))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(classify)?;
        Ok(Self {
            conn,
            op_timeout: options.op_timeout,
            url: shown,
        })
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.op_timeout, cmd.query_async(&mut conn)).await {
            Ok(reply) => reply.map_err(classify),
            Err(_) => Err(timed_out()),
        }
    }

    async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.op_timeout, pipe.query_async(&mut conn)).await {
            Ok(reply) => reply.map_err(classify),
            Err(_) => Err(timed_out()),
        }
    }
}

trait KindStr {
    fn kind_str(&self) -> &'static str;
}

impl KindStr for RedisError {
    fn kind_str(&self) -> &'static str {
        match self.kind() {
            ErrorKind::InvalidClientConfig => "invalid URL or client settings",
            ErrorKind::AuthenticationFailed => "authentication failed",
            ErrorKind::Io => "I/O error",
            _ => "client error",
        }
    }
}

fn timed_out() -> StoreError {
    tracing::warn!("redis call timed out");
    StoreError::Unavailable("timed out".into())
}

/// The one place a Redis error becomes a [`StoreError`]: the detail is logged once,
/// the caller gets a short, stable message.
fn classify(e: RedisError) -> StoreError {
    let kind = e.kind();
    let out = if e.is_timeout() {
        StoreError::Unavailable("timed out".into())
    } else if e.is_connection_refusal() {
        StoreError::Unavailable("connection refused".into())
    } else if e.is_connection_dropped() || e.is_io_error() {
        StoreError::Unavailable("connection lost".into())
    } else {
        match kind {
            ErrorKind::AuthenticationFailed => {
                StoreError::Unavailable("authentication failed (check user and password)".into())
            }
            ErrorKind::Server(ServerErrorKind::NoPerm) => {
                StoreError::Unavailable("permission denied by the server's ACL".into())
            }
            ErrorKind::Server(
                k @ (ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly),
            ) => StoreError::Unavailable(format!("server not ready ({k:?})")),
            ErrorKind::Server(ServerErrorKind::ResponseError)
                if e.detail()
                    .is_some_and(|d| d.contains("not an integer") || d.contains("overflow")) =>
            {
                StoreError::NotAnInteger
            }
            _ => StoreError::Internal(format!(
                "unexpected reply ({})",
                e.code().unwrap_or("client")
            )),
        }
    };
    tracing::warn!(error = %e, classified = %out, "redis call failed");
    out
}

/// `redis://user:secret@host` becomes `redis://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return "<unparsable URL>".into();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        None => url.to_string(),
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if user.is_empty() {
                "***".to_string()
            } else {
                format!("{user}:***")
            };
            format!("{}{masked}{}", &url[..scheme_end], &rest[at..])
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// The TTL argument of the scripts: milliseconds, "0" for never.
fn ttl_arg(expiry: Expiry) -> String {
    match expiry {
        Expiry::Never => "0".into(),
        Expiry::After(d) => d.as_millis().max(1).to_string(),
    }
}

/// The index score of a session: when it expires, in unix ms.
fn expiry_score(expiry: Expiry) -> String {
    match expiry {
        Expiry::Never => "+inf".into(),
        Expiry::After(d) => (now_ms() + d.as_millis().max(1)).to_string(),
    }
}

// Every session script gets KEYS = [state, history] and sets the expiry of both.
macro_rules! session_script {
    ($body:literal) => {
        concat!(
            "local function expire_all(ttl)\n",
            "  for i = 1, #KEYS do\n",
            "    if ttl ~= '0' then redis.call('PEXPIRE', KEYS[i], ttl)\n",
            "    else redis.call('PERSIST', KEYS[i]) end\n",
            "  end\n",
            "end\n",
            $body
        )
    };
}

/// ARGV: value, expected version ('' for any), ttl. Returns the new version, or -1
/// on a version mismatch.
const SAVE: &str = session_script!(
    r#"
local ver = redis.call('HGET', KEYS[1], 'ver') or '0'
if ARGV[2] ~= '' and ARGV[2] ~= ver then return -1 end
redis.call('HSET', KEYS[1], 'v', ARGV[1])
local new = redis.call('HINCRBY', KEYS[1], 'ver', 1)
expire_all(ARGV[3])
return new
"#
);

/// ARGV: ttl, max length, items... Returns the new length, or -1 if over max.
const APPEND: &str = session_script!(
    r#"
if redis.call('LLEN', KEYS[2]) + #ARGV - 2 > tonumber(ARGV[2]) then return -1 end
local len = redis.call('RPUSH', KEYS[2], unpack(ARGV, 3))
expire_all(ARGV[1])
return len
"#
);

/// ARGV: ttl. Returns 1 if the session exists (and its expiry was set), else 0.
const TOUCH: &str = session_script!(
    r#"
if redis.call('EXISTS', KEYS[1], KEYS[2]) == 0 then return 0 end
expire_all(ARGV[1])
return 1
"#
);

/// How many expired index entries one write removes; listing removes more.
const PRUNE_ON_WRITE: u32 = 64;
const PRUNE_ON_LIST: u32 = 1000;

/// KEYS: index names, index expiry. ARGV: now (ms), prune batch, then optionally
/// member and score to add. Removes up to `batch` expired entries.
const INDEX_UPDATE: &str = r#"
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
if ARGV[3] then
  redis.call('ZADD', KEYS[1], 0, ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
end
return #old
"#;

impl RedisStore {
    fn session_script(pipe: &mut Pipeline, script: &str, ns: &Namespace, session: &Name) {
        pipe.cmd("EVAL")
            .arg(script)
            .arg(2)
            .arg(ns.state_key(session))
            .arg(ns.history_key(session));
    }

    fn index_add(pipe: &mut Pipeline, ns: &Namespace, session: &Name, expiry: Expiry) {
        pipe.cmd("EVAL")
            .arg(INDEX_UPDATE)
            .arg(2)
            .arg(ns.index_names_key())
            .arg(ns.index_expiry_key())
            .arg(now_ms().to_string())
            .arg(PRUNE_ON_WRITE)
            .arg(session.as_str())
            .arg(expiry_score(expiry))
            .ignore();
    }

    /// Sliding expiry: extend the session (never shorten it, never add an expiry to
    /// a session without one).
    fn refresh(pipe: &mut Pipeline, ns: &Namespace, session: &Name, by: Duration) {
        let ms = by.as_millis().max(1).to_string();
        for key in [ns.state_key(session), ns.history_key(session)] {
            pipe.cmd("PEXPIRE").arg(key).arg(&ms).arg("GT").ignore();
        }
        pipe.cmd("ZADD")
            .arg(ns.index_expiry_key())
            .arg("XX")
            .arg("GT")
            .arg(expiry_score(Expiry::After(by)))
            .arg(session.as_str())
            .ignore();
    }
}

#[async_trait]
impl StateStore for RedisStore {
    async fn load(
        &self,
        ns: &Namespace,
        session: &Name,
        refresh: Option<Duration>,
    ) -> Result<Option<Entry>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(ns.state_key(session))
            .arg("v")
            .arg("ver");
        if let Some(by) = refresh {
            Self::refresh(&mut pipe, ns, session, by);
        }
        let ((value, version),): ((Option<Vec<u8>>, Option<u64>),) = self.pipe(&pipe).await?;
        Ok(value.map(|value| Entry {
            value,
            version: version.unwrap_or(0),
        }))
    }

    async fn save(
        &self,
        ns: &Namespace,
        session: &Name,
        value: &[u8],
        expiry: Expiry,
        if_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        Self::session_script(&mut pipe, SAVE, ns, session);
        pipe.arg(value)
            .arg(if_version.map(|v| v.to_string()).unwrap_or_default())
            .arg(ttl_arg(expiry));
        Self::index_add(&mut pipe, ns, session, expiry);
        let (version,): (i64,) = self.pipe(&pipe).await?;
        u64::try_from(version).map_err(|_| StoreError::Conflict)
    }

    async fn delete(&self, ns: &Namespace, session: &Name) -> Result<bool, StoreError> {
        let n: i64 = self
            .query(redis::cmd("DEL").arg(ns.state_key(session)))
            .await?;
        Ok(n > 0)
    }

    async fn append(
        &self,
        ns: &Namespace,
        session: &Name,
        items: &[Vec<u8>],
        expiry: Expiry,
        max_len: u64,
    ) -> Result<u64, StoreError> {
        if items.is_empty() {
            return self
                .query(redis::cmd("LLEN").arg(ns.history_key(session)))
                .await;
        }
        let mut pipe = redis::pipe();
        Self::session_script(&mut pipe, APPEND, ns, session);
        pipe.arg(ttl_arg(expiry)).arg(max_len).arg(items);
        Self::index_add(&mut pipe, ns, session, expiry);
        let (len,): (i64,) = self.pipe(&pipe).await?;
        u64::try_from(len).map_err(|_| {
            StoreError::QuotaExceeded(format!("history would be longer than {max_len} items"))
        })
    }

    async fn items(
        &self,
        ns: &Namespace,
        session: &Name,
        last: u32,
        refresh: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        if last == 0 {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("LRANGE")
            .arg(ns.history_key(session))
            .arg(-i64::from(last))
            .arg(-1);
        if let Some(by) = refresh {
            Self::refresh(&mut pipe, ns, session, by);
        }
        let (items,): (Vec<Vec<u8>>,) = self.pipe(&pipe).await?;
        Ok(items)
    }

    async fn pop(&self, ns: &Namespace, session: &Name) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("RPOP").arg(ns.history_key(session)))
            .await
    }

    async fn touch(
        &self,
        ns: &Namespace,
        session: &Name,
        expiry: Expiry,
    ) -> Result<bool, StoreError> {
        let mut pipe = redis::pipe();
        Self::session_script(&mut pipe, TOUCH, ns, session);
        pipe.arg(ttl_arg(expiry));
        pipe.cmd("ZADD")
            .arg(ns.index_expiry_key())
            .arg("XX")
            .arg(expiry_score(expiry))
            .arg(session.as_str())
            .ignore();
        let (found,): (i64,) = self.pipe(&pipe).await?;
        Ok(found == 1)
    }

    async fn ttl(&self, ns: &Namespace, session: &Name) -> Result<Option<Duration>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PTTL").arg(ns.state_key(session));
        pipe.cmd("PTTL").arg(ns.history_key(session));
        let (a, b): (i64, i64) = self.pipe(&pipe).await?;
        // -2: no such key, -1: no expiry.
        if a == -1 || b == -1 || a.max(b) < 0 {
            return Ok(None);
        }
        Ok(Some(Duration::from_millis(a.max(b).unsigned_abs())))
    }

    async fn clear(&self, ns: &Namespace, session: &Name) -> Result<bool, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(ns.state_key(session))
            .arg(ns.history_key(session));
        pipe.cmd("ZREM")
            .arg(ns.index_names_key())
            .arg(session.as_str())
            .ignore();
        pipe.cmd("ZREM")
            .arg(ns.index_expiry_key())
            .arg(session.as_str())
            .ignore();
        let (n,): (i64,) = self.pipe(&pipe).await?;
        Ok(n > 0)
    }

    async fn list_sessions(
        &self,
        ns: &Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let names = ns.index_names_key();
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(INDEX_UPDATE)
            .arg(2)
            .arg(&names)
            .arg(ns.index_expiry_key())
            .arg(now_ms().to_string())
            .arg(PRUNE_ON_LIST)
            .ignore();
        let min = cursor.map_or_else(|| "-".to_string(), |c| format!("({c}"));
        pipe.cmd("ZRANGEBYLEX")
            .arg(&names)
            .arg(min)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        let (candidates,): (Vec<String>,) = self.pipe(&pipe).await?;
        let next = (candidates.len() >= limit as usize)
            .then(|| candidates.last().cloned())
            .flatten();
        if candidates.is_empty() {
            return Ok(Page::default());
        }

        // The index may name a session whose keys are gone (deleted state and popped
        // history, or a crash between the two steps of a write): check each one.
        let mut pipe = redis::pipe();
        let mut sessions = Vec::with_capacity(candidates.len());
        let mut checked = Vec::with_capacity(candidates.len());
        for raw in candidates {
            // Every member was written from a valid `Name`.
            let Ok(name) = Name::session(raw) else {
                continue;
            };
            pipe.cmd("EXISTS")
                .arg(ns.state_key(&name))
                .arg(ns.history_key(&name));
            checked.push(name);
        }
        let exists: Vec<i64> = self.pipe(&pipe).await?;
        let mut stale = redis::pipe();
        let mut any_stale = false;
        for (name, n) in checked.into_iter().zip(exists) {
            if n > 0 {
                sessions.push(name.as_str().to_owned());
            } else {
                any_stale = true;
                stale.cmd("ZREM").arg(&names).arg(name.as_str()).ignore();
                stale
                    .cmd("ZREM")
                    .arg(ns.index_expiry_key())
                    .arg(name.as_str())
                    .ignore();
            }
        }
        if any_stale {
            let () = self.pipe(&stale).await?;
        }
        Ok(Page {
            sessions,
            cursor: next,
        })
    }

    async fn get(&self, ns: &Namespace, key: &Name) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(ns.value_key(key))).await
    }

    async fn set(
        &self,
        ns: &Namespace,
        key: &Name,
        value: &[u8],
        expiry: Expiry,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(ns.value_key(key)).arg(value);
        if let Expiry::After(d) = expiry {
            cmd.arg("PX").arg(d.as_millis().max(1).to_string());
        }
        self.query(&cmd).await
    }

    async fn remove(&self, ns: &Namespace, key: &Name) -> Result<bool, StoreError> {
        let n: i64 = self.query(redis::cmd("DEL").arg(ns.value_key(key))).await?;
        Ok(n > 0)
    }

    async fn increment(&self, ns: &Namespace, key: &Name, delta: i64) -> Result<i64, StoreError> {
        self.query(redis::cmd("INCRBY").arg(ns.value_key(key)).arg(delta))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://bob:s3cret@host:6379/2"),
            "redis://bob:***@host:6379/2"
        );
        assert_eq!(redact_url("rediss://:s3cret@host"), "rediss://***@host");
        assert_eq!(redact_url("redis://host:1/0"), "redis://host:1/0");
        assert_eq!(redact_url("host"), "<unparsable URL>");
        assert!(!redact_url("redis://u:p@ss@h").contains("p@ss"));
    }
}
