//! A notes agent. Each session keeps its own notes (history); a board and a note
//! counter are plugin-wide values, shared by every session of the same tenant.
//!
//! Commands: `add TEXT`, `list`, `undo`, `post TEXT` (to the board, for an hour),
//! `board`, `stats`, `forget`.

use std::time::Duration;

use agent_sdk::{Agent, Error, Result, Session, values};

const TOTAL: &str = "notes-total";
const BOARD: &str = "board";

struct Notes;

impl Agent for Notes {
    fn handle(session: &Session, input: &str) -> Result<String> {
        let (command, rest) = input.trim().split_once(' ').unwrap_or((input.trim(), ""));
        let rest = rest.trim();
        match command {
            "add" if !rest.is_empty() => {
                let count = session.push(rest)?;
                let total = values::increment(TOTAL, 1)?;
                Ok(format!("Noted. {count} here, {total} in all sessions."))
            }
            "list" => {
                let notes: Vec<String> = session.history()?;
                if notes.is_empty() {
                    return Ok("No notes yet.".into());
                }
                let lines: Vec<String> = notes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{}. {n}", i + 1))
                    .collect();
                Ok(lines.join("\n"))
            }
            "undo" => match session.pop::<String>()? {
                Some(note) => {
                    values::increment(TOTAL, -1)?;
                    Ok(format!("Removed \"{note}\"."))
                }
                None => Ok("Nothing to undo.".into()),
            },
            "post" if !rest.is_empty() => {
                values::set(BOARD, rest, Some(Duration::from_secs(3600)))?;
                Ok("Posted to the board for an hour.".into())
            }
            "board" => {
                Ok(values::get::<String>(BOARD)?.unwrap_or_else(|| "The board is empty.".into()))
            }
            "stats" => {
                let total: i64 = values::get(TOTAL)?.unwrap_or(0);
                let sessions = agent_sdk::sessions().count();
                Ok(format!("{total} notes in {sessions} sessions."))
            }
            "forget" => {
                let notes: Vec<String> = session.history()?;
                session.clear()?;
                values::increment(TOTAL, -(notes.len() as i64))?;
                Ok(format!("Forgot {} notes.", notes.len()))
            }
            _ => Err(Error::msg(
                "commands: add TEXT, list, undo, post TEXT, board, stats, forget",
            )),
        }
    }
}

agent_sdk::export_agent!(Notes);
