//! The functions of the WIT interfaces `agent-state`, `output` and `schedule`, with the
//! signatures wit-bindgen gives them, answered by the in-memory [`super::Store`]:
//! what the SDK calls instead of the host in a native build.

pub use crate::raw::agent::state::agent_state::{Entry, Error, Page, SaveOptions, VersionInfo};

use super::memory::{self, State};
use super::{Inner, current};

/// Runs `op` on the current store: inside the running turn, or as a turn of its
/// own (committed at once) when no turn runs.
fn with_state<R>(op: impl FnOnce(&mut State<'_>) -> Result<R, Error>) -> Result<R, Error> {
    let store = current();
    let mut inner = store.lock();
    let Inner {
        data,
        config,
        now,
        committed,
        turn_bytes,
        ..
    } = &mut *inner;
    let now = *now;
    match committed {
        Some(committed) => op(&mut State {
            data,
            committed,
            config,
            now,
            turn_bytes,
        }),
        None => {
            data.expire(now);
            let before = data.clone();
            let mut bytes = 0;
            let result = op(&mut State {
                data,
                committed: &before,
                config,
                now,
                turn_bytes: &mut bytes,
            });
            memory::commit(data, &before, config, now);
            result
        }
    }
}

pub fn load(session: &str) -> Result<Option<Entry>, Error> {
    with_state(|s| s.load(session))
}

pub fn save(session: &str, value: &[u8], options: SaveOptions) -> Result<u64, Error> {
    with_state(|s| s.save(session, value, options.ttl_seconds, options.if_version))
}

pub fn delete(session: &str) -> Result<bool, Error> {
    with_state(|s| s.delete(session))
}

pub fn versions(session: &str) -> Result<Vec<VersionInfo>, Error> {
    with_state(|s| s.versions(session))
}

pub fn load_version(session: &str, version: u64) -> Result<Option<Entry>, Error> {
    with_state(|s| s.load_version(session, version))
}

pub fn append(session: &str, items: &[Vec<u8>]) -> Result<u64, Error> {
    with_state(|s| s.append(session, items))
}

pub fn items(session: &str, last: Option<u32>) -> Result<Vec<Vec<u8>>, Error> {
    with_state(|s| s.items(session, last))
}

pub fn pop(session: &str) -> Result<Option<Vec<u8>>, Error> {
    with_state(|s| s.pop(session))
}

pub fn touch(session: &str, ttl_seconds: Option<u32>) -> Result<bool, Error> {
    with_state(|s| s.touch(session, ttl_seconds))
}

pub fn ttl(session: &str) -> Result<Option<u32>, Error> {
    with_state(|s| s.ttl_of(session))
}

pub fn clear(session: &str) -> Result<bool, Error> {
    with_state(|s| s.clear(session))
}

pub fn list_sessions(cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
    with_state(|s| s.list_sessions(cursor, limit))
}

pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    with_state(|s| s.get(key))
}

pub fn set(key: &str, value: &[u8], ttl_seconds: Option<u32>) -> Result<(), Error> {
    with_state(|s| s.set(key, value, ttl_seconds))
}

pub fn remove(key: &str) -> Result<bool, Error> {
    with_state(|s| s.remove(key))
}

pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
    with_state(|s| s.increment(key, delta))
}

/// `output.emit`: the chunk is kept for [`super::Store::emitted`].
pub fn emit(chunk: &str) -> Result<(), Error> {
    current().lock().emitted.push(chunk.to_string());
    Ok(())
}

/// `agent:state/schedule`: the store's schedules.
pub mod schedule {
    pub use crate::raw::agent::state::schedule::Scheduled;

    use super::{Error, with_state};

    pub fn at(session: &str, when_ms: u64, input: &str) -> Result<String, Error> {
        with_state(|s| s.schedule_at(session, when_ms, input))
    }

    pub fn after(session: &str, delay_ms: u64, input: &str) -> Result<String, Error> {
        with_state(|s| s.schedule_after(session, delay_ms, input))
    }

    pub fn cancel(id: &str) -> Result<bool, Error> {
        with_state(|s| s.cancel_schedule(id))
    }

    pub fn pending(session: &str) -> Result<Vec<Scheduled>, Error> {
        with_state(|s| s.pending_schedules(session))
    }
}
