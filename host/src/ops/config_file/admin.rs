//! `[[admin]]`: the operator's bearer tokens for `agent-host serve`'s `/admin`
//! routes (reload the config, see what is loaded). They are apart from the
//! tenants' `[[token]]`s: a tenant token never opens `/admin`, an admin token never
//! runs a turn.
//!
//! ```toml
//! [[admin]]
//! name = "ops"                   # shown in logs instead of the token
//! secret_env = "AGENT_HOST_ADMIN_TOKEN"
//! ```

use serde::Deserialize;

use std::path::{Path, PathBuf};

use super::secret_source::{self, Source};
use super::sections::Secret;

/// One `[[admin]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AdminSection {
    /// Who holds it (logged instead of the token). Default `"admin"`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The token itself. Prefer `secret_env`, which keeps it out of the file.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The environment variable that holds the token.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// A file that holds the token, read at each load; relative to the config
    /// file.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Why the secret is missing (its variable is not set), with the position.
    #[serde(skip)]
    pub(super) unresolved: Option<String>,
}

impl AdminSection {
    /// The token, from the file or its environment variable (checked at load).
    pub fn secret(&self) -> &str {
        self.secret.as_ref().map_or("", Secret::expose)
    }

    /// Resolves the secret (`secret_source.rs`) and checks it; `place` turns a
    /// reason into one that names the section's position.
    pub(super) fn resolve(
        &mut self,
        dir: &Path,
        env: &impl Fn(&str) -> Option<String>,
        place: impl Fn(&str) -> String,
    ) -> Result<(), String> {
        let name = self.name.clone();
        let given = (
            self.secret.as_ref(),
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
        );
        match secret_source::resolve(&format!("admin {name:?}"), given, dir, env) {
            Ok(Source::Found(secret)) => self.secret = Some(secret),
            // As for `[[token]]`: only the server needs it (`require_secrets`).
            Ok(Source::Missing(reason)) => {
                self.unresolved = Some(place(&reason));
                return Ok(());
            }
            Err(reason) => return Err(place(&reason)),
        }
        if self.secret().len() < 16 {
            return Err(place(&format!(
                "admin {name:?}: the secret must be at least 16 characters"
            )));
        }
        Ok(())
    }
}

fn default_name() -> String {
    "admin".into()
}
