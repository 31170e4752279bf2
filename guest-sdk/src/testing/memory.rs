//! The in-memory state behind [`super::Store`]: what the host's store keeps for one
//! plugin, with the host's rules (the ones in `host/src/state.rs` and
//! `host/src/turn/`): names, sizes, versions, history, expiry, values.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::raw::agent::state::agent_state::{Entry, Error, Page, VersionInfo};
use crate::raw::agent::state::schedule::Scheduled;

/// The host's default limits (`Limits::default()`).
#[derive(Clone, Debug)]
pub(super) struct Limits {
    pub(super) max_value: u64,
    pub(super) max_items_per_call: u32,
    pub(super) max_history_items: u64,
    pub(super) max_turn_bytes: u64,
    pub(super) max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_value: 1 << 20,
            max_items_per_call: 1000,
            max_history_items: 10_000,
            max_turn_bytes: 8 << 20,
            max_values: 10_000,
        }
    }
}

/// The plugin's settings the host applies (`PluginConfig`).
#[derive(Clone, Debug, Default)]
pub(super) struct Config {
    pub(super) default_ttl: Option<Duration>,
    pub(super) sliding_ttl: bool,
    pub(super) keep_versions: usize,
    pub(super) limits: Limits,
}

/// A state document and when it was written.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Document {
    pub(super) value: Vec<u8>,
    pub(super) version: u64,
    pub(super) written_at_ms: u64,
    pub(super) history_len: u64,
}

#[derive(Clone, Debug, Default)]
pub(super) struct SessionData {
    pub(super) state: Option<Document>,
    pub(super) history: Vec<Vec<u8>>,
    /// Unix ms; `None`: never.
    pub(super) expires: Option<u64>,
    /// Documents replaced by commits, newest first (`keep_versions`).
    pub(super) kept: Vec<Document>,
}

impl SessionData {
    fn exists(&self) -> bool {
        self.state.is_some() || !self.history.is_empty()
    }
}

/// Everything a plugin keeps.
#[derive(Clone, Debug, Default)]
pub(super) struct Data {
    pub(super) sessions: BTreeMap<String, SessionData>,
    /// Value and its expiry (unix ms; `None`: never).
    pub(super) values: BTreeMap<String, (Vec<u8>, Option<u64>)>,
    /// Pending schedules by id.
    pub(super) schedules: BTreeMap<String, Scheduled>,
    /// The number of schedules made so far (ids are made from it).
    pub(super) scheduled_count: u64,
}

impl Data {
    /// Drops what expired at `now`, as the stores do (an expired session is gone,
    /// state, history and all).
    pub(super) fn expire(&mut self, now: u64) {
        let live = |expires: &Option<u64>| expires.is_none_or(|at| at > now);
        self.sessions.retain(|_, s| live(&s.expires) && s.exists());
        self.values.retain(|_, (_, expires)| live(expires));
    }
}

/// The rules of session ids, keys and cursors (`host/src/keys.rs`).
pub(super) fn check_name(what: &str, raw: &str) -> Result<(), Error> {
    let invalid = |reason: String| Err(Error::InvalidKey(format!("invalid {what}: {reason}")));
    if raw.is_empty() {
        return invalid("is empty".into());
    }
    if raw.len() > 512 {
        return invalid(format!("is {} bytes, over the limit of 512", raw.len()));
    }
    if let Some(pos) = raw.chars().position(char::is_control) {
        return invalid(format!("has a control character at char {pos}"));
    }
    Ok(())
}

/// An integer as the stores read one: `0`, or an optional `-` and digits without
/// a leading zero, within `i64`.
fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = bytes == b"0"
        || (matches!(digits.first(), Some(b'1'..=b'9'))
            && digits.len() <= 19
            && digits.iter().all(u8::is_ascii_digit));
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// One plugin's state as a turn sees it.
pub(super) struct State<'a> {
    pub(super) data: &'a mut Data,
    /// What is committed: the data as the turn began (reads that the host sends
    /// to the store, `versions` and `list-sessions`, see this).
    pub(super) committed: &'a Data,
    pub(super) config: &'a Config,
    pub(super) now: u64,
    pub(super) turn_bytes: &'a mut u64,
}

impl State<'_> {
    fn ttl(seconds: Option<u32>) -> Result<Option<Duration>, Error> {
        match seconds {
            Some(0) => Err(Error::InvalidArgument(
                "ttl-seconds must be at least 1".into(),
            )),
            s => Ok(s.map(|s| Duration::from_secs(u64::from(s)))),
        }
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<u64> {
        ttl.map(|ttl| self.now.saturating_add(ttl.as_millis() as u64))
    }

    fn check_size(&self, size: usize) -> Result<(), Error> {
        let limit = self.config.limits.max_value;
        if size as u64 > limit {
            return Err(Error::TooLarge(limit));
        }
        Ok(())
    }

    /// Counts bytes against the turn's write budget.
    fn charge(&mut self, bytes: usize) -> Result<(), Error> {
        let limit = self.config.limits.max_turn_bytes;
        let total = self.turn_bytes.saturating_add(bytes as u64);
        if total > limit {
            return Err(Error::QuotaExceeded(format!(
                "a turn may write at most {limit} bytes"
            )));
        }
        *self.turn_bytes = total;
        Ok(())
    }

    /// The session, created empty if it does not exist (it is dropped again by
    /// `Data::expire` if nothing is written to it).
    fn session(&mut self, id: &str) -> Result<&mut SessionData, Error> {
        check_name("session id", id)?;
        Ok(self.data.sessions.entry(id.to_string()).or_default())
    }

    /// Extends the session's expiry on a read, with `sliding_ttl`.
    fn slide(&mut self, id: &str) {
        let (Some(ttl), true) = (self.config.default_ttl, self.config.sliding_ttl) else {
            return;
        };
        let until = self.now.saturating_add(ttl.as_millis() as u64);
        if let Some(session) = self.data.sessions.get_mut(id).filter(|s| s.exists()) {
            session.expires = session.expires.map(|at| at.max(until));
        }
    }

    pub(super) fn load(&mut self, id: &str) -> Result<Option<Entry>, Error> {
        let entry = self.session(id)?.state.as_ref().map(|d| Entry {
            value: d.value.clone(),
            version: d.version,
        });
        self.slide(id);
        Ok(entry)
    }

    pub(super) fn save(
        &mut self,
        id: &str,
        value: &[u8],
        ttl: Option<u32>,
        if_version: Option<u64>,
    ) -> Result<u64, Error> {
        check_name("session id", id)?;
        self.check_size(value.len())?;
        let ttl = Self::ttl(ttl)?;
        let expires = self.expiry(ttl.or(self.config.default_ttl));
        // Charged before the version check, as the host does.
        self.charge(value.len())?;
        let current = self.session(id)?.state.as_ref().map_or(0, |d| d.version);
        if if_version.is_some_and(|expected| expected != current) {
            return Err(Error::Conflict);
        }
        let (now, session) = (self.now, self.session(id)?);
        let history_len = session.history.len() as u64;
        session.state = Some(Document {
            value: value.to_vec(),
            version: current + 1,
            written_at_ms: now,
            history_len,
        });
        session.expires = expires;
        Ok(current + 1)
    }

    pub(super) fn delete(&mut self, id: &str) -> Result<bool, Error> {
        Ok(self.session(id)?.state.take().is_some())
    }

    pub(super) fn versions(&mut self, id: &str) -> Result<Vec<VersionInfo>, Error> {
        check_name("session id", id)?;
        let Some(session) = self.committed.sessions.get(id) else {
            return Ok(Vec::new());
        };
        Ok(session
            .state
            .iter()
            .chain(&session.kept)
            .map(|d| VersionInfo {
                version: d.version,
                written_at_ms: d.written_at_ms,
                bytes: d.value.len() as u64,
                history_len: d.history_len,
            })
            .collect())
    }

    pub(super) fn load_version(&mut self, id: &str, version: u64) -> Result<Option<Entry>, Error> {
        check_name("session id", id)?;
        let Some(session) = self.committed.sessions.get(id) else {
            return Ok(None);
        };
        Ok(session
            .state
            .iter()
            .chain(&session.kept)
            .find(|d| d.version == version)
            .map(|d| Entry {
                value: d.value.clone(),
                version: d.version,
            }))
    }

    pub(super) fn append(&mut self, id: &str, items: &[Vec<u8>]) -> Result<u64, Error> {
        check_name("session id", id)?;
        let limits = &self.config.limits;
        if items.len() > limits.max_items_per_call as usize {
            return Err(Error::QuotaExceeded(format!(
                "at most {} items per append",
                limits.max_items_per_call
            )));
        }
        let bytes: usize = items.iter().map(Vec::len).sum();
        self.check_size(bytes)?;
        let max_len = self.config.limits.max_history_items;
        let expires = self.expiry(self.config.default_ttl);
        let len = self.session(id)?.history.len() as u64;
        if items.is_empty() {
            return Ok(len);
        }
        let new_len = len + items.len() as u64;
        if new_len > max_len {
            return Err(Error::QuotaExceeded(format!(
                "history would be longer than {max_len} items"
            )));
        }
        self.charge(bytes)?;
        let session = self.session(id)?;
        session.history.extend(items.iter().cloned());
        session.expires = expires;
        Ok(new_len)
    }

    pub(super) fn items(&mut self, id: &str, last: Option<u32>) -> Result<Vec<Vec<u8>>, Error> {
        let max = self.config.limits.max_items_per_call;
        let last = last.unwrap_or(max).min(max) as usize;
        let history = &self.session(id)?.history;
        let items = history[history.len().saturating_sub(last)..].to_vec();
        self.slide(id);
        Ok(items)
    }

    pub(super) fn pop(&mut self, id: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.session(id)?.history.pop())
    }

    pub(super) fn touch(&mut self, id: &str, ttl: Option<u32>) -> Result<bool, Error> {
        check_name("session id", id)?;
        let expires = self.expiry(Self::ttl(ttl)?);
        let session = self.session(id)?;
        if !session.exists() {
            return Ok(false);
        }
        session.expires = expires;
        Ok(true)
    }

    pub(super) fn ttl_of(&mut self, id: &str) -> Result<Option<u32>, Error> {
        let now = self.now;
        let session = self.session(id)?;
        if !session.exists() {
            return Ok(None);
        }
        // Rounded up, as the host does: a session with 0.4 s left still exists.
        Ok(session.expires.map(|at| {
            let secs = at.saturating_sub(now).div_ceil(1000);
            u32::try_from(secs).unwrap_or(u32::MAX)
        }))
    }

    pub(super) fn clear(&mut self, id: &str) -> Result<bool, Error> {
        check_name("session id", id)?;
        Ok(self.data.sessions.remove(id).is_some_and(|s| s.exists()))
    }

    pub(super) fn list_sessions(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, Error> {
        if let Some(cursor) = cursor {
            check_name("cursor", cursor)?;
        }
        if limit == 0 {
            return Err(Error::InvalidArgument("limit must be at least 1".into()));
        }
        let limit = limit.min(self.config.limits.max_items_per_call) as usize;
        let mut after = self
            .committed
            .sessions
            .iter()
            .filter(|(id, s)| s.exists() && cursor.is_none_or(|c| id.as_str() > c))
            .map(|(id, _)| id.clone());
        let sessions: Vec<String> = after.by_ref().take(limit).collect();
        let more = after.next().is_some();
        Ok(Page {
            cursor: more.then(|| sessions.last().cloned()).flatten(),
            sessions,
        })
    }

    pub(super) fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        check_name("key", key)?;
        Ok(self.data.values.get(key).map(|(v, _)| v.clone()))
    }

    pub(super) fn set(&mut self, key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), Error> {
        check_name("key", key)?;
        self.check_size(value.len())?;
        let expires = self.expiry(Self::ttl(ttl)?);
        self.charge(value.len())?;
        self.put_value(key, value.to_vec(), expires)
    }

    fn put_value(&mut self, key: &str, value: Vec<u8>, expires: Option<u64>) -> Result<(), Error> {
        let max = self.config.limits.max_values;
        if !self.data.values.contains_key(key) && self.data.values.len() >= max {
            return Err(Error::QuotaExceeded(format!(
                "at most {max} plugin-wide values"
            )));
        }
        self.data.values.insert(key.to_string(), (value, expires));
        Ok(())
    }

    pub(super) fn remove(&mut self, key: &str) -> Result<bool, Error> {
        check_name("key", key)?;
        Ok(self.data.values.remove(key).is_some())
    }

    pub(super) fn increment(&mut self, key: &str, delta: i64) -> Result<i64, Error> {
        check_name("key", key)?;
        let (current, expires) = match self.data.values.get(key) {
            None => (0, None),
            Some((bytes, expires)) => match parse_integer(bytes) {
                Some(n) => (n, *expires),
                None => {
                    return Err(Error::Internal("the value is not a 64-bit integer".into()));
                }
            },
        };
        let new = current
            .checked_add(delta)
            .ok_or_else(|| Error::Internal("the result would overflow a 64-bit integer".into()))?;
        self.put_value(key, new.to_string().into_bytes(), expires)?;
        Ok(new)
    }
}

/// A commit: the documents the turn replaced or deleted are kept
/// (`keep_versions`, newest first), and each new document is stamped with the
/// commit's time and history length.
pub(super) fn commit(data: &mut Data, before: &Data, config: &Config, now: u64) {
    for (id, session) in &mut data.sessions {
        let old = before.sessions.get(id).and_then(|s| s.state.as_ref());
        if session.state.as_ref() == old {
            continue;
        }
        if let Some(doc) = &mut session.state {
            doc.written_at_ms = now;
            doc.history_len = session.history.len() as u64;
        }
        if let Some(old) = old.filter(|_| config.keep_versions > 0) {
            session.kept.insert(0, old.clone());
            session.kept.truncate(config.keep_versions);
        }
    }
}
