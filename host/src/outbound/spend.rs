//! A turn's model spend: the budgets its metered requests are checked against,
//! and where the tokens of each metered answer are counted (the store's counters
//! of the plugin and of the turn's tenant, the turn's total, the host's hook).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Budget, Pricing};
use crate::error::StoreError;
use crate::store::StateStore;
use crate::store::spend::{ModelCount, Periods, Spender};

/// The host's clock (injectable, so tests can move the day on).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// One metered model call, as the host's hook sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ModelCall {
    /// The plugin that made it.
    pub plugin: String,
    /// The turn's tenant, if the caller named one.
    pub tenant: Option<String>,
    /// The allowed origin it matched, as configured.
    pub origin: String,
    /// The model its answer named (`unknown` if none).
    pub model: String,
    /// Its tokens (one request).
    pub count: ModelCount,
}

/// Called once per metered model call (see `HostBuilder::on_model_call`).
pub type ModelObserver = Arc<dyn Fn(&ModelCall) + Send + Sync>;

/// A metered request about to go out, as an embedder's policy sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ModelRequest {
    /// The plugin sending it.
    pub plugin: String,
    /// The turn's tenant, if the caller named one.
    pub tenant: Option<String>,
    /// The allowed origin it matched, as configured.
    pub origin: String,
}

/// An embedder's own spend policy (see `HostBuilder::model_policy`): `Err(why)`
/// refuses the request as a spent budget does, with `why` as the reason.
pub type ModelPolicy = Arc<dyn Fn(&ModelRequest) -> Result<(), String> + Send + Sync>;

/// What a turn's metered requests are counted in and checked against.
pub(crate) struct TurnSpend {
    pub(crate) store: Arc<dyn StateStore>,
    /// The plugin first, then the tenant if the turn has one, each with its budget.
    pub(crate) spenders: Vec<(Spender, Budget)>,
    pub(crate) plugin: String,
    pub(crate) tenant: Option<String>,
    pub(crate) clock: Clock,
    pub(crate) observer: Option<ModelObserver>,
    pub(crate) policy: Option<ModelPolicy>,
    pub(crate) pricing: Arc<Pricing>,
    /// The turn's model calls so far.
    pub(crate) total: Mutex<ModelCount>,
    /// Counts on their way to the store, awaited before the turn answers.
    pub(crate) pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl TurnSpend {
    /// Why a request to `origin` (metered) may not go out now: the first budget
    /// spent, as "model budget spent (plugin chat: 100 of 100 tokens today)", or
    /// the embedder's policy's reason.
    pub(super) async fn refusal(&self, origin: &str) -> Result<Option<String>, StoreError> {
        if let Some(policy) = &self.policy {
            let request = ModelRequest {
                plugin: self.plugin.clone(),
                tenant: self.tenant.clone(),
                origin: origin.to_string(),
            };
            if let Err(why) = policy(&request) {
                return Ok(Some(why));
            }
        }
        // The turn's own earlier calls count: their counts are in the store first.
        self.settle().await;
        let periods = Periods::at((self.clock)());
        for (spender, budget) in &self.spenders {
            if budget.is_unlimited() {
                continue;
            }
            let [day, month] = self.store.model_usage(spender, &periods).await?;
            if let Some(spent) = budget.spent(&day, &month) {
                let whose = match spender {
                    Spender::Plugin { plugin, .. } => format!("plugin {plugin}"),
                    Spender::Tenant { tenant, .. } => format!("tenant {tenant}"),
                };
                return Ok(Some(format!("model budget spent ({whose}: {spent})")));
            }
        }
        Ok(None)
    }

    /// Counts one call: in the turn's total and the hook at once, in the store
    /// in the background (a failure is logged: the answer was already paid).
    pub(super) fn record(self: &Arc<Self>, origin: &str, model: Option<String>, count: ModelCount) {
        let name = model.as_deref().unwrap_or("");
        let cost = match self.pricing.price(name) {
            Some(price) => price.cost_micros(count.input_tokens, count.output_tokens),
            None if self.pricing.is_empty() => 0,
            None => {
                warn_unpriced(name);
                0
            }
        };
        let count = count.with_cost(cost);
        {
            let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
            *total = total.plus(&count);
        }
        let model = model.unwrap_or_else(|| "unknown".into());
        tracing::debug!(
            plugin = %self.plugin,
            origin,
            model = %model,
            input_tokens = count.input_tokens,
            output_tokens = count.output_tokens,
            estimated = count.estimated > 0,
            "model call metered"
        );
        if let Some(observer) = &self.observer {
            observer(&ModelCall {
                plugin: self.plugin.clone(),
                tenant: self.tenant.clone(),
                origin: origin.to_string(),
                model,
                count,
            });
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(plugin = %self.plugin, "a model call could not be counted: no runtime");
            return;
        };
        let spend = self.clone();
        let periods = Periods::at((self.clock)());
        let task = runtime.spawn(async move {
            let spenders: Vec<Spender> = spend.spenders.iter().map(|(s, _)| s.clone()).collect();
            if let Err(e) = spend.store.add_model_usage(&spenders, &periods, &count).await {
                tracing::warn!(plugin = %spend.plugin, error = %e, "a model call could not be counted in the store");
            }
        });
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Waits until every call counted so far is in the store, so a turn's tokens
    /// are there when it answers (and the next turn's budget check sees them).
    pub(crate) async fn settle(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for task in pending {
            let _ = task.await;
        }
    }

    /// The turn's model calls so far.
    pub(crate) fn total(&self) -> ModelCount {
        *self.total.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Warns once per model name (of at most 256) that it has no price.
fn warn_unpriced(model: &str) {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() >= 256 || seen.iter().any(|m| m == model) {
        return;
    }
    seen.push(model.to_string());
    tracing::warn!(
        model = %crate::guest_text::escaped(model, 128),
        "a metered model has no price in [pricing]: its calls cost 0 against budgets in US dollars"
    );
}
