//! Operator access to sessions without running a plugin: by namespace, over any
//! [`StateStore`]. [`crate::Host`] uses these for its loaded plugins; tools such as
//! `agent-host sessions` use them with a namespace from the config file.

use std::time::Duration;

use crate::error::Error;
use crate::store::keys::{Name, Namespace};
use crate::store::{Commit, Entry, Page, SessionCommit, StateStore};

/// A session as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSnapshot {
    /// True if the session has a state document or history.
    pub exists: bool,
    /// The state document.
    pub state: Option<Entry>,
    /// Length of the whole history.
    pub history_len: u64,
    /// The newest history items (up to the plugin's per-call limit), oldest first.
    pub history: Vec<Vec<u8>>,
    /// Time left before the session expires; `None`: never (or no session).
    pub ttl: Option<Duration>,
}

/// A session's state, newest `last` history items and TTL.
pub async fn inspect(
    store: &dyn StateStore,
    ns: &Namespace,
    session: &str,
    last: u32,
) -> Result<SessionSnapshot, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    let snapshot = store.snapshot(ns, &session, last).await?;
    Ok(SessionSnapshot {
        exists: snapshot.state.is_some() || snapshot.history_len > 0,
        state: snapshot.state,
        history_len: snapshot.history_len,
        history: snapshot.tail,
        ttl: snapshot.ttl,
    })
}

/// Up to `limit` live sessions after `cursor`.
pub async fn list_sessions(
    store: &dyn StateStore,
    ns: &Namespace,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page, Error> {
    if let Some(cursor) = cursor {
        Name::session(cursor).map_err(Error::Invalid)?;
    }
    Ok(store.list_sessions(ns, cursor, limit.max(1)).await?)
}

/// Removes everything of a session in one commit; true if anything existed.
pub async fn clear_session(
    store: &dyn StateStore,
    ns: &Namespace,
    session: &str,
) -> Result<bool, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    let before = store.snapshot(ns, &session, 0).await?;
    let existed = before.state.is_some() || before.history_len > 0;
    let commit = Commit {
        sessions: vec![SessionCommit {
            clear: true,
            ..SessionCommit::new(session)
        }],
        ..Commit::default()
    };
    store.commit(ns, commit).await?;
    Ok(existed)
}
