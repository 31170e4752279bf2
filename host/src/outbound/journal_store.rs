//! A turn's journal kept in the store, for a turn with an idempotency key: each
//! recorded answer is appended to a buffer of the turn's session (as a streamed
//! turn's events are: counted in the plugin's quota, expiring after the plugin's
//! `idempotency_ttl`), so a retry of the key on any host, after the host that ran
//! it died, replays the answers instead of paying for them again. The turn that
//! commits drops it.
//!
//! An entry is `slot (u32) | request key (32 bytes) | status (u16) | header count
//! (u32) | per header: name length (u16), name, value length (u32), value | frame
//! count (u32) | per frame: length (u32), bytes`, big-endian.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use super::journal::{Answer, RequestKey};
use crate::store::StateStore;
use crate::store::keys::{Name, Namespace};

/// Where a turn's journal is kept.
#[derive(Clone)]
pub(crate) struct KeptJournal {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) ns: Namespace,
    pub(crate) session: Name,
    /// The buffer's id (see [`buffer_id`]).
    pub(crate) id: String,
    pub(crate) ttl: Duration,
    /// Appends still on their way, awaited before the journal is dropped.
    pub(crate) appending: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// The id of the buffer that keeps the journal of idempotency key `key`: a
/// digest, with a `:` that no client's stream id may have, so the streamed turns'
/// route never serves it.
pub(crate) fn buffer_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("journal:{}", crate::store::token::hex(&digest[..16]))
}

impl KeptJournal {
    /// The entries kept so far, by slot (a later entry for a slot replaces an
    /// earlier one); unreadable ones are skipped.
    pub(super) async fn load(&self) -> Vec<(usize, RequestKey, Answer)> {
        let kept = self
            .store
            .read_events(&self.ns, &self.session, &self.id, 0)
            .await;
        let kept = match kept {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, "the turn's journal was not read; its requests go out");
                return Vec::new();
            }
        };
        let mut entries: Vec<(usize, RequestKey, Answer)> = Vec::new();
        for entry in kept.iter().filter_map(|e| decode(e)) {
            entries.retain(|(slot, _, _)| *slot != entry.0);
            entries.push(entry);
        }
        entries.sort_by_key(|(slot, _, _)| *slot);
        entries
    }

    /// Appends an answer (in the background: a request's answer does not wait
    /// for the store).
    pub(super) fn keep(&self, slot: usize, key: &RequestKey, answer: &Answer) {
        let kept = self.clone();
        let entry = encode(slot, key, answer);
        let appending = tokio::spawn(async move {
            let appended = kept
                .store
                .append_events(&kept.ns, &kept.session, &kept.id, vec![entry], kept.ttl)
                .await;
            if let Err(e) = appended {
                tracing::warn!(error = %e, "an answer was not kept in the turn's journal");
            }
        });
        let mut pending = self.appending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|task| !task.is_finished());
        pending.push(appending);
    }

    /// Drops the journal once its turn committed (its bytes stop counting).
    pub(crate) async fn drop_kept(&self) {
        let pending =
            std::mem::take(&mut *self.appending.lock().unwrap_or_else(|p| p.into_inner()));
        for task in pending {
            let _ = task.await;
        }
        let dropped = self
            .store
            .drop_events(&self.ns, &self.session, &self.id)
            .await;
        if let Err(e) = dropped {
            tracing::warn!(error = %e, "the turn's journal was not dropped; it expires later");
        }
    }
}

fn encode(slot: usize, key: &RequestKey, answer: &Answer) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(slot).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&answer.status.as_u16().to_be_bytes());
    out.extend_from_slice(&(answer.headers.len() as u32).to_be_bytes());
    for (name, value) in &answer.headers {
        out.extend_from_slice(&(name.as_str().len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(&(answer.frames.len() as u32).to_be_bytes());
    for frame in &answer.frames {
        out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// Reads what [`encode`] wrote; `None` for anything else.
fn decode(mut bytes: &[u8]) -> Option<(usize, RequestKey, Answer)> {
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        bytes = rest;
        Some(head)
    };
    let slot = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let key: RequestKey = take(32)?.try_into().ok()?;
    let status = StatusCode::from_u16(u16::from_be_bytes(take(2)?.try_into().ok()?)).ok()?;
    let mut headers = HeaderMap::new();
    for _ in 0..u32::from_be_bytes(take(4)?.try_into().ok()?) {
        let len = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
        let name = HeaderName::from_bytes(take(len)?).ok()?;
        let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let value = HeaderValue::from_bytes(take(len)?).ok()?;
        headers.append(name, value);
    }
    let mut frames = Vec::new();
    for _ in 0..u32::from_be_bytes(take(4)?.try_into().ok()?) {
        let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        frames.push(Bytes::copy_from_slice(take(len)?));
    }
    Some((
        slot,
        key,
        Answer {
            status,
            headers,
            frames,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_and_garbage_does_not() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/event-stream".parse().unwrap());
        headers.append("x-two", "a".parse().unwrap());
        headers.append("x-two", "b".parse().unwrap());
        let answer = Answer {
            status: StatusCode::CREATED,
            headers,
            frames: vec![Bytes::from_static(b"data: 1\n\n"), Bytes::from_static(b"")],
        };
        let bytes = encode(3, &[7; 32], &answer);
        let (slot, key, back) = decode(&bytes).unwrap();
        assert_eq!((slot, key), (3, [7; 32]));
        assert_eq!(back.status, answer.status);
        assert_eq!(back.headers, answer.headers);
        assert_eq!(back.frames, answer.frames);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode(b"").is_none());
        assert_eq!(buffer_id("k").len(), "journal:".len() + 32);
    }
}
