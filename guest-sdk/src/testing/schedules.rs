//! The schedules of [`super::Store`]: `agent:state/schedule` with the host's rules
//! (a due time 1 s to 366 days ahead, ids of 24 lowercase hex digits, `pending`
//! soonest first with the turn's own).

use super::memory::{State, check_name};
use crate::raw::agent::state::agent_state::Error;
use crate::raw::agent::state::schedule::Scheduled;

/// The shortest and longest delay of a schedule, in ms.
const DELAYS: std::ops::RangeInclusive<u64> = 1000..=366 * 24 * 3600 * 1000;

/// Schedules in the order `pending` lists them: soonest first.
pub(super) fn soonest_first<'a>(all: impl Iterator<Item = &'a Scheduled>) -> Vec<Scheduled> {
    let mut list: Vec<Scheduled> = all.cloned().collect();
    list.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    list
}

impl State<'_> {
    pub(super) fn schedule_at(
        &mut self,
        session: &str,
        when_ms: u64,
        input: &str,
    ) -> Result<String, Error> {
        check_name("session id", session)?;
        let delay = when_ms.checked_sub(self.now);
        if !delay.is_some_and(|d| DELAYS.contains(&d)) {
            return Err(Error::InvalidArgument(
                "when-ms must be 1 s to 366 days from now".into(),
            ));
        }
        self.add_schedule(session, when_ms, input)
    }

    pub(super) fn schedule_after(
        &mut self,
        session: &str,
        delay_ms: u64,
        input: &str,
    ) -> Result<String, Error> {
        check_name("session id", session)?;
        if !DELAYS.contains(&delay_ms) {
            return Err(Error::InvalidArgument(
                "delay-ms must be 1 s to 366 days".into(),
            ));
        }
        self.add_schedule(session, self.now + delay_ms, input)
    }

    fn add_schedule(&mut self, session: &str, at_ms: u64, input: &str) -> Result<String, Error> {
        self.data.scheduled_count += 1;
        let id = format!("{:024x}", self.data.scheduled_count);
        let scheduled = Scheduled {
            id: id.clone(),
            session: session.to_string(),
            at_ms,
            input: input.to_string(),
            attempts: 0,
        };
        self.data.schedules.insert(id.clone(), scheduled);
        Ok(id)
    }

    pub(super) fn cancel_schedule(&mut self, id: &str) -> Result<bool, Error> {
        Ok(self.data.schedules.remove(id).is_some())
    }

    pub(super) fn pending_schedules(&mut self, session: &str) -> Result<Vec<Scheduled>, Error> {
        check_name("session id", session)?;
        let of_session = self.data.schedules.values();
        Ok(soonest_first(of_session.filter(|s| s.session == session)))
    }
}
