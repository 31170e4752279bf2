//! A turn's outbound HTTP: the `wasi:http` hooks that check each request against
//! the plugin's allow-list and limits, add the secret headers, and send it to an
//! address the host resolved and checked.

use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::address::is_internal;
use super::{AllowedOrigin, OutboundEvent, OutboundObserver};
use crate::guest_text::{LOG_FIELD_BYTES, escaped};
use crate::state::PluginScope;

/// What the outbound hooks of a turn need from the host.
pub(crate) struct TurnOutbound {
    pub(crate) scope: Arc<PluginScope>,
    pub(crate) observer: Option<OutboundObserver>,
    pub(crate) deadline: Instant,
}

/// The `wasi:http` hooks of one turn.
pub(crate) struct OutboundHooks {
    turn: TurnOutbound,
    requests: u32,
    /// Response bytes read by the turn, all requests together; made by the first
    /// request (most turns send none).
    response_bytes: Option<Arc<AtomicU64>>,
}

impl OutboundHooks {
    pub(crate) fn new(turn: TurnOutbound) -> Self {
        Self {
            turn,
            requests: 0,
            response_bytes: None,
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// What a request is, for the log and the metric (never its query or headers).
#[derive(Clone)]
struct Sent {
    plugin: String,
    /// The origin asked for (escaped), for the log.
    origin: String,
    /// The allowed origin it matched as configured, or `denied`: the metric's
    /// label, whose values the operator chose.
    label: String,
    method: String,
    path: String,
    started: Instant,
    observer: Option<OutboundObserver>,
}

impl Sent {
    fn report(&self, outcome: &'static str) {
        if let Some(observer) = &self.observer {
            observer(&OutboundEvent {
                plugin: self.plugin.clone(),
                origin: self.label.clone(),
                outcome,
                duration: self.started.elapsed(),
            });
        }
    }

    /// Refuses the request without connecting. Its body goes to a `GuestBody`,
    /// which reads it to nowhere, so the plugin's client sees the refusal rather
    /// than a closed body stream.
    fn refuse(
        &self,
        outcome: &'static str,
        why: &str,
        error: Error,
        request: http::Request<WasiBody>,
    ) -> SendFuture {
        tracing::warn!(
            plugin = %self.plugin,
            method = %self.method,
            origin = %self.origin,
            path = %self.path,
            "outbound request refused: {why}"
        );
        self.report(outcome);
        drop(GuestBody {
            inner: Some(request.into_body()),
        });
        Box::new(async move { Err(error) })
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let config = &self.turn.scope.config;
        let limits = &config.limits;
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let tls = uri.scheme() == Some(&Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let allowed = config.outbound.find(&scheme, &host, port).cloned();
        let sent = Sent {
            plugin: config.id.clone(),
            origin: escaped(&format!("{scheme}://{host}:{port}"), LOG_FIELD_BYTES),
            label: allowed
                .as_ref()
                .map_or_else(|| "denied".to_string(), |o| o.as_str().to_string()),
            method: request.method().to_string(),
            path: escaped(uri.path(), LOG_FIELD_BYTES),
            started: Instant::now(),
            observer: self.turn.observer.clone(),
        };
        let Some(allowed) = allowed else {
            return sent.refuse(
                "denied",
                "origin not allowed",
                Error::HttpRequestDenied,
                request,
            );
        };
        self.requests += 1;
        if self.requests > limits.max_requests {
            let why = format!("at most {} requests per turn", limits.max_requests);
            return sent.refuse(
                "limit",
                &why,
                Error::InternalError(Some(why.clone())),
                request,
            );
        }
        let max_body = limits.max_request_body_bytes;
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            let why = format!("a request body may have at most {max_body} bytes");
            return sent.refuse(
                "limit",
                &why,
                Error::HttpRequestBodySize(Some(max_body)),
                request,
            );
        }
        // The plugin's own header of a secret header's name is dropped.
        for secret in &allowed.secret_headers {
            request.headers_mut().remove(&secret.name);
        }
        for secret in &allowed.secret_headers {
            request
                .headers_mut()
                .insert(secret.name.clone(), secret.value.clone());
        }
        let request = request.map(|body| {
            LimitedBody {
                inner: GuestBody { inner: Some(body) },
                seen: Arc::new(AtomicU64::new(0)),
                limit: max_body,
                error: || Error::HttpRequestBodySize(None),
                log: None,
            }
            .boxed_unsync()
        });
        let wait = Waits::new(limits, options, self.turn.deadline);
        let response_bytes = self.response_bytes.get_or_insert_default().clone();
        let max_response = limits.max_response_bytes;
        Box::new(async move {
            let result = send(request, &allowed, &host, port, tls, wait).await;
            let (response, io) = match result {
                Ok(ok) => ok,
                Err((outcome, error)) => {
                    let why = format!("{error}");
                    tracing::info!(
                        plugin = %sent.plugin,
                        method = %sent.method,
                        origin = %sent.origin,
                        path = %sent.path,
                        ms = sent.started.elapsed().as_millis() as u64,
                        "outbound request failed: {why}"
                    );
                    sent.report(outcome);
                    return Err(error);
                }
            };
            sent.report("ok");
            let status = response.status().as_u16();
            let response = response.map(|body| {
                LimitedBody {
                    inner: body,
                    seen: response_bytes,
                    limit: max_response,
                    error: || Error::HttpResponseBodySize(None),
                    log: Some(Done {
                        sent,
                        status,
                        bytes: 0,
                    }),
                }
                .boxed_unsync()
            });
            Ok((response, io))
        })
    }
}

/// How long each step may wait: the plugin's limits, what the guest asked (if
/// less), and never past the turn's deadline.
#[derive(Clone, Copy)]
struct Waits {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
    deadline: Instant,
}

impl Waits {
    fn new(limits: &crate::Limits, options: Option<RequestOptions>, deadline: Instant) -> Self {
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

type Failure = (&'static str, Error);

/// Resolves, checks, connects and sends; returns the response head and the
/// connection's driver.
async fn send(
    mut request: http::Request<WasiBody>,
    allowed: &AllowedOrigin,
    host: &str,
    port: u16,
    tls: bool,
    wait: Waits,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Failure,
> {
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
    let literal = allowed.is_literal();
    let allowed_addresses: Vec<SocketAddr> = addresses
        .iter()
        .copied()
        .filter(|a| literal || !is_internal(a.ip()))
        .collect();
    if allowed_addresses.is_empty() {
        tracing::warn!(
            host,
            ?addresses,
            "outbound request refused: the name resolves to internal addresses"
        );
        return Err(("denied", Error::DestinationIpProhibited));
    }
    let mut stream = None;
    let mut last = None;
    for address in allowed_addresses {
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
    let response = async move {
        tokio::time::timeout_at(first_byte, sender.send_request(request))
            .await
            .map_err(|_| ("timeout", Error::ConnectionReadTimeout))?
            .map_err(|e| ("error", Error::from(e)))
    };
    // Drive the connection while waiting for the response head.
    let mut response = pin!(response);
    let mut conn = Some(conn);
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = response.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if let Some(c) = conn.as_mut()
            && let Poll::Ready(result) = Pin::new(c).poll(cx)
        {
            conn = None;
            if let Err(e) = result {
                return Poll::Ready(Err(("error", Error::from(e))));
            }
            return response.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await?;
    let between = wait.between_bytes;
    let deadline = wait.deadline;
    let response = response.map(move |incoming| {
        Timed {
            inner: incoming,
            between,
            sleep: Box::pin(tokio::time::sleep_until(
                (Instant::now() + between).min(deadline).into(),
            )),
            deadline,
        }
        .boxed_unsync()
    });
    let io = async move {
        match conn {
            Some(conn) => conn.await.map_err(Error::from),
            None => Ok(()),
        }
    };
    Ok((response, Box::new(io)))
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

/// A body that fails once more than `limit` bytes went through it (with a
/// counter shared by the bodies of one turn, for responses), and, for a response,
/// logs its request once it is done with (read or dropped).
struct LimitedBody<B> {
    inner: B,
    seen: Arc<AtomicU64>,
    limit: u64,
    error: fn() -> Error,
    log: Option<Done>,
}

/// What the log line of a response says when its body is done with.
struct Done {
    sent: Sent,
    status: u16,
    bytes: u64,
}

impl<B> Drop for LimitedBody<B> {
    fn drop(&mut self) {
        if let Some(done) = &self.log {
            let sent = &done.sent;
            tracing::info!(
                plugin = %sent.plugin,
                method = %sent.method,
                origin = %sent.origin,
                path = %sent.path,
                status = done.status,
                bytes = done.bytes,
                ms = sent.started.elapsed().as_millis() as u64,
                "outbound request"
            );
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            if let Some(done) = self.log.as_mut() {
                done.bytes += data.len() as u64;
            }
            let total =
                self.seen.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if total > self.limit {
                tracing::warn!(limit = self.limit, "outbound body over its limit; cut");
                return Poll::Ready(Some(Err((self.error)())));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body a plugin writes. When hyper is done with it before the plugin is (a
/// refused or failed request, or a body hyper knows to be complete by its
/// length), the rest is read and dropped in the background until the plugin
/// finishes: the plugin's writes then succeed and its client reports the
/// response's outcome instead of a closed stream. The reading ends when the
/// plugin finishes the body or its turn ends.
struct GuestBody {
    inner: Option<WasiBody>,
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        if frame.is_none() {
            self.inner = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        if let Some(mut body) = self.inner.take()
            && !body.is_end_stream()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
        }
    }
}

/// A response body that fails when no bytes come for `between`, or at the turn's
/// deadline.
struct Timed {
    inner: hyper::body::Incoming,
    between: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    deadline: Instant,
}

impl Body for Timed {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = (Instant::now() + self.between).min(self.deadline);
                self.sleep.as_mut().reset(next.into());
                Poll::Ready(frame.map(|f| f.map_err(Error::from)))
            }
            Poll::Pending => {
                ready!(self.sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
