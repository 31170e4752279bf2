//! Operator access to scheduled turns by namespace, over any [`StateStore`]: what
//! the HTTP API and `agent-host sessions ... schedules` use to add, list and
//! cancel them. A plugin adds and cancels its own through the WIT interface
//! `schedule`, in its turn's commit (see `turn::schedules`).

use std::time::Duration;

use crate::config::PluginConfig;
use crate::error::{Error, StateError, StoreError};
use crate::store::keys::{Name, Namespace};
use crate::store::schedule::{self, Schedule, ScheduleState, ScheduleWrite};
use crate::store::{Commit, StateStore};
use crate::turn::schedules::{check_due, check_input, now_ms};

/// When a schedule is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// At this time (unix ms).
    At(u64),
    /// This long from now.
    After(Duration),
}

/// Adds a scheduled turn of `session` with `input`, due 1 s to 366 days from now,
/// within the plugin's quota of pending schedules.
pub async fn add(
    store: &dyn StateStore,
    ns: &Namespace,
    config: &PluginConfig,
    session: &str,
    due: Due,
    input: String,
) -> Result<Schedule, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    let now = now_ms();
    let at_ms = match due {
        Due::At(at) => at,
        Due::After(delay) => {
            now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
        }
    };
    check_due(at_ms, now).map_err(Error::Invalid)?;
    check_input(&input, config.limits.max_value_bytes).map_err(Error::Invalid)?;
    // Checked here too: on a Redis Cluster the commit does not count them.
    if let Some(most) = config.quota.schedules
        && store.count_schedules(ns).await? >= most
    {
        return Err(config.quota.schedules_exceeded().into());
    }
    let added = Schedule::new(&session, at_ms, input, now);
    let commit = Commit {
        schedules: vec![ScheduleWrite::Add(added.clone())],
        quota: Some(config.quota),
        ..Commit::default()
    };
    store.commit(ns, commit).await?;
    Ok(added)
}

/// The kept schedules of `session` (pending, running, finished in the last day),
/// by due time.
pub async fn list(
    store: &dyn StateStore,
    ns: &Namespace,
    session: &str,
) -> Result<Vec<Schedule>, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    Ok(store.session_schedules(ns, &session).await?)
}

/// Cancels pending schedule `id`; false if there is no pending schedule with that
/// id (it ran, runs now, or never was). `session`, if given, must be its session.
pub async fn cancel(
    store: &dyn StateStore,
    ns: &Namespace,
    session: Option<&str>,
    id: &str,
) -> Result<bool, Error> {
    if schedule::bucket_of(id).is_none() {
        return Err(Error::Invalid(StateError::InvalidArgument(format!(
            "{id:?} is not a schedule id (24 lowercase hex digits)"
        ))));
    }
    let Some(found) = store.schedule(ns, id).await? else {
        return Ok(false);
    };
    if found.state != ScheduleState::Pending || session.is_some_and(|s| s != found.session) {
        return Ok(false);
    }
    let session = Name::session(found.session).map_err(Error::Invalid)?;
    let commit = Commit {
        schedules: vec![ScheduleWrite::Cancel {
            id: id.to_owned(),
            session,
        }],
        ..Commit::default()
    };
    match store.commit(ns, commit).await {
        Ok(()) => Ok(true),
        // It started running (or was cancelled) since it was read.
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
