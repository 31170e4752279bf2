//! The host side of the WIT interface `schedule`: checks the guest's arguments and
//! stages the schedules in the turn (`turn::schedules`), so they are written in
//! the turn's commit.

use crate::error::StateError;
use crate::guest::bindings::schedule::{self, Scheduled};
use crate::guest::state::StateCtx;
use crate::store::keys::Name;
use crate::turn::schedules::{check_due, now_ms};

impl schedule::Host for StateCtx {
    async fn at(
        &mut self,
        session: String,
        when_ms: u64,
        input: String,
    ) -> Result<String, StateError> {
        let session = Name::session(session)?;
        let now = now_ms();
        check_due(when_ms, now)?;
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
        check_due(now.saturating_add(delay_ms), now)?;
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
