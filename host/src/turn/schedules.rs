//! A turn's staged schedules: added and cancelled in the turn, written in its
//! commit, seen by its own `pending` calls before that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Turn;
use crate::error::StateError;
use crate::store::keys::Name;
use crate::store::schedule::{self, Schedule, ScheduleState, ScheduleWrite};

/// Longest input of a scheduled turn, in bytes (the plugin's `max_value_bytes`
/// if smaller): what 10,000 pending schedules may keep stays bounded.
pub const MAX_INPUT_BYTES: usize = 64 << 10;

/// The soonest a schedule may be due, from now.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// The latest a schedule may be due, from now.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// Now, in unix ms.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks that `at_ms` is [`MIN_DELAY`] to [`MAX_DELAY`] from `now_ms`.
pub(crate) fn check_due(at_ms: u64, now_ms: u64) -> Result<(), StateError> {
    let (min, max) = (MIN_DELAY.as_millis() as u64, MAX_DELAY.as_millis() as u64);
    if at_ms <= now_ms {
        return Err(StateError::InvalidArgument(format!(
            "a schedule must be due at least 1s from now ({at_ms} is in the past; now is {now_ms}, unix ms)"
        )));
    }
    if at_ms < now_ms.saturating_add(min) {
        return Err(StateError::InvalidArgument(format!(
            "a schedule must be due at least 1s from now (this one is {} ms away)",
            at_ms - now_ms
        )));
    }
    if at_ms > now_ms.saturating_add(max) {
        return Err(StateError::InvalidArgument(
            "a schedule must be due at most 366 days from now".into(),
        ));
    }
    Ok(())
}

/// Checks the input of a scheduled turn against [`MAX_INPUT_BYTES`] and the
/// plugin's `max_value_bytes`.
pub(crate) fn check_input(input: &str, max_value_bytes: u64) -> Result<(), StateError> {
    let most = MAX_INPUT_BYTES.min(max_value_bytes as usize);
    if input.len() > most {
        return Err(StateError::TooLarge {
            size: input.len() as u64,
            limit: most as u64,
        });
    }
    Ok(())
}

/// The schedules a turn added and cancelled.
#[derive(Default)]
pub(crate) struct ScheduleStage {
    pub(super) writes: Vec<ScheduleWrite>,
    /// Pending schedules in the store when the turn first added one.
    live: Option<u64>,
}

impl ScheduleStage {
    fn adds(&self) -> usize {
        self.writes
            .iter()
            .filter(|w| matches!(w, ScheduleWrite::Add(_)))
            .count()
    }
}

impl Turn {
    /// Stages a turn of `session` with `input`, due at `at_ms`; returns its id.
    pub(crate) async fn add_schedule(
        &mut self,
        session: &Name,
        at_ms: u64,
        input: String,
        now_ms: u64,
    ) -> Result<String, StateError> {
        let config = &self.scope.config;
        check_input(&input, config.limits.max_value_bytes)?;
        let per_turn = config.limits.max_schedules_per_turn;
        if self.schedules.adds() >= per_turn as usize {
            return Err(StateError::QuotaExceeded(format!(
                "at most {per_turn} schedules per turn"
            )));
        }
        if let Some(most) = config.quota.schedules {
            if self.schedules.live.is_none() {
                let live = self.store.count_schedules(&self.scope.ns).await;
                self.schedules.live = Some(self.check(live)?);
            }
            let cancels = self.schedules.writes.len() - self.schedules.adds();
            let after = self.schedules.live.unwrap_or(0) + self.schedules.adds() as u64 + 1;
            if after.saturating_sub(cancels as u64) > most {
                return Err(StateError::QuotaExceeded(format!(
                    "the plugin's quota of {most} pending schedules is used up"
                )));
            }
        }
        let schedule = Schedule::new(session, at_ms, input, now_ms);
        let id = schedule.id.clone();
        self.schedules.writes.push(ScheduleWrite::Add(schedule));
        Ok(id)
    }

    /// Stages cancelling schedule `id`; false if the plugin has no pending
    /// schedule with that id.
    pub(crate) async fn cancel_schedule(&mut self, id: &str) -> Result<bool, StateError> {
        if schedule::bucket_of(id).is_none() {
            return Err(StateError::InvalidArgument(format!(
                "{id:?} is not a schedule id (24 lowercase hex digits)"
            )));
        }
        let writes = &mut self.schedules.writes;
        if let Some(pos) = writes.iter().position(|w| w.id() == id) {
            let added = matches!(writes[pos], ScheduleWrite::Add(_));
            if added {
                writes.remove(pos);
            }
            return Ok(added);
        }
        let found = self.store.schedule(&self.scope.ns, id).await;
        let Some(found) = self.check(found)? else {
            return Ok(false);
        };
        if found.state != ScheduleState::Pending {
            return Ok(false);
        }
        let session = Name::session(found.session)?;
        self.schedules.writes.push(ScheduleWrite::Cancel {
            id: id.to_owned(),
            session,
        });
        Ok(true)
    }

    /// The pending schedules of `session`, this turn's writes applied, soonest
    /// first.
    pub(crate) async fn pending_schedules(
        &mut self,
        session: &Name,
    ) -> Result<Vec<Schedule>, StateError> {
        let stored = self.store.session_schedules(&self.scope.ns, session).await;
        let stored = self.check(stored)?;
        let writes = &self.schedules.writes;
        let mut pending: Vec<Schedule> = stored
            .into_iter()
            .filter(|s| s.state == ScheduleState::Pending)
            .filter(|s| !writes.iter().any(|w| w.id() == s.id))
            .collect();
        pending.extend(self.schedules.writes.iter().filter_map(|w| match w {
            ScheduleWrite::Add(s) if s.session == session.as_str() => Some(s.clone()),
            _ => None,
        }));
        pending.sort_by_key(|s| (s.at_ms, s.id.clone()));
        Ok(pending)
    }
}
