//! The host side of the WIT interface `schedule`: checks the guest's arguments and
//! stages the schedules in the turn (`turn::schedules`), so they are written in
//! the turn's commit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StateError;
use crate::guest::bindings::schedule::{self, Scheduled};
use crate::guest::state::StateCtx;
use crate::store::keys::Name;

/// The soonest a schedule may be due, from now.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// The latest a schedule may be due, from now.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks that `at_ms` is [`MIN_DELAY`] to [`MAX_DELAY`] from `now_ms`.
pub fn check_due(at_ms: u64, now_ms: u64) -> Result<(), String> {
    let (min, max) = (MIN_DELAY.as_millis() as u64, MAX_DELAY.as_millis() as u64);
    if at_ms < now_ms.saturating_add(min) {
        return Err(format!(
            "a schedule must be due at least 1s from now (it is {} ms away)",
            at_ms as i128 - now_ms as i128
        ));
    }
    if at_ms > now_ms.saturating_add(max) {
        return Err("a schedule must be due at most 366 days from now".into());
    }
    Ok(())
}

impl schedule::Host for StateCtx {
    async fn at(
        &mut self,
        session: String,
        when_ms: u64,
        input: String,
    ) -> Result<String, StateError> {
        let session = Name::session(session)?;
        let now = now_ms();
        check_due(when_ms, now).map_err(StateError::InvalidArgument)?;
        self.turn.add_schedule(&session, when_ms, input, now).await
    }

    async fn after(
        &mut self,
        session: String,
        delay_ms: u64,
        input: String,
    ) -> Result<String, StateError> {
        let session = Name::session(session)?;
        let now = now_ms();
        check_due(now.saturating_add(delay_ms), now).map_err(StateError::InvalidArgument)?;
        self.turn
            .add_schedule(&session, now + delay_ms, input, now)
            .await
    }

    async fn cancel(&mut self, id: String) -> Result<bool, StateError> {
        self.turn.cancel_schedule(&id).await
    }

    async fn pending(&mut self, session: String) -> Result<Vec<Scheduled>, StateError> {
        let session = Name::session(session)?;
        let pending = self.turn.pending_schedules(&session).await?;
        Ok(pending
            .into_iter()
            .map(|s| Scheduled {
                id: s.id,
                session: s.session,
                at_ms: s.at_ms,
                input: s.input,
                attempts: s.attempts,
            })
            .collect())
    }
}
