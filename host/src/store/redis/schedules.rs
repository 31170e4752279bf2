//! Scheduled turns on Redis (see `store::schedule`): per bucket a sorted set of
//! pending ids by due time, a hash of records, a hash of claims, the kept ids by
//! session (`<session>/<id>`, ordered by name) and the finished ones by time.
//! Claiming and finishing are one script each; a commit's schedule writes are part
//! of the commit script on a standalone server, and one script per bucket after
//! the sessions on a Cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use super::RedisStore;
use super::connection::Conn;
use super::scripts::{limit_arg, now_ms};
use crate::error::StoreError;
use crate::store::keys::{INDEX_BUCKETS, Name, Namespace};
use crate::store::schedule::{self, KEEP_FINISHED, KEEP_FINISHED_MS};
use crate::store::{Claimed, Claims, Finish, Schedule, ScheduleState, ScheduleWrite};

/// The member of `session`'s schedule `id` in the by-session index.
fn by_member(session: &Name, id: &str) -> String {
    format!("{}/{id}", session.encoded())
}

/// Appends a commit's schedule writes to a script call (see
/// `lua/schedule_fns.lua`): count, most pending, then five arguments per write.
pub(super) fn schedule_args<'a>(
    call: &mut redis::ScriptInvocation<'_>,
    writes: impl ExactSizeIterator<Item = &'a ScheduleWrite>,
    most: Option<u64>,
) {
    call.arg(writes.len()).arg(limit_arg(most));
    for write in writes {
        match write {
            ScheduleWrite::Add(s) => {
                let session = Name::session(s.session.clone()).ok();
                let member = session.map(|n| by_member(&n, &s.id)).unwrap_or_default();
                call.arg("add")
                    .arg(&s.id)
                    .arg(member)
                    .arg(s.at_ms)
                    .arg(s.to_json());
            }
            ScheduleWrite::Cancel { id, session } => {
                call.arg("cancel")
                    .arg(id)
                    .arg(by_member(session, id))
                    .arg(0)
                    .arg("");
            }
        }
    }
}

impl RedisStore {
    /// The keys of the bucket a schedule id lives in, on this deployment.
    fn bucket_keys(&self, ns: &Namespace, bucket: u32) -> [String; 5] {
        match self.conn {
            Conn::Cluster(_) => ns.schedule_keys(Some(bucket)),
            _ => ns.schedule_keys(None),
        }
    }

    pub(super) fn buckets(&self) -> u32 {
        match self.conn {
            Conn::Cluster(_) => INDEX_BUCKETS,
            _ => 1,
        }
    }

    /// A Cluster commit's schedule writes, one script per bucket (see
    /// `lua/cluster_schedules.lua`). The pending limit was checked when the turn
    /// staged them.
    pub(super) async fn commit_schedules(
        &self,
        ns: &Namespace,
        writes: &[ScheduleWrite],
    ) -> Result<(), StoreError> {
        let mut by_bucket: BTreeMap<u32, Vec<&ScheduleWrite>> = BTreeMap::new();
        for write in writes {
            let bucket = schedule::bucket_of(write.id()).unwrap_or(0);
            by_bucket.entry(bucket).or_default().push(write);
        }
        for (bucket, writes) in by_bucket {
            let mut call = self.scripts.schedules.prepare_invoke();
            for key in &self.bucket_keys(ns, bucket)[..4] {
                call.key(key);
            }
            schedule_args(&mut call, writes.into_iter(), None);
            match self.invoke::<i64>(&call).await? {
                0 => {}
                -4 => return Err(StoreError::QuotaExceeded("pending schedules".into())),
                _ => return Err(StoreError::Conflict),
            }
        }
        Ok(())
    }

    pub(super) async fn claim_due(
        &self,
        ns: &Namespace,
        bucket: u32,
        lease: Duration,
        limit: u32,
        claim: &str,
    ) -> Result<Claims, StoreError> {
        let now = now_ms();
        let [due, rec, claims, ..] = self.bucket_keys(ns, bucket);
        let mut call = self.scripts.claim.prepare_invoke();
        call.key(due)
            .key(rec)
            .key(claims)
            .arg(now.to_string())
            .arg((now + lease.as_millis()).to_string())
            .arg(limit)
            .arg(claim);
        // Record, due, record, due..., then the next due time if any is pending.
        let mut found: Vec<Vec<u8>> = self.invoke(&call).await?;
        let ms = |score: &[u8]| Some(std::str::from_utf8(score).ok()?.parse::<f64>().ok()? as u64);
        let next_due_ms = match found.len() % 2 {
            1 => found.pop().and_then(|score| ms(&score)),
            _ => None,
        };
        let claimed = found
            .chunks_exact(2)
            .filter_map(|pair| {
                let schedule = Schedule::from_json(&pair[0])?;
                Some(Claimed {
                    schedule,
                    due_ms: ms(&pair[1])?,
                })
            })
            .collect();
        Ok(Claims {
            claimed,
            next_due_ms,
        })
    }

    pub(super) async fn finish(
        &self,
        ns: &Namespace,
        schedule: &Schedule,
        claim: &str,
        finish: Finish,
    ) -> Result<bool, StoreError> {
        let keys = self.bucket_keys(ns, schedule.bucket());
        let session = Name::session(schedule.session.clone())
            .map_err(|e| StoreError::Internal(format!("a schedule's session: {e}")))?;
        let mut call = self.scripts.finish.prepare_invoke();
        for key in keys {
            call.key(key);
        }
        let (kind, at) = match finish {
            Finish::Again(at) => ("again", at),
            Finish::Finished => ("finished", now_ms() as u64),
        };
        call.arg(&schedule.id)
            .arg(claim)
            .arg(schedule.to_json())
            .arg(kind)
            .arg(at)
            .arg(by_member(&session, &schedule.id))
            .arg(KEEP_FINISHED_MS)
            .arg(KEEP_FINISHED);
        Ok(self.invoke::<i64>(&call).await? == 1)
    }

    /// The records of `ids` in `bucket`, running ones marked so.
    async fn records(
        &self,
        ns: &Namespace,
        bucket: u32,
        ids: &[String],
    ) -> Result<Vec<Schedule>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let [_, rec, claims, ..] = self.bucket_keys(ns, bucket);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(&rec).arg(ids);
        pipe.cmd("HMGET").arg(&claims).arg(ids);
        let (records, held): (Vec<Option<Vec<u8>>>, Vec<Option<String>>) = self.pipe(&pipe).await?;
        Ok(records
            .into_iter()
            .zip(held)
            .filter_map(|(record, held)| {
                let mut s = Schedule::from_json(&record?)?;
                if held.is_some() && s.state == ScheduleState::Pending {
                    s.state = ScheduleState::Running;
                }
                Some(s)
            })
            .collect())
    }

    pub(super) async fn get_schedule(
        &self,
        ns: &Namespace,
        id: &str,
    ) -> Result<Option<Schedule>, StoreError> {
        let Some(bucket) = schedule::bucket_of(id) else {
            return Ok(None);
        };
        let found = self.records(ns, bucket, &[id.to_owned()]).await?;
        Ok(found.into_iter().next())
    }

    pub(super) async fn list_schedules(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<Schedule>, StoreError> {
        let bucket = crate::store::keys::index_bucket(session);
        let by = &self.bucket_keys(ns, bucket)[3];
        let members: Vec<String> = self
            .query(
                redis::cmd("ZRANGEBYLEX")
                    .arg(by)
                    .arg(format!("[{}/", session.encoded()))
                    .arg(format!("({}0", session.encoded()))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(KEEP_FINISHED + crate::store::DEFAULT_MAX_SCHEDULES),
            )
            .await?;
        let ids: Vec<String> = members
            .iter()
            .filter_map(|m| m.rsplit('/').next().map(str::to_owned))
            .collect();
        let mut found = self.records(ns, bucket, &ids).await?;
        found.sort_by_key(|s| (s.at_ms, s.id.clone()));
        Ok(found)
    }

    pub(super) async fn pending_count(&self, ns: &Namespace) -> Result<u64, StoreError> {
        // On a Cluster every bucket is in a slot of its own: one command each.
        let mut total = 0;
        for bucket in 0..self.buckets() {
            let due = &self.bucket_keys(ns, bucket)[0];
            total += self.query::<u64>(redis::cmd("ZCARD").arg(due)).await?;
        }
        Ok(total)
    }
}
