//! `agent-host check --config FILE` (and `serve --check`): everything `serve`
//! would need from a config, tried without serving. It reads and checks the file,
//! sees that every `secret_env` and `${env:...}` is set, compiles (or takes from
//! the cache) every plugin, checks it fits a world the host serves and describes
//! itself, and connects to the store. One line per problem, `file:line:column:
//! what` where the file says it; exit 0 only when there is none. An embedded
//! store file held by a running server is said so, and is no problem: the way
//! to change a running server is to check its new config, then reload.

use std::path::Path;
use std::time::Duration;

use agent_host::HostBuilder;
use agent_host::config_file::ConfigFile;

use crate::outln;

/// How long the store has to answer.
const STORE_WAIT: Duration = Duration::from_secs(5);

/// Checks the config at `path`; prints each problem, then a summary line.
pub(crate) async fn check(path: &Path) -> anyhow::Result<()> {
    // A file that does not parse has one problem, which already names its place.
    let config = ConfigFile::load(path)?;
    let mut problems = config.missing_secrets();
    // What `serve` refuses to start with, in `[telemetry]` or `OTEL_*`.
    if let Err(e) = crate::telemetry::Settings::from(&config, |name| std::env::var(name).ok()) {
        problems.push(format!("{}: [telemetry]: {e:#}", config.path.display()));
    }
    if config.tokens.is_empty() {
        problems.push(format!(
            "{}: no [[token]]: `serve` would refuse every request to a plugin",
            config.path.display()
        ));
    }
    let mut store_state = "the store answers";
    let store = match config.open_store() {
        Ok(store) => {
            match tokio::time::timeout(STORE_WAIT, store.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(store_problem(&config, &e.to_string())),
                Err(_) => problems.push(store_problem(
                    &config,
                    &format!("no answer in {}", humantime::format_duration(STORE_WAIT)),
                )),
            }
            Some(store)
        }
        // The embedded store's file is held by the server this config runs:
        // that is no problem of the config (check, then reload).
        Err(agent_host::Error::Store(agent_host::StoreError::InUse { path })) => {
            outln!(
                "{}: [store]: not checked: {} is open in a running server",
                config.path.display(),
                path.display()
            )?;
            store_state = "the store is in use by a running server";
            None
        }
        Err(e) => {
            problems.push(store_problem(&config, &e.to_string()));
            None
        }
    };
    // Plugins are described by running them, which needs a store: without one,
    // an empty embedded store in a temporary directory stands in.
    let scratch = tempfile::tempdir()?;
    let store = match store {
        Some(store) => store,
        None => std::sync::Arc::new(agent_host::EmbeddedStore::open(
            scratch.path().join("check.redb"),
        )?),
    };
    let host = HostBuilder::from_config_file(&config, store).build()?;
    let mut plugins = 0;
    for section in &config.plugins {
        let id = section.id.get_ref();
        let place = config.place(section.wasm.span().start);
        let loaded = match tokio::fs::read(section.wasm.get_ref()).await {
            Ok(wasm) => host.prepare_plugin(section.config(), wasm).await,
            Err(e) => {
                problems.push(format!("{place}: plugin {id:?}: cannot read the file: {e}"));
                continue;
            }
        };
        match loaded {
            Ok(plugin) => {
                plugins += 1;
                let info = plugin.info();
                tracing::info!(plugin = %id, name = %info.name, version = %info.version, "plugin loads");
            }
            Err(agent_host::Error::Plugin { reason, .. }) => {
                problems.push(format!("{place}: plugin {id:?}: {reason}"));
            }
            Err(e) => problems.push(format!("{place}: plugin {id:?}: {e}")),
        }
    }
    for (a, b, prefix) in config.shared_prefixes() {
        outln!(
            "{}: note: plugins {a:?} and {b:?} share prefix {prefix:?}: they read and write \
             the same sessions and values and share one quota; give each its own prefix \
             unless that is meant",
            config.path.display()
        )?;
    }
    for problem in &problems {
        outln!("{problem}")?;
    }
    if problems.is_empty() {
        outln!(
            "{}: ok ({plugins} plugins load, {store_state})",
            config.path.display()
        )?;
        return Ok(());
    }
    anyhow::bail!(
        "{}: {} problem{}",
        config.path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    )
}

/// A store problem, for the file's `[store]` (never with its URL, which may hold a
/// password).
fn store_problem(config: &ConfigFile, reason: &str) -> String {
    let which = match config.store.url {
        Some(_) => "Redis (store.url or REDIS_URL)".to_string(),
        None => format!(
            "the embedded store {}",
            config
                .store
                .path
                .as_deref()
                .unwrap_or(Path::new("state.redb"))
                .display()
        ),
    };
    format!(
        "{}: [store]: {which} does not answer: {reason}",
        config.path.display()
    )
}
