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
//! Their metrics are in `schedule_metrics.rs`.

use std::sync::Arc;

use agent_host::Scheduling;
use agent_host::ops::schedules::Due;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Json, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::body;
use crate::views::schedule_json;

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
/// for the tenant of the first `[[token]]` that may call its plugin (in the
/// config served when the run starts: a reload applies to the next runs).
pub(super) fn start(app: &Arc<App>) {
    let tenants = app.clone();
    let observed = app.clone();
    let options = Scheduling::default()
        .with_tenants(move |plugin| {
            let loaded = tenants.loaded();
            let index = loaded.config.tokens.iter().position(|t| t.allows(plugin))?;
            let (tenant, budget) = loaded.budgets.of(index);
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
    let due = match (body.at, body.delay) {
        (Some(at), None) => Due::At(at),
        (None, Some(delay)) => Due::After(humantime::parse_duration(&delay).map_err(|e| {
            invalid(format!(
                "delay {delay:?}: {e} (for example \"90s\", \"10m\", \"2h\")"
            ))
        })?),
        _ => {
            return Err(invalid(
                "give either \"delay\" (\"10m\") or \"at\" (unix ms)".into(),
            ));
        }
    };
    let added = app
        .host
        .add_schedule(&plugin, &session, due, body.input)
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
