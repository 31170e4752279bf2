//! Turns that run later on their own (WIT `agent:state/schedule`, since 0.1.3).
//!
//! A schedule made by a turn is written with that turn's commit, like its state
//! writes: a turn that returns `Ok` or `Err` keeps its schedules and cancels (so a
//! turn that failed, on a model's rate limit say, can answer its error and
//! schedule its own retry); a turn that panics, runs out of time or memory, or
//! conflicts schedules (and cancels) nothing. When it is due, the host runs a turn
//! of its session with its input, once; a run that fails is retried with backoff
//! up to the operator's `schedule_retries`.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use agent_sdk::{Agent, Result, Session, schedule};
//!
//! struct Reminder;
//!
//! impl Agent for Reminder {
//!     fn handle(session: &Session, input: &str) -> Result<String> {
//!         if let Some(text) = input.strip_prefix("remind me ") {
//!             let id = schedule::after(session, Duration::from_secs(60), text)?;
//!             return Ok(format!("in a minute ({id})"));
//!         }
//!         Ok(format!("reminder: {input}"))
//!     }
//! }
//! ```
//!
//! The due time must be 1 s to 366 days from now, else
//! [`StateError::InvalidArgument`](crate::StateError::InvalidArgument); past the
//! plugin's pending schedules or schedules per turn,
//! [`StateError::QuotaExceeded`](crate::StateError::QuotaExceeded).

use std::time::Duration;

#[cfg(target_arch = "wasm32")]
use crate::raw::agent::state::schedule as wit;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::backend::schedule as wit;
use crate::{Result, Session};

/// A schedule that has not run yet ([`pending`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// Its id: 24 lowercase hex digits.
    pub id: String,
    /// The session its turn runs in.
    pub session: String,
    /// When it is due (unix ms).
    pub at_ms: u64,
    /// The input of its turn.
    pub input: String,
    /// Runs of it that failed so far.
    pub attempts: u32,
}

impl From<wit::Scheduled> for Scheduled {
    fn from(s: wit::Scheduled) -> Self {
        Self {
            id: s.id,
            session: s.session,
            at_ms: s.at_ms,
            input: s.input,
            attempts: s.attempts,
        }
    }
}

/// Runs a turn of `session` with `input` at `when_ms` (unix ms); returns the
/// schedule's id.
pub fn at(session: &Session, when_ms: u64, input: &str) -> Result<String> {
    Ok(wit::at(session.id(), when_ms, input)?)
}

/// Runs a turn of `session` with `input` `delay` from now (counted in whole
/// milliseconds); returns the schedule's id.
pub fn after(session: &Session, delay: Duration, input: &str) -> Result<String> {
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    Ok(wit::after(session.id(), delay_ms, input)?)
}

/// Cancels a pending schedule of this plugin; false if there is none with this id
/// (it ran, was cancelled, or never was).
pub fn cancel(id: &str) -> Result<bool> {
    Ok(wit::cancel(id)?)
}

/// The session's pending schedules, soonest first, this turn's own included.
pub fn pending(session: &Session) -> Result<Vec<Scheduled>> {
    Ok(wit::pending(session.id())?
        .into_iter()
        .map(Scheduled::from)
        .collect())
}
