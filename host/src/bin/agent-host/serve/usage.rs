//! What a plugin keeps in the store against its quota and spent on model calls
//! against its budget, and what the caller's tenant spent: the usage routes, and
//! the gauges `/metrics` shows.
//!
//! - `GET /v1/plugins/{plugin}/usage`: `{"sessions", "bytes", "quota", "model"}`.
//! - `GET /v1/usage`: `{"tenant", "model", "plugins": {id: {"model"}}}`, the
//!   caller's tenant across its plugins, then each plugin the token may call
//!   (a plugin's figures are all its callers' together).
//!
//! `model` is `{"day", "month", "budget"}` (`views::model_json`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Json, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::metrics::PluginLabel;
use super::schedule_metrics::ScheduleLabel;
use crate::views::{Spend, model_json, usage_json};

/// How often `/metrics` (which needs no token) may make the store count usage.
const GAUGES_FRESH_FOR: Duration = Duration::from_secs(10);

/// The route, added to the API's.
pub(super) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .route("/v1/plugins/{plugin}/usage", get(usage))
        .route("/v1/usage", get(tenant_usage))
}

async fn usage(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path(plugin) = path?;
    let (usage, quota) = app.host.usage(&plugin).await?;
    let model = Spend::from(app.host.model_usage(&plugin).await?);
    Ok(Json(usage_json(&usage, &quota, &model)).into_response())
}

async fn tenant_usage(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    let (tenant, budget) = caller.tenant_budget();
    let spend = Spend::from(app.host.tenant_model_usage(tenant, budget).await?);
    let token = caller.token();
    let mut plugins = serde_json::Map::new();
    for plugin in app.host.plugins().into_iter().filter(|p| token.allows(p)) {
        let model = Spend::from(app.host.model_usage(&plugin).await?);
        plugins.insert(plugin, json!({ "model": model_json(&model) }));
    }
    let body = json!({
        "tenant": tenant,
        "model": model_json(&spend),
        "plugins": plugins,
    });
    Ok(Json(body).into_response())
}

/// Brings the usage gauges up to date, at most every [`GAUGES_FRESH_FOR`]; a plugin
/// whose usage cannot be read keeps its last figures.
pub(super) async fn refresh_gauges(app: &App) {
    let mut refreshed = app.metrics.usage_refreshed.lock().await;
    if refreshed.is_some_and(|at| at.elapsed() < GAUGES_FRESH_FOR) {
        return;
    }
    for id in app.host.plugins() {
        let id = &id;
        match app.host.usage(id).await {
            Ok((usage, _)) => {
                let label = PluginLabel { plugin: id.clone() };
                let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                app.metrics
                    .stored_bytes
                    .get_or_create(&label)
                    .set(gauge(usage.bytes));
                app.metrics
                    .sessions
                    .get_or_create(&label)
                    .set(gauge(usage.sessions));
            }
            Err(e) => tracing::warn!(plugin = %id, error = %e, "usage not read for /metrics"),
        }
        match app.host.pending_schedules(id).await {
            Ok(n) => {
                let label = ScheduleLabel { plugin: id.clone() };
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                app.metrics.schedules.pending.get_or_create(&label).set(n);
            }
            Err(e) => {
                tracing::warn!(plugin = %id, error = %e, "schedules not counted for /metrics")
            }
        }
    }
    *refreshed = Some(Instant::now());
}
