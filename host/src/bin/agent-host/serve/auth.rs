//! Bearer tokens: which tenant is calling, and which plugins it may call; and the
//! operator's tokens for `/admin`.
//!
//! [`require`] is a layer over every `/v1` route, and [`require_admin`] over every
//! `/admin` route, so they run before any handler, and so before a byte of the
//! request's body is read: a caller without a known token gets 401 at once,
//! whatever it sends after the head and however slowly. A tenant's token never
//! opens `/admin`, an admin token never opens `/v1`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use agent_host::Budget;
use agent_host::config_file::TokenSection;

use super::App;
use super::api_error::ApiError;
use super::loaded::{Loaded, digest};

/// The caller of a `/v1` request: its `[[token]]` in the config that was served
/// when the request came (see `loaded.rs`), put in the request by [`require`].
#[derive(Clone)]
pub(super) struct Caller {
    /// The token's index in `loaded`'s config.
    pub(super) index: usize,
    pub(super) loaded: Arc<Loaded>,
}

impl Caller {
    /// The caller's `[[token]]`.
    pub(super) fn token(&self) -> &TokenSection {
        self.loaded.token(self.index)
    }

    /// The caller's tenant and its model budget.
    pub(super) fn tenant_budget(&self) -> (&str, Budget) {
        self.loaded.budgets.of(self.index)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// Without [`require`] in front of the route there is no caller: 401 rather
    /// than a route that forgot its token check.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(unauthorized)
    }
}

/// The layer of the `/v1` routes: 401 without a known token, 404 `unknown_plugin`
/// if the path names a plugin the token may not call; otherwise the request goes
/// on with its [`Caller`]. A refused request's body is never read, and its
/// connection is closed after the answer (hyper closes a connection whose
/// request body was not read to its end).
pub(super) async fn require(
    State(app): State<Arc<App>>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    // A path segment that is not UTF-8 names no plugin: the handler answers 400
    // `invalid_argument` for it, after the token was checked here.
    let plugin = params
        .as_ref()
        .ok()
        .and_then(|p| p.iter().find(|(name, _)| *name == "plugin"))
        .map(|(_, value)| value);
    match authorize(&app, request.headers(), plugin) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or unknown bearer token",
    )
}

/// Checks the bearer token for `plugin`: 401 without a known token, 404 if it may
/// not call `plugin`.
fn authorize(app: &App, headers: &HeaderMap, plugin: Option<&str>) -> Result<Caller, ApiError> {
    let presented = bearer(headers)?;
    let loaded = app.loaded();
    let index = loaded.token_index(&presented).ok_or_else(unauthorized)?;
    // A plugin this token may not call is, to this token, a plugin that does not
    // exist: the same 404 either way, so no tenant can probe another's plugin ids.
    if let Some(plugin) = plugin
        && !loaded.token(index).allows(plugin)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_plugin",
            format!("no plugin {plugin:?} that this token may call"),
        ));
    }
    Ok(Caller { index, loaded })
}

/// The SHA-256 of the request's bearer token, or 401. Tokens are compared by
/// digest: the time taken says nothing about the secrets.
fn bearer(headers: &HeaderMap) -> Result<[u8; 32], ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(unauthorized)?;
    Ok(digest(presented.trim()))
}

/// The operator calling an `/admin` route: the `name` of its `[[admin]]`.
#[derive(Clone, Debug)]
pub(super) struct Admin(pub(super) String);

/// The layer of the `/admin` routes: 401 without a known `[[admin]]` token (a
/// config without `[[admin]]` has no `/admin` at all: every request gets 401).
pub(super) async fn require_admin(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Response {
    let admin = bearer(request.headers()).and_then(|presented| {
        app.loaded()
            .admin(&presented)
            .map(|name| Admin(name.to_string()))
            .ok_or_else(unauthorized)
    });
    match admin {
        Ok(admin) => {
            request.extensions_mut().insert(admin);
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Admin>()
            .cloned()
            .ok_or_else(unauthorized)
    }
}
