//! Time travel over a session's kept state versions (`keep_versions`): list them,
//! read one, roll the session back to one, or fork a new session from one. Like
//! [`crate::ops::admin`], by namespace over any [`StateStore`]; [`crate::Host`] uses these
//! for its loaded plugins and `agent-host sessions` with a namespace from the config.
//!
//! Rollback and fork are commits like a turn's: atomic, checked against the version
//! they read, and read again and retried when another commit came first. History is
//! append-only here: a rollback writes a new version whose document is the old
//! one's, and erases nothing.

use crate::config::PluginConfig;
use crate::error::{Error, StateError, StoreError};
use crate::store::keys::{Name, Namespace};
use crate::store::{
    Commit, Expiry, ExpiryChange, SessionCommit, StateChange, StateStore, StoredVersion,
};

/// Attempts of a rollback or fork before it gives up on a session that keeps
/// changing.
const ATTEMPTS: u32 = 8;

/// One kept version, as listed (without its document).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo {
    /// Its version number.
    pub version: u64,
    /// When it was committed (unix ms; 0 if it was written before versions were
    /// kept).
    pub written_at_ms: u64,
    /// The document's size.
    pub bytes: u64,
    /// The history's length right after it was committed (0 if unknown, as above).
    pub history_len: u64,
}

impl From<&StoredVersion> for VersionInfo {
    fn from(v: &StoredVersion) -> Self {
        Self {
            version: v.version,
            written_at_ms: v.written_at_ms,
            bytes: v.value.len() as u64,
            history_len: v.history_len,
        }
    }
}

/// What a fork wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Forked {
    /// The new session's state version (1).
    pub version: u64,
    /// History items copied.
    pub history_len: u64,
}

/// The session's current state and its kept versions, newest first.
pub async fn versions(
    store: &dyn StateStore,
    ns: &Namespace,
    session: &str,
) -> Result<Vec<VersionInfo>, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    let versions = store.versions(ns, &session).await?;
    Ok(versions.iter().map(VersionInfo::from).collect())
}

/// Version `version` of the session's state, with its document.
pub async fn load_version(
    store: &dyn StateStore,
    ns: &Namespace,
    session: &str,
    version: u64,
) -> Result<Option<StoredVersion>, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    Ok(find(store, ns, &session, version).await?.1)
}

/// All versions, and the one numbered `version`.
async fn find(
    store: &dyn StateStore,
    ns: &Namespace,
    session: &Name,
    version: u64,
) -> Result<(Vec<StoredVersion>, Option<StoredVersion>), Error> {
    let versions = store.versions(ns, session).await?;
    let found = versions.iter().find(|v| v.version == version).cloned();
    Ok((versions, found))
}

fn no_version(session: &Name, version: u64) -> Error {
    Error::NotFound(format!(
        "session {:?} has no version {version} (kept versions: see its versions)",
        session.as_str()
    ))
}

/// Writes version `to`'s document as the session's new state version (the current
/// one is kept as a version, like any save); returns the new version number.
pub async fn rollback(
    store: &dyn StateStore,
    ns: &Namespace,
    config: &PluginConfig,
    session: &str,
    to: u64,
) -> Result<u64, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    for attempt in 1..=ATTEMPTS {
        let (versions, target) = find(store, ns, &session, to).await?;
        let Some(target) = target else {
            return Err(no_version(&session, to));
        };
        // The current document is the first listed, unless the state was deleted.
        let current = store.load(ns, &session).await?.map_or(0, |e| e.version);
        let newest = versions.iter().map(|v| v.version).max().unwrap_or(0);
        let version = current.max(newest) + 1;
        let commit = SessionCommit {
            expect_version: Some(current),
            state: StateChange::Put {
                value: target.value,
                version,
            },
            ..write(&session, config)
        };
        match commit_one(store, ns, config, commit).await {
            Err(StoreError::Conflict) => backoff(attempt).await,
            Err(e) => return Err(e.into()),
            Ok(()) => return Ok(version),
        }
    }
    Err(busy(&session))
}

/// Copies version `from_version` of `session`'s state, and its history up to the
/// moment that version was written, into the new session `to` (which must not
/// exist); the copy's state is version 1.
pub async fn fork(
    store: &dyn StateStore,
    ns: &Namespace,
    config: &PluginConfig,
    session: &str,
    from_version: u64,
    to: &str,
) -> Result<Forked, Error> {
    let session = Name::session(session).map_err(Error::Invalid)?;
    let target = Name::session(to).map_err(Error::Invalid)?;
    if target == session {
        return Err(Error::Conflict(
            "a session cannot be forked into itself".into(),
        ));
    }
    for attempt in 1..=ATTEMPTS {
        let Some(source) = find(store, ns, &session, from_version).await?.1 else {
            return Err(no_version(&session, from_version));
        };
        // The history then: its first `history_len` items, if nothing was popped
        // since (a history only shorter than that was popped or cleared since).
        let len = store.snapshot(ns, &session, 0).await?.history_len;
        let wanted = source.history_len.min(len);
        let budget = config.limits.max_turn_bytes;
        let items = copy_history(store, ns, &session, wanted, source.value.len(), budget).await?;
        let history_len = items.len() as u64;
        let commit = SessionCommit {
            expect_version: Some(0),
            expect_history_len: Some(0),
            state: StateChange::Put {
                value: source.value,
                version: 1,
            },
            append: items,
            ..write(&target, config)
        };
        match commit_one(store, ns, config, commit).await {
            Err(StoreError::Conflict) => {
                let existing = store.snapshot(ns, &target, 0).await?;
                if existing.state.is_some() || existing.history_len > 0 {
                    return Err(Error::Conflict(format!(
                        "session {:?} already exists",
                        target.as_str()
                    )));
                }
                backoff(attempt).await;
            }
            Err(e) => return Err(e.into()),
            Ok(()) => {
                return Ok(Forked {
                    version: 1,
                    history_len,
                });
            }
        }
    }
    Err(busy(&session))
}

/// History items read per round trip by a fork: what a fork holds in memory is
/// its write budget plus at most one such page.
const FORK_PAGE: u32 = 16;

/// The first `wanted` history items of `session`, read page by page; refused as
/// too large once they and the `state` bytes pass `budget` (the plugin's
/// `max_turn_bytes`: a fork writes no more than a turn may).
async fn copy_history(
    store: &dyn StateStore,
    ns: &Namespace,
    session: &Name,
    wanted: u64,
    state: usize,
    budget: u64,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut items = Vec::new();
    let mut bytes = state as u64;
    while (items.len() as u64) < wanted {
        let start = items.len() as u64;
        let count = u32::try_from(wanted - start)
            .unwrap_or(u32::MAX)
            .min(FORK_PAGE);
        let page = store.items_from(ns, session, start, count).await?;
        if page.is_empty() {
            break;
        }
        bytes += page.iter().map(|item| item.len() as u64).sum::<u64>();
        if bytes > budget {
            return Err(Error::Invalid(StateError::TooLarge {
                size: bytes,
                limit: budget,
            }));
        }
        items.extend(page);
    }
    Ok(items)
}

/// A commit of `session` that writes nothing yet, with the plugin's default TTL
/// (a write starts it again, as a turn's save does) and versions kept.
fn write(session: &Name, config: &PluginConfig) -> SessionCommit {
    SessionCommit {
        expiry: ExpiryChange::Set(Expiry::from_ttl(config.default_ttl)),
        keep_versions: config.keep_versions,
        ..SessionCommit::new(session.clone())
    }
}

async fn commit_one(
    store: &dyn StateStore,
    ns: &Namespace,
    config: &PluginConfig,
    session: SessionCommit,
) -> Result<(), StoreError> {
    let commit = Commit {
        sessions: vec![session],
        quota: Some(config.quota),
        ..Commit::default()
    };
    store.commit(ns, commit).await
}

fn busy(session: &Name) -> Error {
    Error::Conflict(format!(
        "session {:?} kept changing; gave up after {ATTEMPTS} attempts",
        session.as_str()
    ))
}

/// Waits as a turn does before its next attempt.
async fn backoff(attempt: u32) {
    tokio::time::sleep(crate::turn::backoff(attempt)).await;
}
