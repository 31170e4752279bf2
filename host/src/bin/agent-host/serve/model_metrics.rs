//! The model calls' counters: tokens and requests of every metered model call,
//! fed by the host's `on_model_call` hook.
//!
//! - `agent_host_model_tokens_total{plugin,tenant,origin,model,kind="input|output"}`
//! - `agent_host_model_requests_total{plugin,tenant,origin,estimated="true|false"}`
//!
//! Every label is bounded: plugins, tenants and origins come from the config
//! file (`tenant` is `""` for a turn run for none), and `model`, which comes from
//! the model server's answer, is kept to [`MODELS_PER_PLUGIN`] distinct values
//! per plugin (the rest are counted as `other`), each at most [`MODEL_CHARS`]
//! characters of `A-Z a-z 0-9 . _ : / @ + -` (any other is `_`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use agent_host::ModelCall;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Distinct `model` label values per plugin; past them, `other`.
pub(super) const MODELS_PER_PLUGIN: usize = 32;
/// Characters of a `model` label value.
pub(super) const MODEL_CHARS: usize = 64;
/// The `model` of the calls past [`MODELS_PER_PLUGIN`].
const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TokenLabels {
    pub(super) plugin: String,
    pub(super) tenant: String,
    pub(super) origin: String,
    pub(super) model: String,
    pub(super) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) plugin: String,
    pub(super) tenant: String,
    pub(super) origin: String,
    pub(super) estimated: &'static str,
}

/// The two counters and the models seen per plugin.
pub(super) struct ModelMetrics {
    tokens: Family<TokenLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    models: Mutex<HashMap<String, HashSet<String>>>,
}

impl ModelMetrics {
    /// The counters, registered in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let tokens = Family::<TokenLabels, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "model_tokens",
            "Tokens of plugins' metered model calls by plugin, tenant, origin, model (at most 32 per plugin, then \"other\") and kind (input, output)",
            tokens.clone(),
        );
        registry.register(
            "model_requests",
            "Plugins' metered model calls by plugin, tenant, origin and whether their tokens are estimated (the answer carried no usage)",
            requests.clone(),
        );
        Self {
            tokens,
            requests,
            models: Mutex::default(),
        }
    }

    /// Counts one model call.
    pub(super) fn call(&self, call: &ModelCall) {
        let tenant = call.tenant.clone().unwrap_or_default();
        let model = self.model_label(&call.plugin, &call.model);
        for (kind, tokens) in [
            ("input", call.count.input_tokens),
            ("output", call.count.output_tokens),
        ] {
            self.tokens
                .get_or_create(&TokenLabels {
                    plugin: call.plugin.clone(),
                    tenant: tenant.clone(),
                    origin: call.origin.clone(),
                    model: model.clone(),
                    kind,
                })
                .inc_by(tokens);
        }
        let estimated = if call.count.estimated > 0 {
            "true"
        } else {
            "false"
        };
        self.requests
            .get_or_create(&RequestLabels {
                plugin: call.plugin.clone(),
                tenant,
                origin: call.origin.clone(),
                estimated,
            })
            .inc_by(call.count.requests);
    }

    /// `model` as a label value of `plugin`'s: shortened, its odd characters
    /// replaced, and `other` once the plugin has [`MODELS_PER_PLUGIN`] others.
    fn model_label(&self, plugin: &str, model: &str) -> String {
        let label: String = model
            .chars()
            .take(MODEL_CHARS)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._:/@+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        let seen = models.entry(plugin.to_string()).or_default();
        if seen.contains(&label) {
            return label;
        }
        if seen.len() >= MODELS_PER_PLUGIN {
            return OTHER.to_string();
        }
        seen.insert(label.clone());
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_bounded_per_plugin_and_in_length() {
        let metrics = ModelMetrics::register(&mut Registry::default());
        for i in 0..MODELS_PER_PLUGIN {
            assert_eq!(metrics.model_label("p", &format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(metrics.model_label("p", "one-too-many"), OTHER);
        // A model seen before keeps its label; another plugin has its own room.
        assert_eq!(metrics.model_label("p", "m0"), "m0");
        assert_eq!(metrics.model_label("q", "one-too-many"), "one-too-many");
        let long = "x".repeat(500);
        assert_eq!(metrics.model_label("q", &long).len(), MODEL_CHARS);
        assert_eq!(
            metrics.model_label("q", "gpt-4o\"}\nevil 1"),
            "gpt-4o___evil_1"
        );
        assert_eq!(
            metrics.model_label("q", "meta-llama/Llama-3.1-8B:q4@v2+x"),
            "meta-llama/Llama-3.1-8B:q4@v2+x"
        );
    }
}
