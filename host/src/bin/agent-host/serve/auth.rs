//! Bearer tokens: which tenant is calling, and which plugins it may call.

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::App;
use super::api_error::ApiError;

pub(super) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Checks the bearer token for `plugin`: 401 without a known token, 404 if it may
/// not call `plugin`. Returns the token's tenant.
pub(super) fn authorize(
    app: &App,
    headers: &HeaderMap,
    plugin: Option<&str>,
) -> Result<usize, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(unauthorized)?;
    // Comparing digests: the time taken says nothing about the secrets.
    let presented = digest(presented.trim());
    let index = app
        .tokens
        .iter()
        .find(|(d, _)| *d == presented)
        .map(|(_, i)| *i)
        .ok_or_else(unauthorized)?;
    // A plugin this token may not call is, to this token, a plugin that does not
    // exist: the same 404 either way, so no tenant can probe another's plugin ids.
    if let Some(plugin) = plugin
        && !app.config.tokens[index].allows(plugin)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_plugin",
            format!("no plugin {plugin:?} that this token may call"),
        ));
    }
    Ok(index)
}
