//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`): deny by default, a
//! per-plugin allow-list of origins, and credentials the host adds to requests so
//! the plugin never sees them.
//!
//! ## Behavior
//! - A request goes out only if its scheme, host and port match an allowed
//!   [`AllowedOrigin`]; otherwise the plugin gets wasi:http's
//!   `HTTP-request-denied` and no connection is made. A `*.example.com` origin
//!   matches any name under `example.com` (not `example.com` itself); `*` matches
//!   everything and is accepted only with [`Outbound::allow_any_origin`], and
//!   never with secret headers ([`OutboundError`]).
//! - Refused the same way, whatever the origin: `TRACE` (and `TRACK`), which
//!   would echo the secret headers back to the plugin, `CONNECT`, and URLs with
//!   user information (`http://user@host/`).
//! - Names are resolved by the host, and the connection goes to an address the host
//!   checked: every block of the IANA special-purpose address registries that is
//!   not globally reachable, multicast, and the host's own interface addresses are
//!   refused (`address`, `special`) unless the origin names such an address
//!   literally (or `localhost`), so DNS cannot be used to reach them.
//! - [`SecretHeader`]s of the matching origin are added after the plugin handed the
//!   request over; a header of the same name set by the plugin is dropped. They are
//!   never logged, never in an error, never visible to the plugin, unless the
//!   allowed origin itself sends them back in a response: the host cannot prevent
//!   that, so list only origins that do not reflect request headers.
//! - Per turn: at most `Limits::max_requests` requests, `max_response_bytes` of
//!   response bodies in all, `max_request_body_bytes` per request body; connect and
//!   first-byte timeouts, every wait cut by the turn's deadline.
//! - An origin marked with a meter is a model endpoint: the tokens of each answer
//!   are read as it passes and counted for the plugin and the turn's tenant
//!   (`meter`, `spend`); once a budget is spent, requests to metered origins are
//!   answered by the host itself, 402 `model_budget_spent` "model budget spent
//!   ..." (an error code could not carry the reason to every SDK), and nothing
//!   leaves.
//! - The answers of a turn's requests are kept for its next attempt: a turn run
//!   again after a conflict gets them again for the same requests instead of
//!   paying again (`journal`); with an idempotency key they are kept in the
//!   store too, for a retry on another host (`journal_store`).
//! - Connections are kept alive between requests, per plugin and origin, never
//!   shared across plugins, bounded (`pool`).
//! - Redirects are not followed by the host: a plugin's client that follows one
//!   sends a new request, checked like any other.

mod address;
mod body;
mod check;
mod connect;
mod hooks;
pub(crate) mod journal;
pub(crate) mod journal_store;
mod meter;
mod pool;
mod special;
pub(crate) mod spend;

use std::sync::Arc;
use std::time::Duration;

pub use crate::config::outbound::{AllowedOrigin, Outbound, OutboundError, SecretHeader};
pub(crate) use hooks::{OutboundHooks, TurnOutbound};
pub(crate) use pool::Connections;
pub use spend::{Clock, ModelCall, ModelObserver, ModelPolicy, ModelRequest};

/// What a turn's outbound requests leave across its attempts.
pub(crate) struct TurnTrail {
    /// Its model spend (`spend`).
    pub(crate) spend: Arc<spend::TurnSpend>,
    /// The answers its requests got (`journal`).
    pub(crate) journal: Arc<journal::Journal>,
}

/// One outbound request, as a metric sees it (no path, no headers). A request
/// that got a response is reported once its body is done with (read to its end,
/// cut, or dropped by the plugin; at the latest when the plugin's instance is
/// dropped), with the body's outcome; any other, when it fails.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OutboundEvent {
    /// The plugin that sent it.
    pub plugin: String,
    /// The allowed origin it matched, as configured (`denied` when none did).
    pub origin: String,
    /// `ok` (a response arrived and its body was read to its end, or as far as
    /// the plugin wanted), `replayed` (the turn's journal answered, see
    /// `journal`), `denied`, `limit` (the plugin's request limits: too many
    /// requests, a request body or a response body too large, the response's
    /// cut partway), `budget` (a metered origin refused: model budget spent),
    /// `timeout` (no connection, no response head, or a body that stalled or
    /// ran past the turn's deadline), or `error`.
    pub outcome: &'static str,
    /// Time to the response head (or the failure).
    pub duration: Duration,
}

/// Called once per outbound request (see [`crate::HostBuilder::on_outbound`]).
pub type OutboundObserver = Arc<dyn Fn(&OutboundEvent) + Send + Sync>;
