//! Scheduled turns as the stores keep them: a [`Schedule`] per turn to run later,
//! found when due without a scan, claimed by one host at a time.
//!
//! A plugin's schedules live in buckets (one on a standalone server and the
//! embedded store, [`INDEX_BUCKETS`] on a Redis Cluster, like the session index).
//! A schedule's bucket is the first hex digit of its id, which is the session's
//! [`index_bucket`], so every host finds it from the id alone. Each bucket keeps
//! the records, the pending ones by due time, the ones a host runs right now (its
//! claim), and every kept one by session.
//!
//! Schedules are added and cancelled in a turn's [`Commit`](crate::store::Commit)
//! (or a commit of their own, from the HTTP API). A host running them claims due
//! ones ([`StateStore::claim_schedules`](crate::StateStore::claim_schedules)): a
//! claim moves the due time to the end of a lease, so a host that dies leaves a
//! claim that runs out and another host takes the schedule over. It then reports
//! how the run went ([`StateStore::finish_schedule`](crate::StateStore::finish_schedule)),
//! which applies only while it still holds the claim.

use serde::{Deserialize, Serialize};

use crate::store::keys::{INDEX_BUCKETS, Name, index_bucket};

/// Length of a schedule id, in hex digits.
pub const ID_LEN: usize = 24;

/// Finished schedules (done or failed) a bucket keeps for listing, newest first.
pub const KEEP_FINISHED: u64 = 1_000;

/// Most bytes of a run's answer a finished schedule keeps (1,000 of them per
/// bucket at most: 16 MiB).
pub const KEEP_ANSWER_BYTES: usize = 16 << 10;

/// How long a finished schedule is kept for listing.
pub const KEEP_FINISHED_MS: u64 = 24 * 3600 * 1000;

/// Where a schedule is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleState {
    /// Waiting for its time (or for a retry).
    Pending,
    /// A host runs it now.
    Running,
    /// Its turn committed.
    Done,
    /// Its turn failed more often than the plugin's retries allow.
    Failed,
}

/// One scheduled turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Schedule {
    /// 24 hex digits; the first is its bucket.
    pub id: String,
    /// The session whose turn it runs.
    pub session: String,
    /// When it is due (unix ms); a retry moves it.
    pub at_ms: u64,
    /// The turn's input.
    pub input: String,
    /// Runs that failed so far.
    pub attempts: u32,
    /// Where it is (a store answers `Running` for one a host has claimed).
    pub state: ScheduleState,
    /// When it was made (unix ms).
    #[serde(default)]
    pub created_ms: u64,
    /// When its last run started (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// Its last run started long after it was due (every host was down, or busy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// The answer of the turn that ran it (done), its first [`KEEP_ANSWER_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Why its last run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Schedule {
    /// A new pending schedule of `session`, with a new id in the session's bucket.
    pub fn new(session: &Name, at_ms: u64, input: String, now_ms: u64) -> Self {
        Self {
            id: new_id(session),
            session: session.as_str().to_owned(),
            at_ms,
            input,
            attempts: 0,
            state: ScheduleState::Pending,
            created_ms: now_ms,
            started_ms: None,
            late: false,
            answer: None,
            error: None,
        }
    }

    /// The record as the stores keep it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored record.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The bucket it lives in.
    pub fn bucket(&self) -> u32 {
        bucket_of(&self.id).unwrap_or(0)
    }
}

/// A new schedule id for `session`: its index bucket as the first hex digit, then
/// 23 random ones.
fn new_id(session: &Name) -> String {
    let token = crate::store::token::token();
    format!("{:x}{}", index_bucket(session), &token[..ID_LEN - 1])
}

/// The bucket of a well-formed id (24 lowercase hex digits); `None` otherwise.
pub fn bucket_of(id: &str) -> Option<u32> {
    let well_formed = id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return None;
    }
    let bucket = u32::from_str_radix(&id[..1], 16).ok()?;
    (bucket < INDEX_BUCKETS).then_some(bucket)
}

/// A schedule write of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleWrite {
    /// Add this pending schedule.
    Add(Schedule),
    /// Remove the pending schedule `id` of `session`: the commit fails with
    /// [`StoreError::Conflict`](crate::StoreError::Conflict) if it is no longer
    /// pending (it ran, runs now, or was cancelled).
    Cancel {
        /// The schedule.
        id: String,
        /// Its session.
        session: Name,
    },
}

impl ScheduleWrite {
    /// The id it writes.
    pub fn id(&self) -> &str {
        match self {
            ScheduleWrite::Add(s) => &s.id,
            ScheduleWrite::Cancel { id, .. } => id,
        }
    }
}

/// A schedule a host claimed: it runs it, then reports with
/// [`StateStore::finish_schedule`](crate::StateStore::finish_schedule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The record as it was when claimed.
    pub schedule: Schedule,
    /// When it was due (unix ms): its time, a retry's time, or when an earlier
    /// host's claim ran out.
    pub due_ms: u64,
}

/// What a claim took from a bucket, and when its next schedule is due.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Claims {
    /// The schedules claimed, soonest first.
    pub claimed: Vec<Claimed>,
    /// When the soonest schedule left pending in the bucket is due (unix ms): a
    /// schedule just claimed counts as due when its lease runs out. None when the
    /// bucket holds none. A host with nothing due sleeps until then.
    pub next_due_ms: Option<u64>,
}

/// How a claimed schedule's run went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Done or failed for good: kept for listing (the record as given), no longer
    /// pending.
    Finished,
    /// Pending again, due at this time (unix ms), the record as given.
    Again(u64),
}
