//! Loading the config file's plugins, at start and again on a reload (SIGHUP or
//! `POST /admin/reload`), without a restart.
//!
//! ## A reload
//! - The file is read and checked again; a file that fails to load changes
//!   nothing (the error names file:line).
//! - A plugin whose component file (by SHA-256) and config are unchanged stays as
//!   it is. A new one is compiled (or taken from the cache), a changed file is
//!   compiled again, a changed config alone (limits, outbound, quota, env...)
//!   reuses the compiled component. Every one is described before any is
//!   installed; then all are swapped in, and removed ones out, at once.
//! - A plugin that fails to load fails the whole reload: nothing changes. With
//!   `server.start_with_failed_plugins`, it is reported instead and the rest
//!   applies (a plugin loaded before keeps its old version).
//! - Turns in flight finish on the version they started on; new turns get the
//!   new one. Tokens, tenants' limits and budgets change for new requests.
//! - `[store]`, `[pricing]`, `[telemetry]` and the `[server]` settings the server was started
//!   with (listen, workers, connections, cache, instance slots...) need a
//!   restart: a reload that changes them says so, and keeps serving with the
//!   old ones. `max_input`, `body_timeout`, `stream_ttl`, `stream_buffer` apply.
//! - One reload runs at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use agent_host::Price;
use agent_host::config_file::{
    ConfigFile, PluginSection, ServerSection, StoreSection, TelemetrySection,
};
use agent_host::{Host, PreparedPlugin};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::App;
use super::loaded::{Loaded, LoadedPlugin};

/// What a load or reload did.
#[derive(Debug, Default, Serialize)]
pub(super) struct Report {
    /// Plugins that were not loaded before, by id.
    pub(super) added: Vec<String>,
    /// Plugins whose component or config changed.
    pub(super) changed: Vec<String>,
    /// Plugins no longer in the file.
    pub(super) removed: Vec<String>,
    /// Plugins left as they were.
    pub(super) unchanged: Vec<String>,
    /// Plugins that failed to load, and why (only kept with
    /// `start_with_failed_plugins`; otherwise they fail the load).
    pub(super) failed: BTreeMap<String, String>,
    /// Settings of the file that differ from those the server was started with
    /// (they apply only at the next start).
    pub(super) restart_needed: Vec<String>,
    /// Plugins compiled, and taken from the cache.
    #[serde(skip)]
    pub(super) compiled: usize,
    #[serde(skip)]
    pub(super) cached: usize,
}

/// Why nothing changed: one problem per line.
#[derive(Debug)]
pub(super) struct Refused(pub(super) Vec<String>);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// Loads `config`'s plugins onto `host` (replacing what `previous` loaded), all
/// or nothing unless the file allows failed plugins.
pub(super) async fn load(
    host: &Host,
    config: ConfigFile,
    previous: Option<&Loaded>,
) -> Result<(Loaded, Report), Refused> {
    for (a, b, prefix) in config.shared_prefixes() {
        tracing::warn!(
            first = %a,
            second = %b,
            %prefix,
            "two plugins share a prefix: they read and write the same sessions and values \
             and share one quota"
        );
    }
    let mut report = Report::default();
    let mut prepared: Vec<PreparedPlugin> = Vec::new();
    let mut plugins = BTreeMap::new();
    let mut problems = Vec::new();
    for section in &config.plugins {
        let id = section.id.get_ref().clone();
        let before = previous.and_then(|p| p.plugins.get(&id));
        match prepare(host, section, before).await {
            // Unchanged only when it was loaded before.
            Ok(Prepared::Unchanged(before)) => {
                report.unchanged.push(id.clone());
                plugins.insert(id, before);
            }
            Ok(Prepared::New(plugin, digest)) => {
                let info = plugin.info().clone();
                if info.from_cache {
                    report.cached += 1;
                } else {
                    report.compiled += 1;
                }
                match before {
                    Some(_) => report.changed.push(id.clone()),
                    None => report.added.push(id.clone()),
                }
                let loaded_at = SystemTime::now();
                let record = LoadedPlugin {
                    digest,
                    loaded_at,
                    info,
                };
                plugins.insert(id, record);
                prepared.push(*plugin);
            }
            Err(reason) => {
                tracing::error!(plugin = %id, %reason, "plugin not loaded");
                if let Some(before) = before {
                    plugins.insert(id.clone(), before.clone());
                }
                let place = config.place(section.wasm.span().start);
                problems.push(format!("{place}: plugin {id:?}: {reason}"));
                report.failed.insert(id, reason);
            }
        }
    }
    if !problems.is_empty() && !config.server.start_with_failed_plugins {
        return Err(Refused(problems));
    }
    let removed: Vec<&str> = previous
        .into_iter()
        .flat_map(|p| p.plugins.keys())
        .filter(|id| config.plugin(id).is_none())
        .map(String::as_str)
        .collect();
    report.removed = host.install_plugins(prepared, &removed);
    let failed = report.failed.clone();
    Ok((Loaded::new(config, plugins, failed, previous), report))
}

enum Prepared {
    Unchanged(LoadedPlugin),
    New(Box<PreparedPlugin>, String),
}

/// The plugin of `section` ready to install, or `Unchanged` (with its record)
/// when `before` is it.
async fn prepare(
    host: &Host,
    section: &PluginSection,
    before: Option<&LoadedPlugin>,
) -> Result<Prepared, String> {
    let id = section.id.get_ref();
    let path = section.wasm.get_ref();
    let wasm = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let digest = hex(&Sha256::digest(&wasm));
    let config = section.config();
    // The same file as the loaded plugin's: its record, and its compiled code.
    let same_file = before.filter(|b| b.digest == digest);
    let result = match (same_file, host.plugin_config(id)) {
        (Some(before), Some(loaded)) if loaded == config => {
            return Ok(Prepared::Unchanged(before.clone()));
        }
        (Some(_), Some(_)) => host.prepare_reconfigured(id, config).await,
        _ => host.prepare_plugin(config, wasm).await,
    };
    let plugin = result.map_err(|e| match e {
        agent_host::Error::Plugin { reason, .. } => reason,
        other => other.to_string(),
    })?;
    Ok(Prepared::New(Box::new(plugin), digest))
}

/// Reads the config file again and applies it to `app`; `why` says what asked
/// (logged). The old config keeps serving if it fails.
pub(super) async fn reload(app: &Arc<App>, why: &str) -> Result<Report, Refused> {
    let _one_at_a_time = app.reloading.lock().await;
    tracing::info!(why, path = %app.path.display(), "reloading the config");
    let outcome = async {
        let config = ConfigFile::load(&app.path).map_err(|e| Refused(vec![e.to_string()]))?;
        let missing = config.missing_secrets();
        if !missing.is_empty() {
            return Err(Refused(missing));
        }
        if config.tokens.is_empty() {
            return Err(Refused(vec![format!(
                "{}: no [[token]]: every request to a plugin would be refused; add one",
                config.path.display()
            )]));
        }
        let previous = app.loaded();
        load(&app.host, config, Some(&previous)).await
    }
    .await;
    match outcome {
        Ok((loaded, mut report)) => {
            report.restart_needed = app.started.restart_needed(&loaded.config);
            app.replace(loaded);
            for setting in &report.restart_needed {
                tracing::warn!(%setting, "changed, but applies only at the next start");
            }
            tracing::info!(
                added = report.added.len(),
                changed = report.changed.len(),
                removed = report.removed.len(),
                unchanged = report.unchanged.len(),
                failed = report.failed.len(),
                "config reloaded"
            );
            Ok(report)
        }
        Err(refused) => {
            tracing::error!(error = %refused, "config not reloaded: the old one keeps serving");
            Err(refused)
        }
    }
}

/// The settings the server runs with since its start, which only a restart
/// changes.
pub(super) struct Started {
    store: StoreSection,
    server: ServerSection,
    prices: BTreeMap<String, Price>,
    telemetry: TelemetrySection,
}

impl Started {
    pub(super) fn of(config: &ConfigFile) -> Self {
        Self {
            store: config.store.clone(),
            server: config.server.clone(),
            prices: config.prices.clone(),
            telemetry: config.telemetry.clone(),
        }
    }

    /// The settings of `new` that differ from those the server runs with.
    pub(super) fn restart_needed(&self, new: &ConfigFile) -> Vec<String> {
        let old = self;
        let mut changed = Vec::new();
        if old.store != new.store {
            changed.push("[store]".to_string());
        }
        if old.prices != new.prices {
            changed.push("[pricing]".to_string());
        }
        if old.telemetry != new.telemetry {
            changed.push("[telemetry]".to_string());
        }
        let (o, n): (&ServerSection, &ServerSection) = (&old.server, &new.server);
        let fixed = [
            ("listen", o.listen != n.listen),
            ("workers", o.workers != n.workers),
            ("max_connections", o.max_connections != n.max_connections),
            ("header_timeout", o.header_timeout != n.header_timeout),
            ("idle_timeout", o.idle_timeout != n.idle_timeout),
            ("shutdown_grace", o.shutdown_grace != n.shutdown_grace),
            ("cache_dir", o.cache_dir != n.cache_dir),
            ("cache_max", o.cache_max != n.cache_max),
            ("instance_slots", o.instance_slots != n.instance_slots),
            ("keep_resident", o.keep_resident != n.keep_resident),
            ("max_queue_delay", o.max_queue_delay != n.max_queue_delay),
        ];
        changed.extend(
            fixed
                .iter()
                .filter(|(_, differs)| *differs)
                .map(|(name, _)| format!("[server] {name}")),
        );
        changed
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
