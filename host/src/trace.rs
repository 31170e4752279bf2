//! What the host gives traces: the spans meant for OpenTelemetry and the trace
//! context of plugins' outbound requests. Used by every layer.
//!
//! ## Behavior
//! - Spans meant for traces have the target [`TARGET`]: a turn (`turn`: plugin,
//!   tenant, a digest of the session, outcome, attempts), each outbound request
//!   (`outbound`: origin, method, status, bytes, model tokens) and each attempt's
//!   streamed output (`emit`: chunks, bytes). An exporter installs a layer that
//!   takes these spans only (the `agent-host` binary does, with OpenTelemetry);
//!   logs leave them out, and have their own spans (the `turn` span of the logs
//!   names the session, which a trace never does). Nobody listening, they cost
//!   nothing: `tracing` disables them at their call site.
//! - No attribute of these spans holds a secret: no token, no header value, no
//!   URL path or query, no session name (its [`session_digest`] instead).
//! - A request a plugin sends carries the current trace context (`traceparent`)
//!   through OpenTelemetry's global propagator, which is a no-op until one is
//!   installed (the binary installs W3C Trace Context when traces are on); the
//!   current context is the request's own span, made current when it is entered
//!   (`tracing-opentelemetry`'s context activation).

use opentelemetry::propagation::Injector;
use sha2::{Digest, Sha256};

/// The target of the spans meant for traces (see the module's docs). A log
/// layer should leave them out (`agent_host::trace=off`), a trace layer take
/// only them.
pub const TARGET: &str = "agent_host::trace";

/// A short digest of a session name for traces: 16 hex digits of SHA-256 over
/// the plugin's namespace and the name. It tells the turns of one session apart
/// from another's, across turns and servers, without saying the name (which may
/// be a user's e-mail or an account number). It is not a secret either: whoever
/// can guess a name and knows the namespace can check the guess.
pub(crate) fn session_digest(namespace: &str, session: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(namespace.as_bytes());
    hash.update([0]);
    hash.update(session.as_bytes());
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Adds the current trace context to `headers` (`traceparent` and, if any,
/// `tracestate`), replacing the plugin's own; nothing while no propagator is
/// installed or no span is current.
pub(crate) fn inject(headers: &mut http::HeaderMap) {
    let cx = opentelemetry::Context::current();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut Headers(headers));
    });
}

/// A header map as the propagator writes into it.
struct Headers<'a>(&'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_short_stable_and_per_namespace() {
        let a = session_digest("agent:tenant-a", "alice@example.com");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, session_digest("agent:tenant-a", "alice@example.com"));
        assert_ne!(a, session_digest("agent:tenant-b", "alice@example.com"));
        assert!(!a.contains("alice"));
    }

    #[test]
    fn nothing_is_injected_without_a_propagator() {
        let mut headers = http::HeaderMap::new();
        inject(&mut headers);
        assert!(headers.is_empty());
    }
}
