//! The schedules of [`super::Store`]: `agent:state/schedule` with the host's rules
//! (`host/src/turn/schedules.rs`): a due time 1 s to 366 days ahead, an input of
//! at most 64 KiB, ids of 24 lowercase hex digits, `pending` soonest first with
//! the turn's own.

use super::memory::{State, check_name};
use crate::raw::agent::state::agent_state::Error;
use crate::raw::agent::state::schedule::Scheduled;

/// The soonest and latest a schedule may be due, from now, in ms.
const MIN_DELAY_MS: u64 = 1000;
const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;
/// Longest input of a scheduled turn, in bytes (the value limit if smaller).
const MAX_INPUT_BYTES: u64 = 64 << 10;

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
        if when_ms < self.now.saturating_add(MIN_DELAY_MS) {
            let away = i128::from(when_ms) - i128::from(self.now);
            return Err(Error::InvalidArgument(format!(
                "a schedule must be due at least 1s from now (this one is {away} ms away)"
            )));
        }
        if when_ms > self.now.saturating_add(MAX_DELAY_MS) {
            return Err(Error::InvalidArgument(
                "a schedule must be due at most 366 days from now".into(),
            ));
        }
        let most = MAX_INPUT_BYTES.min(self.config.limits.max_value);
        if input.len() as u64 > most {
            return Err(Error::TooLarge(most));
        }
        self.data.scheduled_count += 1;
        let id = format!("{:024x}", self.data.scheduled_count);
        let scheduled = Scheduled {
            id: id.clone(),
            session: session.to_string(),
            at_ms: when_ms,
            input: input.to_string(),
            attempts: 0,
        };
        self.data.schedules.insert(id.clone(), scheduled);
        Ok(id)
    }

    pub(super) fn schedule_after(
        &mut self,
        session: &str,
        delay_ms: u64,
        input: &str,
    ) -> Result<String, Error> {
        self.schedule_at(session, self.now.saturating_add(delay_ms), input)
    }

    pub(super) fn cancel_schedule(&mut self, id: &str) -> Result<bool, Error> {
        let well_formed =
            id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Err(Error::InvalidArgument(format!(
                "{id:?} is not a schedule id (24 lowercase hex digits)"
            )));
        }
        Ok(self.data.schedules.remove(id).is_some())
    }

    pub(super) fn pending_schedules(&mut self, session: &str) -> Result<Vec<Scheduled>, Error> {
        check_name("session id", session)?;
        let of_session = self.data.schedules.values();
        Ok(soonest_first(of_session.filter(|s| s.session == session)))
    }
}
