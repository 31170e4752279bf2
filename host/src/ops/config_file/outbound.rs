//! A plugin's `[[plugin.outbound]]` entries: the origins it may reach and the
//! secret headers the host adds, whose `${env:NAME}` parts are read from the host's
//! environment when the file is loaded.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::config::Meter;
use crate::config::outbound::{AllowedOrigin, OutboundError, SecretHeader};

/// One `[[plugin.outbound]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OutboundSection {
    /// `scheme://host[:port]`, `*.name` in the host, or `*` (with
    /// `allow_any_origin = true` on the plugin).
    pub origin: Spanned<String>,
    /// Header name to value template (`"Bearer ${env:LLM_API_KEY}"`).
    #[serde(default)]
    secret_headers: BTreeMap<String, Spanned<String>>,
    /// `openai` or `anthropic`: the origin is a model endpoint whose answers are
    /// metered (`AllowedOrigin::with_meter`).
    #[serde(default)]
    meter: Option<Spanned<String>>,
    /// The origin with its headers resolved, once the file is checked.
    #[serde(skip)]
    pub(super) resolved: Option<AllowedOrigin>,
    /// Why a header could not be resolved (a variable is not set), with the place.
    #[serde(skip)]
    pub(super) unresolved: Option<String>,
}

impl OutboundSection {
    /// Parses the origin and resolves the headers with `env`. `Err((offset,
    /// reason))` for a mistake in the file; a variable that is not set is kept in
    /// `unresolved` (only the server needs it).
    pub(super) fn resolve(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        place: impl Fn(usize, &str) -> String,
    ) -> Result<(), (usize, String)> {
        let mut origin = AllowedOrigin::parse(self.origin.get_ref())
            .map_err(|e| (self.origin.span().start, e))?;
        if let Some(meter) = &self.meter {
            let parsed = Meter::parse(meter.get_ref()).ok_or_else(|| {
                let why = format!("meter {:?}: \"openai\" or \"anthropic\"", meter.get_ref());
                (meter.span().start, why)
            })?;
            origin = origin.with_meter(parsed);
        }
        if origin.is_any() && !self.secret_headers.is_empty() {
            // Checked before the values are read: whether or not the variables are
            // set, the key must not go to any origin the plugin names.
            let error = OutboundError::SecretHeadersOnAnyOrigin;
            return Err((self.origin.span().start, error.to_string()));
        }
        for (name, template) in &self.secret_headers {
            let start = template.span().start;
            let value = match expand(template.get_ref(), env) {
                Ok(value) => value,
                Err(Expand::Unset(var)) => {
                    self.unresolved.get_or_insert_with(|| {
                        place(
                            start,
                            &format!(
                                "secret header {name} of {}: environment variable {var} is not set",
                                self.origin.get_ref()
                            ),
                        )
                    });
                    continue;
                }
                Err(Expand::Bad(why)) => {
                    return Err((start, format!("secret header {name}: {why}")));
                }
            };
            let header = SecretHeader::new(name, &value).map_err(|e| (start, e))?;
            origin = origin
                .with_secret_header(header)
                .map_err(|e| (start, e.to_string()))?;
        }
        self.resolved = Some(origin);
        Ok(())
    }
}

impl SecretHeader {
    /// The header `name` whose value is `template` with every `${env:NAME}` part
    /// read through `env` (as a `[[plugin.outbound]]`'s `secret_headers` are),
    /// for a tool that takes its allow-list elsewhere than from a file. An error
    /// names the header and the variable, never the value.
    pub fn from_template(
        name: &str,
        template: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let value = match expand(template, &env) {
            Ok(value) => value,
            Err(Expand::Unset(var)) => {
                return Err(format!(
                    "secret header {name}: environment variable {var} is not set"
                ));
            }
            Err(Expand::Bad(why)) => return Err(format!("secret header {name}: {why}")),
        };
        SecretHeader::new(name, &value)
    }
}

enum Expand {
    Unset(String),
    Bad(String),
}

/// `template` with every `${env:NAME}` replaced by the variable's value.
fn expand(template: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, Expand> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Expand::Bad("a ${ without its }".into()))?;
        let name = after[..end].strip_prefix("env:").ok_or_else(|| {
            Expand::Bad(format!(
                "${{{}}}: only ${{env:NAME}} is known",
                &after[..end]
            ))
        })?;
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Expand::Bad(format!(
                "{name:?} is not an environment variable name"
            )));
        }
        match env(name) {
            Some(value) if !value.is_empty() => out.push_str(&value),
            _ => return Err(Expand::Unset(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Expand, expand};
    use crate::ops::config_file::ConfigFile;

    /// Secret headers on the origin `*` stop the load, pointing at the origin's
    /// line, whether or not their variables are set, and without their values.
    #[test]
    fn secret_headers_on_any_origin_are_refused_with_their_place() {
        // Cargo.toml stands in for a wasm file that exists.
        let text = r#"
[[plugin]]
id = "open"
wasm = "Cargo.toml"
prefix = "tenant-a"
allow_any_origin = true
[[plugin.outbound]]
origin = "*"
secret_headers = { Authorization = "Bearer ${env:KEY}" }
"#;
        let set = |name: &str| (name == "KEY").then(|| "s3cret-value".to_string());
        let unset = |_: &str| None;
        for error in [
            ConfigFile::parse(Path::new("./conf.toml"), text, None, set).unwrap_err(),
            ConfigFile::parse(Path::new("./conf.toml"), text, None, unset).unwrap_err(),
        ] {
            let error = error.to_string();
            assert!(
                error.contains("./conf.toml:8:10: plugin \"open\": outbound origin \"*\" cannot have secret_headers"),
                "{error}"
            );
            assert!(!error.contains("s3cret"), "{error}");
        }
        // Without the headers, `*` loads.
        let open = text.replace(
            "secret_headers = { Authorization = \"Bearer ${env:KEY}\" }",
            "",
        );
        ConfigFile::parse(Path::new("./conf.toml"), &open, None, unset).unwrap();
    }

    #[test]
    fn templates_expand_environment_variables() {
        let env = |name: &str| (name == "KEY").then(|| "s3cret".to_string());
        assert!(matches!(expand("Bearer ${env:KEY}", &env), Ok(v) if v == "Bearer s3cret"));
        assert!(matches!(expand("plain", &env), Ok(v) if v == "plain"));
        assert!(matches!(expand("${env:NOPE}", &env), Err(Expand::Unset(v)) if v == "NOPE"));
        assert!(matches!(expand("${KEY}", &env), Err(Expand::Bad(_))));
        assert!(matches!(expand("${env:KEY", &env), Err(Expand::Bad(_))));
        assert!(matches!(expand("${env:1X}", &env), Err(Expand::Bad(_))));
    }
}
