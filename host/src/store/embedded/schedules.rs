//! Scheduled turns in the embedded store (see `store::schedule`): one bucket per
//! plugin, its records with their due time and claim, and three indexes (pending
//! by due time, kept ones by session, finished ones by time).

use std::time::Duration;

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::tables::{internal, key, ns_prefix, prefixed};
use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};
use crate::store::schedule::{KEEP_FINISHED, KEEP_FINISHED_MS};
use crate::store::{Claimed, Claims, Finish, Schedule, ScheduleState, ScheduleWrite};

/// A row of [`ROWS`]: due at (unix ms, 0 = not pending), the claim of the host
/// running it (empty = none), the record.
type Row = (u64, &'static [u8], &'static [u8]);

/// `ns \0 id` -> [`Row`].
const ROWS: TableDefinition<&[u8], Row> = TableDefinition::new("schedules");
/// `ns \0 due-at (big-endian) id` -> (): pending ones by due time.
const DUE: TableDefinition<&[u8], ()> = TableDefinition::new("schedules_due");
/// `ns \0 session (encoded) / id` -> (): kept ones by session.
const BY_SESSION: TableDefinition<&[u8], ()> = TableDefinition::new("schedules_by_session");
/// `ns \0 finished-at (big-endian) id` -> (session, encoded): finished ones by time.
const FINISHED: TableDefinition<&[u8], &str> = TableDefinition::new("schedules_finished");

fn timed_key(ns: &Namespace, at: u64, id: &str) -> Vec<u8> {
    let mut k = ns_prefix(ns);
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn by_key(ns: &Namespace, encoded: &str, id: &str) -> Vec<u8> {
    key(ns, &format!("{encoded}/{id}"))
}

fn encoded(session: &str) -> Result<String, StoreError> {
    Name::session(session.to_owned())
        .map(|n| n.encoded().to_owned())
        .map_err(|e| StoreError::Internal(format!("a schedule's session: {e}")))
}

/// The schedule tables of one write transaction.
pub(super) struct Schedules<'t> {
    rows: Table<'t, &'static [u8], Row>,
    due: Table<'t, &'static [u8], ()>,
    by: Table<'t, &'static [u8], ()>,
    finished: Table<'t, &'static [u8], &'static str>,
}

impl<'t> Schedules<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            rows: txn.open_table(ROWS).map_err(internal)?,
            due: txn.open_table(DUE).map_err(internal)?,
            by: txn.open_table(BY_SESSION).map_err(internal)?,
            finished: txn.open_table(FINISHED).map_err(internal)?,
        })
    }

    /// The due time and claim of `id` (due 0: not pending).
    fn row(&self, ns: &Namespace, id: &str) -> Result<Option<(u64, bool)>, StoreError> {
        Ok(self
            .rows
            .get(key(ns, id).as_slice())
            .map_err(internal)?
            .map(|row| {
                let (due, claim, _) = row.value();
                (due, !claim.is_empty())
            }))
    }

    /// Checks a commit's schedule writes: every cancelled one still pending and
    /// unclaimed, and the pending count within `most`.
    pub(super) fn check(
        &self,
        ns: &Namespace,
        writes: &[ScheduleWrite],
        most: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut grows: i64 = 0;
        for write in writes {
            match write {
                ScheduleWrite::Add(_) => grows += 1,
                ScheduleWrite::Cancel { id, .. } => {
                    match self.row(ns, id)? {
                        Some((due, false)) if due > 0 => {}
                        _ => return Err(StoreError::Conflict),
                    }
                    grows -= 1;
                }
            }
        }
        if let (Some(most), true) = (most, grows > 0) {
            let pending = count_due(&self.due, ns)?;
            if pending + grows.unsigned_abs() > most {
                return Err(crate::store::Quota::UNLIMITED
                    .with_schedules(Some(most))
                    .schedules_exceeded());
            }
        }
        Ok(())
    }

    pub(super) fn apply(
        &mut self,
        ns: &Namespace,
        writes: &[ScheduleWrite],
    ) -> Result<(), StoreError> {
        for write in writes {
            match write {
                ScheduleWrite::Add(s) => {
                    let record = s.to_json();
                    self.rows
                        .insert(
                            key(ns, &s.id).as_slice(),
                            (s.at_ms, b"".as_slice(), record.as_slice()),
                        )
                        .map_err(internal)?;
                    self.due
                        .insert(timed_key(ns, s.at_ms, &s.id).as_slice(), ())
                        .map_err(internal)?;
                    let by = by_key(ns, &encoded(&s.session)?, &s.id);
                    self.by.insert(by.as_slice(), ()).map_err(internal)?;
                }
                ScheduleWrite::Cancel { id, session } => {
                    if let Some((due, _)) = self.row(ns, id)? {
                        self.due
                            .remove(timed_key(ns, due, id).as_slice())
                            .map_err(internal)?;
                    }
                    self.rows.remove(key(ns, id).as_slice()).map_err(internal)?;
                    let by = by_key(ns, session.encoded(), id);
                    self.by.remove(by.as_slice()).map_err(internal)?;
                }
            }
        }
        Ok(())
    }

    /// Claims up to `limit` due schedules (see `StateStore::claim_schedules`).
    pub(super) fn claim(
        &mut self,
        ns: &Namespace,
        now: u64,
        lease: Duration,
        limit: u32,
        claim: &str,
    ) -> Result<Claims, StoreError> {
        let (lo, end) = prefixed(&ns_prefix(ns));
        let hi = timed_key(ns, now.saturating_add(1), "");
        let mut found = Vec::new();
        for row in self
            .due
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
        {
            if found.len() >= limit as usize {
                break;
            }
            let (k, _) = row.map_err(internal)?;
            let k = k.value().to_vec();
            let tail = &k[lo.len()..];
            let due = u64::from_be_bytes(tail[..8].try_into().unwrap_or_default());
            found.push((
                k.clone(),
                due,
                String::from_utf8_lossy(&tail[8..]).into_owned(),
            ));
        }
        let until = now.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let mut claimed = Vec::with_capacity(found.len());
        for (due_key, due_ms, id) in found {
            self.due.remove(due_key.as_slice()).map_err(internal)?;
            let k = key(ns, &id);
            let record = match self.rows.get(k.as_slice()).map_err(internal)? {
                Some(row) => row.value().2.to_vec(),
                None => continue,
            };
            self.rows
                .insert(k.as_slice(), (until, claim.as_bytes(), record.as_slice()))
                .map_err(internal)?;
            self.due
                .insert(timed_key(ns, until, &id).as_slice(), ())
                .map_err(internal)?;
            if let Some(schedule) = Schedule::from_json(&record) {
                claimed.push(Claimed { schedule, due_ms });
            }
        }
        // The soonest left, a claimed one at its lease's end.
        let next_due_ms = match self
            .due
            .range(lo.as_slice()..end.as_slice())
            .map_err(internal)?
            .next()
        {
            Some(row) => {
                let (k, _) = row.map_err(internal)?;
                let tail = &k.value()[lo.len()..];
                tail.get(..8)
                    .and_then(|at| at.try_into().ok())
                    .map(u64::from_be_bytes)
            }
            None => None,
        };
        Ok(Claims {
            claimed,
            next_due_ms,
        })
    }

    /// Reports a claimed schedule's run (see `StateStore::finish_schedule`).
    pub(super) fn finish(
        &mut self,
        ns: &Namespace,
        schedule: &Schedule,
        claim: &str,
        finish: Finish,
        now: u64,
    ) -> Result<bool, StoreError> {
        let id = &schedule.id;
        let k = key(ns, id);
        let due = match self.rows.get(k.as_slice()).map_err(internal)? {
            Some(row) if row.value().1 == claim.as_bytes() => row.value().0,
            _ => return Ok(false),
        };
        self.due
            .remove(timed_key(ns, due, id).as_slice())
            .map_err(internal)?;
        let record = schedule.to_json();
        let again = match finish {
            Finish::Again(at) => at,
            Finish::Finished => 0,
        };
        self.rows
            .insert(k.as_slice(), (again, b"".as_slice(), record.as_slice()))
            .map_err(internal)?;
        if again > 0 {
            self.due
                .insert(timed_key(ns, again, id).as_slice(), ())
                .map_err(internal)?;
            return Ok(true);
        }
        let session = encoded(&schedule.session)?;
        self.finished
            .insert(timed_key(ns, now, id).as_slice(), session.as_str())
            .map_err(internal)?;
        self.forget(ns, now)?;
        Ok(true)
    }

    /// Drops finished schedules kept too long or beyond the count, a few at a time.
    fn forget(&mut self, ns: &Namespace, now: u64) -> Result<(), StoreError> {
        let (lo, hi) = prefixed(&ns_prefix(ns));
        let kept = self
            .finished
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
            .count() as u64;
        let old = timed_key(ns, now.saturating_sub(KEEP_FINISHED_MS), "");
        let mut drop = Vec::new();
        for (n, row) in self
            .finished
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
            .enumerate()
            .take(16)
        {
            let (k, session) = row.map_err(internal)?;
            let k = k.value().to_vec();
            if k.as_slice() >= old.as_slice() && kept.saturating_sub(n as u64) <= KEEP_FINISHED {
                break;
            }
            let id = String::from_utf8_lossy(&k[lo.len() + 8..]).into_owned();
            drop.push((k, session.value().to_owned(), id));
        }
        for (k, session, id) in drop {
            self.finished.remove(k.as_slice()).map_err(internal)?;
            self.rows
                .remove(key(ns, &id).as_slice())
                .map_err(internal)?;
            self.by
                .remove(by_key(ns, &session, &id).as_slice())
                .map_err(internal)?;
        }
        Ok(())
    }
}

fn count_due<T: ReadableTable<&'static [u8], ()>>(
    table: &T,
    ns: &Namespace,
) -> Result<u64, StoreError> {
    let (lo, hi) = prefixed(&ns_prefix(ns));
    Ok(table
        .range(lo.as_slice()..hi.as_slice())
        .map_err(internal)?
        .count() as u64)
}

/// The record of a row, running ones marked so.
fn record_of(due: u64, claim: &[u8], record: &[u8]) -> Option<Schedule> {
    let mut s = Schedule::from_json(record)?;
    if due > 0 && !claim.is_empty() && s.state == ScheduleState::Pending {
        s.state = ScheduleState::Running;
    }
    Some(s)
}

/// The kept schedule `id`.
pub(super) fn get(
    txn: &redb::ReadTransaction,
    ns: &Namespace,
    id: &str,
) -> Result<Option<Schedule>, StoreError> {
    let rows = txn.open_table(ROWS).map_err(internal)?;
    Ok(rows
        .get(key(ns, id).as_slice())
        .map_err(internal)?
        .and_then(|row| {
            let (due, claim, record) = row.value();
            record_of(due, claim, record)
        }))
}

/// The kept schedules of `session`, by due time.
pub(super) fn of_session(
    txn: &redb::ReadTransaction,
    ns: &Namespace,
    session: &Name,
) -> Result<Vec<Schedule>, StoreError> {
    let by = txn.open_table(BY_SESSION).map_err(internal)?;
    let rows = txn.open_table(ROWS).map_err(internal)?;
    let (lo, hi) = prefixed(&key(ns, &format!("{}/", session.encoded())));
    let mut found = Vec::new();
    for row in by.range(lo.as_slice()..hi.as_slice()).map_err(internal)? {
        let (k, _) = row.map_err(internal)?;
        let id = String::from_utf8_lossy(&k.value()[lo.len()..]).into_owned();
        if let Some(row) = rows.get(key(ns, &id).as_slice()).map_err(internal)? {
            let (due, claim, record) = row.value();
            found.extend(record_of(due, claim, record));
        }
    }
    found.sort_by_key(|s| (s.at_ms, s.id.clone()));
    Ok(found)
}

/// How many schedules of `ns` are pending.
pub(super) fn pending(txn: &redb::ReadTransaction, ns: &Namespace) -> Result<u64, StoreError> {
    count_due(&txn.open_table(DUE).map_err(internal)?, ns)
}
