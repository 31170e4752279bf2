//! The operator's config file (TOML): how the host is backed (`[store]`, `[server]`),
//! what each plugin may do (`[[plugin]]`), who may call which plugin
//! (`[[token]]`), who may reload the config (`[[admin]]`), and where traces go
//! (`[telemetry]`, `telemetry.rs`).
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

mod admin;
mod budget;
mod outbound;
mod quota;
mod secret_source;
mod sections;
mod telemetry;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Price, Pricing};
use crate::error::Error;
use crate::store::{EmbeddedStore, RedisOptions, RedisStore, StateStore};

use self::secret_source::Source;

pub use self::admin::AdminSection;
pub use self::budget::BudgetSection;
pub use self::outbound::OutboundSection;
pub use self::quota::QuotaSection;
pub use self::sections::{
    LimitsSection, PluginSection, Secret, ServerSection, StoreSection, TokenSection,
};
pub use self::telemetry::TelemetrySection;

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
    /// The operator's tokens for `/admin`.
    pub admins: Vec<AdminSection>,
    /// Prices of model tokens by model name (`[pricing]`).
    pub prices: BTreeMap<String, Price>,
    /// Where the file's lines end, for positions (`ConfigFile::place`); not its
    /// text, which may hold secrets.
    newlines: Vec<usize>,
    /// Where `serve` sends traces (`[telemetry]`).
    pub telemetry: TelemetrySection,
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
    #[serde(default, rename = "admin")]
    admins: Vec<Spanned<AdminSection>>,
    #[serde(default)]
    pricing: BTreeMap<String, Spanned<PriceSection>>,
    #[serde(default)]
    telemetry: TelemetrySection,
}

/// One model's line of `[pricing]`: `"gpt-4o-mini" = { input = 0.15, output = 0.6 }`,
/// US dollars per million tokens.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a price: { input = <US dollars per million input tokens>, output = <per million output tokens> }"
)]
struct PriceSection {
    input: f64,
    output: f64,
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
        let mut prices = BTreeMap::new();
        for (model, price) in raw.pricing {
            let parsed = Price::per_million(price.get_ref().input, price.get_ref().output)
                .map_err(|why| at(price.span().start, &format!("pricing of {model:?}: {why}")))?;
            prices.insert(model, parsed);
        }
        let mut file = Self {
            path: path.to_path_buf(),
            store: raw.store,
            server: raw.server,
            plugins: raw.plugins,
            tokens: raw.tokens,
            admins: Vec::new(),
            prices,
            newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
            telemetry: raw.telemetry,
        };
        if let Some((offset, problem)) = file.telemetry.problem() {
            return Err(at(offset, &problem));
        }
        // A budget in dollars with nothing priced would never refuse anything.
        let in_usd = file
            .plugins
            .iter()
            .map(|p| (p.budget.in_usd(), p.id.span().start));
        let in_usd = in_usd.chain(
            file.tokens
                .iter()
                .map(|t| (t.budget.in_usd(), t.tenant.span().start)),
        );
        if let Some((_, at_offset)) = in_usd.into_iter().find(|(usd, _)| *usd)
            && file.prices.is_empty()
        {
            return Err(at(
                at_offset,
                "a budget in US dollars (usd_per_day, usd_per_month) needs a [pricing] table: \
                 without prices every call costs 0 and the budget never applies",
            ));
        }
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
        if let Some(problem) = file.server.problem() {
            return Err(Error::Config(format!(
                "{}: [server] {problem}",
                path.display()
            )));
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
            for outbound in &mut plugin.outbound {
                outbound
                    .resolve(&env, place)
                    .map_err(|(offset, reason)| at(offset, &format!("plugin {id:?}: {reason}")))?;
            }
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
            let given = (
                token.secret.as_ref(),
                token.secret_env.as_deref(),
                token.secret_file.as_deref(),
            );
            match secret_source::resolve(&format!("token of {tenant:?}"), given, dir, &env) {
                Ok(Source::Found(secret)) => token.secret = Some(secret),
                // Only the server needs the secrets (see `require_secrets`); the
                // admin commands read the same file without them.
                Ok(Source::Missing(reason)) => token.unresolved = Some(place(start, &reason)),
                Err(reason) => return Err(at(start, &reason)),
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
        for admin in raw.admins {
            let start = admin.span().start;
            let mut admin = admin.into_inner();
            admin
                .resolve(dir, &env, |reason| place(start, reason))
                .map_err(Error::Config)?;
            if admin.unresolved.is_none() && !secrets.insert(admin.secret().to_string()) {
                return Err(at(
                    start,
                    &format!(
                        "admin {:?}: its secret is used by another token; give it its own",
                        admin.name
                    ),
                ));
            }
            file.admins.push(admin);
        }
        Ok(file)
    }

    /// Fails if a `secret_env` or `${env:...}` variable was not set when the file
    /// was read (the server needs every secret; the admin commands need none).
    pub fn require_secrets(&self) -> Result<(), Error> {
        match self.missing_secrets().into_iter().next() {
            Some(reason) => Err(Error::Config(reason)),
            None => Ok(()),
        }
    }

    /// Every `secret_env` or `${env:...}` variable that was not set when the file
    /// was read, each as `file:line:column: what`.
    pub fn missing_secrets(&self) -> Vec<String> {
        let tokens = self.tokens.iter().filter_map(|t| t.unresolved.clone());
        let admins = self.admins.iter().filter_map(|a| a.unresolved.clone());
        let outbound = self
            .plugins
            .iter()
            .flat_map(|p| &p.outbound)
            .filter_map(|o| o.unresolved.clone());
        tokens.chain(admins).chain(outbound).collect()
    }

    /// `file:line:column` of byte `offset` of the file (a span's start).
    pub fn place(&self, offset: usize) -> String {
        let line = self.newlines.partition_point(|&n| n < offset);
        let start = if line == 0 {
            0
        } else {
            self.newlines[line - 1] + 1
        };
        let column = offset.saturating_sub(start) + 1;
        format!("{}:{}:{column}", self.path.display(), line + 1)
    }

    /// The `[pricing]` table as the host uses it.
    pub fn pricing(&self) -> Pricing {
        Pricing::new(self.prices.iter().map(|(m, p)| (m.clone(), *p)))
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

    /// The namespace of plugin `id`'s state.
    pub fn namespace(&self, id: &str) -> Result<crate::store::keys::Namespace, Error> {
        let plugin = self
            .plugin(id)
            .ok_or_else(|| Error::UnknownPlugin(id.to_string()))?;
        plugin.config().namespace(&self.store.root)
    }

    /// Pairs of plugins with different component files that share a `prefix`,
    /// as `(first id, second id, prefix)`: they read and write the same sessions
    /// and values and count against one quota. Legal (a tenant's agents may
    /// share its data), but seldom meant.
    pub fn shared_prefixes(&self) -> Vec<(String, String, String)> {
        let mut shared = Vec::new();
        for (i, a) in self.plugins.iter().enumerate() {
            for b in &self.plugins[i + 1..] {
                if a.prefix.get_ref() == b.prefix.get_ref() && a.wasm.get_ref() != b.wasm.get_ref()
                {
                    shared.push((
                        a.id.get_ref().clone(),
                        b.id.get_ref().clone(),
                        a.prefix.get_ref().clone(),
                    ));
                }
            }
        }
        shared
    }

    /// The plugin with id `id`.
    pub fn plugin(&self, id: &str) -> Option<&PluginSection> {
        self.plugins.iter().find(|p| p.id.get_ref() == id)
    }
}
