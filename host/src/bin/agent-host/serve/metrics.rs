//! What `serve` counts: turns by outcome, latencies, and every store call's time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_host::keys::{Name, Namespace};
use agent_host::store::{Commit, Entry, Page, Snapshot};
use agent_host::{StateStore, StoreError};
use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TurnLabels {
    pub(super) plugin: String,
    pub(super) outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PluginLabel {
    pub(super) plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OpLabel {
    pub(super) op: String,
}

pub(super) struct Metrics {
    pub(super) registry: Registry,
    pub(super) turns: Family<TurnLabels, Counter>,
    pub(super) turn_seconds: Family<PluginLabel, Histogram>,
    pub(super) instances: Gauge,
}

pub(super) fn latency_histogram() -> Histogram {
    // 100 us .. ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Metrics {
    pub(super) fn new(store_seconds: Family<OpLabel, Histogram>) -> Self {
        let mut registry = Registry::with_prefix("agent_host");
        let turns = Family::<TurnLabels, Counter>::default();
        let turn_seconds =
            Family::<PluginLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let instances = Gauge::default();
        registry.register(
            "turns",
            "Turns by plugin and outcome (ok or the error kind)",
            turns.clone(),
        );
        registry.register(
            "turn_duration_seconds",
            "Turn latency, retries included",
            turn_seconds.clone(),
        );
        registry.register(
            "store_call_duration_seconds",
            "Latency of store calls by operation",
            store_seconds,
        );
        registry.register("instances", "Plugin instances alive now", instances.clone());
        Self {
            registry,
            turns,
            turn_seconds,
            instances,
        }
    }
}

/// A store that records the latency of every call.
pub(super) struct Metered {
    pub(super) inner: Arc<dyn StateStore>,
    pub(super) seconds: Family<OpLabel, Histogram>,
}

impl Metered {
    async fn time<T>(&self, op: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.seconds
            .get_or_create(&OpLabel { op: op.into() })
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

#[async_trait]
impl StateStore for Metered {
    async fn snapshot(
        &self,
        ns: &Namespace,
        session: &Name,
        tail: u32,
    ) -> Result<Snapshot, StoreError> {
        self.time("snapshot", self.inner.snapshot(ns, session, tail))
            .await
    }
    async fn load(&self, ns: &Namespace, session: &Name) -> Result<Option<Entry>, StoreError> {
        self.time("load", self.inner.load(ns, session)).await
    }
    async fn items(
        &self,
        ns: &Namespace,
        session: &Name,
        last: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.time("items", self.inner.items(ns, session, last))
            .await
    }
    async fn ttl(&self, ns: &Namespace, session: &Name) -> Result<Option<Duration>, StoreError> {
        self.time("ttl", self.inner.ttl(ns, session)).await
    }
    async fn list_sessions(
        &self,
        ns: &Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        self.time("list_sessions", self.inner.list_sessions(ns, cursor, limit))
            .await
    }
    async fn get(&self, ns: &Namespace, key: &Name) -> Result<Option<Vec<u8>>, StoreError> {
        self.time("get", self.inner.get(ns, key)).await
    }
    async fn count_values(&self, ns: &Namespace) -> Result<u64, StoreError> {
        self.time("count_values", self.inner.count_values(ns)).await
    }
    async fn commit(&self, ns: &Namespace, commit: Commit) -> Result<(), StoreError> {
        self.time("commit", self.inner.commit(ns, commit)).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.time("ping", self.inner.ping()).await
    }
}
