//! Running a turn: attempts until one commits, each a fresh (or kept) instance with
//! its staged state, retried on a conflict within the turn's deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc::Sender;
use tracing::Instrument;

use super::{Host, Plugin};
use crate::config::Budget;
use crate::error::{StoreError, TurnError};
use crate::guest::output::{Stream, TurnEvent};
use crate::guest::state::StateCtx;
use crate::guest_text::{LOG_FIELD_BYTES, escaped};
use crate::host::outcome::{deadline_error, stopped};
use crate::host::reuse::Kept;
use crate::host::sandbox;
use crate::outbound::TurnTrail;
use crate::outbound::journal_store::{KeptJournal, buffer_id};
use crate::store::keys::Name;
use crate::store::spend::ModelCount;
use crate::turn::Turn;
use crate::turn::idempotency::{self, Claim, Holding};

/// How to run a turn ([`Host::run_turn_with`]).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TurnOptions {
    /// A key (1 to 255 printable ASCII characters) that makes retries of this turn
    /// return its first answer instead of running it again.
    pub idempotency_key: Option<String>,
    /// Where the plugin's emitted chunks go while the turn runs (see
    /// [`crate::guest::output`]); `None`: they are dropped. The plugin never waits for
    /// this channel: when it is full the caller is cut off.
    pub stream: Option<Sender<TurnEvent>>,
    /// The tenant the turn is run for, and its model budget (see
    /// [`TurnOptions::with_tenant`]).
    pub tenant: Option<(String, Budget)>,
}

impl TurnOptions {
    /// Options with idempotency key `key`.
    pub fn idempotency_key(key: impl Into<String>) -> Self {
        Self {
            idempotency_key: Some(key.into()),
            ..Self::default()
        }
    }

    /// These options with the turn run for `tenant`: its metered model calls are
    /// counted for the tenant too (across its plugins) and refused once the
    /// tenant's `budget` is spent, as the plugin's own budget does.
    pub fn with_tenant(mut self, tenant: impl Into<String>, budget: Budget) -> Self {
        self.tenant = Some((tenant.into(), budget));
        self
    }

    /// These options with the turn's events sent to `to`.
    pub fn with_stream(mut self, to: Sender<TurnEvent>) -> Self {
        self.stream = Some(to);
        self
    }
}

/// A turn's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnAnswer {
    /// What the plugin answered.
    pub output: String,
    /// True if the answer is the stored one of an earlier run with the same
    /// idempotency key: the plugin did not run and nothing was written.
    pub replayed: bool,
    /// The tokens of the turn's metered model calls, all attempts together (zero
    /// for a replayed answer).
    pub usage: ModelCount,
}

impl Host {
    /// Runs one turn: a fresh instance of plugin `plugin_id` handles `input` for
    /// `session`, within the plugin's deadline and memory cap.
    ///
    /// The turn's writes are committed in one atomic step when `handle` returns
    /// (`Ok` or `Err`); if the plugin is stopped (trap, deadline, memory) nothing is
    /// written. If the session changed since the turn read it, the turn is run
    /// again, up to [`HostBuilder::max_attempts`](crate::HostBuilder::max_attempts) times, then
    /// [`TurnError::Conflict`].
    pub async fn run_turn(
        &self,
        plugin_id: &str,
        session: &str,
        input: &str,
    ) -> Result<String, TurnError> {
        self.run_turn_with(plugin_id, session, input, TurnOptions::default())
            .await
            .map(|answer| answer.output)
    }

    /// [`Host::run_turn`] with options: with an idempotency key, a retry of the
    /// same turn (same key, same input) gets the first run's answer with
    /// [`TurnAnswer::replayed`] set, and the plugin does not run again. The key's
    /// record is written in the turn's commit and kept for the plugin's
    /// [`PluginConfig::idempotency_ttl`](crate::PluginConfig::idempotency_ttl).
    /// The same key with another input is [`TurnError::IdempotencyMismatch`]. A
    /// retry that comes while the first run is still going (on this host or
    /// another one sharing the store) waits for it, at most the plugin's deadline,
    /// then gets [`TurnError::InProgress`]. A turn that fails stores no record, so
    /// its retry runs again.
    pub async fn run_turn_with(
        &self,
        plugin_id: &str,
        session: &str,
        input: &str,
        options: TurnOptions,
    ) -> Result<TurnAnswer, TurnError> {
        let plugin = self
            .plugin(plugin_id)
            .ok_or_else(|| TurnError::UnknownPlugin(plugin_id.to_string()))?;
        let name = Name::session(session).map_err(TurnError::InvalidSession)?;
        if let Some(key) = &options.idempotency_key {
            idempotency::check_key(key)?;
        }
        let span = tracing::info_span!(
            "turn",
            plugin = %plugin_id,
            session = %session,
            outcome = tracing::field::Empty
        );
        // The trace's own span (`crate::trace`): the session's digest, never its name.
        let traced = tracing::info_span!(
            target: crate::trace::TARGET,
            "turn",
            plugin = %plugin_id,
            tenant = options.tenant.as_ref().map(|(t, _)| t.as_str()),
            session.digest = tracing::field::Empty,
            outcome = tracing::field::Empty,
            attempts = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if !traced.is_disabled() {
            let digest = crate::trace::session_digest(plugin.scope.ns.base(), session);
            traced.record("session.digest", digest);
        }
        let started = Instant::now();
        let claim = options
            .idempotency_key
            .as_deref()
            .map(|key| Claim::new(key, input));
        let stream = options.stream.map(Stream::new);
        let spend = self.turn_trail(&plugin.scope, options.tenant);
        let (outcome, attempts) = self
            .idempotent(
                &plugin,
                &name,
                input,
                claim.as_ref(),
                stream.as_ref(),
                &spend,
            )
            .instrument(traced.clone())
            .instrument(span.clone())
            .await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        let kind = match &outcome {
            Ok(answer) if answer.replayed => "replayed",
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        span.record("outcome", kind);
        traced.record("outcome", kind);
        traced.record("attempts", attempts);
        if outcome.is_err() {
            traced.record("otel.status_code", "error");
        }
        span.in_scope(|| match &outcome {
            Ok(answer) if answer.replayed => tracing::info!(elapsed_us, "turn replayed"),
            Ok(answer) => tracing::info!(
                elapsed_us,
                attempts,
                input_tokens = answer.usage.input_tokens,
                output_tokens = answer.usage.output_tokens,
                "turn done"
            ),
            Err(e) => {
                let stderr: &[String] = match e {
                    TurnError::Trap { stderr, .. } => stderr,
                    _ => &[],
                };
                // The error holds what the plugin said: bounded here.
                tracing::warn!(
                    elapsed_us,
                    attempts,
                    error = %escaped(&e.to_string(), LOG_FIELD_BYTES),
                    stderr = ?stderr,
                    "turn failed"
                );
            }
        });
        outcome
    }

    /// A turn with its idempotency claim, if it has one: the stored answer if the
    /// key has one, otherwise the turn's attempts, after which a turn that wrote no
    /// record gives its claim back.
    async fn idempotent(
        &self,
        plugin: &Plugin,
        name: &Name,
        input: &str,
        claim: Option<&Claim>,
        stream: Option<&Arc<Stream>>,
        spend: &TurnTrail,
    ) -> (Result<TurnAnswer, TurnError>, u32) {
        let scope = &plugin.scope;
        let store = self.inner.store.as_ref();
        let mut holding = None;
        if let Some(claim) = claim {
            let deadline = scope.config.limits.deadline;
            let wait_until = Instant::now() + deadline;
            let id = scope.config.id.as_str();
            match claim
                .acquire(store, &scope.ns, name, deadline, wait_until, id)
                .await
            {
                Ok(None) => {
                    let shared = self.inner.store.clone();
                    holding = Some(Holding::new(claim, shared, &scope.ns, name));
                    // What an earlier run of the key got from its requests
                    // replays to this one (a host that died mid-turn), read
                    // when the turn sends its first request.
                    let kept = KeptJournal {
                        store: self.inner.store.clone(),
                        ns: scope.ns.clone(),
                        session: name.clone(),
                        id: buffer_id(&claim.key),
                        ttl: scope.config.idempotency_ttl,
                        appending: Default::default(),
                    };
                    spend.journal.keep_in(kept);
                }
                Ok(Some(output)) => {
                    let replayed = TurnAnswer {
                        output,
                        replayed: true,
                        usage: ModelCount::default(),
                    };
                    return (Ok(replayed), 0);
                }
                Err(e) => return (Err(e), 0),
            }
        }
        let (outcome, attempts) = self
            .attempts(plugin, name, input, claim, stream, spend)
            .await;
        if let (Some(claim), Err(_)) = (claim, &outcome) {
            claim.release(store, &scope.ns, name).await;
        }
        // A turn that committed (its answer, or the plugin's error) needs its
        // journal no more; one that crashed keeps it for its retry.
        let committed = matches!(&outcome, Ok(_) | Err(TurnError::Plugin { .. }));
        if let (true, Some(kept)) = (committed, spend.journal.kept()) {
            kept.drop_kept().await;
        }
        if let Some(holding) = holding {
            holding.finish();
        }
        // The turn's model calls are counted in the store before it answers.
        spend.spend.settle().await;
        let answer = outcome.map(|output| TurnAnswer {
            output,
            replayed: false,
            usage: spend.spend.total(),
        });
        (answer, attempts)
    }

    /// Runs a turn until it commits, fails, or runs out of attempts; returns the
    /// outcome and the number of attempts.
    async fn attempts(
        &self,
        plugin: &Plugin,
        name: &Name,
        input: &str,
        claim: Option<&Claim>,
        stream: Option<&Arc<Stream>>,
        spend: &TurnTrail,
    ) -> (Result<String, TurnError>, u32) {
        let inner = &self.inner;
        let plugin_id = plugin.scope.config.id.as_str();
        inner.stats.turns.fetch_add(1, Ordering::Relaxed);
        let _serial = match inner.serialize_sessions {
            true => Some(inner.locks.lock(plugin_id, name.as_str()).await),
            false => None,
        };
        // The deadline is the turn's: its conflict retries share it.
        let deadline = Instant::now() + plugin.scope.config.limits.deadline;
        // Counted once the turn is about to run: turns waiting for their session
        // hold no instance and no core.
        let Ok(_running) = plugin.turns.clone().try_acquire_owned() else {
            tracing::debug!("the plugin runs as many turns as it may; refused");
            let busy = TurnError::Busy {
                plugin: plugin_id.to_string(),
            };
            return (Err(busy), 0);
        };
        // Past what the cores can carry, refused before anything runs.
        if let Err(overloaded) = inner.cores.admit() {
            tracing::debug!(
                waiting = inner.cores.waiting(),
                "the host is overloaded; refused"
            );
            return (Err(overloaded), 0);
        }
        let mut attempt = 1;
        loop {
            inner.stats.attempts.fetch_add(1, Ordering::Relaxed);
            match self
                .attempt(plugin, name, input, deadline, (claim, stream, spend))
                .await
            {
                Err(Attempt::Conflict) => {
                    inner.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    let retry_at = Instant::now() + crate::turn::backoff(attempt);
                    if retry_at >= deadline {
                        return (Err(deadline_error(&plugin.scope)), attempt);
                    }
                    if attempt >= inner.max_attempts {
                        let e = TurnError::Conflict {
                            plugin: plugin_id.to_string(),
                            attempts: attempt,
                        };
                        return (Err(e), attempt);
                    }
                    tracing::debug!(attempt, "session changed during the turn; running it again");
                    tokio::time::sleep_until(retry_at.into()).await;
                    if let Some(stream) = stream {
                        stream.send(TurnEvent::Restart);
                    }
                    attempt += 1;
                }
                Err(Attempt::Failed(e)) => return (Err(e), attempt),
                Ok(answer) => return (answer, attempt),
            }
        }
    }

    /// One run of a turn. `Ok` holds the plugin's answer (which may be its own
    /// error), committed.
    async fn attempt(
        &self,
        plugin: &Plugin,
        session: &Name,
        input: &str,
        deadline: Instant,
        (claim, stream, spend): (Option<&Claim>, Option<&Arc<Stream>>, &TurnTrail),
    ) -> Result<Result<String, TurnError>, Attempt> {
        let scope = &plugin.scope;
        let plugin_id = scope.config.id.as_str();
        let limits = &scope.config.limits;

        let mut turn = Turn::new(scope.clone(), self.inner.store.clone());
        // One round trip for what a turn usually reads; a failure here is seen
        // again (and reported) by the plugin's first state call.
        let _ = turn.prefetch(session).await;
        spend.journal.next_attempt();
        let outbound = self.turn_outbound(scope, deadline, spend);
        let state = StateCtx::new(turn, stream.cloned());
        let (mut store, output, kept, served) = match plugin.idle.take() {
            Some(mut kept) => {
                sandbox::next_turn(&mut kept.store, &kept.output, outbound, state);
                (kept.store, kept.output, Some(kept.instance), kept.turns)
            }
            None => {
                let (store, output) = sandbox::turn_store(&self.inner.engine, outbound, state);
                (store, output, None, 0)
            }
        };
        let computing = store.data().computing.clone();
        let call = async {
            let instance = match kept {
                Some(instance) => instance,
                None => plugin.pre.instantiate_async(&mut store).await?,
            };
            let answer = instance
                .agent_state_handler()
                .call_handle(&mut store, session.as_str(), input)
                .await?;
            Ok::<_, wasmtime::Error>((instance, answer))
        };
        // The epoch stops guest code at the deadline; this stops a turn that is
        // waiting on the store at that moment.
        let call = self.inner.cores.run(call, computing);
        let result = tokio::time::timeout_at(deadline.into(), call).await;
        output.log(plugin_id);
        sandbox::log_refusals(&store, plugin_id);
        let (instance, answer) = match result {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(Attempt::Failed(stopped(scope, &store, &output, e))),
            Err(_) => return Err(Attempt::Failed(deadline_error(scope))),
        };
        // An answer the caller will not get is not committed either.
        let size = answer.as_ref().map_or_else(String::len, String::len) as u64;
        if size > limits.max_output_bytes {
            return Err(Attempt::Failed(TurnError::OutputTooLarge {
                plugin: plugin_id.to_string(),
                size,
                limit: limits.max_output_bytes,
            }));
        }

        // A kept instance goes back only once its turn has committed; an instance
        // that is not kept is dropped with its store, here or on any error below.
        let (turn, keep) = if plugin.idle.enabled() {
            let idle = StateCtx::new(Turn::new(scope.clone(), self.inner.store.clone()), None);
            let state = std::mem::replace(&mut store.data_mut().state, idle);
            let kept = Kept {
                store,
                instance,
                output,
                turns: served + 1,
            };
            (state.turn, Some(kept))
        } else {
            (store.into_data().state.turn, None)
        };
        let unavailable = turn.unavailable.clone();
        let mut commit = turn.into_commit();
        // The record of an answer goes with the turn's writes; a plugin's error
        // writes none (its retry runs again).
        if let (Some(claim), Ok(output)) = (claim, &answer) {
            let record = claim.record(output, scope.config.idempotency_ttl);
            idempotency::add_record(&mut commit, session, record);
        }
        match self.inner.store.commit(&scope.ns, commit).await {
            Ok(()) => {
                if let Some(kept) = keep {
                    plugin.idle.give_back(kept);
                }
            }
            Err(StoreError::Conflict) => return Err(Attempt::Conflict),
            Err(StoreError::Unavailable(reason)) => {
                return Err(Attempt::Failed(TurnError::StoreUnavailable {
                    plugin: plugin_id.to_string(),
                    reason,
                    message: "the turn's writes could not be committed".into(),
                }));
            }
            Err(StoreError::QuotaExceeded(reason)) => {
                return Err(Attempt::Failed(TurnError::QuotaExceeded {
                    plugin: plugin_id.to_string(),
                    reason,
                }));
            }
            Err(error) => {
                return Err(Attempt::Failed(TurnError::Store {
                    plugin: plugin_id.to_string(),
                    error,
                }));
            }
        }
        Ok(answer.map_err(|message| match unavailable {
            Some(reason) => TurnError::StoreUnavailable {
                plugin: plugin_id.to_string(),
                reason,
                message,
            },
            None => TurnError::Plugin {
                plugin: plugin_id.to_string(),
                message,
            },
        }))
    }
}

/// Why an attempt of a turn did not produce an answer.
enum Attempt {
    /// The commit found the session changed: run the turn again.
    Conflict,
    /// Anything else: report it.
    Failed(TurnError),
}
