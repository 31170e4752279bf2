//! The commit scripts (the Lua under `lua/`) and how a commit becomes their
//! arguments.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::schedules::schedule_args;
use crate::store::keys::Namespace;
use crate::store::{
    Commit, Expiry, ExpiryChange, Quota, SessionCommit, StateChange, ValueChange, ValueCheck,
    ValueWrite,
};

/// The Lua functions every commit script is made of (argument layout in the file).
const LUA_FNS: &str = include_str!("lua/functions.lua");

/// The Lua functions of a commit's schedule writes (`lua/schedule_fns.lua`).
const SCHEDULE_FNS: &str = include_str!("lua/schedule_fns.lua");

/// Removes expired entries of a session index (used by listing).
pub(super) const INDEX_PRUNE: &str = include_str!("lua/index_prune.lua");

/// How many expired index entries one listing removes (a commit removes 64).
pub(super) const PRUNE_ON_LIST: u32 = 1000;

/// The commit scripts, each `functions.lua` followed by its main part.
#[derive(Clone)]
pub(super) struct Scripts {
    pub(super) commit: Script,
    pub(super) session: Script,
    pub(super) value: Script,
    pub(super) index: Script,
    pub(super) value_index: Script,
    pub(super) quota: Script,
    /// Buffers a stream's events and counts them (`lua/stream_push.lua`).
    pub(super) stream_push: Script,
    /// Drops a stream and its count (`lua/stream_drop.lua`).
    pub(super) stream_drop: Script,
    /// Cluster: one shard of the usage ledger before a commit
    /// (`lua/cluster_usage.lua`).
    pub(super) usage_shard: Script,
    /// Gives an idempotency claim back (`lua/idempotency_release.lua`).
    pub(super) release: Script,
    /// One page of a bucket's keys (`lua/bucket_keys.lua`).
    pub(super) bucket_keys: Script,
    /// Cluster: a commit's schedule writes in one bucket
    /// (`lua/cluster_schedules.lua`).
    pub(super) schedules: Script,
    /// Claims due schedules (`lua/schedule_claim.lua`).
    pub(super) claim: Script,
    /// Reports a claimed schedule's run (`lua/schedule_finish.lua`).
    pub(super) finish: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let script = |main: &str| Script::new(&format!("{LUA_FNS}{main}"));
        Self {
            commit: Script::new(&format!(
                "{LUA_FNS}{SCHEDULE_FNS}{}",
                include_str!("lua/commit.lua")
            )),
            session: script(include_str!("lua/cluster_session.lua")),
            value: script(include_str!("lua/cluster_value.lua")),
            index: script(include_str!("lua/cluster_index.lua")),
            value_index: script(include_str!("lua/cluster_value_index.lua")),
            quota: script(include_str!("lua/cluster_quota.lua")),
            stream_push: script(include_str!("lua/stream_push.lua")),
            stream_drop: script(include_str!("lua/stream_drop.lua")),
            usage_shard: script(include_str!("lua/cluster_usage.lua")),
            release: Script::new(include_str!("lua/idempotency_release.lua")),
            bucket_keys: Script::new(include_str!("lua/bucket_keys.lua")),
            schedules: Script::new(&format!(
                "{SCHEDULE_FNS}{}",
                include_str!("lua/cluster_schedules.lua")
            )),
            claim: Script::new(include_str!("lua/schedule_claim.lua")),
            finish: Script::new(include_str!("lua/schedule_finish.lua")),
        }
    }
}

pub(super) fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

pub(super) fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// The `EVALSHA` of one commit (see `lua/commit.lua` for the layout).
pub(super) fn commit_invocation<'a>(
    script: &'a Script,
    ns: &Namespace,
    commit: &Commit,
) -> redis::ScriptInvocation<'a> {
    let mut call = values_invocation(
        script,
        ns,
        &commit.sessions,
        commit.values.iter(),
        commit.max_values,
        commit.quota,
    );
    if !commit.schedules.is_empty() {
        for key in &ns.schedule_keys(None)[..4] {
            call.key(key);
        }
        let most = commit.quota.and_then(|q| q.schedules);
        schedule_args(&mut call, commit.schedules.iter(), most);
    }
    call
}

/// The `EVALSHA` of `lua/commit.lua` for these sessions and values.
pub(super) fn values_invocation<'a, 'v>(
    script: &'a Script,
    ns: &Namespace,
    sessions: &[SessionCommit],
    values: impl ExactSizeIterator<Item = &'v ValueWrite>,
    max_values: Option<u64>,
    quota: Option<Quota>,
) -> redis::ScriptInvocation<'a> {
    let mut call = script.prepare_invoke();
    let quota = quota.unwrap_or(Quota::UNLIMITED);
    call.arg(now_ms().to_string())
        .arg(sessions.len())
        .arg(values.len())
        .arg(limit_arg(max_values))
        .arg(limit_arg(quota.sessions))
        .arg(limit_arg(quota.bytes));
    for s in sessions {
        session_keys(&mut call, ns, s);
        session_args(&mut call, s);
    }
    for write in values {
        call.key(ns.value_key(&write.name)).arg(write.name.as_str());
        value_args(&mut call, write);
    }
    call.key(ns.index_names_key())
        .key(ns.index_expiry_key())
        .key(ns.index_values_key())
        .key(ns.index_bucket_keys_key());
    usage_keys(&mut call, ns, None);
    call
}

/// The keys of a shard of the usage ledger (see [`Namespace::usage_keys`]), in
/// the order the scripts take them.
pub(super) fn usage_keys(
    call: &mut redis::ScriptInvocation<'_>,
    ns: &Namespace,
    shard: Option<u32>,
) {
    for key in ns.usage_keys(shard) {
        call.key(key);
    }
}

/// A limit as a script argument: '' for none.
pub(super) fn limit_arg(limit: Option<u64>) -> String {
    limit.map(|m| m.to_string()).unwrap_or_default()
}

/// A session's script keys: state, history, idempotency record (the state key
/// again when the commit writes none), kept versions.
pub(super) fn session_keys(
    call: &mut redis::ScriptInvocation<'_>,
    ns: &Namespace,
    s: &SessionCommit,
) {
    let state = ns.state_key(&s.session);
    let record = match &s.idempotency {
        Some(write) => ns.idempotency_key(&s.session, &write.key),
        None => state.clone(),
    };
    call.key(state)
        .key(ns.history_key(&s.session))
        .key(record)
        .key(ns.versions_key(&s.session));
}

/// A session's script arguments, from its member on (see `lua/functions.lua`).
pub(super) fn session_args(call: &mut redis::ScriptInvocation<'_>, s: &SessionCommit) {
    let (op, value, version): (&str, &[u8], u64) = match &s.state {
        StateChange::Keep => ("keep", b"", 0),
        StateChange::Put { value, version } => ("put", value, *version),
        StateChange::Delete => ("del", b"", 0),
    };
    let expiry = match s.expiry {
        ExpiryChange::Keep => "keep".to_string(),
        ExpiryChange::Set(Expiry::Never) => "never".to_string(),
        ExpiryChange::Set(Expiry::After(d)) => format!("set:{}", ms(d)),
        ExpiryChange::Extend(d) => format!("extend:{}", ms(d)),
    };
    call.arg(s.session.as_str())
        .arg(s.expect_version.map(|v| v.to_string()).unwrap_or_default())
        .arg(
            s.expect_history_len
                .map(|v| v.to_string())
                .unwrap_or_default(),
        )
        .arg(if s.clear { "1" } else { "0" })
        .arg(op)
        .arg(value)
        .arg(version)
        .arg(s.pops)
        .arg(expiry);
    match &s.idempotency {
        Some(write) => call
            .arg(write.claim.as_slice())
            .arg(write.record.as_slice())
            .arg(ms(write.ttl)),
        None => call.arg("").arg("").arg(""),
    };
    call.arg(s.keep_versions).arg(s.append.len());
    for item in &s.append {
        call.arg(item.as_slice());
    }
}

/// A value's script arguments after its member: op, value or delta, ttl ('0': never
/// for a set, keep for an add), what it must hold first.
pub(super) fn value_args(call: &mut redis::ScriptInvocation<'_>, write: &ValueWrite) {
    match &write.change {
        ValueChange::Set(value, expiry) => {
            let ttl = match expiry {
                Expiry::Never => "0".to_string(),
                Expiry::After(d) => ms(*d),
            };
            call.arg("set").arg(value.as_slice()).arg(ttl);
        }
        ValueChange::Remove => {
            call.arg("del").arg("").arg("0");
        }
        ValueChange::Add(delta, refresh) => {
            call.arg("add")
                .arg(*delta)
                .arg(refresh.map_or_else(|| "0".to_string(), ms));
        }
    }
    match &write.expect {
        None => call.arg(""),
        Some(ValueCheck::Absent) => call.arg("-"),
        Some(ValueCheck::Equals(bytes)) => call.arg([b"=".as_slice(), bytes].concat()),
    };
}

pub(super) fn value_op(change: &ValueChange) -> &'static str {
    match change {
        ValueChange::Set(..) => "set",
        ValueChange::Remove => "del",
        ValueChange::Add(..) => "add",
    }
}
