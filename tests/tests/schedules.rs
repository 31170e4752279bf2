//! Scheduled turns: a plugin schedules its own follow-up in its turn's commit, and
//! the hosts sharing a store run it once when it is due, on Redis, a Redis Cluster
//! and the embedded store, with plugins in Rust, Python and JavaScript.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_host::host::DEFAULT_ROOT;
use agent_host::keys::Namespace;
use agent_host::ops::schedules::Due;
use agent_host::{
    Error, Host, PluginConfig, Quota, RunOutcome, ScheduleRun, ScheduleState, Scheduling,
    TurnError, TurnOptions,
};
use agent_host_tests::{Backend, conformance, eventually, load, plugins};

conformance!(
    twenty_schedules_fire_once_each_across_two_hosts,
    a_trapped_turn_schedules_nothing_and_an_error_answer_keeps_its_schedule,
    schedules_are_cancelled_in_a_turn_and_by_the_operator,
    a_schedule_due_while_every_host_was_down_runs_late,
    a_failing_run_is_retried_then_kept_as_failed,
    the_limits_on_schedules_hold,
    a_claim_left_by_a_dead_host_runs_out_and_its_committed_turn_is_not_run_twice,
    a_claim_says_when_the_next_schedule_is_due,
);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn remind_host(backend: &Backend, config: PluginConfig) -> Host {
    let host = backend.host();
    load(&host, config, plugins::REMIND).await;
    host
}

fn remind() -> PluginConfig {
    PluginConfig::new("remind", "t")
}

/// Options that poll often and retry soon, recording every run.
fn recording(runs: &Arc<Mutex<Vec<ScheduleRun>>>) -> Scheduling {
    let runs = runs.clone();
    Scheduling::default()
        .with_poll(Duration::from_millis(50))
        .with_retry_backoff(Duration::from_millis(100))
        .on_run(move |run| runs.lock().unwrap().push(run.clone()))
}

/// The id a `remind` turn answered (`scheduled ID`).
fn scheduled_id(answer: &str) -> String {
    answer
        .strip_prefix("scheduled ")
        .unwrap_or_else(|| panic!("not scheduled: {answer}"))
        .to_owned()
}

/// The session's history items, as text.
async fn history(host: &Host, session: &str) -> Vec<String> {
    let snapshot = host.inspect("remind", session).await.unwrap();
    snapshot
        .history
        .iter()
        .map(|i| String::from_utf8(i.clone()).unwrap())
        .collect()
}

/// Polls `host` until the schedule `id` of `session` is in `state`.
async fn until_state(host: &Host, session: &str, id: &str, state: ScheduleState) -> bool {
    eventually(Duration::from_secs(20), || async {
        let found = host.schedules("remind", session).await.unwrap();
        found.iter().any(|s| s.id == id && s.state == state)
    })
    .await
}

async fn twenty_schedules_fire_once_each_across_two_hosts(backend: Backend) {
    let hosts = [
        remind_host(&backend, remind()).await,
        remind_host(&backend, remind()).await,
    ];
    let mut ids = Vec::new();
    for i in 0..20 {
        let session = format!("s{i}");
        let answer = hosts[i % 2]
            .run_turn("remind", &session, &format!("remind 1 number {i}"))
            .await
            .unwrap();
        ids.push((session, scheduled_id(&answer)));
    }
    assert_eq!(hosts[0].pending_schedules("remind").await.unwrap(), 20);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let loops: Vec<_> = hosts
        .iter()
        .map(|h| {
            let (host, options) = (h.clone(), recording(&runs));
            tokio::spawn(async move { host.run_schedules(options).await })
        })
        .collect();
    for (session, id) in &ids {
        assert!(
            until_state(&hosts[0], session, id, ScheduleState::Done).await,
            "{id} of {session} did not run"
        );
    }
    for l in loops {
        l.abort();
    }
    for (i, (session, id)) in ids.iter().enumerate() {
        let items = history(&hosts[1], session).await;
        let reminders: Vec<_> = items
            .iter()
            .filter(|i| i.starts_with("reminder: "))
            .collect();
        assert_eq!(reminders, [&format!("reminder: number {i}")], "{session}");
        let kept = hosts[1].schedules("remind", session).await.unwrap();
        let done = kept.iter().find(|s| &s.id == id).unwrap();
        assert_eq!(
            done.answer.as_deref(),
            Some(&*format!("got reminder: number {i}"))
        );
        assert!(!done.late);
    }
    let runs = runs.lock().unwrap().clone();
    let done = runs
        .iter()
        .filter(|r| r.outcome == RunOutcome::Done)
        .count();
    assert_eq!(done, 20, "{runs:?}");
    assert_eq!(hosts[0].pending_schedules("remind").await.unwrap(), 0);
}

async fn a_trapped_turn_schedules_nothing_and_an_error_answer_keeps_its_schedule(backend: Backend) {
    let host = remind_host(&backend, remind()).await;
    let trapped = host.run_turn("remind", "s", "remind-then-trap 1 x").await;
    assert!(
        matches!(&trapped, Err(TurnError::Trap { .. })),
        "{trapped:?}"
    );
    assert!(host.schedules("remind", "s").await.unwrap().is_empty());
    assert_eq!(host.pending_schedules("remind").await.unwrap(), 0);
    assert!(
        history(&host, "s").await.is_empty(),
        "a trap writes nothing"
    );
    // An error answer commits the turn's writes, its schedule among them (a plugin
    // answers "try later" and schedules its own retry).
    let failed = host.run_turn("remind", "s", "remind-then-fail 60 y").await;
    assert!(
        matches!(&failed, Err(TurnError::Plugin { message, .. }) if message.contains("failing on purpose")),
        "{failed:?}"
    );
    let pending = host.schedules("remind", "s").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].input, "reminder: y");
    assert_eq!(pending[0].state, ScheduleState::Pending);
    assert_eq!(history(&host, "s").await, ["remind-then-fail 60 y"]);
}

async fn schedules_are_cancelled_in_a_turn_and_by_the_operator(backend: Backend) {
    let host = remind_host(&backend, remind()).await;
    let a = scheduled_id(&host.run_turn("remind", "s", "remind 60 a").await.unwrap());
    let b = scheduled_id(&host.run_turn("remind", "s", "remind 120 b").await.unwrap());
    let listed: serde_json::Value =
        serde_json::from_str(&host.run_turn("remind", "s", "pending").await.unwrap()).unwrap();
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [a.as_str(), b.as_str()], "soonest first");

    let cancel = |id: String| {
        let host = host.clone();
        async move {
            host.run_turn("remind", "s", &format!("cancel {id}"))
                .await
                .unwrap()
        }
    };
    assert_eq!(cancel(a.clone()).await, "cancelled true");
    assert_eq!(cancel(a.clone()).await, "cancelled false");
    assert!(
        cancel("not-an-id".into())
            .await
            .starts_with("error invalid-argument")
    );
    let pending = host.schedules("remind", "s").await.unwrap();
    assert_eq!(pending.iter().map(|s| &s.id).collect::<Vec<_>>(), [&b]);

    // The operator's cancel: of another session it is not; of this one it is.
    assert!(!host.cancel_schedule("remind", Some("t"), &b).await.unwrap());
    assert!(host.cancel_schedule("remind", Some("s"), &b).await.unwrap());
    assert!(!host.cancel_schedule("remind", None, &b).await.unwrap());
    assert!(host.schedules("remind", "s").await.unwrap().is_empty());
    let bad = host.cancel_schedule("remind", None, "xyz").await;
    assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
}

async fn a_schedule_due_while_every_host_was_down_runs_late(backend: Backend) {
    let host = remind_host(&backend, remind()).await;
    let at = now_ms() + 1_500;
    let added = host
        .add_schedule("remind", "s", Due::At(at), "reminder: late".into())
        .await
        .unwrap();
    // No host runs schedules until well after it was due.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let options = Scheduling::default().with_late_after(Duration::from_secs(1));
    let runs = host.run_due_schedules(&options).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].outcome, RunOutcome::Done);
    assert!(
        runs[0].late && runs[0].lag >= Duration::from_millis(1_500),
        "{runs:?}"
    );
    let kept = host.schedules("remind", "s").await.unwrap();
    assert_eq!(kept[0].id, added.id);
    assert_eq!(kept[0].state, ScheduleState::Done);
    assert!(kept[0].late);
    assert_eq!(history(&host, "s").await, ["reminder: late"]);
    // Nothing is due any more.
    assert!(host.run_due_schedules(&options).await.is_empty());
}

async fn a_failing_run_is_retried_then_kept_as_failed(backend: Backend) {
    let host = remind_host(&backend, remind().with_schedule_retries(2)).await;
    let added = host
        .add_schedule(
            "remind",
            "s",
            Due::After(Duration::from_secs(1)),
            "reminder: fail".into(),
        )
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let looping = {
        let (host, options) = (host.clone(), recording(&runs));
        tokio::spawn(async move { host.run_schedules(options).await })
    };
    assert!(until_state(&host, "s", &added.id, ScheduleState::Failed).await);
    looping.abort();
    let outcomes: Vec<_> = runs.lock().unwrap().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [RunOutcome::Retry, RunOutcome::Retry, RunOutcome::Failed]
    );
    let kept = host.schedules("remind", "s").await.unwrap();
    assert_eq!(kept[0].attempts, 3);
    assert!(
        kept[0]
            .error
            .as_deref()
            .unwrap()
            .contains("reminder failed"),
        "{kept:?}"
    );
    assert_eq!(host.pending_schedules("remind").await.unwrap(), 0);
}

async fn the_limits_on_schedules_hold(backend: Backend) {
    let quota = Quota::default().with_schedules(Some(2));
    let host = remind_host(&backend, remind().with_quota(quota)).await;
    for _ in 0..2 {
        let answer = host.run_turn("remind", "s", "remind 60 x").await.unwrap();
        assert!(answer.starts_with("scheduled "), "{answer}");
    }
    let third = host.run_turn("remind", "s", "remind 60 x").await.unwrap();
    assert!(third.starts_with("error quota-exceeded"), "{third}");
    let api = host
        .add_schedule(
            "remind",
            "t",
            Due::After(Duration::from_secs(60)),
            "x".into(),
        )
        .await;
    assert!(
        matches!(
            &api,
            Err(Error::Store(agent_host::StoreError::QuotaExceeded(_)))
        ),
        "{api:?}"
    );
    assert_eq!(host.pending_schedules("remind").await.unwrap(), 2);

    // Too soon, too late, too big.
    let soon = host.run_turn("remind", "u", "remind 0 x").await.unwrap();
    assert!(soon.starts_with("error invalid-argument"), "{soon}");
    let far = format!("remind-at {} x", now_ms() + 400 * 24 * 3600 * 1000);
    let far = host.run_turn("remind", "u", &far).await.unwrap();
    assert!(far.starts_with("error invalid-argument"), "{far}");
    let past = host
        .add_schedule("remind", "u", Due::At(now_ms() - 1), "x".into())
        .await;
    assert!(matches!(past, Err(Error::Invalid(_))), "{past:?}");
    let big = host
        .add_schedule(
            "remind",
            "u",
            Due::After(Duration::from_secs(60)),
            "x".repeat(65 << 10),
        )
        .await;
    assert!(matches!(big, Err(Error::Invalid(_))), "{big:?}");
}

/// A claim tells when the bucket's next schedule is due (a host with nothing due
/// sleeps until then): none pending, one not yet due, then a claimed one at the
/// end of its lease.
async fn a_claim_says_when_the_next_schedule_is_due(backend: Backend) {
    let host = remind_host(&backend, remind()).await;
    let store = backend.store();
    let ns = Namespace::new(DEFAULT_ROOT, "t").unwrap();
    let lease = Duration::from_secs(30);
    for bucket in 0..store.schedule_buckets() {
        let claims = store
            .claim_schedules(&ns, bucket, lease, 10, "c")
            .await
            .unwrap();
        assert!(claims.claimed.is_empty());
        assert_eq!(claims.next_due_ms, None, "bucket {bucket}");
    }
    let later = now_ms() + 3_600_000;
    let added = host
        .add_schedule("remind", "s", Due::At(later), "later".into())
        .await
        .unwrap();
    let bucket = added.bucket() % store.schedule_buckets();
    let claims = store
        .claim_schedules(&ns, bucket, lease, 10, "c")
        .await
        .unwrap();
    assert!(claims.claimed.is_empty(), "{:?}", claims.claimed);
    assert_eq!(claims.next_due_ms, Some(later));
    // One due in a second, claimed once due: the next is its lease's end.
    let soon = host
        .add_schedule(
            "remind",
            "s",
            Due::After(Duration::from_secs(1)),
            "soon".into(),
        )
        .await
        .unwrap();
    let bucket = soon.bucket() % store.schedule_buckets();
    let claims = store
        .claim_schedules(&ns, bucket, lease, 10, "c")
        .await
        .unwrap();
    let due = claims.next_due_ms.expect("a schedule is pending");
    assert!(
        due <= now_ms() + 1_000,
        "due {due}: the one due in a second"
    );
    // Once the time the claim named has come, the next claim takes it.
    tokio::time::sleep(Duration::from_millis(due.saturating_sub(now_ms()) + 1)).await;
    let claims = store
        .claim_schedules(&ns, bucket, lease, 10, "c")
        .await
        .unwrap();
    assert_eq!(claims.claimed.len(), 1, "due at {due}, now {}", now_ms());
    assert_eq!(claims.claimed[0].schedule.id, soon.id);
    // The claimed one stays pending until its lease ends, 30 s after the claim
    // (which came at or after its due time); the other is an hour away.
    let next = claims.next_due_ms.expect("the claimed one is pending");
    let earliest = claims.claimed[0].due_ms + 30_000;
    assert!(
        next >= earliest && next <= now_ms() + 30_000,
        "{next} vs {earliest}"
    );
}

async fn a_claim_left_by_a_dead_host_runs_out_and_its_committed_turn_is_not_run_twice(
    backend: Backend,
) {
    let host = remind_host(&backend, remind()).await;
    let added = host
        .add_schedule(
            "remind",
            "s",
            Due::After(Duration::from_secs(1)),
            "reminder: once".into(),
        )
        .await
        .unwrap();
    // A host claims it for 3 s, runs its turn (which commits) and dies before it
    // reports.
    let store = backend.store();
    let ns = Namespace::new(DEFAULT_ROOT, "t").unwrap();
    let bucket = added.bucket() % store.schedule_buckets();
    let claimed = loop {
        let claimed = store
            .claim_schedules(&ns, bucket, Duration::from_secs(3), 10, "dead host")
            .await
            .unwrap()
            .claimed;
        if !claimed.is_empty() {
            break claimed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(claimed[0].schedule.id, added.id);
    let options = TurnOptions::idempotency_key(added.id.clone());
    let ran = host
        .run_turn_with("remind", "s", "reminder: once", options)
        .await
        .unwrap();
    assert!(!ran.replayed);
    // While its claim holds, no other host runs it.
    let options = Scheduling::default();
    assert!(host.run_due_schedules(&options).await.is_empty());
    // Then another host does: the turn's key answers, the plugin does not run again.
    let runs = Arc::new(Mutex::new(Vec::new()));
    let looping = {
        let options = recording(&runs).with_late_after(Duration::from_secs(2));
        let host = host.clone();
        tokio::spawn(async move { host.run_schedules(options).await })
    };
    assert!(until_state(&host, "s", &added.id, ScheduleState::Done).await);
    looping.abort();
    assert_eq!(history(&host, "s").await, ["reminder: once"]);
    // Its lag counts from when it was due, not from when the dead host's claim ran
    // out: the takeover is late.
    let took_over = runs.lock().unwrap().clone();
    assert_eq!(took_over.len(), 1, "{took_over:?}");
    assert!(
        took_over[0].late && took_over[0].lag >= Duration::from_secs(3),
        "{took_over:?}"
    );
    // The dead host's report comes too late and changes nothing.
    let mut stale = claimed[0].schedule.clone();
    stale.state = ScheduleState::Failed;
    let reported = store
        .finish_schedule(
            &ns,
            &stale,
            "dead host",
            agent_host::store::Finish::Finished,
        )
        .await
        .unwrap();
    assert!(!reported);
    let kept = host.schedules("remind", "s").await.unwrap();
    assert_eq!(kept[0].state, ScheduleState::Done);
}

/// A plugin in each language schedules its own follow-up, which runs once.
async fn follow_up_in(plugin: &str) {
    let backend = Backend::redis();
    let host = backend.cached_host();
    load(&host, remind(), plugin).await;
    let answer = host.run_turn("remind", "s", "remind 1 tea").await.unwrap();
    let id = scheduled_id(&answer);
    assert_eq!(id.len(), 24, "{id}");
    let listed = host.run_turn("remind", "s", "pending").await.unwrap();
    assert!(
        listed.contains(&id) && listed.contains("reminder: tea"),
        "{listed}"
    );
    let runs = Arc::new(Mutex::new(Vec::new()));
    let looping = {
        let (host, options) = (host.clone(), recording(&runs));
        tokio::spawn(async move { host.run_schedules(options).await })
    };
    assert!(until_state(&host, "s", &id, ScheduleState::Done).await);
    looping.abort();
    assert_eq!(
        history(&host, "s").await,
        ["remind 1 tea", "pending", "reminder: tea"]
    );
    let kept = host.schedules("remind", "s").await.unwrap();
    assert_eq!(kept[0].answer.as_deref(), Some("got reminder: tea"));
    let soon = host.run_turn("remind", "s", "remind 0 tea").await.unwrap();
    assert!(soon.starts_with("error invalid-argument"), "{soon}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_plugin_schedules_its_follow_up() {
    follow_up_in(plugins::REMIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_schedules_its_follow_up() {
    follow_up_in(plugins::PY_REMIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_schedules_its_follow_up() {
    follow_up_in(plugins::JS_REMIND).await;
}
