//! The operator's config file (TOML): how the host is backed (`[store]`, `[server]`),
//! what each plugin may do (`[[plugin]]`), and who may call which plugin
//! (`[[token]]`).
//!
//! ```toml
//! [store]
//! # url = "redis://127.0.0.1:6379"   # REDIS_URL overrides it; none: embedded store
//! path = "state.redb"                 # the embedded store's file
//! root = "agent"
//!
//! [server]
//! listen = "127.0.0.1:8080"
//!
//! [[plugin]]
//! id = "chat"
//! wasm = "plugins/chat_memory.wasm"
//! prefix = "tenant-a"
//! default_ttl = "7d"
//! sliding_ttl = true
//! limits = { memory = "64MiB", deadline = "10s" }
//!
//! [[token]]
//! tenant = "tenant-a"
//! secret_env = "TENANT_A_TOKEN"
//! plugins = ["chat"]
//! ```
//!
//! Unknown fields are errors, durations are written like `30s` or `7d`, sizes like
//! `64MiB`, and relative paths are relative to the file. Every error names the
//! file, line and column, and never shows a secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::config::{Limits, PluginConfig};
use crate::error::Error;
use crate::host::{DEFAULT_ROOT, HostBuilder};
use crate::store::{EmbeddedStore, RedisOptions, RedisStore, StateStore};

/// A parsed and checked config file.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The store.
    pub store: StoreSection,
    /// The HTTP server of `agent-host serve`.
    pub server: ServerSection,
    /// The plugins, in file order.
    pub plugins: Vec<PluginSection>,
    /// The API tokens.
    pub tokens: Vec<TokenSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    server: ServerSection,
    #[serde(default, rename = "plugin")]
    plugins: Vec<PluginSection>,
    #[serde(default, rename = "token")]
    tokens: Vec<TokenSection>,
}

/// `[store]`: where state lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreSection {
    /// A Redis URL; `REDIS_URL` in the environment overrides it. Without one the
    /// embedded store is used.
    #[serde(default)]
    pub url: Option<Secret>,
    /// The embedded store's file. Default: `state.redb` next to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The first segment of every key. Default `agent`.
    #[serde(default = "default_root")]
    pub root: String,
    /// Upper bound on one Redis call. Default 3 s.
    #[serde(default = "default_op_timeout", deserialize_with = "duration")]
    pub op_timeout: Duration,
    /// PEM file of the CA of the Redis server's certificate (`rediss://`).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate for Redis (with `tls_key`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Replicas that must have a commit before a turn is reported committed (Redis
    /// `WAIT`). Default 0.
    #[serde(default)]
    pub wait_replicas: u32,
    /// How long a commit waits for them. Default 1 s.
    #[serde(default = "default_wait_timeout", deserialize_with = "duration")]
    pub wait_timeout: Duration,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: None,
            path: None,
            root: default_root(),
            op_timeout: default_op_timeout(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            wait_replicas: 0,
            wait_timeout: default_wait_timeout(),
        }
    }
}

/// `[server]`: the HTTP server of `agent-host serve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to listen on. Default `127.0.0.1:8080`; port 0 picks a free one.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where compiled plugins are cached. Default: `cache` next to the config file.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Largest turn input accepted. Default 1 MiB.
    #[serde(default = "default_max_input")]
    pub max_input: ByteSize,
    /// How long a shutdown waits for turns in flight. Default 30 s.
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Plugin instances that may run at once. Default 256.
    #[serde(default = "default_slots")]
    pub instance_slots: u32,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            cache_dir: None,
            max_input: default_max_input(),
            shutdown_grace: default_grace(),
            instance_slots: default_slots(),
        }
    }
}

/// One `[[plugin]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PluginSection {
    /// The id clients call it by.
    pub id: Spanned<String>,
    /// The component file.
    pub wasm: Spanned<PathBuf>,
    /// The key prefix of its state (the tenant).
    pub prefix: Spanned<String>,
    /// Session lifetime after the last write; none: forever.
    #[serde(default, deserialize_with = "optional_duration")]
    pub default_ttl: Option<Duration>,
    /// Reads extend the session's lifetime too.
    #[serde(default)]
    pub sliding_ttl: bool,
    /// Limits; what is not given keeps its default.
    #[serde(default)]
    pub limits: LimitsSection,
}

/// A plugin's `limits` table (see [`Limits`] for the defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct LimitsSection {
    pub memory: Option<ByteSize>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub deadline: Option<Duration>,
    pub max_value: Option<ByteSize>,
    pub max_history_items: Option<u64>,
    pub max_items_per_call: Option<u32>,
    pub max_output: Option<ByteSize>,
    pub max_stdio: Option<ByteSize>,
    pub max_concurrent_turns: Option<u32>,
    pub max_values: Option<u64>,
    pub max_turn_bytes: Option<ByteSize>,
}

/// One `[[token]]`: a bearer token and the plugins it may call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenSection {
    /// Who holds it (shown in logs instead of the token).
    pub tenant: Spanned<String>,
    /// The token itself. Prefer `secret_env`, which keeps it out of the file.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The environment variable that holds the token.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Plugin ids it may call; `"*"` for all.
    pub plugins: Vec<Spanned<String>>,
    /// Why the secret is missing (its variable is not set), with the position.
    #[serde(skip)]
    unresolved: Option<String>,
}

impl TokenSection {
    /// True if this token may call `plugin`.
    pub fn allows(&self, plugin: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p.get_ref() == "*" || p.get_ref() == plugin)
    }

    /// The token, from the file or its environment variable (checked at load).
    pub fn secret(&self) -> &str {
        self.secret.as_ref().map_or("", |s| s.0.as_str())
    }
}

/// A string that is never printed: its `Debug` says `"<set>"`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<set>")
    }
}

fn default_root() -> String {
    DEFAULT_ROOT.into()
}
fn default_op_timeout() -> Duration {
    RedisOptions::default().op_timeout
}
fn default_wait_timeout() -> Duration {
    RedisOptions::default().wait_timeout
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_input() -> ByteSize {
    ByteSize::mib(1)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_slots() -> u32 {
    256
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}); write e.g. 30s, 10m, 7d"
        ))
    })
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Where in the file a span starts, as `line:column` (1-based).
fn position(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{column}")
}

impl ConfigFile {
    /// Reads, parses and checks the file at `path`, then applies `REDIS_URL` from
    /// the environment over `store.url`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
        let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
        Self::parse(path, &text, redis_url, |name| std::env::var(name).ok())
    }

    /// Parses `text` as if read from `path`; `redis_url` overrides `store.url` and
    /// `env` looks up `secret_env` variables.
    pub fn parse(
        path: &Path,
        text: &str,
        redis_url: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let place = |offset: usize, reason: &str| {
            format!("{}:{}: {reason}", path.display(), position(text, offset))
        };
        let at = |offset: usize, reason: &str| Error::Config(place(offset, reason));
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim())
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut file = Self {
            path: path.to_path_buf(),
            store: raw.store,
            server: raw.server,
            plugins: raw.plugins,
            tokens: raw.tokens,
        };
        if let Some(url) = redis_url {
            file.store.url = Some(Secret(url));
        }
        file.store.path = Some(
            dir.join(
                file.store
                    .path
                    .as_deref()
                    .unwrap_or(Path::new("state.redb")),
            ),
        );
        if file.store.tls_cert.is_some() != file.store.tls_key.is_some() {
            return Err(Error::Config(format!(
                "{}: [store] tls_cert and tls_key go together",
                path.display()
            )));
        }
        for p in [
            &mut file.store.tls_ca,
            &mut file.store.tls_cert,
            &mut file.store.tls_key,
        ]
        .into_iter()
        .flatten()
        {
            *p = dir.join(&*p);
        }
        file.server.cache_dir = Some(
            dir.join(
                file.server
                    .cache_dir
                    .as_deref()
                    .unwrap_or(Path::new("cache")),
            ),
        );

        let mut ids = std::collections::HashSet::new();
        for plugin in &mut file.plugins {
            let id = plugin.id.get_ref().clone();
            if !ids.insert(id.clone()) {
                return Err(at(
                    plugin.id.span().start,
                    &format!("plugin id {id:?} is used twice"),
                ));
            }
            let wasm = dir.join(plugin.wasm.get_ref());
            if !wasm.is_file() {
                return Err(at(
                    plugin.wasm.span().start,
                    &format!("plugin {id:?}: no file at {}", wasm.display()),
                ));
            }
            *plugin.wasm.get_mut() = wasm;
            // The same checks the host makes when it loads the plugin, made early so
            // they can point into the file.
            let config = plugin.config();
            config
                .namespace(&file.store.root)
                .map_err(|e| at(plugin.prefix.span().start, &e.to_string()))?;
        }
        let mut secrets = std::collections::HashSet::new();
        for token in &mut file.tokens {
            let start = token.tenant.span().start;
            let tenant = token.tenant.get_ref().clone();
            match (&token.secret, &token.secret_env) {
                (Some(_), None) => {}
                (None, Some(var)) => match env(var) {
                    Some(value) if !value.is_empty() => token.secret = Some(Secret(value)),
                    // Only the server needs the secrets (see `require_secrets`); the
                    // admin commands read the same file without them.
                    _ => {
                        token.unresolved = Some(place(
                            start,
                            &format!("token of {tenant:?}: environment variable {var} is not set"),
                        ));
                    }
                },
                _ => {
                    return Err(at(
                        start,
                        &format!("token of {tenant:?}: give exactly one of secret and secret_env"),
                    ));
                }
            }
            if token.unresolved.is_some() {
                // Checked by `require_secrets`.
            } else if token.secret().len() < 16 {
                return Err(at(
                    start,
                    &format!("token of {tenant:?}: the secret must be at least 16 characters"),
                ));
            }
            if token.unresolved.is_none() && !secrets.insert(token.secret().to_string()) {
                return Err(at(
                    start,
                    &format!("token of {tenant:?}: the same secret is used twice"),
                ));
            }
            if let Some(unknown) = token
                .plugins
                .iter()
                .find(|p| p.get_ref() != "*" && !ids.contains(p.get_ref()))
            {
                return Err(at(
                    unknown.span().start,
                    &format!(
                        "token of {tenant:?}: no plugin {:?} in this file",
                        unknown.get_ref()
                    ),
                ));
            }
        }
        Ok(file)
    }

    /// Fails if a token's `secret_env` variable was not set when the file was read
    /// (the server needs every secret; the admin commands need none).
    pub fn require_secrets(&self) -> Result<(), Error> {
        match self.tokens.iter().find_map(|t| t.unresolved.clone()) {
            Some(reason) => Err(Error::Config(reason)),
            None => Ok(()),
        }
    }

    /// The store the file asks for: Redis if a URL is set, else the embedded file.
    /// Must be called inside a Tokio runtime.
    pub fn open_store(&self) -> Result<Arc<dyn StateStore>, Error> {
        match &self.store.url {
            Some(url) => {
                let store = &self.store;
                let options = RedisOptions {
                    op_timeout: store.op_timeout,
                    tls_ca: store.tls_ca.clone(),
                    tls_client_cert: store.tls_cert.clone().zip(store.tls_key.clone()),
                    wait_replicas: store.wait_replicas,
                    wait_timeout: store.wait_timeout,
                    ..RedisOptions::default()
                };
                Ok(Arc::new(RedisStore::open(url.expose(), options)?))
            }
            None => {
                let path = self
                    .store
                    .path
                    .clone()
                    .unwrap_or_else(|| "state.redb".into());
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                Ok(Arc::new(EmbeddedStore::open(path)?))
            }
        }
    }

    /// A host builder with the file's store settings and `store`.
    pub fn host_builder(&self, store: Arc<dyn StateStore>) -> HostBuilder {
        let mut builder = crate::Host::builder()
            .shared_store(store)
            .root(self.store.root.clone())
            .instance_slots(self.server.instance_slots);
        if let Some(dir) = &self.server.cache_dir {
            builder = builder.cache_dir(dir.clone());
        }
        builder
    }

    /// The namespace of plugin `id`'s state.
    pub fn namespace(&self, id: &str) -> Result<crate::keys::Namespace, Error> {
        let plugin = self
            .plugin(id)
            .ok_or_else(|| Error::UnknownPlugin(id.to_string()))?;
        plugin.config().namespace(&self.store.root)
    }

    /// The plugin with id `id`.
    pub fn plugin(&self, id: &str) -> Option<&PluginSection> {
        self.plugins.iter().find(|p| p.id.get_ref() == id)
    }
}

impl PluginSection {
    /// What the host needs to know about the plugin.
    pub fn config(&self) -> PluginConfig {
        let mut limits = Limits::default();
        let l = &self.limits;
        if let Some(v) = l.memory {
            limits.memory_bytes = v.as_u64();
        }
        if let Some(v) = l.deadline {
            limits.deadline = v;
        }
        if let Some(v) = l.max_value {
            limits.max_value_bytes = v.as_u64();
        }
        if let Some(v) = l.max_history_items {
            limits.max_history_items = v;
        }
        if let Some(v) = l.max_items_per_call {
            limits.max_items_per_call = v;
        }
        if let Some(v) = l.max_output {
            limits.max_output_bytes = v.as_u64();
        }
        if let Some(v) = l.max_stdio {
            limits.max_stdio_bytes = usize::try_from(v.as_u64()).unwrap_or(usize::MAX);
        }
        if let Some(v) = l.max_concurrent_turns {
            limits.max_concurrent_turns = v;
        }
        if let Some(v) = l.max_values {
            limits.max_values = v;
        }
        if let Some(v) = l.max_turn_bytes {
            limits.max_turn_bytes = v.as_u64();
        }
        PluginConfig::new(self.id.get_ref().clone(), self.prefix.get_ref().clone())
            .with_default_ttl(self.default_ttl)
            .with_sliding_ttl(self.sliding_ttl)
            .with_limits(limits)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::ConfigFile;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        let env = |name: &str| (name == "TOKEN_A").then(|| "aaaaaaaaaaaaaaaaaaaa".to_string());
        // Cargo.toml stands in for a wasm file that exists.
        let text = text.replace("WASM", "Cargo.toml");
        let file = ConfigFile::parse(Path::new("./conf.toml"), &text, None, env)
            .map_err(|e| e.to_string())?;
        file.require_secrets().map_err(|e| e.to_string())?;
        Ok(file)
    }

    const GOOD: &str = r#"
[store]
root = "r"

[[plugin]]
id = "chat"
wasm = "WASM"
prefix = "tenant-a"
default_ttl = "7d"
limits = { memory = "32MiB", deadline = "2s", max_value = "10KiB" }

[[token]]
tenant = "a"
secret_env = "TOKEN_A"
plugins = ["chat"]
"#;

    #[test]
    fn a_good_file_is_read_with_units_and_defaults() {
        let file = parse(GOOD).unwrap();
        let plugin = file.plugin("chat").unwrap().config();
        assert_eq!(plugin.limits.memory_bytes, 32 << 20);
        assert_eq!(plugin.limits.max_value_bytes, 10 << 10);
        assert_eq!(plugin.limits.deadline.as_secs(), 2);
        assert_eq!(plugin.default_ttl.unwrap().as_secs(), 7 * 24 * 3600);
        assert_eq!(plugin.limits.max_history_items, 10_000);
        assert!(file.tokens[0].allows("chat") && !file.tokens[0].allows("other"));
        assert_eq!(file.server.listen.port(), 8080);
        // The secret never shows in Debug output.
        assert!(!format!("{file:?}").contains("aaaa"));
    }

    #[test]
    fn a_missing_secret_fails_only_where_secrets_are_needed() {
        let text = GOOD
            .replace("TOKEN_A", "TOKEN_UNSET")
            .replace("WASM", "Cargo.toml");
        let file = ConfigFile::parse(Path::new("./conf.toml"), &text, None, |_| None).unwrap();
        assert!(file.plugin("chat").is_some());
        let err = file.require_secrets().unwrap_err().to_string();
        assert!(
            err.contains("conf.toml:13:10") && err.contains("TOKEN_UNSET is not set"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_reason() {
        let cases = [
            (
                GOOD.replace("root =", "rot ="),
                "conf.toml:3:1",
                "unknown field `rot`",
            ),
            (
                GOOD.replace("\"7d\"", "\"7 parsecs\""),
                "conf.toml:9:15",
                "not a duration",
            ),
            (GOOD.replace("\"32MiB\"", "\"lots\""), "conf.toml:10:21", ""),
            (
                GOOD.replace("\"WASM\"", "\"nope.wasm\""),
                "conf.toml:7:8",
                "no file at",
            ),
            (
                GOOD.replace("\"tenant-a\"", "\"a:b\""),
                "conf.toml:8:10",
                "prefix \"a:b\"",
            ),
            (
                GOOD.replace("[\"chat\"]", "[\"chta\"]"),
                "conf.toml:15:12",
                "no plugin \"chta\"",
            ),
            (
                GOOD.replace("TOKEN_A", "TOKEN_B"),
                "conf.toml:13:10",
                "TOKEN_B is not set",
            ),
            (
                GOOD.replace("secret_env = \"TOKEN_A\"", "secret = \"short\""),
                "conf.toml:13:10",
                "at least 16",
            ),
            (
                format!("{GOOD}\n[[plugin]]\nid = \"chat\"\nwasm = \"WASM\"\nprefix = \"b\"\n"),
                "conf.toml:18:6",
                "used twice",
            ),
        ];
        for (text, place, reason) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(place), "{err} (expected {place})");
            assert!(err.contains(reason), "{err} (expected {reason})");
        }
    }
}
