//! A turn's outbound HTTP: the `wasi:http` hooks that check each request (the
//! allow-list and `check`), count it against the plugin's limits, add the secret
//! headers, and send it (`connect`) to an address the host resolved and checked.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tracing::Instrument;
use tracing::field::Empty;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::body::{Done, GuestBody, LimitedBody};
use super::check::{Target, refusal};
use super::connect::{Waits, send};
use super::journal::{Journal, Recording, keyed, replay, request_head};
use super::meter::{Metered, Reader};
use super::pool::{Connections, Key};
use super::spend::TurnSpend;
use super::{OutboundEvent, OutboundObserver};
use crate::guest_text::{LOG_FIELD_BYTES, escaped};
use crate::turn::scope::PluginScope;

/// What the outbound hooks of a turn need from the host.
pub(crate) struct TurnOutbound {
    pub(crate) scope: Arc<PluginScope>,
    pub(crate) observer: Option<OutboundObserver>,
    pub(crate) deadline: Instant,
    /// The host's idle connections (`pool.rs`).
    pub(crate) connections: Arc<Connections>,
    /// Where metered model calls are counted and checked (`spend.rs`).
    pub(crate) spend: Arc<TurnSpend>,
    /// The answers of the turn's earlier attempts (`journal.rs`).
    pub(crate) journal: Arc<Journal>,
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
pub(super) struct Sent {
    pub(super) plugin: String,
    /// The origin asked for (escaped), for the log.
    pub(super) origin: String,
    /// The allowed origin it matched as configured, or `denied`: the metric's
    /// label, whose values the operator chose.
    label: String,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) started: Instant,
    observer: Option<OutboundObserver>,
    /// The request's span in traces (`crate::trace`).
    pub(super) span: tracing::Span,
}

impl Sent {
    fn report(&self, outcome: &'static str) {
        self.report_after(outcome, self.started.elapsed());
    }

    /// Reports the request's outcome; `duration` is the time to its response's
    /// head, or to its failure.
    pub(super) fn report_after(&self, outcome: &'static str, duration: Duration) {
        self.span.record("outcome", outcome);
        if !matches!(outcome, "ok" | "replayed") {
            self.span.record("otel.status_code", "error");
        }
        if let Some(observer) = &self.observer {
            observer(&OutboundEvent {
                plugin: self.plugin.clone(),
                origin: self.label.clone(),
                outcome,
                duration,
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
            outcome,
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
        let Target {
            scheme,
            host,
            port,
            tls,
        } = Target::of(&uri);
        let allowed = config.outbound.find(&scheme, &host, port).cloned();
        let origin = escaped(&format!("{scheme}://{host}:{port}"), LOG_FIELD_BYTES);
        // Origin and method only: a path or query may hold a key.
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            "outbound",
            otel.kind = "client",
            origin = %origin,
            method = %request.method(),
            status = Empty,
            outcome = Empty,
            bytes.sent = Empty,
            bytes.received = Empty,
            model.input_tokens = Empty,
            model.output_tokens = Empty,
            otel.status_code = Empty,
        );
        let sent = Sent {
            plugin: config.id.clone(),
            origin,
            label: allowed
                .as_ref()
                .map_or_else(|| "denied".to_string(), |o| o.as_str().to_string()),
            method: escaped(request.method().as_str(), LOG_FIELD_BYTES),
            path: escaped(uri.path(), LOG_FIELD_BYTES),
            started: Instant::now(),
            observer: self.turn.observer.clone(),
            span,
        };
        let Some(allowed) = allowed else {
            return sent.refuse(
                "denied",
                "origin not allowed",
                Error::HttpRequestDenied,
                request,
            );
        };
        if let Some(why) = refusal(request.method(), &uri) {
            return sent.refuse("denied", why, Error::HttpRequestDenied, request);
        }
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
        // The journal's key starts on what the plugin set (never the secrets).
        let head = request_head(
            request.method().as_str(),
            &uri.to_string(),
            request.headers(),
        );
        for secret in &allowed.secret_headers {
            request
                .headers_mut()
                .insert(secret.name.clone(), secret.value.clone());
        }
        // The model gateway's trace joins ours, under this request's span (after
        // the journal's key: a retried turn's same request stays the same).
        // Only when a trace layer listens (the span is enabled): otherwise there
        // is no context to pass on, and every request would look it up.
        if !sent.span.is_disabled() {
            sent.span
                .in_scope(|| crate::trace::inject(request.headers_mut()));
        }
        let sent_bytes = Arc::new(AtomicU64::new(0));
        let request = request.map(|body| {
            LimitedBody {
                inner: GuestBody { inner: Some(body) },
                seen: sent_bytes.clone(),
                limit: max_body,
                error: || Error::HttpRequestBodySize(None),
                log: None,
            }
            .boxed_unsync()
        });
        let wait = Waits::new(limits, options, self.turn.deadline);
        let response_bytes = self.response_bytes.get_or_insert_default().clone();
        let max_response = limits.max_response_bytes;
        let connections = self.turn.connections.clone();
        let metered = allowed.meter.map(|meter| (meter, self.turn.spend.clone()));
        let journal = self.turn.journal.clone();
        let key = Key {
            plugin: config.id.clone(),
            tls,
            host,
            port,
            literal: allowed.is_literal(),
        };
        let span = sent.span.clone();
        let send_it = async move {
            let (request, request_key) = match keyed(request, head).await {
                Ok(keyed) => keyed,
                Err(error) => {
                    // The body was past `max_request_body`, or the plugin's stream
                    // failed: nothing was sent.
                    tracing::info!(
                        plugin = %sent.plugin,
                        method = %sent.method,
                        origin = %sent.origin,
                        path = %sent.path,
                        outcome = "limit",
                        "outbound request failed: {error}"
                    );
                    sent.report("limit");
                    return Err(error);
                }
            };
            journal.load_kept().await;
            let slot = match journal.replay_or_reserve(request_key) {
                Ok(answer) => {
                    tracing::debug!(
                        plugin = %sent.plugin,
                        origin = %sent.origin,
                        path = %sent.path,
                        "outbound request answered from the turn's journal"
                    );
                    sent.report("replayed");
                    return Ok(replay(answer));
                }
                Err(slot) => slot,
            };
            if let Some((_, spend)) = &metered {
                let why = match spend.refusal(&sent.label).await {
                    Ok(None) => None,
                    Ok(Some(spent)) => Some(spent),
                    // Refused rather than let a tenant spend past its budget. The
                    // store's error is the operator's: logged, not told the plugin.
                    Err(e) => {
                        tracing::warn!(plugin = %sent.plugin, error = %e, "model budget not read");
                        Some("the model budget cannot be checked now; try again later".into())
                    }
                };
                if let Some(why) = why {
                    tracing::warn!(
                        plugin = %sent.plugin,
                        method = %sent.method,
                        origin = %sent.origin,
                        outcome = "budget",
                        "outbound request refused: {why}"
                    );
                    sent.report("budget");
                    drop(request);
                    return Ok(budget_spent(&why));
                }
            }
            let result = send(request, &allowed, &connections, key, wait).await;
            let (response, io) = match result {
                Ok(ok) => ok,
                Err((outcome, error)) => {
                    let why = format!("{error}");
                    tracing::info!(
                        plugin = %sent.plugin,
                        method = %sent.method,
                        origin = %sent.origin,
                        path = %sent.path,
                        outcome,
                        ms = sent.started.elapsed().as_millis() as u64,
                        "outbound request failed: {why}"
                    );
                    sent.report(outcome);
                    return Err(error);
                }
            };
            // Reported once the body is done with: its outcome is the body's.
            let head = sent.started.elapsed();
            let status = response.status().as_u16();
            sent.span.record("status", status);
            sent.span.record(
                "bytes.sent",
                sent_bytes.load(std::sync::atomic::Ordering::Relaxed),
            );
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let label = sent.label.clone();
            let traced = sent.span.clone();
            let (parts, body) = response.into_parts();
            let recording = Recording {
                inner: body,
                journal,
                slot,
                status: parts.status,
                headers: parts.headers.clone(),
                frames: Some(Vec::new()),
                bytes: 0,
            }
            .boxed_unsync();
            let response = http::Response::from_parts(parts, recording);
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
                        head,
                        outcome: "ok",
                    }),
                }
                .boxed_unsync()
            });
            let response = match metered {
                Some((meter, spend)) => response.map(|body| {
                    Metered {
                        inner: body,
                        reader: Some(Reader::new(meter, content_type.as_deref())),
                        spend,
                        origin: label,
                        sent: sent_bytes,
                        span: traced,
                    }
                    .boxed_unsync()
                }),
                None => response,
            };
            Ok((response, io))
        };
        Box::new(send_it.instrument(span))
    }
}

/// The host's own answer to a metered request refused for a spent budget: 402
/// (Payment Required: client libraries do not retry it, as they do 429) with an
/// OpenAI-style error body whose `type` and `code` are `model_budget_spent` (not
/// the provider's own billing error, so nobody takes it for one), so every SDK
/// and client library shows the reason; `agent-host-refused: model-budget` says
/// it came from the host. (An error code cannot carry the reason: wasi:http's
/// `HTTP-request-denied` has none, and JavaScript's `fetch` turns every error
/// code into "NetworkError".)
fn budget_spent(
    why: &str,
) -> (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
) {
    let body = serde_json::json!({
        "error": {"message": why, "type": "model_budget_spent", "code": "model_budget_spent"}
    });
    let body = http_body_util::Full::new(bytes::Bytes::from(body.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::PAYMENT_REQUIRED;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "agent-host-refused",
        http::HeaderValue::from_static("model-budget"),
    );
    (response, Box::new(async { Ok(()) }))
}
