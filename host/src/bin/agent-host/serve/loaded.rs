//! [`Loaded`]: the config file as the server serves it right now, one value that a
//! reload replaces whole (`reload.rs`). A request takes it once, when its token is
//! checked, and keeps it to its end: a request never sees a token of one config
//! and a limit of another.

use std::collections::BTreeMap;
use std::time::SystemTime;

use agent_host::PluginInfo;
use agent_host::config_file::{ConfigFile, TokenSection};

use sha2::{Digest, Sha256};

use super::tenants::TenantLimits;
use crate::budgets::TokenBudgets;

pub(super) struct Loaded {
    pub(super) config: ConfigFile,
    /// SHA-256 of each token's secret, and the token's entry index.
    pub(super) tokens: Vec<([u8; 32], usize)>,
    /// SHA-256 of each `[[admin]]` secret, and the admin's name.
    pub(super) admins: Vec<([u8; 32], String)>,
    /// The turns each tenant has in flight, for those with a limit.
    pub(super) tenants: TenantLimits,
    /// Each token's tenant and the tenant's model budget.
    pub(super) budgets: TokenBudgets,
    /// The plugins loaded from this config, by id.
    pub(super) plugins: BTreeMap<String, LoadedPlugin>,
    /// The plugins of this config that are not loaded, and why (only with
    /// `server.start_with_failed_plugins`).
    pub(super) failed: BTreeMap<String, String>,
}

/// SHA-256 of a token's secret: tokens are compared by digest, so the time a
/// comparison takes says nothing about the secrets.
pub(super) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// What the server knows of a loaded plugin besides what the host keeps.
#[derive(Clone)]
pub(super) struct LoadedPlugin {
    /// SHA-256 of its component file, hex.
    pub(super) digest: String,
    /// When this version was loaded.
    pub(super) loaded_at: SystemTime,
    /// What it said about itself.
    pub(super) info: PluginInfo,
}

impl Loaded {
    /// `config` as served, with `plugins` loaded and `failed` not; `previous`
    /// (the config it replaces) hands on the tenants' counts of turns in flight.
    pub(super) fn new(
        config: ConfigFile,
        plugins: BTreeMap<String, LoadedPlugin>,
        failed: BTreeMap<String, String>,
        previous: Option<&Loaded>,
    ) -> Self {
        let tokens = config
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (digest(t.secret()), i))
            .collect();
        let admins = config
            .admins
            .iter()
            .map(|a| (digest(a.secret()), a.name.clone()))
            .collect();
        let tenants = TenantLimits::new(&config.tokens, previous.map(|p| &p.tenants));
        let budgets = TokenBudgets::new(&config.tokens);
        Self {
            tokens,
            admins,
            tenants,
            budgets,
            plugins,
            failed,
            config,
        }
    }

    /// Token `index`.
    pub(super) fn token(&self, index: usize) -> &TokenSection {
        &self.config.tokens[index]
    }

    /// The index of the token whose secret has SHA-256 `presented`.
    pub(super) fn token_index(&self, presented: &[u8; 32]) -> Option<usize> {
        self.tokens
            .iter()
            .find(|(d, _)| d == presented)
            .map(|(_, i)| *i)
    }

    /// The name of the admin whose secret has SHA-256 `presented`.
    pub(super) fn admin(&self, presented: &[u8; 32]) -> Option<&str> {
        self.admins
            .iter()
            .find(|(d, _)| d == presented)
            .map(|(_, name)| name.as_str())
    }
}
