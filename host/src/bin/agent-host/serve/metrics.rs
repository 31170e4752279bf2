//! What `serve` counts: turns by outcome, latencies, and every store call's time
//! (model calls: `model_metrics.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_host::OutboundEvent;
use agent_host::keys::{Name, Namespace};
use agent_host::store::{
    Claims, Commit, Entry, Finish, KeyPage, Page, Schedule, Snapshot, StoredVersion, Usage,
};
use agent_host::{ModelCount, Periods, Spender, StateStore, StoreError};
use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::Instrument;

use super::model_metrics::ModelMetrics;
use super::schedule_metrics::ScheduleMetrics;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutboundLabels {
    pub(super) plugin: String,
    pub(super) origin: String,
    pub(super) outcome: String,
}

pub(super) struct Metrics {
    pub(super) registry: Registry,
    pub(super) outbound: Family<OutboundLabels, Counter>,
    pub(super) outbound_seconds: Family<PluginLabel, Histogram>,
    /// Turns run again after a conflict (a turn's outbound requests are sent again).
    pub(super) retries: Counter,
    /// The host's conflict count already added to `retries`.
    pub(super) retries_seen: std::sync::atomic::AtomicU64,
    pub(super) turns: Family<TurnLabels, Counter>,
    pub(super) turn_seconds: Family<PluginLabel, Histogram>,
    pub(super) instances: Gauge,
    pub(super) waiting_for_core: Gauge,
    /// What each plugin keeps, as its quota counts it.
    pub(super) stored_bytes: Family<PluginLabel, Gauge>,
    pub(super) sessions: Family<PluginLabel, Gauge>,
    /// When the two above were last read from the store.
    pub(super) usage_refreshed: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Tokens and requests of metered model calls.
    pub(super) model: ModelMetrics,
    /// Scheduled turns.
    pub(super) schedules: ScheduleMetrics,
}

pub(super) fn latency_histogram() -> Histogram {
    // 100 us .. ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Metrics {
    pub(super) fn new(store_seconds: Family<OpLabel, Histogram>) -> Self {
        // Each worker of `serve --workers` answers /metrics with its own counts:
        // labelled, so a scrape of one worker never looks like a counter reset.
        let mut registry = match super::workers::number() {
            Some(n) => Registry::with_prefix_and_labels(
                "agent_host",
                [(
                    std::borrow::Cow::Borrowed("worker"),
                    std::borrow::Cow::Owned(n.to_string()),
                )]
                .into_iter(),
            ),
            None => Registry::with_prefix("agent_host"),
        };
        let turns = Family::<TurnLabels, Counter>::default();
        let turn_seconds =
            Family::<PluginLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let instances = Gauge::default();
        let waiting_for_core = Gauge::default();
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
        registry.register(
            "turns_waiting_for_core",
            "Turns whose guest code is ready to run and waits for a core now (see [server] max_queue_delay)",
            waiting_for_core.clone(),
        );
        let outbound = Family::<OutboundLabels, Counter>::default();
        let outbound_seconds =
            Family::<PluginLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let retries = Counter::default();
        registry.register(
            "outbound_requests",
            "Plugins' HTTP requests by plugin, allowed origin and outcome (ok, denied, limit, budget, timeout, error)",
            outbound.clone(),
        );
        registry.register(
            "outbound_request_duration_seconds",
            "Time to the response head of plugins' HTTP requests",
            outbound_seconds.clone(),
        );
        registry.register(
            "turn_retries",
            "Turns run again after a conflict (their outbound requests were sent again)",
            retries.clone(),
        );
        let stored_bytes = Family::<PluginLabel, Gauge>::default();
        let sessions = Family::<PluginLabel, Gauge>::default();
        registry.register(
            "plugin_stored_bytes",
            "Bytes a plugin keeps in the store, as its quota counts them (refreshed at most every 10 s)",
            stored_bytes.clone(),
        );
        registry.register(
            "plugin_sessions",
            "Live sessions of a plugin, as its quota counts them (refreshed at most every 10 s)",
            sessions.clone(),
        );
        let model = ModelMetrics::register(&mut registry);
        let schedules = ScheduleMetrics::register(&mut registry);
        Self {
            registry,
            model,
            schedules,
            stored_bytes,
            sessions,
            usage_refreshed: tokio::sync::Mutex::new(None),
            outbound,
            outbound_seconds,
            retries,
            retries_seen: std::sync::atomic::AtomicU64::new(0),
            turns,
            turn_seconds,
            instances,
            waiting_for_core,
        }
    }
}

impl Metrics {
    /// Counts one outbound request.
    pub(super) fn outbound(&self, event: &OutboundEvent) {
        self.outbound
            .get_or_create(&OutboundLabels {
                plugin: event.plugin.clone(),
                origin: event.origin.clone(),
                outcome: event.outcome.into(),
            })
            .inc();
        self.outbound_seconds
            .get_or_create(&PluginLabel {
                plugin: event.plugin.clone(),
            })
            .observe(event.duration.as_secs_f64());
    }

    /// Brings `turn_retries` up to the host's conflict count.
    pub(super) fn sync_retries(&self, conflicts: u64) {
        let seen = self
            .retries_seen
            .fetch_max(conflicts, std::sync::atomic::Ordering::Relaxed);
        if conflicts > seen {
            self.retries.inc_by(conflicts - seen);
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
        // A span in traces for a call of a traced request or turn, none for the
        // probes' and the schedule loop's calls (each would be a trace).
        // Without traces the span is disabled at its call site, and the current
        // context is not looked up at every store call.
        let span = tracing::info_span!(target: agent_host::trace::TARGET, "store", op);
        let traced = !span.is_disabled()
            && opentelemetry::Context::map_current(|cx| {
                opentelemetry::trace::TraceContextExt::has_active_span(cx)
            });
        let span = if traced { span } else { tracing::Span::none() };
        let out = call.instrument(span).await;
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
    async fn items_from(
        &self,
        ns: &Namespace,
        session: &Name,
        start: u64,
        count: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.time(
            "items_from",
            self.inner.items_from(ns, session, start, count),
        )
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
    async fn usage(&self, ns: &Namespace) -> Result<Usage, StoreError> {
        self.time("usage", self.inner.usage(ns)).await
    }
    async fn get_many(
        &self,
        ns: &Namespace,
        keys: &[Name],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.time("get_many", self.inner.get_many(ns, keys)).await
    }
    async fn list_bucket(
        &self,
        ns: &Namespace,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, StoreError> {
        self.time(
            "list_bucket",
            self.inner.list_bucket(ns, bucket, after, limit),
        )
        .await
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
    async fn add_model_usage(
        &self,
        spenders: &[Spender],
        periods: &Periods,
        count: &ModelCount,
    ) -> Result<(), StoreError> {
        let call = self.inner.add_model_usage(spenders, periods, count);
        self.time("add_model_usage", call).await
    }
    async fn model_usage(
        &self,
        spender: &Spender,
        periods: &Periods,
    ) -> Result<[ModelCount; 2], StoreError> {
        self.time("model_usage", self.inner.model_usage(spender, periods))
            .await
    }
    async fn versions(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<StoredVersion>, StoreError> {
        self.time("versions", self.inner.versions(ns, session))
            .await
    }
    async fn append_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        events: Vec<Vec<u8>>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let call = self.inner.append_events(ns, session, id, events, ttl);
        self.time("append_events", call).await
    }
    async fn read_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let call = self.inner.read_events(ns, session, id, from);
        self.time("read_events", call).await
    }
    async fn claim_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let call = self.inner.claim_idempotency(ns, session, key, claim, ttl);
        self.time("claim_idempotency", call).await
    }
    async fn release_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
    ) -> Result<(), StoreError> {
        let call = self.inner.release_idempotency(ns, session, key, claim);
        self.time("release_idempotency", call).await
    }
    async fn drop_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
    ) -> Result<(), StoreError> {
        self.time("drop_events", self.inner.drop_events(ns, session, id))
            .await
    }
    fn schedule_buckets(&self) -> u32 {
        self.inner.schedule_buckets()
    }
    async fn claim_schedules(
        &self,
        ns: &Namespace,
        bucket: u32,
        lease: Duration,
        limit: u32,
        claim: &str,
    ) -> Result<Claims, StoreError> {
        let call = self.inner.claim_schedules(ns, bucket, lease, limit, claim);
        self.time("claim_schedules", call).await
    }
    async fn finish_schedule(
        &self,
        ns: &Namespace,
        schedule: &Schedule,
        claim: &str,
        finish: Finish,
    ) -> Result<bool, StoreError> {
        let call = self.inner.finish_schedule(ns, schedule, claim, finish);
        self.time("finish_schedule", call).await
    }
    async fn schedule(&self, ns: &Namespace, id: &str) -> Result<Option<Schedule>, StoreError> {
        self.time("schedule", self.inner.schedule(ns, id)).await
    }
    async fn session_schedules(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<Schedule>, StoreError> {
        let call = self.inner.session_schedules(ns, session);
        self.time("session_schedules", call).await
    }
    async fn count_schedules(&self, ns: &Namespace) -> Result<u64, StoreError> {
        self.time("count_schedules", self.inner.count_schedules(ns))
            .await
    }
}

/// Counts a turn's outcome and time in the metrics.
pub(super) fn record_turn(
    app: &super::App,
    plugin: String,
    outcome: &Result<agent_host::TurnAnswer, agent_host::TurnError>,
    started: std::time::Instant,
) {
    let kind = match outcome {
        Ok(answer) if answer.replayed => "replayed",
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    // Unknown plugins are not counted: their ids come from the caller.
    if matches!(outcome, Err(agent_host::TurnError::UnknownPlugin(_))) {
        return;
    }
    app.metrics
        .turns
        .get_or_create(&TurnLabels {
            plugin: plugin.clone(),
            outcome: kind.into(),
        })
        .inc();
    app.metrics
        .turn_seconds
        .get_or_create(&PluginLabel { plugin })
        .observe(started.elapsed().as_secs_f64());
}
