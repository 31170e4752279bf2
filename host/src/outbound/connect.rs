//! Connecting a checked request: resolve the name, keep only addresses the plugin
//! may reach, connect (TLS for https), send, and wait for the response head, every
//! step within its timeout and the turn's deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::AllowedOrigin;
use super::address::{own_addresses, refused};
use super::body::Timed;
use super::pool::{Connections, GiveBack, Key};

/// How long each step may wait: the plugin's limits, what the guest asked (if
/// less), and never past the turn's deadline.
#[derive(Clone, Copy)]
pub(super) struct Waits {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
    deadline: Instant,
}

impl Waits {
    pub(super) fn new(
        limits: &crate::Limits,
        options: Option<RequestOptions>,
        deadline: Instant,
    ) -> Self {
        let pick = |limit: Duration, asked: Option<Duration>| asked.map_or(limit, |a| a.min(limit));
        let options = options.unwrap_or_default();
        Self {
            connect: pick(limits.connect_timeout, options.connect_timeout),
            first_byte: pick(limits.first_byte_timeout, options.first_byte_timeout),
            between_bytes: pick(limits.first_byte_timeout, options.between_bytes_timeout),
            deadline,
        }
    }

    /// `limit` from now, cut at the deadline.
    fn until(&self, limit: Duration) -> tokio::time::Instant {
        (Instant::now() + limit).min(self.deadline).into()
    }
}

pub(super) type Failure = (&'static str, Error);

/// Resolves, checks, connects and sends; returns the response head and the
/// connection's driver.
pub(super) async fn send(
    mut request: http::Request<WasiBody>,
    allowed: &AllowedOrigin,
    pool: &Arc<Connections>,
    key: Key,
    wait: Waits,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Failure,
> {
    // On the wire the request line carries the path only.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = path
        .parse()
        .map_err(|_| ("error", Error::HttpRequestUriInvalid))?;
    let first_byte = wait.until(wait.first_byte);
    let read_timeout = |_| ("timeout", Error::ConnectionReadTimeout);
    if let Some(mut sender) = pool.take(&key) {
        match tokio::time::timeout_at(first_byte, sender.try_send_request(request))
            .await
            .map_err(read_timeout)?
        {
            Ok(response) => return Ok(respond(response, wait, pool, key, sender)),
            // Closed by its server before the request went out: a new connection.
            Err(mut failed) => match failed.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(("error", Error::from(failed.into_error()))),
            },
        }
    }
    let (host, port, tls) = (key.host.as_str(), key.port, key.tls);
    let timeout = |_| ("timeout", Error::ConnectionTimeout);
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout_at(
            wait.until(wait.connect),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| ("timeout", Error::DnsTimeout))?
        .map_err(|_| ("error", Error::DestinationNotFound))?
        .collect(),
    };
    if addresses.is_empty() {
        return Err(("error", Error::DestinationNotFound));
    }
    let reachable = if allowed.is_literal() {
        // The operator named the address: loopback and private ones included.
        addresses
    } else {
        let own = own_addresses().map_err(|e| {
            tracing::warn!(error = %e, "outbound request refused: cannot read this host's addresses");
            ("error", Error::InternalError(Some("cannot check the destination".into())))
        })?;
        let (refusals, kept): (Vec<_>, Vec<_>) = addresses
            .into_iter()
            .map(|a| (a, refused(a.ip(), &own)))
            .partition(|(_, why)| why.is_some());
        let refusals: Vec<String> = refusals
            .into_iter()
            .filter_map(|(a, why)| Some(format!("{} is {}", a.ip(), why?)))
            .collect();
        if kept.is_empty() {
            tracing::warn!(
                host,
                "outbound request refused: the name leads only to addresses a plugin may not reach: {}",
                refusals.join(", ")
            );
            return Err(("denied", Error::DestinationIpProhibited));
        }
        if !refusals.is_empty() {
            tracing::debug!(host, "outbound addresses skipped: {}", refusals.join(", "));
        }
        kept.into_iter().map(|(a, _)| a).collect()
    };
    let mut stream = None;
    let mut last = None;
    for address in reachable {
        match tokio::time::timeout_at(wait.until(wait.connect), TcpStream::connect(address)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last = Some(("error", Error::Connect(e))),
            Err(e) => last = Some(timeout(e)),
        }
    }
    let stream = match stream {
        Some(s) => s,
        None => return Err(last.unwrap_or(("error", Error::ConnectionRefused))),
    };
    let _ = stream.set_nodelay(true);
    let io: Box<dyn Io> = if tls {
        let config = tls_config().ok_or(("error", Error::TlsProtocolError))?;
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| ("error", Error::InvalidDnsNameError(e)))?,
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream =
            tokio::time::timeout_at(wait.until(wait.connect), connector.connect(name, stream))
                .await
                .map_err(timeout)?
                .map_err(|e| ("error", Error::Tls(e)))?;
        Box::new(stream)
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) = tokio::time::timeout_at(
        wait.until(wait.connect),
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(io)),
    )
    .await
    .map_err(timeout)?
    .map_err(|e| ("error", Error::from(e)))?;
    // The connection lives on its own task, so it can outlive the turn in the
    // pool; it ends when its server closes it or its sender is dropped.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "outbound connection ended");
        }
    });
    let response = tokio::time::timeout_at(first_byte, sender.send_request(request))
        .await
        .map_err(read_timeout)?
        .map_err(|e| ("error", Error::from(e)))?;
    Ok(respond(response, wait, pool, key, sender))
}

/// The response, its body timed between bytes and giving its connection back to
/// the pool once read to its end.
fn respond(
    response: http::Response<hyper::body::Incoming>,
    wait: Waits,
    pool: &Arc<Connections>,
    key: Key,
    sender: SendRequest<WasiBody>,
) -> (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
) {
    let between = wait.between_bytes;
    let deadline = wait.deadline;
    let back = Some((pool.clone(), key, sender));
    let response = response.map(move |incoming| {
        GiveBack {
            inner: Timed {
                inner: incoming,
                between,
                sleep: Box::pin(tokio::time::sleep_until(
                    (Instant::now() + between).min(deadline).into(),
                )),
                deadline,
            },
            back,
        }
        .boxed_unsync()
    });
    // The connection is driven by its own task.
    (response, Box::new(async { Ok(()) }))
}

/// The TLS client settings of every request (the web's roots, ring), made once.
fn tls_config() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?
                .with_root_certificates(rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.into(),
                })
                .with_no_client_auth();
            Some(Arc::new(config))
        })
        .clone()
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}
