//! `agent-host usage`: what the configured plugins keep in the store and spent on
//! model calls, and what each tenant spent, read from the store without running
//! anything. `agent-host sessions --plugin P usage` prints one plugin's part.
//!
//! ```json
//! {"plugins": {"chat": {"sessions", "bytes", "quota", "model": {"day", "month", "budget"}}},
//!  "tenants": {"a": {"model": {"day", "month", "budget"}}}}
//! ```
//!
//! The same shapes as `GET /v1/plugins/{plugin}/usage` and `GET /v1/usage`
//! (`views.rs`). With `--plugin`, that plugin and the tenants whose tokens may
//! call it.

use std::path::PathBuf;
use std::time::SystemTime;

use agent_host::config_file::ConfigFile;
use agent_host::{Budget, Periods, Spender, StateStore};
use serde_json::json;

use crate::outln;
use crate::views::{self, Spend};

#[derive(clap::Args)]
pub(crate) struct UsageArgs {
    /// The config file that names the plugins, the tokens and the store.
    #[arg(long, short, env = "AGENT_HOST_CONFIG")]
    config: PathBuf,
    /// Only this plugin (as in the config file), and the tenants that may call it.
    #[arg(long, short)]
    plugin: Option<String>,
}

pub(crate) async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let file = ConfigFile::load(&args.config)?;
    if let Some(plugin) = &args.plugin
        && file.plugin(plugin).is_none()
    {
        anyhow::bail!("the config file has no plugin {plugin:?}");
    }
    let route = match &args.plugin {
        Some(plugin) => format!("GET /v1/plugins/{plugin}/usage and GET /v1/usage"),
        None => "GET /v1/usage".to_string(),
    };
    let store = crate::sessions::open_store(&file, &route)?;
    let store = store.as_ref();
    // One moment for every figure, so all of them are of the same day.
    let periods = Periods::at(SystemTime::now());
    let mut plugins = serde_json::Map::new();
    for section in &file.plugins {
        let id = section.id.get_ref();
        if args.plugin.as_ref().is_some_and(|p| p != id) {
            continue;
        }
        let body = plugin_json(&file, store, id, &periods).await?;
        plugins.insert(id.clone(), body);
    }
    let mut tenants = serde_json::Map::new();
    for (tenant, budget) in crate::budgets::by_tenant(&file.tokens) {
        let calls = |p: &String| {
            file.tokens
                .iter()
                .any(|t| t.tenant.get_ref() == &tenant && t.allows(p))
        };
        if args.plugin.as_ref().is_some_and(|p| !calls(p)) {
            continue;
        }
        let spend = tenant_spend(&file, store, &tenant, budget, &periods).await?;
        tenants.insert(tenant, json!({ "model": views::model_json(&spend) }));
    }
    let body = json!({ "plugins": plugins, "tenants": tenants });
    outln!("{}", serde_json::to_string_pretty(&body)?)
}

/// What `plugin` keeps against its quota and spent on model calls against its
/// budget, as `GET /v1/plugins/{plugin}/usage` answers it.
pub(crate) async fn plugin_json(
    file: &ConfigFile,
    store: &dyn StateStore,
    plugin: &str,
    periods: &Periods,
) -> anyhow::Result<serde_json::Value> {
    let Some(section) = file.plugin(plugin) else {
        anyhow::bail!("the config file has no plugin {plugin:?}");
    };
    let config = section.config();
    let ns = file.namespace(plugin)?;
    let usage = store.usage(&ns).await?;
    let spender = Spender::Plugin {
        ns,
        plugin: plugin.to_string(),
    };
    let spend = spend(store, &spender, config.budget, periods).await?;
    Ok(views::usage_json(&usage, &config.quota, &spend))
}

/// What `tenant` spent on model calls across its plugins.
async fn tenant_spend(
    file: &ConfigFile,
    store: &dyn StateStore,
    tenant: &str,
    budget: Budget,
    periods: &Periods,
) -> anyhow::Result<Spend> {
    let spender = Spender::Tenant {
        root: file.store.root.clone(),
        tenant: tenant.to_string(),
    };
    spend(store, &spender, budget, periods).await
}

async fn spend(
    store: &dyn StateStore,
    spender: &Spender,
    budget: Budget,
    periods: &Periods,
) -> anyhow::Result<Spend> {
    let [day, month] = store.model_usage(spender, periods).await?;
    Ok(Spend {
        day,
        month,
        periods: periods.clone(),
        budget,
    })
}
