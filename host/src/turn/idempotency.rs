//! Idempotent turns: a caller that sends a key with a turn gets, for a retry with
//! the same key and input, the first run's answer instead of a second run.
//!
//! A key's record lives with the turn's session (same hash tag, see `keys`) in one
//! of two forms: a claim, `run <token> <digest>`, while a turn holds the key, and
//! the record, `done <digest> <answer>`, which the turn's commit writes in place of
//! the claim in the same atomic step as the turn's writes (the commit fails if the
//! claim is gone). `digest` is the SHA-256 of the input. A turn that fails (the
//! plugin's own error, a trap, the deadline, a conflict it gave up on) writes no
//! record and gives its claim back, so a retry runs it again. A claim expires a
//! little after its turn's deadline, so a host that died mid-turn does not hold a
//! key for longer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{StoreError, TurnError};
use crate::store::keys::{Name, Namespace};
use crate::store::{Commit, IdempotencyWrite, SessionCommit, StateStore};

use crate::store::token::hex;
pub(crate) use crate::store::token::token;

/// Longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;
/// How long a claim outlives its turn's deadline (the commit itself, clock skew).
const CLAIM_SLACK: Duration = Duration::from_secs(30);
/// How long a caller told "in progress" should wait before asking again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Checks an idempotency key: 1 to [`MAX_KEY_BYTES`] printable ASCII characters
/// (`!` to `~` and space).
pub(crate) fn check_key(key: &str) -> Result<(), TurnError> {
    let invalid = |reason: String| Err(TurnError::InvalidIdempotencyKey(reason));
    if key.is_empty() {
        return invalid("it is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return invalid(format!(
            "it is {} bytes, over the limit of {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    if let Some(pos) = key.bytes().position(|b| !(b' '..=b'~').contains(&b)) {
        return invalid(format!("byte {pos} is not printable ASCII (space to '~')"));
    }
    Ok(())
}

/// A turn's claim on its idempotency key.
pub(crate) struct Claim {
    pub(crate) key: String,
    digest: String,
    claim: Vec<u8>,
}

impl Claim {
    /// A new claim on `key` for a turn on `input`, with a token no other claim has.
    pub(crate) fn new(key: &str, input: &str) -> Self {
        let digest = hex(&Sha256::digest(input.as_bytes()));
        let claim = format!("run {} {digest}", token()).into_bytes();
        Self {
            key: key.to_string(),
            digest,
            claim,
        }
    }

    /// The write that replaces this claim with the record of `answer`.
    pub(crate) fn record(&self, answer: &str, ttl: Duration) -> IdempotencyWrite {
        IdempotencyWrite {
            key: self.key.clone(),
            claim: self.claim.clone(),
            record: format!("done {} {answer}", self.digest).into_bytes(),
            ttl,
        }
    }

    /// What a record or another turn's claim held at the key means for this turn.
    fn read(&self, held: &[u8]) -> Result<Held, StoreError> {
        let text = std::str::from_utf8(held).ok();
        let parsed = text.and_then(|t| {
            let (kind, rest) = t.split_once(' ')?;
            match kind {
                "done" => {
                    let (digest, answer) = rest.split_once(' ')?;
                    Some((digest, Some(answer)))
                }
                "run" => Some((rest.split_once(' ')?.1, None)),
                _ => None,
            }
        });
        let Some((digest, answer)) = parsed else {
            return Err(StoreError::Internal(
                "an idempotency record the host cannot read".into(),
            ));
        };
        Ok(match answer {
            _ if digest != self.digest => Held::Mismatch,
            Some(answer) => Held::Done(answer.to_string()),
            None => Held::Running,
        })
    }

    /// Claims the key for this turn. `Ok(None)`: claimed, run the turn;
    /// `Ok(Some(answer))`: a turn with this key and input committed `answer`. While
    /// another turn holds the key, waits for it (it commits or gives the key back)
    /// until `wait_until`, then answers [`TurnError::InProgress`].
    pub(crate) async fn acquire(
        &self,
        store: &dyn StateStore,
        ns: &Namespace,
        session: &Name,
        turn_deadline: Duration,
        wait_until: Instant,
        plugin: &str,
    ) -> Result<Option<String>, TurnError> {
        let ttl = turn_deadline + CLAIM_SLACK;
        let mut pause = Duration::from_millis(2);
        loop {
            let held = store
                .claim_idempotency(ns, session, &self.key, &self.claim, ttl)
                .await
                .map_err(|e| store_error(plugin, e))?;
            let Some(held) = held else {
                return Ok(None);
            };
            match self.read(&held).map_err(|e| store_error(plugin, e))? {
                Held::Done(answer) => return Ok(Some(answer)),
                Held::Mismatch => {
                    return Err(TurnError::IdempotencyMismatch {
                        plugin: plugin.to_string(),
                    });
                }
                Held::Running if Instant::now() + pause > wait_until => {
                    return Err(TurnError::InProgress {
                        plugin: plugin.to_string(),
                        retry_after: RETRY_AFTER,
                    });
                }
                // The other turn's store is shared, not its process: there is
                // nothing to wait on but the record.
                Held::Running => tokio::time::sleep(pause).await,
            }
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Gives the claim back after a turn that wrote no record (best effort: the
    /// claim expires anyway).
    pub(crate) async fn release(&self, store: &dyn StateStore, ns: &Namespace, session: &Name) {
        if let Err(e) = store
            .release_idempotency(ns, session, &self.key, &self.claim)
            .await
        {
            tracing::warn!(error = %e, "an idempotency claim could not be given back; it expires by itself");
        }
    }
}

/// A claim a running turn holds. If the turn is dropped before it finishes (its
/// caller went away: the turn writes nothing), the claim is given back in the
/// background, so a retry does not wait for it to expire.
pub(crate) struct Holding {
    store: Arc<dyn StateStore>,
    ns: Namespace,
    session: Name,
    key: String,
    claim: Vec<u8>,
    finished: bool,
}

impl Holding {
    /// The turn of `claim` on `session` runs from now on.
    pub(crate) fn new(
        claim: &Claim,
        store: Arc<dyn StateStore>,
        ns: &Namespace,
        session: &Name,
    ) -> Self {
        Self {
            store,
            ns: ns.clone(),
            session: session.clone(),
            key: claim.key.clone(),
            claim: claim.claim.clone(),
            finished: false,
        }
    }

    /// The turn finished: it wrote its record, or gave the claim back itself.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, ns, session) = (self.store.clone(), self.ns.clone(), self.session.clone());
        let (key, claim) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.claim),
        );
        runtime.spawn(async move {
            if let Err(e) = store.release_idempotency(&ns, &session, &key, &claim).await {
                tracing::warn!(error = %e, "the claim of a dropped turn could not be given back; it expires by itself");
            }
        });
    }
}

enum Held {
    Done(String),
    Mismatch,
    Running,
}

fn store_error(plugin: &str, e: StoreError) -> TurnError {
    match e {
        StoreError::Unavailable(reason) => TurnError::StoreUnavailable {
            plugin: plugin.to_string(),
            reason,
            message: "the idempotency key could not be checked".into(),
        },
        error => TurnError::Store {
            plugin: plugin.to_string(),
            error,
        },
    }
}

/// Puts `write` into `commit`, with the session's writes (an entry that writes
/// nothing else if the turn did not write the session).
pub(crate) fn add_record(commit: &mut Commit, session: &Name, write: IdempotencyWrite) {
    if let Some(s) = commit.sessions.iter_mut().find(|s| &s.session == session) {
        s.idempotency = Some(write);
        return;
    }
    commit.sessions.push(SessionCommit {
        idempotency: Some(write),
        ..SessionCommit::new(session.clone())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(check_key("order-42/retry").is_ok());
        assert!(check_key("a key with spaces ~").is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        for bad in [
            "",
            "tab\there",
            "é",
            "nul\0",
            &"k".repeat(MAX_KEY_BYTES + 1),
        ] {
            let e = check_key(bad).unwrap_err();
            assert_eq!(e.kind(), "invalid_idempotency_key", "{bad:?}");
        }
    }

    #[test]
    fn records_are_read_against_the_input() {
        let claim = Claim::new("k", "hello");
        let record = claim
            .record("the answer", crate::config::DEFAULT_IDEMPOTENCY_TTL)
            .record;
        assert!(matches!(claim.read(&record), Ok(Held::Done(a)) if a == "the answer"));
        let other = Claim::new("k", "other input");
        assert!(matches!(other.read(&record), Ok(Held::Mismatch)));
        assert!(matches!(claim.read(&other.claim), Ok(Held::Mismatch)));
        let again = Claim::new("k", "hello");
        assert_ne!(again.claim, claim.claim, "two claims share a token");
        assert!(matches!(again.read(&claim.claim), Ok(Held::Running)));
        assert!(claim.read(b"garbage").is_err());
        // An answer may hold spaces and be empty.
        let empty = claim
            .record("", crate::config::DEFAULT_IDEMPOTENCY_TTL)
            .record;
        assert!(matches!(claim.read(&empty), Ok(Held::Done(a)) if a.is_empty()));
    }
}
