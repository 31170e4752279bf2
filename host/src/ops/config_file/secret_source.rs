//! Where a `[[token]]`'s or `[[admin]]`'s secret comes from: `secret` (in the
//! file), `secret_env` (a variable of the environment the process started with)
//! or `secret_file` (a file read at each load, so a reload picks up a new or
//! rotated token without a restart; relative to the config file).

use std::path::Path;

use super::sections::Secret;

/// What a section's secret resolved to.
pub(super) enum Source {
    /// The secret (from the file, a variable or a secret file).
    Found(Secret),
    /// Not available here (a variable not set, a file not readable): only the
    /// server needs it (`ConfigFile::require_secrets`); the reason names it.
    Missing(String),
}

/// Resolves one of `secret`, `secret_env` and `secret_file` of `who`; `Err` when
/// none or several are given.
pub(super) fn resolve(
    who: &str,
    (secret, var, file): (Option<&Secret>, Option<&str>, Option<&Path>),
    dir: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Source, String> {
    match (secret, var, file) {
        (Some(secret), None, None) => Ok(Source::Found(secret.clone())),
        (None, Some(var), None) => Ok(match env(var) {
            Some(value) if !value.is_empty() => Source::Found(Secret(value)),
            _ => Source::Missing(format!("{who}: environment variable {var} is not set")),
        }),
        (None, None, Some(file)) => {
            let path = dir.join(file);
            Ok(match std::fs::read_to_string(&path) {
                // A trailing newline (`echo token > file`) is no part of it.
                Ok(text) if !text.trim().is_empty() => Source::Found(Secret(text.trim().into())),
                Ok(_) => Source::Missing(format!("{who}: {} is empty", path.display())),
                Err(e) => Source::Missing(format!(
                    "{who}: cannot read secret_file {}: {e}",
                    path.display()
                )),
            })
        }
        _ => Err(format!(
            "{who}: give exactly one of secret, secret_env and secret_file"
        )),
    }
}
