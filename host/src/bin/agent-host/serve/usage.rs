//! What a plugin keeps in the store against its quota: the usage route, and the
//! gauges `/metrics` shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Json, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::metrics::PluginLabel;
use crate::views::usage_json;

/// How often `/metrics` (which needs no token) may make the store count usage.
const GAUGES_FRESH_FOR: Duration = Duration::from_secs(10);

/// The route, added to the API's.
pub(super) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router.route("/v1/plugins/{plugin}/usage", get(usage))
}

async fn usage(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path(plugin) = path?;
    let (usage, quota) = app.host.usage(&plugin).await?;
    Ok(Json(usage_json(&usage, &quota)).into_response())
}

/// Brings the usage gauges up to date, at most every [`GAUGES_FRESH_FOR`]; a plugin
/// whose usage cannot be read keeps its last figures.
pub(super) async fn refresh_gauges(app: &App) {
    let mut refreshed = app.metrics.usage_refreshed.lock().await;
    if refreshed.is_some_and(|at| at.elapsed() < GAUGES_FRESH_FOR) {
        return;
    }
    for plugin in &app.config.plugins {
        let id = plugin.id.get_ref();
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
    }
    *refreshed = Some(Instant::now());
}
