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
//! - A turn's writes are one Lua script (`lua/commit.lua`): it checks every
//!   expectation, then applies state, history, expiry, plugin-wide values and the
//!   session index together, so a turn is written entirely or not at all.
//! - On a cluster a script may touch one slot only. All keys of one session share a
//!   hash tag, so each session is checked and written by one script; a turn's
//!   sessions, values and indexes are committed slot by slot (see
//!   `RedisStore::commit_per_slot` for what that keeps and what it does not).
//! - Listing checks every candidate of the index, which never lists a session
//!   whose keys are gone.
//! - No URL or password ever appears in an error or a log line.

mod buckets;
mod cluster;
mod connection;
mod idempotency;
mod operations;
mod schedules;
mod scripts;
mod spend;
mod streams;
mod usage;
mod versions;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Pipeline, RedisError};

pub use self::connection::redact_url;
use self::connection::{
    ClusterConn, Conn, Handle, SentinelConn, classify, cluster_client, kind_str, sentinel_client,
    timed_out, tls_certificates,
};
use self::scripts::{INDEX_PRUNE, PRUNE_ON_LIST, Scripts, now_ms};
use crate::error::StoreError;

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

/// A [`StateStore`](super::StateStore) on one Redis server or a Sentinel-managed primary.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    scripts: Scripts,
    round_trips: Arc<AtomicU64>,
    /// On a cluster, the usage ledger's sums last read per plugin.
    sums: Arc<usage::SumsCache>,
    op_timeout: Duration,
    wait: Option<(u32, Duration)>,
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
    /// Up to `limit` session names of one index (`names`, `expiry`) after `cursor`,
    /// after removing expired entries from it.
    async fn index_candidates(
        &self,
        names: &str,
        expiry: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(INDEX_PRUNE)
            .arg(2)
            .arg(names)
            .arg(expiry)
            .arg(now_ms().to_string())
            .arg(PRUNE_ON_LIST)
            .ignore();
        let min = cursor.map_or_else(|| "-".to_string(), |c| format!("({c}"));
        pipe.cmd("ZRANGEBYLEX")
            .arg(names)
            .arg(min)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        let (candidates,): (Vec<String>,) = self.pipe(&pipe).await?;
        Ok(candidates)
    }
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
            sums: Arc::default(),
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
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.call(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await
    }
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
