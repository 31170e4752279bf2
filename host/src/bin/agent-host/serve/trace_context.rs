//! The caller's trace, continued: a request's W3C `traceparent` (and
//! `tracestate`) is made the current OpenTelemetry context while its handler
//! runs, so the turn span it starts is the caller's span's child. Without traces
//! on (no propagator installed) or without the header, the request goes through
//! untouched.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;

/// The middleware (`routes.rs`).
pub(super) async fn continue_trace(request: Request, next: Next) -> Response {
    // Without a trace layer (traces off), no request looks up the propagator.
    if !tracing::enabled!(target: agent_host::trace::TARGET, tracing::Level::INFO) {
        return next.run(request).await;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(request.headers()))
    });
    if !parent.span().span_context().is_valid() {
        return next.run(request).await;
    }
    next.run(request).with_context(parent).await
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
