//! The operator's routes, behind an `[[admin]]` token (`auth::require_admin`):
//!
//! | method and path | |
//! |---|---|
//! | `POST /admin/reload` | reloads the config file (`reload.rs`): 200 what changed; 400 `invalid_config` with every problem, and nothing changed |
//! | `GET /admin/config` | 200 what is loaded: plugins (ids, component digests, load times), failed plugins, tenants, settings the file changed that wait for a restart; never a secret |
//!
//! With `serve --workers N`, a reload asked of one worker reloads it and then
//! every worker (through the supervisor, as SIGHUP does); the answer is that
//! worker's.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::App;
use super::api_error::ApiError;
use super::auth::{self, Admin};
use super::reload;

/// The routes, behind the admin token check.
pub(super) fn routes(app: &Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/admin/reload", post(reload_config))
        .route("/admin/config", get(config))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            auth::require_admin,
        ))
}

async fn reload_config(State(app): State<Arc<App>>, admin: Admin) -> Response {
    let why = format!("POST /admin/reload by {}", admin.0);
    match reload::reload(&app, &why).await {
        Ok(report) => {
            super::workers::reload_the_others();
            axum::Json(json!({ "reloaded": true, "report": report })).into_response()
        }
        Err(refused) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            format!("nothing changed: {refused}"),
        )
        .into_response(),
    }
}

async fn config(State(app): State<Arc<App>>, _: Admin) -> Response {
    let loaded = app.loaded();
    let plugins: Vec<Value> = loaded
        .plugins
        .iter()
        .map(|(id, p)| {
            let section = loaded.config.plugin(id);
            json!({
                "id": id,
                "name": p.info.name,
                "version": p.info.version,
                "digest": format!("sha256:{}", p.digest),
                "wasm": section.map(|s| s.wasm.get_ref().display().to_string()),
                "prefix": section.map(|s| s.prefix.get_ref().clone()),
                "loaded_at": humantime::format_rfc3339_millis(p.loaded_at).to_string(),
                "from_cache": p.info.from_cache,
            })
        })
        .collect();
    let tokens: Vec<Value> = loaded
        .config
        .tokens
        .iter()
        .map(|t| {
            let plugins: Vec<&String> = t.plugins.iter().map(|p| p.get_ref()).collect();
            json!({
                "tenant": t.tenant.get_ref(),
                "plugins": plugins,
                "max_concurrent_turns": t.max_concurrent_turns,
            })
        })
        .collect();
    let admins: Vec<&String> = loaded.config.admins.iter().map(|a| &a.name).collect();
    let store = match loaded.config.store.url {
        Some(_) => "redis",
        None => "embedded",
    };
    axum::Json(json!({
        "path": loaded.config.path.display().to_string(),
        "store": store,
        "plugins": plugins,
        "failed": loaded.failed,
        "tokens": tokens,
        "admins": admins,
        "restart_needed": app.started.restart_needed(&loaded.config),
    }))
    .into_response()
}
