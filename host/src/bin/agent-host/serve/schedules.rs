//! Scheduled turns in `serve`: their routes, their metrics, and the loop that runs
//! them when due, which every server (every replica, every worker) runs; the
//! store's claims make each schedule run on one of them.
//!
//! | method and path | |
//! |---|---|
//! | `POST .../sessions/{session}/schedules` | `{"input", "delay": "10m"}` or `{"input", "at": <unix ms>}`; 201 `{"id", "at"}` |
//! | `GET .../sessions/{session}/schedules` | 200 `{"schedules": [...]}`: pending, running, finished in the last day |
//! | `DELETE .../sessions/{session}/schedules/{id}` | 204; 404 `no_schedule` if none is pending |
//!
//! Metrics: `agent_host_schedules_pending{plugin}`, `agent_host_scheduled_runs_total{plugin,outcome}`
//! (`done`, `retry`, `failed`, `deferred`, `lost`), `agent_host_scheduled_late_total{plugin}`
//! and `agent_host_schedule_lag_seconds{plugin}` (due to started).

use std::sync::Arc;

use agent_host::{RunOutcome, ScheduleRun, Scheduling};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Json, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::body;
use super::metrics::PluginLabel;
use crate::views::{now_ms, schedule_json};

/// The routes, added to the API's.
pub(super) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .route(
            "/v1/plugins/{plugin}/sessions/{session}/schedules",
            post(add).get(list),
        )
        .route(
            "/v1/plugins/{plugin}/sessions/{session}/schedules/{id}",
            delete(cancel),
        )
}

/// Runs the due scheduled turns of `app`'s plugins until the server stops, each
/// for the tenant of the first `[[token]]` that may call its plugin.
pub(super) fn start(app: &Arc<App>) {
    let tenants = app.clone();
    let observed = app.clone();
    let options = Scheduling::default()
        .with_tenants(move |plugin| {
            let index = tenants
                .config
                .tokens
                .iter()
                .position(|t| t.allows(plugin))?;
            let (tenant, budget) = tenants.budgets.of(index);
            Some((tenant.to_owned(), budget))
        })
        .on_run(move |run| observed.metrics.schedules.run(run));
    let host = app.host.clone();
    tokio::spawn(async move { host.run_schedules(options).await });
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    input: String,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    at: Option<u64>,
}

async fn add(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    _: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let body: AddBody = body::json(&app, body).await?;
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message);
    let at = match (body.at, body.delay) {
        (Some(at), None) => at,
        (None, Some(delay)) => {
            let delay = humantime::parse_duration(&delay).map_err(|e| {
                invalid(format!(
                    "delay {delay:?}: {e} (for example \"90s\", \"10m\", \"2h\")"
                ))
            })?;
            now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
        }
        _ => {
            return Err(invalid(
                "give either \"delay\" (\"10m\") or \"at\" (unix ms)".into(),
            ));
        }
    };
    let added = app
        .host
        .add_schedule(&plugin, &session, at, body.input)
        .await?;
    let answer = json!({ "id": added.id, "at": added.at_ms });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn list(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let found = app.host.schedules(&plugin, &session).await?;
    let schedules: Vec<Value> = found.iter().map(schedule_json).collect();
    Ok(Json(json!({ "schedules": schedules })).into_response())
}

async fn cancel(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path((plugin, session, id)) = path?;
    match app
        .host
        .cancel_schedule(&plugin, Some(&session), &id)
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_schedule",
            format!("session {session:?} has no pending schedule {id:?}"),
        )),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    plugin: String,
    outcome: &'static str,
}

/// The scheduled turns' metrics.
pub(super) struct ScheduleMetrics {
    pub(super) pending: Family<PluginLabel, Gauge>,
    runs: Family<RunLabels, Counter>,
    late: Family<PluginLabel, Counter>,
    lag: Family<PluginLabel, Histogram>,
}

impl ScheduleMetrics {
    /// The metrics, registered in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            pending: Family::default(),
            runs: Family::default(),
            late: Family::default(),
            lag: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
        };
        registry.register(
            "schedules_pending",
            "Pending scheduled turns by plugin (running ones included)",
            metrics.pending.clone(),
        );
        registry.register(
            "scheduled_runs",
            "Runs of scheduled turns by plugin and outcome (done, retry, failed, deferred, lost)",
            metrics.runs.clone(),
        );
        registry.register(
            "scheduled_late",
            "Scheduled turns that started long after they were due (every server was down or busy)",
            metrics.late.clone(),
        );
        registry.register(
            "schedule_lag_seconds",
            "From when a scheduled turn was due to when it started",
            metrics.lag.clone(),
        );
        metrics
    }

    fn run(&self, run: &ScheduleRun) {
        let outcome = match run.outcome {
            RunOutcome::Done => "done",
            RunOutcome::Retry => "retry",
            RunOutcome::Failed => "failed",
            RunOutcome::Deferred => "deferred",
            _ => "lost",
        };
        let plugin = PluginLabel {
            plugin: run.plugin.clone(),
        };
        self.runs
            .get_or_create(&RunLabels {
                plugin: run.plugin.clone(),
                outcome,
            })
            .inc();
        if run.late {
            self.late.get_or_create(&plugin).inc();
        }
        self.lag
            .get_or_create(&plugin)
            .observe(run.lag.as_secs_f64());
    }
}
