//! How the Redis store reaches its server: URL forms (standalone, Sentinel, Cluster),
//! TLS files, the connection kinds, and the one place a Redis error is classified.

use std::path::Path;
use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ClientTlsConfig, ErrorKind, Pipeline, RedisError, ServerErrorKind, TlsCertificates};

use super::RedisOptions;
use crate::error::StoreError;

/// Where calls go.
#[derive(Clone)]
pub(super) enum Conn {
    /// One server.
    Direct(ConnectionManager),
    /// The primary the sentinels name, found again after a failure.
    Sentinel(Arc<SentinelConn>),
    /// A Redis Cluster, connected on first use.
    Cluster(Arc<ClusterConn>),
}

pub(super) struct ClusterConn {
    pub(super) client: ClusterClient,
    pub(super) conn: tokio::sync::OnceCell<ClusterConnection>,
}

/// One call's connection: either kind of client, used the same way.
#[derive(Clone)]
pub(super) enum Handle {
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

pub(super) struct SentinelConn {
    pub(super) client: tokio::sync::Mutex<SentinelClient>,
    pub(super) current: std::sync::RwLock<Option<ConnectionManager>>,
    pub(super) config: ConnectionManagerConfig,
}

impl SentinelConn {
    fn current(&self) -> Option<ConnectionManager> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) async fn get(&self) -> Result<ConnectionManager, StoreError> {
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

    pub(super) fn forget(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The TLS files of `options`, read.
pub(super) fn tls_certificates(
    options: &RedisOptions,
) -> Result<Option<TlsCertificates>, StoreError> {
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
pub(super) fn cluster_client(
    rest: &str,
    options: &RedisOptions,
) -> Result<ClusterClient, RedisError> {
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
pub(super) fn sentinel_client(rest: &str) -> Result<SentinelClient, Result<String, RedisError>> {
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
pub(super) fn kind_str(e: &RedisError) -> &'static str {
    match e.kind() {
        ErrorKind::InvalidClientConfig => "invalid URL or client settings",
        ErrorKind::AuthenticationFailed => "authentication failed",
        ErrorKind::Io => "I/O error",
        _ => "client error",
    }
}

pub(super) fn timed_out() -> StoreError {
    tracing::warn!("redis call timed out");
    StoreError::Unavailable("timed out".into())
}

/// The one place a Redis error becomes a [`StoreError`]: the detail is logged once,
/// the caller gets a short, stable message.
pub(super) fn classify(e: RedisError) -> StoreError {
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
