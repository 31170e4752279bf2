//! What a host's turns spend on their models: where a turn's metered calls are
//! counted (its trail across attempts: the spend and the journal of answers),
//! and what a plugin or tenant spent so far.

use std::sync::Arc;

use super::Host;
use crate::config::Budget;
use crate::error::Error;
use crate::outbound::TurnTrail;
use crate::outbound::journal::Journal;
use crate::outbound::spend::TurnSpend;
use crate::store::spend::{ModelCount, Periods, Spender};
use crate::turn::scope::PluginScope;

/// What a plugin or tenant spent on metered model calls, and its budget.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelSpend {
    /// Today (UTC).
    pub day: ModelCount,
    /// This month (UTC).
    pub month: ModelCount,
    /// The budget the counts are held to.
    pub budget: Budget,
    /// Which day and month (`d2026-12-05`, `m2026-12`).
    pub periods: Periods,
}

impl Host {
    /// What a turn's outbound requests leave across its attempts: the model
    /// spend and the journal of answers.
    pub(super) fn turn_trail(
        &self,
        scope: &Arc<PluginScope>,
        tenant: Option<(String, Budget)>,
    ) -> TurnTrail {
        TurnTrail {
            spend: self.turn_spend(scope, tenant),
            journal: Arc::new(Journal::new(scope.config.limits.max_response_bytes)),
        }
    }

    /// Where a turn's metered model calls are counted: the plugin, and the
    /// tenant if the turn names one, each with its budget.
    fn turn_spend(
        &self,
        scope: &Arc<PluginScope>,
        tenant: Option<(String, Budget)>,
    ) -> Arc<TurnSpend> {
        let config = &scope.config;
        let mut spenders = vec![(
            Spender::Plugin {
                ns: scope.ns.clone(),
                plugin: config.id.clone(),
            },
            config.budget,
        )];
        let name = tenant.as_ref().map(|(t, _)| t.clone());
        if let Some((tenant, budget)) = tenant {
            spenders.push((
                Spender::Tenant {
                    root: self.inner.root.clone(),
                    tenant,
                },
                budget,
            ));
        }
        Arc::new(TurnSpend {
            store: self.inner.store.clone(),
            spenders,
            plugin: config.id.clone(),
            tenant: name,
            clock: self.inner.clock.clone(),
            observer: self.inner.on_model_call.clone(),
            policy: self.inner.model_policy.clone(),
            pricing: self.inner.pricing.clone(),
            total: Default::default(),
            pending: Default::default(),
        })
    }

    /// The tokens the plugin spent on metered model calls today and this month
    /// (UTC, by the host's clock), and its budget.
    pub async fn model_usage(&self, plugin_id: &str) -> Result<ModelSpend, Error> {
        let scope = self.scope(plugin_id)?;
        let spender = Spender::Plugin {
            ns: scope.ns.clone(),
            plugin: scope.config.id.clone(),
        };
        self.spent(&spender, scope.config.budget).await
    }

    /// The tokens `tenant` spent on metered model calls today and this month,
    /// across its plugins (turns run with
    /// [`TurnOptions::with_tenant`](crate::TurnOptions::with_tenant)), with `budget`
    /// (the tenant's, which the host does not keep) alongside.
    pub async fn tenant_model_usage(
        &self,
        tenant: &str,
        budget: Budget,
    ) -> Result<ModelSpend, Error> {
        let spender = Spender::Tenant {
            root: self.inner.root.clone(),
            tenant: tenant.to_string(),
        };
        self.spent(&spender, budget).await
    }

    /// `spender`'s counters for today and this month, with `budget`.
    async fn spent(&self, spender: &Spender, budget: Budget) -> Result<ModelSpend, Error> {
        let periods = Periods::at((self.inner.clock)());
        let [day, month] = self.inner.store.model_usage(spender, &periods).await?;
        Ok(ModelSpend {
            day,
            month,
            budget,
            periods,
        })
    }
}
