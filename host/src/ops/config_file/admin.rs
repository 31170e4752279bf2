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
    /// Why the secret is missing (its variable is not set), with the position.
    #[serde(skip)]
    pub(super) unresolved: Option<String>,
}

impl AdminSection {
    /// The token, from the file or its environment variable (checked at load).
    pub fn secret(&self) -> &str {
        self.secret.as_ref().map_or("", Secret::expose)
    }

    /// Resolves `secret_env` with `env` and checks the secret; `place` turns a
    /// reason into one that names the section's position.
    pub(super) fn resolve(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        place: impl Fn(&str) -> String,
    ) -> Result<(), String> {
        let name = self.name.clone();
        match (&self.secret, &self.secret_env) {
            (Some(_), None) => {}
            (None, Some(var)) => match env(var) {
                Some(value) if !value.is_empty() => self.secret = Some(Secret(value)),
                // As for `[[token]]`: only the server needs it (`require_secrets`).
                _ => {
                    self.unresolved = Some(place(&format!(
                        "admin {name:?}: environment variable {var} is not set"
                    )));
                    return Ok(());
                }
            },
            _ => {
                return Err(place(&format!(
                    "admin {name:?}: give exactly one of secret and secret_env"
                )));
            }
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
