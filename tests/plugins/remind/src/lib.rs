//! Test plugin: schedules its own follow-up turns; the same as `py-remind` and
//! `js-remind` but for `remind-then-trap`. Every turn first appends its input (its
//! UTF-8 bytes) to the history, then:
//! - `remind SECONDS TEXT` schedules `reminder: TEXT` after SECONDS, `remind-at
//!   UNIX_MS TEXT` at UNIX_MS, and answers `scheduled ID`;
//! - `remind-then-fail SECONDS TEXT` schedules it, then fails (`failing on purpose`):
//!   the turn's `Err` is committed like an answer, so the schedule stays;
//! - `remind-then-trap SECONDS TEXT` (only here, not in `py-remind` and
//!   `js-remind`) schedules it, then panics (`trapping on purpose`): the trap
//!   commits nothing, so nothing is scheduled;
//! - `cancel ID` answers `cancelled true` or `cancelled false`;
//! - `pending` answers the session's pending schedules as a JSON array of
//!   `{"id", "at_ms", "input", "attempts"}`;
//! - `reminder: TEXT` answers `got reminder: TEXT`, or fails (`reminder failed`)
//!   every time when TEXT is `fail`;
//! - anything else answers `echo INPUT`.
//!
//! A schedule call's error is the answer `error KIND: DETAIL` (`error
//! invalid-argument: ...`), as the other SDKs show a `StateError`, not a failure.

use std::time::Duration;

use agent_sdk::raw::agent::state::agent_state;
use agent_sdk::{Agent, Error, Result, Session, StateError, schedule};
use serde::Serialize;

struct Remind;

impl Agent for Remind {
    fn handle(session: &Session, input: &str) -> Result<String> {
        agent_state::append(session.id(), &[input.as_bytes().to_vec()])?;
        let (command, rest) = input.split_once(' ').unwrap_or((input, ""));
        let answer = match command {
            "remind" | "remind-then-fail" | "remind-then-trap" => {
                let (seconds, text) = number_and_text(rest)?;
                let made = schedule::after(session, Duration::from_secs(seconds), &text);
                match command {
                    "remind-then-fail" if made.is_ok() => {
                        return Err(Error::msg("failing on purpose"));
                    }
                    "remind-then-trap" if made.is_ok() => panic!("trapping on purpose"),
                    _ => {}
                }
                made.map(|id| format!("scheduled {id}"))
            }
            "remind-at" => {
                let (unix_ms, text) = number_and_text(rest)?;
                schedule::at(session, unix_ms, &text).map(|id| format!("scheduled {id}"))
            }
            "cancel" => schedule::cancel(rest).map(|done| format!("cancelled {done}")),
            _ if input == "pending" => schedule::pending(session).map(pending_json),
            _ if input == "reminder: fail" => return Err(Error::msg("reminder failed")),
            _ if input.starts_with("reminder: ") => Ok(format!("got {input}")),
            _ => Ok(format!("echo {input}")),
        };
        answer.or_else(|e| match e {
            Error::State(e) => Ok(format!("error {}", kind_and_detail(e))),
            e => Err(e),
        })
    }
}

/// `N TEXT` as N and `reminder: TEXT`.
fn number_and_text(rest: &str) -> Result<(u64, String)> {
    let (number, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let number = number
        .parse()
        .map_err(|e| Error::msg(format!("{number:?}: {e}")))?;
    Ok((number, format!("reminder: {text}")))
}

/// The WIT error's case and what it carries: `invalid-argument: ...`.
fn kind_and_detail(e: StateError) -> String {
    match e {
        StateError::InvalidKey(m) => format!("invalid-key: {m}"),
        StateError::InvalidArgument(m) => format!("invalid-argument: {m}"),
        StateError::TooLarge(limit) => format!("too-large: {limit}"),
        StateError::QuotaExceeded(m) => format!("quota-exceeded: {m}"),
        StateError::Conflict => "conflict".into(),
        StateError::Unavailable(m) => format!("unavailable: {m}"),
        StateError::Internal(m) => format!("internal: {m}"),
    }
}

/// A pending schedule as `pending` shows it, its fields in this order.
#[derive(Serialize)]
struct Pending {
    id: String,
    at_ms: u64,
    input: String,
    attempts: u32,
}

fn pending_json(pending: Vec<schedule::Scheduled>) -> String {
    let list: Vec<Pending> = pending
        .into_iter()
        .map(|s| Pending {
            id: s.id,
            at_ms: s.at_ms,
            input: s.input,
            attempts: s.attempts,
        })
        .collect();
    serde_json::to_string(&list).expect("a list of plain records encodes")
}

agent_sdk::export_agent!(Remind);
