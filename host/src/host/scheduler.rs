//! Scheduled turns: the host that runs them when they are due, and the calls that
//! add, list and cancel them for a loaded plugin.
//!
//! Every host sharing a store may run [`Host::run_schedules`]: each poll claims
//! the due schedules of its plugins (a claim is a lease in the store, see
//! `store::schedule`), runs each as an ordinary turn of its session with the
//! schedule's id as the idempotency key, and reports how it went. So a schedule
//! runs on one host; if that host dies its lease runs out and another host runs
//! it, and if its turn had committed the idempotency record answers instead of a
//! second run. A run that fails (the plugin's error, a trap, the deadline) is
//! retried with backoff up to the plugin's `schedule_retries`, then kept as
//! failed; a host too busy to run it (or a store that does not answer) puts it
//! back without counting a failure.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Host, TurnOptions};
use crate::config::Budget;
use crate::error::{Error, TurnError};
use crate::guest_text::escaped;
use crate::ops::schedules::{self, Due};
use crate::store::schedule::KEEP_ANSWER_BYTES;
use crate::store::{Claimed, Finish, Schedule, ScheduleState};
use crate::turn::idempotency::token;
use crate::turn::schedules::now_ms;

/// The tenant a plugin's scheduled turns run for (see [`TurnOptions::with_tenant`]).
pub type TenantOf = Arc<dyn Fn(&str) -> Option<(String, Budget)> + Send + Sync>;

/// Told about every scheduled run.
pub type RunObserver = Arc<dyn Fn(&ScheduleRun) + Send + Sync>;

/// How a host runs scheduled turns ([`Host::run_schedules`]).
#[derive(Clone)]
#[non_exhaustive]
pub struct Scheduling {
    /// How often the store is asked for due schedules while some are due.
    /// Default 200 ms.
    pub poll: Duration,
    /// The longest a host waits between two asks when none is due: it sleeps
    /// until the soonest pending schedule of its plugins is due (at least `poll`),
    /// and at most this long, for schedules added meanwhile. Default 1 s, the
    /// least delay a schedule can be added with, so that one added while the
    /// host sleeps is not late for it.
    pub idle_poll: Duration,
    /// Most schedules claimed per plugin (and bucket) per poll. Default 256.
    pub batch: u32,
    /// Most scheduled turns running at once on this host. Default 256.
    pub max_running: usize,
    /// The wait before the first retry of a failed run; it doubles with each
    /// failure, up to 5 minutes. Default 1 s.
    pub retry_backoff: Duration,
    /// A run that starts this long after its schedule was due is marked late.
    /// Default 10 s.
    pub late_after: Duration,
    tenant_of: Option<TenantOf>,
    on_run: Option<RunObserver>,
}

impl Default for Scheduling {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(200),
            idle_poll: Duration::from_secs(1),
            batch: 256,
            max_running: 256,
            retry_backoff: Duration::from_secs(1),
            late_after: Duration::from_secs(10),
            tenant_of: None,
            on_run: None,
        }
    }
}

impl Scheduling {
    /// These options with the poll interval `poll`.
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// These options with the longest wait `idle_poll` when nothing is due.
    pub fn with_idle_poll(mut self, idle_poll: Duration) -> Self {
        self.idle_poll = idle_poll;
        self
    }

    /// These options with a first retry `backoff`.
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// These options with runs marked late past `late_after`.
    pub fn with_late_after(mut self, late_after: Duration) -> Self {
        self.late_after = late_after;
        self
    }

    /// Runs a plugin's scheduled turns for the tenant `tenant_of(plugin id)` names.
    pub fn with_tenants(
        mut self,
        tenant_of: impl Fn(&str) -> Option<(String, Budget)> + Send + Sync + 'static,
    ) -> Self {
        self.tenant_of = Some(Arc::new(tenant_of));
        self
    }

    /// Calls `observer` after every scheduled run.
    pub fn on_run(mut self, observer: impl Fn(&ScheduleRun) + Send + Sync + 'static) -> Self {
        self.on_run = Some(Arc::new(observer));
        self
    }
}

/// What became of one run of a scheduled turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// Its turn committed (or had committed: the idempotency record answered).
    Done,
    /// It failed and runs again later.
    Retry,
    /// It failed once more than the plugin's retries allow; kept as failed.
    Failed,
    /// The host could not run it now (busy, the store did not answer, another run
    /// of it holds its key); it is due again shortly, no failure counted.
    Deferred,
    /// Its claim ran out before it finished, and another host took it over.
    Lost,
}

/// One run of a scheduled turn, as [`Scheduling::on_run`] sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ScheduleRun {
    /// The plugin.
    pub plugin: String,
    /// The schedule.
    pub id: String,
    /// From when it was due to when its run started.
    pub lag: Duration,
    /// `lag` was over [`Scheduling::late_after`].
    pub late: bool,
    /// How it went.
    pub outcome: RunOutcome,
}

/// What one poll saw.
struct Polled {
    /// It claimed as many as it could run: more may be due.
    more: bool,
    /// When the soonest schedule left pending is due (unix ms), if any is.
    next_due_ms: Option<u64>,
}

/// How long a host with nothing more to claim sleeps: until the soonest pending
/// schedule is due, but at least `poll` (a host asks the store no more often
/// than that) and at most `idle_poll` (a schedule added meanwhile is seen).
fn idle_wait(next_due_ms: Option<u64>, now_ms: u64, options: &Scheduling) -> Duration {
    let most = options.idle_poll.max(options.poll);
    next_due_ms
        .map_or(most, |due| {
            Duration::from_millis(due.saturating_sub(now_ms))
        })
        .clamp(options.poll, most)
}

/// The part of a run's answer its record keeps: at most [`KEEP_ANSWER_BYTES`]
/// (cut on a character boundary), so the finished schedules a plugin's bucket
/// keeps stay small whatever its `max_output`.
fn kept_answer(mut answer: String) -> String {
    if answer.len() > KEEP_ANSWER_BYTES {
        let mut end = KEEP_ANSWER_BYTES;
        while !answer.is_char_boundary(end) {
            end -= 1;
        }
        answer.truncate(end);
    }
    answer
}

/// Errors that say nothing about the plugin: the run is put back, not failed.
fn deferred(e: &TurnError) -> bool {
    matches!(
        e,
        TurnError::Busy { .. }
            | TurnError::Overloaded { .. }
            | TurnError::InProgress { .. }
            | TurnError::StoreUnavailable { .. }
            | TurnError::Store { .. }
    )
}

impl Host {
    /// Runs the due scheduled turns of the loaded plugins, polling every
    /// `options.poll`, until the future is dropped. Dropping it stops the runs in
    /// flight too: their claims run out and a host running schedules then runs
    /// them (a turn that had committed answers from its idempotency record).
    pub async fn run_schedules(&self, options: Scheduling) {
        let permits = Arc::new(Semaphore::new(options.max_running.max(1)));
        let mut running = JoinSet::new();
        loop {
            let polled = self.claim_and_run(&options, &permits, &mut running).await;
            while running.try_join_next().is_some() {}
            // When this poll took all it could, the next starts as soon as a run
            // ends (or after `poll`), not a whole poll later.
            if polled.more && !running.is_empty() {
                tokio::select! {
                    _ = running.join_next() => {}
                    () = tokio::time::sleep(options.poll) => {}
                }
            } else {
                tokio::time::sleep(idle_wait(polled.next_due_ms, now_ms(), &options)).await;
            }
        }
    }

    /// One poll: claims the due scheduled turns of the loaded plugins, runs them,
    /// and waits for their runs.
    pub async fn run_due_schedules(&self, options: &Scheduling) -> Vec<ScheduleRun> {
        let permits = Arc::new(Semaphore::new(options.max_running.max(1)));
        let mut running = JoinSet::new();
        self.claim_and_run(options, &permits, &mut running).await;
        running.join_all().await
    }

    /// Claims and starts what is due.
    async fn claim_and_run(
        &self,
        options: &Scheduling,
        permits: &Arc<Semaphore>,
        running: &mut JoinSet<ScheduleRun>,
    ) -> Polled {
        let mut more = false;
        let mut next_due_ms: Option<u64> = None;
        let store = self.inner.store.clone();
        for plugin in self.plugins() {
            let Some(loaded) = self.plugin(&plugin) else {
                continue;
            };
            let scope = &loaded.scope;
            let limits = &scope.config.limits;
            let attempts = self.inner.max_attempts.max(1);
            let lease = limits.deadline * attempts + Duration::from_secs(30);
            for bucket in 0..store.schedule_buckets() {
                // No more than the plugin may run at once right now: a turn past
                // its `max_concurrent_turns` would be refused as busy.
                let free = permits
                    .available_permits()
                    .min(loaded.turns.available_permits())
                    .min(options.batch as usize);
                if free == 0 {
                    more = true;
                    break;
                }
                let claim = token();
                let claimed = store
                    .claim_schedules(&scope.ns, bucket, lease, free as u32, &claim)
                    .await;
                let claims = match claimed {
                    Ok(claims) => claims,
                    Err(e) => {
                        tracing::warn!(plugin, error = %e, "cannot claim due schedules");
                        break;
                    }
                };
                more |= claims.claimed.len() == free;
                next_due_ms = next_due_ms.into_iter().chain(claims.next_due_ms).min();
                for due in claims.claimed {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        break;
                    };
                    let (host, options) = (self.clone(), options.clone());
                    let (plugin, claim) = (plugin.clone(), claim.clone());
                    running.spawn(async move {
                        let run = host.run_claimed(&plugin, due, &claim, &options).await;
                        drop(permit);
                        if let Some(observer) = &options.on_run {
                            observer(&run);
                        }
                        run
                    });
                }
            }
        }
        Polled { more, next_due_ms }
    }

    /// Runs one claimed schedule and reports how it went.
    async fn run_claimed(
        &self,
        plugin: &str,
        due: Claimed,
        claim: &str,
        options: &Scheduling,
    ) -> ScheduleRun {
        let started = now_ms();
        // When it was due: its time (moved by a retry), even when this run takes
        // over a claim that ran out after its host died.
        let due_ms = due.due_ms.min(due.schedule.at_ms);
        let lag = Duration::from_millis(started.saturating_sub(due_ms));
        let late = lag > options.late_after;
        let mut s = due.schedule;
        s.started_ms = Some(started);
        s.late = late;
        let mut turn = TurnOptions::idempotency_key(s.id.clone());
        if let Some((tenant, budget)) = options.tenant_of.as_ref().and_then(|f| f(plugin)) {
            turn = turn.with_tenant(tenant, budget);
        }
        let outcome = self.run_turn_with(plugin, &s.session, &s.input, turn).await;
        // `None` if the plugin was unloaded meanwhile: nothing to report to.
        let scope = self.scope(plugin).ok();
        let retries = scope.as_ref().map_or(0, |s| s.config.schedule_retries);
        let (finish, mut kind) = match outcome {
            Ok(answer) => {
                s.state = ScheduleState::Done;
                s.answer = Some(kept_answer(answer.output));
                s.error = None;
                (Finish::Finished, RunOutcome::Done)
            }
            Err(e) if deferred(&e) => {
                let again = now_ms() + options.poll.as_millis() as u64 * 5 + 1000;
                s.at_ms = again;
                (Finish::Again(again), RunOutcome::Deferred)
            }
            Err(e) => {
                s.attempts += 1;
                s.error = Some(escaped(&e.to_string(), 1024));
                if s.attempts > retries {
                    s.state = ScheduleState::Failed;
                    (Finish::Finished, RunOutcome::Failed)
                } else {
                    let shift = (s.attempts - 1).min(16);
                    let wait = (options.retry_backoff * (1 << shift)).min(Duration::from_secs(300));
                    let again = now_ms() + wait.as_millis() as u64;
                    s.at_ms = again;
                    (Finish::Again(again), RunOutcome::Retry)
                }
            }
        };
        if let Some(scope) = &scope {
            match self
                .inner
                .store
                .finish_schedule(&scope.ns, &s, claim, finish)
                .await
            {
                Ok(true) => {}
                Ok(false) => kind = RunOutcome::Lost,
                Err(e) => {
                    // Its lease runs out and it runs again; its key answers then.
                    tracing::warn!(plugin, id = %s.id, error = %e, "cannot report a scheduled run");
                }
            }
        }
        match kind {
            RunOutcome::Failed => {
                tracing::warn!(plugin, id = %s.id, "a scheduled turn failed for good")
            }
            _ => {
                tracing::debug!(plugin, id = %s.id, ?kind, lag_ms = lag.as_millis() as u64, "scheduled turn ran")
            }
        }
        ScheduleRun {
            plugin: plugin.to_owned(),
            id: s.id,
            lag,
            late,
            outcome: kind,
        }
    }

    /// Adds a scheduled turn of `session` of plugin `plugin_id` with `input`, due
    /// 1 s to 366 days from now.
    pub async fn add_schedule(
        &self,
        plugin_id: &str,
        session: &str,
        due: Due,
        input: String,
    ) -> Result<Schedule, Error> {
        let scope = self.scope(plugin_id)?;
        let store = self.inner.store.as_ref();
        schedules::add(store, &scope.ns, &scope.config, session, due, input).await
    }

    /// The kept schedules of a session: pending, running, and finished in the last
    /// day (done with their answer, or failed with their error), by due time.
    pub async fn schedules(&self, plugin_id: &str, session: &str) -> Result<Vec<Schedule>, Error> {
        let scope = self.scope(plugin_id)?;
        schedules::list(self.inner.store.as_ref(), &scope.ns, session).await
    }

    /// Cancels pending schedule `id` of a plugin (of `session`, if given); false if
    /// it has none with that id.
    pub async fn cancel_schedule(
        &self,
        plugin_id: &str,
        session: Option<&str>,
        id: &str,
    ) -> Result<bool, Error> {
        let scope = self.scope(plugin_id)?;
        schedules::cancel(self.inner.store.as_ref(), &scope.ns, session, id).await
    }

    /// How many schedules of a plugin are pending (running ones included).
    pub async fn pending_schedules(&self, plugin_id: &str) -> Result<u64, Error> {
        let scope = self.scope(plugin_id)?;
        Ok(self.inner.store.count_schedules(&scope.ns).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_is_cut_on_a_character_boundary() {
        assert_eq!(kept_answer("short".into()), "short");
        // 'é' is two bytes: the cut falls inside the last one and steps back.
        let long = format!("{}é", "a".repeat(KEEP_ANSWER_BYTES - 1));
        let kept = kept_answer(long);
        assert_eq!(kept.len(), KEEP_ANSWER_BYTES - 1);
        assert!(kept.chars().all(|c| c == 'a'));
    }

    #[test]
    fn an_idle_host_sleeps_until_the_next_schedule_within_its_bounds() {
        let options = Scheduling::default();
        let ms = Duration::from_millis;
        // Nothing pending: the longest wait.
        assert_eq!(idle_wait(None, 10_000, &options), ms(1000));
        // Due in 600 ms: until then.
        assert_eq!(idle_wait(Some(10_600), 10_000, &options), ms(600));
        // Due sooner than a poll, or already: a poll.
        assert_eq!(idle_wait(Some(10_050), 10_000, &options), ms(200));
        assert_eq!(idle_wait(Some(9_000), 10_000, &options), ms(200));
        // Due in an hour: the longest wait, for schedules added meanwhile.
        assert_eq!(idle_wait(Some(3_610_000), 10_000, &options), ms(1000));
        // A poll longer than the idle poll wins.
        let slow = Scheduling::default().with_poll(ms(5000));
        assert_eq!(idle_wait(None, 10_000, &slow), ms(5000));
    }
}
