//! The scheduled turns' metrics, fed by the scheduler's `on_run` hook and, for
//! the pending count, read from the store when `/metrics` is scraped:
//!
//! - `agent_host_schedules_pending{plugin}`
//! - `agent_host_scheduled_runs_total{plugin,outcome}` (`done`, `retry`, `failed`,
//!   `deferred`, `lost`)
//! - `agent_host_scheduled_late_total{plugin}`
//! - `agent_host_schedule_lag_seconds{plugin}` (from due to started)

use agent_host::{RunOutcome, ScheduleRun};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ScheduleLabel {
    pub(super) plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    plugin: String,
    outcome: &'static str,
}

/// The scheduled turns' metrics.
pub(super) struct ScheduleMetrics {
    pub(super) pending: Family<ScheduleLabel, Gauge>,
    runs: Family<RunLabels, Counter>,
    late: Family<ScheduleLabel, Counter>,
    lag: Family<ScheduleLabel, Histogram>,
}

impl ScheduleMetrics {
    /// The metrics, registered in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            pending: Family::default(),
            runs: Family::default(),
            late: Family::default(),
            lag: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
        };
        registry.register(
            "schedules_pending",
            "Pending scheduled turns by plugin (running ones included)",
            metrics.pending.clone(),
        );
        registry.register(
            "scheduled_runs",
            "Runs of scheduled turns by plugin and outcome (done, retry, failed, deferred, lost)",
            metrics.runs.clone(),
        );
        registry.register(
            "scheduled_late",
            "Scheduled turns that started long after they were due (every server was down or busy)",
            metrics.late.clone(),
        );
        registry.register(
            "schedule_lag_seconds",
            "From when a scheduled turn was due to when it started",
            metrics.lag.clone(),
        );
        metrics
    }

    pub(super) fn run(&self, run: &ScheduleRun) {
        let outcome = match run.outcome {
            RunOutcome::Done => "done",
            RunOutcome::Retry => "retry",
            RunOutcome::Failed => "failed",
            RunOutcome::Deferred => "deferred",
            _ => "lost",
        };
        let plugin = ScheduleLabel {
            plugin: run.plugin.clone(),
        };
        self.runs
            .get_or_create(&RunLabels {
                plugin: run.plugin.clone(),
                outcome,
            })
            .inc();
        if run.late {
            self.late.get_or_create(&plugin).inc();
        }
        self.lag
            .get_or_create(&plugin)
            .observe(run.lag.as_secs_f64());
    }
}
