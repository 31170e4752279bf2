//! The turn route: `POST /v1/plugins/{plugin}/sessions/{session}/turns`, answered
//! as JSON `{"output", "usage"}` or, when the caller asks for events, as a stream
//! (`streams`). Every turn runs for its caller's tenant, held to the tenant's
//! model budget (`budgets.rs`) and turn limit (`tenants.rs`): [`admit`] and
//! [`run`], which MCP's `tools/call` (`mcp.rs`) shares; `usage` is the turn's
//! model calls.

use std::sync::Arc;
use std::time::Instant;

use agent_host::{TurnAnswer, TurnError, TurnOptions};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tracing::Instrument;

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::body;
use super::metrics::record_turn;
use super::streams;
use super::tenants::TenantTurn;
use crate::views::turn_usage_json;

/// The route, added to the API's.
pub(super) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router.route("/v1/plugins/{plugin}/sessions/{session}/turns", post(turn))
}

async fn turn(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let options = turn_options(&headers)?;
    let input = body::input(&app, body).await?;
    let admitted = admit(&app, &caller, &plugin, options)?;
    if streams::wanted(&headers) {
        let Admitted {
            options,
            counted,
            span,
        } = admitted;
        let turn = streams::Turn {
            plugin,
            session,
            input,
            options,
            counted,
        };
        return Ok(streams::turn(app, turn, span).await);
    }
    let answer = run(&app, plugin, &session, &input, admitted).await?;
    let usage = turn_usage_json(&answer.usage);
    let body = json!({ "output": answer.output, "usage": usage });
    let mut response = axum::Json(body).into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAY, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A turn let in for its caller: its options run it for the caller's tenant
/// (its model budget), `counted` holds its place in the tenant's
/// `max_concurrent_turns` until dropped, `span` logs it with the tenant.
pub(super) struct Admitted {
    pub(super) options: TurnOptions,
    pub(super) counted: TenantTurn,
    pub(super) span: tracing::Span,
}

/// Lets a turn of `caller`'s on `plugin` in, once its input has been read (the
/// HTTP route and MCP's `tools/call` alike), or 503 `busy` if its tenant runs as
/// many turns as it may.
pub(super) fn admit(
    app: &App,
    caller: &Caller,
    plugin: &str,
    options: TurnOptions,
) -> Result<Admitted, ApiError> {
    // Run for the caller's tenant: its model calls count against its budget.
    let (tenant, budget) = caller.tenant_budget();
    let options = options.with_tenant(tenant, budget);
    let counted = match caller.loaded.tenants.start(caller.index) {
        Ok(counted) => counted,
        Err(busy) => {
            // Counted like the plugin's own `busy`, for a plugin that exists (a
            // "*" token may name any).
            if app.host.plugin_deadline(plugin).is_some() {
                let outcome = Err(TurnError::Busy {
                    plugin: plugin.to_string(),
                });
                record_turn(app, plugin.to_string(), &outcome, Instant::now());
            }
            return Err(busy);
        }
    };
    // The span records the tenant when it is made: no copy of it per request.
    let tenant = caller.token().tenant.get_ref();
    let span = tracing::info_span!("request", tenant = %tenant);
    Ok(Admitted {
        options,
        counted,
        span,
    })
}

/// Runs an admitted turn to its end, then frees its tenant's place and counts
/// it in the metrics.
pub(super) async fn run(
    app: &App,
    plugin: String,
    session: &str,
    input: &str,
    admitted: Admitted,
) -> Result<TurnAnswer, TurnError> {
    let Admitted {
        options,
        counted,
        span,
    } = admitted;
    let started = Instant::now();
    let outcome = app
        .host
        .run_turn_with(&plugin, session, input, options)
        .instrument(span)
        .await;
    drop(counted);
    record_turn(app, plugin, &outcome, started);
    outcome
}

/// The request header that makes a turn idempotent, and the answer's header that
/// says an answer is a stored one.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
const IDEMPOTENT_REPLAY: &str = "idempotent-replay";

/// The turn's options from its request headers (`Idempotency-Key`).
fn turn_options(headers: &HeaderMap) -> Result<TurnOptions, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(TurnOptions::default());
    };
    let key = value.to_str().map_err(|_| {
        ApiError::from(TurnError::InvalidIdempotencyKey(
            "it is not printable ASCII".into(),
        ))
    })?;
    Ok(TurnOptions::idempotency_key(key))
}
