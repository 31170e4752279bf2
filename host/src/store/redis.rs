//! The Redis backend: standalone `redis://` or `rediss://` (TLS, with an optional CA
//! file and client certificate), a primary found through Sentinel
//! (`redis+sentinel://`), or a Redis Cluster (`redis+cluster://`), with user,
//! password and `/db` in the URL.
//!
//! One shared [`ConnectionManager`] carries every call of every plugin; it is cloned
//! per call (a handle clone) and multiplexes commands on one connection.
//!
//! ## Sentinel
//! `redis+sentinel://[user:password@]host1:26379,host2:26379,.../SERVICE[/db]` asks
//! the sentinels (which need no password) for the primary of `SERVICE` and connects
//! to it with the user, password and db of the URL. When a call fails because the
//! primary is gone or has become a replica, the store asks the sentinels again on the
//! next call, so it follows a failover by itself. What a failover can lose: a commit
//! the old primary acknowledged but had not yet sent to the replica that got promoted.
//! [`RedisOptions::wait_replicas`] closes that gap: a commit is reported only once
//! that many replicas have it (`WAIT`), otherwise the turn fails as unavailable (it
//! may still be on the primary, as with any unacknowledged write).
//!
//! ## Behavior
//! - Connecting is lazy: building the store never fails because Redis is down; the
//!   first call does, with [`StoreError::Unavailable`].
//! - Every call returns within `RedisOptions::op_timeout`. A failed call returns its
//!   error and the manager reconnects in the background, so the store recovers by
//!   itself when Redis is back.
//! - A turn's writes are one Lua script (`COMMIT_MAIN`): it checks every
//!   expectation, then applies state, history, expiry, plugin-wide values and the
//!   session index together, so a turn is written entirely or not at all.
//! - On a cluster a script may touch one slot only. All keys of one session share a
//!   hash tag, so each session is checked and written by one script; a turn's
//!   sessions, values and indexes are committed slot by slot (see
//!   `RedisStore::commit_per_slot` for what that keeps and what it does not).
//! - Listing checks every candidate of the index, which never lists a session
//!   whose keys are gone.
//! - No URL or password ever appears in an error or a log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, FromRedisValue, Pipeline, RedisError, ServerErrorKind};

use redis::Script;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ClientTlsConfig, TlsCertificates};

use super::{
    Commit, Entry, Expiry, ExpiryChange, Page, SessionCommit, Snapshot, StateChange, StateStore,
    ValueChange,
};
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
    /// PEM file of the CA that signed the server's certificate (`rediss://`), instead
    /// of the system's roots.
    pub tls_ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key, for servers that require one.
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// Replicas that must have a commit before it is reported (Redis `WAIT`); 0: do
    /// not wait.
    pub wait_replicas: u32,
    /// How long a commit waits for [`RedisOptions::wait_replicas`].
    pub wait_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            op_timeout: Duration::from_secs(3),
            tls_ca: None,
            tls_client_cert: None,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }
}

/// A [`StateStore`] on one Redis server or a Sentinel-managed primary.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    scripts: Scripts,
    round_trips: Arc<AtomicU64>,
    op_timeout: Duration,
    wait: Option<(u32, Duration)>,
    url: String,
}

/// Where calls go.
#[derive(Clone)]
enum Conn {
    /// One server.
    Direct(ConnectionManager),
    /// The primary the sentinels name, found again after a failure.
    Sentinel(Arc<SentinelConn>),
    /// A Redis Cluster, connected on first use.
    Cluster(Arc<ClusterConn>),
}

struct ClusterConn {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

/// One call's connection: either kind of client, used the same way.
#[derive(Clone)]
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Handle {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

struct SentinelConn {
    client: tokio::sync::Mutex<SentinelClient>,
    current: std::sync::RwLock<Option<ConnectionManager>>,
    config: ConnectionManagerConfig,
}

impl SentinelConn {
    fn current(&self) -> Option<ConnectionManager> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn get(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let mut sentinels = self.client.lock().await;
        // Another call may have found it while this one waited.
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let client = sentinels.async_get_client().await.map_err(classify)?;
        let conn = ConnectionManager::new_with_config(client, self.config.clone())
            .await
            .map_err(classify)?;
        tracing::info!("connected to the primary the sentinels name");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    fn forget(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisStore {
    /// A store for `url`: `redis://[user:password@]host[:port][/db]`, `rediss://…`
    /// (TLS), `redis+sentinel://[user:password@]host:port,host:port/SERVICE[/db]`, or
    /// `redis+cluster://[user:password@]host:port,host:port` (seed nodes).
    ///
    /// Only the URL and the TLS files are checked here; the connection is made on
    /// first use (see the type's behaviour). Must be called inside a Tokio runtime,
    /// which the store's connection task runs on.
    pub fn open(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Internal(
                "RedisStore::open must be called inside a Tokio runtime".into(),
            ));
        }
        let invalid = |e: RedisError| {
            StoreError::Internal(format!("invalid store URL {shown}: {}", kind_str(&e)))
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            Conn::Cluster(Arc::new(ClusterConn {
                client: cluster_client(rest, &options).map_err(invalid)?,
                conn: tokio::sync::OnceCell::new(),
            }))
        } else if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            let client = sentinel_client(rest).map_err(|e| match e {
                Ok(reason) => StoreError::Internal(format!("invalid store URL {shown}: {reason}")),
                Err(e) => invalid(e),
            })?;
            Conn::Sentinel(Arc::new(SentinelConn {
                client: tokio::sync::Mutex::new(client),
                current: std::sync::RwLock::new(None),
                config,
            }))
        } else {
            let tls = tls_certificates(&options)?;
            if url.starts_with("rediss://") {
                // rustls needs a process-wide crypto provider; keep one an embedder set.
                let _ = rustls::crypto::ring::default_provider().install_default();
            } else if tls.is_some() {
                return Err(StoreError::Internal(format!(
                    "TLS files are given but the store URL {shown} is not rediss://"
                )));
            }
            let client = match tls {
                Some(certs) => redis::Client::build_with_tls(url, certs),
                None => redis::Client::open(url),
            }
            .map_err(invalid)?;
            Conn::Direct(ConnectionManager::new_lazy_with_config(client, config).map_err(classify)?)
        };
        Ok(Self {
            conn,
            scripts: Scripts::new(),
            round_trips: Arc::default(),
            op_timeout: options.op_timeout,
            wait: (options.wait_replicas > 0)
                .then_some((options.wait_replicas, options.wait_timeout)),
            url: shown,
        })
    }

    /// The connection for one call.
    async fn connection(&self) -> Result<Handle, StoreError> {
        match &self.conn {
            Conn::Direct(conn) => Ok(Handle::Single(conn.clone())),
            Conn::Sentinel(sentinel) => sentinel.get().await.map(Handle::Single),
            Conn::Cluster(cluster) => cluster
                .conn
                .get_or_try_init(|| async {
                    let conn = cluster
                        .client
                        .get_async_connection()
                        .await
                        .map_err(classify)?;
                    tracing::info!("connected to the Redis Cluster");
                    Ok::<_, StoreError>(conn)
                })
                .await
                .cloned()
                .map(Handle::Cluster),
        }
    }

    /// Runs one call on the connection within the operation timeout; with Sentinel,
    /// a failure that says the primary is gone makes the next call ask again.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let attempt = async {
            let conn = self.connection().await?;
            f(conn).await.map_err(classify)
        };
        let result = match tokio::time::timeout(self.op_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        };
        if let (Conn::Sentinel(sentinel), Err(StoreError::Unavailable(_))) = (&self.conn, &result) {
            sentinel.forget();
        }
        result
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests sent to Redis so far by this store and its clones (a pipeline or a
    /// script counts once; a reload of the commit script after a restart is not
    /// counted).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.call(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        self.call(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }
}

impl RedisStore {
    /// Runs a script invocation as one call.
    async fn invoke<T: FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.call(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await
    }

    /// A commit on a Redis Cluster, where a script may touch one slot only: each
    /// session (its keys share a hash tag) is checked and written atomically by
    /// itself, then each plugin-wide value, then the plugin's indexes.
    ///
    /// A turn that writes one session (the usual turn) is atomic as before. A turn
    /// that writes several sessions or values is atomic per session and value: if
    /// the first part's check fails nothing is written and the turn is retried
    /// ([`StoreError::Conflict`]); if a later part's check fails the parts before it
    /// stay written and the turn fails without a retry, so nothing is written twice.
    async fn commit_per_slot(&self, ns: &Namespace, commit: &Commit) -> Result<(), StoreError> {
        let now = now_ms().to_string();
        if let (Some(max), false) = (commit.max_values, commit.values.is_empty()) {
            let mut call = self.scripts.quota.prepare_invoke();
            call.key(ns.index_values_key()).arg(&now).arg(max);
            for (name, change) in &commit.values {
                call.arg(name.as_str()).arg(value_op(change));
            }
            let over: i64 = self.invoke(&call).await?;
            if over == 1 {
                return Err(StoreError::QuotaExceeded(format!(
                    "at most {max} plugin-wide values"
                )));
            }
        }
        let mut written = Vec::new();
        let refused = |written: &[String], part: &str| {
            if written.is_empty() {
                return StoreError::Conflict;
            }
            tracing::error!(
                written = ?written,
                refused = part,
                "a multi-part commit on the cluster was refused after its first parts"
            );
            StoreError::Internal(format!(
                "the turn was partly written ({}) before {part} changed; not retried",
                written.join(", ")
            ))
        };
        let mut index = self.scripts.index.prepare_invoke();
        index
            .key(ns.index_names_key())
            .key(ns.index_expiry_key())
            .key(ns.index_values_key())
            .arg(&now)
            .arg(commit.sessions.len());
        for s in &commit.sessions {
            let mut call = self.scripts.session.prepare_invoke();
            call.key(ns.state_key(&s.session))
                .key(ns.history_key(&s.session))
                .arg(&now);
            session_args(&mut call, s);
            let reply: redis::Value = self.invoke(&call).await?;
            let part = format!("session {:?}", s.session.as_str());
            let (p1, p2): (i64, i64) = match reply {
                redis::Value::Int(-1) => return Err(refused(&written, &part)),
                other => redis::from_redis_value(other)
                    .map_err(|e| StoreError::Internal(format!("unexpected reply: {e}")))?,
            };
            index.arg(s.session.as_str()).arg(p1).arg(p2);
            written.push(part);
        }
        for (name, change) in &commit.values {
            let mut call = self.scripts.value.prepare_invoke();
            call.key(ns.value_key(name)).arg(&now).arg(name.as_str());
            value_args(&mut call, change);
            let reply: redis::Value = self.invoke(&call).await?;
            let part = format!("value {:?}", name.as_str());
            let score: String = match reply {
                redis::Value::Int(-1) => return Err(refused(&written, &part)),
                other => redis::from_redis_value(other)
                    .map_err(|e| StoreError::Internal(format!("unexpected reply: {e}")))?,
            };
            index.arg(name.as_str()).arg(score);
            written.push(part);
        }
        // The turn is written; the index only lists it. If this fails, the next
        // commit of the session puts it back, and listing never shows a gone one.
        if let Err(e) = self.invoke::<i64>(&index).await {
            tracing::warn!(error = %e, "session index not updated after a commit");
        }
        Ok(())
    }
}

/// The TLS files of `options`, read.
fn tls_certificates(options: &RedisOptions) -> Result<Option<TlsCertificates>, StoreError> {
    let read = |what: &str, path: &Path| {
        std::fs::read(path).map_err(|e| {
            StoreError::Internal(format!(
                "cannot read the TLS {what} {}: {e}",
                path.display()
            ))
        })
    };
    if options.tls_ca.is_none() && options.tls_client_cert.is_none() {
        return Ok(None);
    }
    let root_cert = match &options.tls_ca {
        Some(path) => Some(read("CA file", path)?),
        None => None,
    };
    let client_tls = match &options.tls_client_cert {
        Some((cert, key)) => Some(ClientTlsConfig {
            client_cert: read("client certificate", cert)?,
            client_key: read("client key", key)?,
        }),
        None => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// A cluster client from the part of a `redis+cluster://` URL after the scheme:
/// `[user:password@]host:port,host:port,...` (seed nodes).
fn cluster_client(rest: &str, options: &RedisOptions) -> Result<ClusterClient, RedisError> {
    let (userinfo, hosts) = match rest.trim_end_matches('/').rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest.trim_end_matches('/')),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| match userinfo {
            Some(userinfo) => format!("redis://{userinfo}@{h}"),
            None => format!("redis://{h}"),
        })
        .collect();
    ClusterClient::builder(nodes)
        .connection_timeout(options.connect_timeout)
        .response_timeout(options.response_timeout)
        .build()
}

/// A Sentinel client from the part of a `redis+sentinel://` URL after the scheme.
/// `Err(Ok(reason))` for a malformed URL, `Err(Err(e))` when redis-rs refuses it.
fn sentinel_client(rest: &str) -> Result<SentinelClient, Result<String, RedisError>> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut path = path.split('/');
    let service = path.next().unwrap_or_default();
    let db = path.next().unwrap_or("0");
    if service.is_empty() {
        return Err(Ok("no service name (redis+sentinel://HOSTS/SERVICE)".into()));
    }
    let sentinels: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{h}"))
        .collect();
    let Some(first) = sentinels.first() else {
        return Err(Ok("no sentinel hosts".into()));
    };
    // The primary's credentials and db, parsed by redis-rs from an equivalent URL.
    let node_url = match userinfo {
        Some(userinfo) => format!("redis://{userinfo}@{}/{db}", &first[8..]),
        None => format!("{first}/{db}"),
    };
    let node = redis::IntoConnectionInfo::into_connection_info(node_url.as_str()).map_err(Err)?;
    let node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(node.redis_settings().clone());
    SentinelClient::build(sentinels, service, Some(node), SentinelServerType::Master).map_err(Err)
}

/// What kind of client-side error `e` is, in words safe to show.
fn kind_str(e: &RedisError) -> &'static str {
    match e.kind() {
        ErrorKind::InvalidClientConfig => "invalid URL or client settings",
        ErrorKind::AuthenticationFailed => "authentication failed",
        ErrorKind::Io => "I/O error",
        _ => "client error",
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
    let text = e.to_string();
    let out = if tls_failure(&text) {
        StoreError::Unavailable(format!("TLS handshake failed: {text}"))
    } else if e.is_timeout() {
        StoreError::Unavailable("timed out".into())
    } else if e.is_connection_refusal() {
        StoreError::Unavailable("connection refused".into())
    } else if e.is_connection_dropped() || e.is_io_error() {
        StoreError::Unavailable("connection lost".into())
    } else {
        match kind {
            ErrorKind::MasterNameNotFoundBySentinel
            | ErrorKind::NoValidReplicasFoundBySentinel
            | ErrorKind::EmptySentinelList => StoreError::Unavailable(
                "the sentinels name no primary (a failover may be in progress)".into(),
            ),
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
            _ if e.code() == Some("OOM") => StoreError::Unavailable(
                "the server is out of memory (maxmemory reached; it must not evict, see the README)"
                    .into(),
            ),
            _ => StoreError::Internal(format!(
                "unexpected reply ({})",
                e.code().unwrap_or("client")
            )),
        }
    };
    tracing::warn!(error = %e, classified = %out, "redis call failed");
    out
}

/// Whether an error's text is rustls refusing the other side (its messages name the
/// certificate or the handshake; they never hold a URL or a password).
fn tls_failure(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["certificate", "handshake", "tls alert"]
        .iter()
        .any(|w| text.contains(w))
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

/// KEYS: index names, index expiry. ARGV: now (ms), batch. Removes up to `batch`
/// expired entries.
const INDEX_PRUNE: &str = r#"
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
return #old
"#;

/// How many expired index entries one listing removes (a commit removes 64).
const PRUNE_ON_LIST: u32 = 1000;

/// The Lua functions every commit script is made of. A session's arguments start at
/// `x` (its member): expected version ('' = any), expected history length ('' =
/// any), clear ('1'/'0'), state op ('keep'/'put'/'del'), value, version, pops,
/// expiry ('keep', 'never', 'set:MS', 'extend:MS'), item count, items... A value's
/// arguments start at `x` (its op, after its member): op ('set'/'del'/'add'), value
/// or delta, ttl ms ('0' = never).
const LUA_FNS: &str = r#"
local function session_ok(st, hi, x)
  if ARGV[x + 1] ~= '' and (redis.call('HGET', st, 'ver') or '0') ~= ARGV[x + 1] then
    return false
  end
  if ARGV[x + 2] ~= '' and tostring(redis.call('LLEN', hi)) ~= ARGV[x + 2] then
    return false
  end
  return true
end

-- Applies a session's writes; returns the PTTL of its two keys afterwards.
local function session_apply(st, hi, x)
  local n = tonumber(ARGV[x + 9])
  if ARGV[x + 3] == '1' then redis.call('DEL', st, hi) end
  local op = ARGV[x + 4]
  if op == 'put' then
    redis.call('HSET', st, 'v', ARGV[x + 5], 'ver', ARGV[x + 6])
  elseif op == 'del' then
    redis.call('DEL', st)
  end
  local pops = tonumber(ARGV[x + 7])
  if pops > 0 then redis.call('RPOP', hi, pops) end
  if n > 0 then redis.call('RPUSH', hi, unpack(ARGV, x + 10, x + 9 + n)) end
  local e = ARGV[x + 8]
  if e == 'never' then
    redis.call('PERSIST', st)
    redis.call('PERSIST', hi)
    -- Whatever exists now has no TTL; the index needs only to know if anything does.
    if redis.call('EXISTS', st, hi) > 0 then return -1, -1 end
    return -2, -2
  elseif string.sub(e, 1, 4) == 'set:' then
    -- PEXPIRE answers 1 if the key exists: the TTLs are then known without PTTL.
    local ms = tonumber(string.sub(e, 5))
    local p1, p2 = -2, -2
    if redis.call('PEXPIRE', st, ms) == 1 then p1 = ms end
    if redis.call('PEXPIRE', hi, ms) == 1 then p2 = ms end
    return p1, p2
  elseif string.sub(e, 1, 7) == 'extend:' then
    redis.call('PEXPIRE', st, string.sub(e, 8), 'GT')
    redis.call('PEXPIRE', hi, string.sub(e, 8), 'GT')
  end
  return redis.call('PTTL', st), redis.call('PTTL', hi)
end

local function index_session(names, exp, member, p1, p2, now)
  if p1 == -2 and p2 == -2 then
    redis.call('ZREM', names, member)
    redis.call('ZREM', exp, member)
  else
    local score = '+inf'
    if p1 ~= -1 and p2 ~= -1 then score = now + math.max(p1, p2) end
    redis.call('ZADD', names, 0, member)
    redis.call('ZADD', exp, score, member)
  end
end

-- Removes up to 64 expired index entries, on one commit in 8 (by the clock), which
-- keeps up with expiry at a fraction of the cost; listing prunes too.
local function prune_sessions(names, exp, now)
  if now % 8 ~= 0 then return end
  local old = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 64)
  if #old > 0 then
    redis.call('ZREM', names, unpack(old))
    redis.call('ZREM', exp, unpack(old))
  end
end

-- v: a list of {member =, op =}. True if applying them would leave more than
-- `limit` live values in the index.
local function over_limit(vals, now, limit, v)
  local count = redis.call('ZCOUNT', vals, '(' .. now, '+inf')
  for j = 1, #v do
    local live = redis.call('ZSCORE', vals, v[j].member)
    live = live and tonumber(live) > now
    if v[j].op == 'del' then
      if live then count = count - 1 end
    elseif not live then
      count = count + 1
    end
  end
  return count > limit
end

local function value_ok(key, x)
  if ARGV[x] == 'add' then
    local cur = redis.call('GET', key) or '0'
    if not string.match(cur, '^%-?%d+$') then return false end
    local sum = tonumber(cur) + tonumber(ARGV[x + 1])
    if sum > 9.2e18 or sum < -9.2e18 then return false end
  end
  return true
end

-- Applies a value's write; returns its index score, or nil if it was removed.
local function value_apply(key, x, now)
  local op = ARGV[x]
  if op == 'set' then
    if ARGV[x + 2] == '0' then
      redis.call('SET', key, ARGV[x + 1])
      return '+inf'
    end
    redis.call('SET', key, ARGV[x + 1], 'PX', ARGV[x + 2])
    return now + tonumber(ARGV[x + 2])
  elseif op == 'del' then
    redis.call('DEL', key)
    return nil
  end
  redis.call('INCRBY', key, ARGV[x + 1])
  local left = redis.call('PTTL', key)
  if left >= 0 then return now + left end
  return '+inf'
end

local function index_value(vals, member, score)
  if score then
    redis.call('ZADD', vals, score, member)
  else
    redis.call('ZREM', vals, member)
  end
end
"#;

/// One turn's writes, all or nothing (standalone Redis: every key on one server).
///
/// KEYS: for each session its state and history keys, then one key per value, then
/// the index names, index expiry and value index keys.
/// ARGV: now (ms), session count, value count, most values ('' = no limit); per
/// session its arguments (see [`LUA_FNS`]); per value: member, then its arguments.
/// Returns 0; -1 if the value limit would be exceeded; or the 1-based position of
/// the first session or value whose check failed. Nothing is written unless 0.
const COMMIT_MAIN: &str = r#"
local now = tonumber(ARGV[1])
local ns, nv = tonumber(ARGV[2]), tonumber(ARGV[3])
local idx_names, idx_exp, idx_vals = KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS]
local s, a = {}, 5
for i = 1, ns do
  s[i] = {x = a, st = KEYS[2 * i - 1], hi = KEYS[2 * i]}
  a = a + 10 + tonumber(ARGV[a + 9])
end
local v = {}
for j = 1, nv do
  v[j] = {x = a + 1, member = ARGV[a], op = ARGV[a + 1], key = KEYS[2 * ns + j]}
  a = a + 4
end
if ARGV[4] ~= '' and nv > 0 and over_limit(idx_vals, now, tonumber(ARGV[4]), v) then
  return -1
end
for i = 1, ns do
  if not session_ok(s[i].st, s[i].hi, s[i].x) then return i end
end
for j = 1, nv do
  if not value_ok(v[j].key, v[j].x) then return ns + j end
end
for i = 1, ns do
  local p1, p2 = session_apply(s[i].st, s[i].hi, s[i].x)
  index_session(idx_names, idx_exp, ARGV[s[i].x], p1, p2, now)
end
for j = 1, nv do
  index_value(idx_vals, v[j].member, value_apply(v[j].key, v[j].x, now))
end
if nv > 0 then redis.call('ZREMRANGEBYSCORE', idx_vals, '-inf', now) end
prune_sessions(idx_names, idx_exp, now)
return 0
"#;

/// Cluster: one session's writes (KEYS: state, history; ARGV: now, then the
/// session's arguments). Returns -1 if a check fails (nothing written), otherwise
/// the PTTL of both keys.
const CLUSTER_SESSION_MAIN: &str = r#"
if not session_ok(KEYS[1], KEYS[2], 2) then return -1 end
local p1, p2 = session_apply(KEYS[1], KEYS[2], 2)
return {p1, p2}
"#;

/// Cluster: one value's write (KEYS: the value; ARGV: now, member, then its
/// arguments). Returns -1 if the check fails, otherwise its index score ('del' if
/// removed).
const CLUSTER_VALUE_MAIN: &str = r#"
if not value_ok(KEYS[1], 3) then return -1 end
local score = value_apply(KEYS[1], 3, tonumber(ARGV[1]))
if score == nil then return 'del' end
return tostring(score)
"#;

/// Cluster: the plugin's indexes after its sessions and values were written (KEYS:
/// index names, expiry, values; ARGV: now, session count, per session member, PTTL,
/// PTTL; then per value member, score or 'del').
const CLUSTER_INDEX_MAIN: &str = r#"
local now = tonumber(ARGV[1])
local a = 3
for i = 1, tonumber(ARGV[2]) do
  index_session(KEYS[1], KEYS[2], ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), now)
  a = a + 3
end
local nv = 0
while a <= #ARGV do
  local score = ARGV[a + 1]
  if score == 'del' then score = nil end
  index_value(KEYS[3], ARGV[a], score)
  a = a + 2
  nv = nv + 1
end
if nv > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
prune_sessions(KEYS[1], KEYS[2], now)
return 0
"#;

/// Cluster: 1 if the values (ARGV: now, limit, then member, op pairs) would exceed
/// the limit (KEYS: the value index).
const CLUSTER_QUOTA_MAIN: &str = r#"
local v = {}
for a = 3, #ARGV, 2 do v[#v + 1] = {member = ARGV[a], op = ARGV[a + 1]} end
if over_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), v) then return 1 end
return 0
"#;

/// The commit scripts, each [`LUA_FNS`] followed by its main part.
#[derive(Clone)]
struct Scripts {
    commit: Script,
    session: Script,
    value: Script,
    index: Script,
    quota: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |main: &str| Script::new(&format!("{LUA_FNS}{main}"));
        Self {
            commit: script(COMMIT_MAIN),
            session: script(CLUSTER_SESSION_MAIN),
            value: script(CLUSTER_VALUE_MAIN),
            index: script(CLUSTER_INDEX_MAIN),
            quota: script(CLUSTER_QUOTA_MAIN),
        }
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// The `EVALSHA` of one commit (see [`COMMIT_MAIN`] for the layout).
fn commit_invocation<'a>(
    script: &'a Script,
    ns: &Namespace,
    commit: &Commit,
) -> redis::ScriptInvocation<'a> {
    let mut call = script.prepare_invoke();
    call.arg(now_ms().to_string())
        .arg(commit.sessions.len())
        .arg(commit.values.len())
        .arg(commit.max_values.map(|m| m.to_string()).unwrap_or_default());
    for s in &commit.sessions {
        call.key(ns.state_key(&s.session))
            .key(ns.history_key(&s.session));
        session_args(&mut call, s);
    }
    for (key, change) in &commit.values {
        call.key(ns.value_key(key)).arg(key.as_str());
        value_args(&mut call, change);
    }
    call.key(ns.index_names_key())
        .key(ns.index_expiry_key())
        .key(ns.index_values_key());
    call
}

/// A session's script arguments, from its member on (see [`LUA_FNS`]).
fn session_args(call: &mut redis::ScriptInvocation<'_>, s: &SessionCommit) {
    let (op, value, version): (&str, &[u8], u64) = match &s.state {
        StateChange::Keep => ("keep", b"", 0),
        StateChange::Put { value, version } => ("put", value, *version),
        StateChange::Delete => ("del", b"", 0),
    };
    let expiry = match s.expiry {
        ExpiryChange::Keep => "keep".to_string(),
        ExpiryChange::Set(Expiry::Never) => "never".to_string(),
        ExpiryChange::Set(Expiry::After(d)) => format!("set:{}", ms(d)),
        ExpiryChange::Extend(d) => format!("extend:{}", ms(d)),
    };
    call.arg(s.session.as_str())
        .arg(s.expect_version.map(|v| v.to_string()).unwrap_or_default())
        .arg(
            s.expect_history_len
                .map(|v| v.to_string())
                .unwrap_or_default(),
        )
        .arg(if s.clear { "1" } else { "0" })
        .arg(op)
        .arg(value)
        .arg(version)
        .arg(s.pops)
        .arg(expiry)
        .arg(s.append.len());
    for item in &s.append {
        call.arg(item.as_slice());
    }
}

/// A value's script arguments after its member: op, value or delta, ttl.
fn value_args(call: &mut redis::ScriptInvocation<'_>, change: &ValueChange) {
    match change {
        ValueChange::Set(value, expiry) => {
            let ttl = match expiry {
                Expiry::Never => "0".to_string(),
                Expiry::After(d) => ms(*d),
            };
            call.arg("set").arg(value.as_slice()).arg(ttl);
        }
        ValueChange::Remove => {
            call.arg("del").arg("").arg("0");
        }
        ValueChange::Add(delta) => {
            call.arg("add").arg(*delta).arg("0");
        }
    }
}

fn value_op(change: &ValueChange) -> &'static str {
    match change {
        ValueChange::Set(..) => "set",
        ValueChange::Remove => "del",
        ValueChange::Add(_) => "add",
    }
}

#[async_trait]
impl StateStore for RedisStore {
    async fn snapshot(
        &self,
        ns: &Namespace,
        session: &Name,
        tail: u32,
    ) -> Result<Snapshot, StoreError> {
        let (state, hist) = (ns.state_key(session), ns.history_key(session));
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(&state).arg("v").arg("ver");
        pipe.cmd("LLEN").arg(&hist);
        if tail > 0 {
            pipe.cmd("LRANGE").arg(&hist).arg(-i64::from(tail)).arg(-1);
        } else {
            // Keeps the reply's shape fixed.
            pipe.cmd("LRANGE").arg(&hist).arg(1).arg(0);
        }
        pipe.cmd("PTTL").arg(&state);
        pipe.cmd("PTTL").arg(&hist);
        #[allow(clippy::type_complexity)]
        let ((value, version), history_len, tail, a, b): (
            (Option<Vec<u8>>, Option<u64>),
            u64,
            Vec<Vec<u8>>,
            i64,
            i64,
        ) = self.pipe(&pipe).await?;
        Ok(Snapshot {
            state: value.map(|value| Entry {
                value,
                version: version.unwrap_or(0),
            }),
            history_len,
            tail,
            ttl: session_ttl(a, b),
        })
    }

    async fn load(&self, ns: &Namespace, session: &Name) -> Result<Option<Entry>, StoreError> {
        let (value, version): (Option<Vec<u8>>, Option<u64>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(ns.state_key(session))
                    .arg("v")
                    .arg("ver"),
            )
            .await?;
        Ok(value.map(|value| Entry {
            value,
            version: version.unwrap_or(0),
        }))
    }

    async fn items(
        &self,
        ns: &Namespace,
        session: &Name,
        last: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        if last == 0 {
            return Ok(Vec::new());
        }
        self.query(
            redis::cmd("LRANGE")
                .arg(ns.history_key(session))
                .arg(-i64::from(last))
                .arg(-1),
        )
        .await
    }

    async fn ttl(&self, ns: &Namespace, session: &Name) -> Result<Option<Duration>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PTTL").arg(ns.state_key(session));
        pipe.cmd("PTTL").arg(ns.history_key(session));
        let (a, b): (i64, i64) = self.pipe(&pipe).await?;
        Ok(session_ttl(a, b))
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
            .arg(INDEX_PRUNE)
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

        // The index may name a session that expired a moment ago or whose last
        // key went away outside a commit: check each one (on a cluster, one call
        // per session, as their keys live in different slots).
        if let Conn::Cluster(_) = self.conn {
            let mut sessions = Vec::new();
            for raw in candidates {
                let Ok(name) = Name::session(raw) else {
                    continue;
                };
                let n: i64 = self
                    .query(
                        redis::cmd("EXISTS")
                            .arg(ns.state_key(&name))
                            .arg(ns.history_key(&name)),
                    )
                    .await?;
                if n > 0 {
                    sessions.push(name.as_str().to_owned());
                }
            }
            return Ok(Page {
                sessions,
                cursor: next,
            });
        }
        let mut pipe = redis::pipe();
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
        let sessions = checked
            .into_iter()
            .zip(exists)
            .filter(|(_, n)| *n > 0)
            .map(|(name, _)| name.as_str().to_owned())
            .collect();
        Ok(Page {
            sessions,
            cursor: next,
        })
    }

    async fn get(&self, ns: &Namespace, key: &Name) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(ns.value_key(key))).await
    }

    async fn count_values(&self, ns: &Namespace) -> Result<u64, StoreError> {
        self.query(
            redis::cmd("ZCOUNT")
                .arg(ns.index_values_key())
                .arg(format!("({}", now_ms()))
                .arg("+inf"),
        )
        .await
    }

    async fn commit(&self, ns: &Namespace, commit: Commit) -> Result<(), StoreError> {
        let commit = &commit;
        if commit.is_empty() {
            return Ok(());
        }
        if let Conn::Cluster(_) = self.conn {
            return self.commit_per_slot(ns, commit).await;
        }
        let call = commit_invocation(&self.scripts.commit, ns, commit);
        let failed: i64 = self
            .call(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        if let (0, Some((replicas, timeout))) = (failed, self.wait) {
            let acked: u32 = self
                .query(
                    redis::cmd("WAIT")
                        .arg(replicas)
                        .arg(timeout.as_millis().max(1) as u64),
                )
                .await?;
            if acked < replicas {
                tracing::warn!(
                    acked,
                    replicas,
                    "commit not acknowledged by enough replicas"
                );
                return Err(StoreError::Unavailable(format!(
                    "the commit reached {acked} of {replicas} replicas in time"
                )));
            }
        }
        match failed {
            0 => Ok(()),
            -1 => Err(StoreError::QuotaExceeded(format!(
                "at most {} plugin-wide values",
                commit.max_values.unwrap_or_default()
            ))),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

/// A session's TTL from the PTTL of its two keys (-2: no key, -1: no expiry).
fn session_ttl(state: i64, history: i64) -> Option<Duration> {
    if state == -1 || history == -1 || state.max(history) < 0 {
        return None;
    }
    Some(Duration::from_millis(state.max(history).unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::{RedisOptions, RedisStore, redact_url};
    use crate::error::StoreError;

    #[test]
    fn opening_outside_a_runtime_is_an_error_not_a_panic() {
        let err = RedisStore::open("redis://127.0.0.1:1", RedisOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Internal(m) if m.contains("Tokio runtime")));
    }

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
