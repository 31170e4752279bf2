//! A small plugin's unit tests, run natively with `cargo test -p agent-sdk`: the
//! SDK's state calls go to `agent_sdk::testing`'s in-memory store, which keeps the
//! host's semantics (checked call by call below).

use std::time::Duration;

use agent_sdk::schedule::{self, Scheduled};
use agent_sdk::testing::{self, Store};
use agent_sdk::{Agent, Error, Result, SaveOptions, Session, StateError, values};

/// A shared document with optimistic versions: `write V TEXT` saves TEXT over
/// version V (0: a new document) and notes it in the history; `show` answers the
/// document and its version; `count` bumps a plugin-wide counter.
struct Doc;

impl Agent for Doc {
    fn handle(session: &Session, input: &str) -> Result<String> {
        let (command, rest) = input.split_once(' ').unwrap_or((input, ""));
        match command {
            "write" => {
                let (version, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let version: u64 = version.parse().map_err(Error::msg)?;
                let options = SaveOptions {
                    if_version: Some(version),
                    ..SaveOptions::default()
                };
                match session.save_with(text, options) {
                    Ok(new) => {
                        session.push(text)?;
                        agent_sdk::emit(&format!("v{new}"))?;
                        Ok(format!("saved v{new}"))
                    }
                    Err(Error::State(StateError::Conflict)) => {
                        let now = session.load_versioned::<String>()?.map_or(0, |v| v.version);
                        Err(Error::msg(format!(
                            "conflict: the document is at version {now}"
                        )))
                    }
                    Err(e) => Err(e),
                }
            }
            "show" => Ok(match session.load_versioned::<String>()? {
                Some(doc) => format!("v{}: {}", doc.version, doc.value),
                None => "empty".into(),
            }),
            "count" => Ok(values::increment("writes", 1)?.to_string()),
            "crash" => {
                session.save("half-written")?;
                panic!("crashing after a save");
            }
            _ => Err(Error::msg("commands: write V TEXT, show, count, crash")),
        }
    }
}

agent_sdk::export_agent!(Doc);

#[test]
fn a_conversation_over_two_turns_and_a_conflict() -> Result<()> {
    let store = Store::new();
    assert_eq!(store.run(Doc, "doc", "show")?, "empty");
    assert_eq!(store.run(Doc, "doc", "write 0 hello")?, "saved v1");
    assert_eq!(store.emitted(), ["v1"]);
    assert_eq!(store.run(Doc, "doc", "write 1 hello world")?, "saved v2");
    assert_eq!(store.run(Doc, "doc", "show")?, "v2: hello world");

    // A write over a version that is not the stored one conflicts and writes
    // nothing; the turn's error is the plugin's.
    let error = store.run(Doc, "doc", "write 1 stale").unwrap_err();
    assert_eq!(error.to_string(), "conflict: the document is at version 2");
    let doc = store.session("doc");
    assert_eq!(doc.state::<String>()?.as_deref(), Some("hello world"));
    assert_eq!(doc.version(), Some(2));
    assert_eq!(doc.history::<String>()?, ["hello", "hello world"]);

    // So does one over a version another writer replaced since.
    doc.save("theirs")?;
    let error = store.run(Doc, "doc", "write 2 mine").unwrap_err();
    assert_eq!(error.to_string(), "conflict: the document is at version 3");
    assert_eq!(store.run(Doc, "doc", "write 3 mine")?, "saved v4");
    Ok(())
}

#[test]
fn a_panic_writes_nothing_and_an_error_commits() {
    let store = Store::new();
    store.run(Doc, "doc", "write 0 kept").unwrap();
    let crash = std::panic::catch_unwind(|| store.run(Doc, "doc", "crash"));
    assert!(crash.is_err());
    assert_eq!(
        store.session("doc").state::<String>().unwrap().as_deref(),
        Some("kept")
    );
    // The store still runs turns after a panic.
    assert_eq!(store.run(Doc, "doc", "show").unwrap(), "v1: kept");
    assert!(matches!(
        store.run(Doc, "doc", "nope"),
        Err(Error::Message(_))
    ));
    let bad = store.run(Doc, "", "show").unwrap_err();
    assert!(
        matches!(bad, Error::State(StateError::InvalidKey(_))),
        "{bad}"
    );
}

#[test]
fn sessions_and_values_are_the_plugins() {
    let store = Store::new();
    for session in ["b", "a", "c"] {
        store.run(Doc, session, "write 0 x").unwrap();
        store.run(Doc, session, "count").unwrap();
    }
    assert_eq!(store.sessions(), ["a", "b", "c"]);
    assert_eq!(store.value::<i64>("writes").unwrap(), Some(3));
    // Another store is another plugin: nothing shared.
    assert_eq!(Store::new().run(Doc, "a", "show").unwrap(), "empty");
    // The thread's store, for `testing::run`, is a third.
    assert_eq!(testing::run(Doc, "a", "write 0 y").unwrap(), "saved v1");
    assert_eq!(testing::store().sessions(), ["a"]);
}

/// Every state call, as the host answers it, inside a turn of a plugin written
/// as a closure over the session.
struct Script;

/// What a turn of `Script` does.
type Steps = Box<dyn Fn(&Session) -> Result<String>>;

thread_local! {
    static SCRIPT: std::cell::RefCell<Option<Steps>> = std::cell::RefCell::new(None);
}

impl Agent for Script {
    fn handle(session: &Session, _input: &str) -> Result<String> {
        SCRIPT.with(|s| (s.borrow().as_ref().expect("a script"))(session))
    }
}

fn turn(
    store: &Store,
    session: &str,
    f: impl Fn(&Session) -> Result<String> + 'static,
) -> Result<String> {
    SCRIPT.with(|s| *s.borrow_mut() = Some(Box::new(f)));
    store.run(Script, session, "")
}

#[test]
fn history_versions_and_limits_follow_the_host() -> Result<()> {
    let store = Store::new().with_keep_versions(2);
    turn(&store, "s", |s| {
        assert_eq!(s.append(&["a", "b", "c"])?, 3);
        assert_eq!(s.last::<String>(2)?, ["b", "c"]);
        assert_eq!(s.pop::<String>()?.as_deref(), Some("c"));
        assert_eq!(s.save(&1)?, 1);
        assert_eq!(s.save(&2)?, 2);
        // A turn's own saves show in `versions` once it has committed.
        assert!(s.versions()?.is_empty());
        Ok(String::new())
    })?;
    turn(&store, "s", |s| {
        let versions: Vec<u64> = s.versions()?.iter().map(|v| v.version).collect();
        assert_eq!(versions, [2]);
        assert_eq!(s.versions()?[0].history_len, 2);
        assert!(s.delete()?);
        assert_eq!(s.save(&"again")?, 1, "a save after a delete starts at 1");
        Ok(String::new())
    })?;
    turn(&store, "s", |s| {
        let versions: Vec<u64> = s.versions()?.iter().map(|v| v.version).collect();
        assert_eq!(versions, [1, 2], "the replaced document is kept");
        assert_eq!(s.load_version::<i32>(2)?, Some(2));
        let stale = SaveOptions {
            if_version: Some(0),
            ..SaveOptions::default()
        };
        assert!(matches!(
            s.save_with(&3, stale),
            Err(Error::State(StateError::Conflict))
        ));
        assert!(s.clear()?);
        assert!(!s.clear()?);
        Ok(String::new())
    })?;
    assert!(!store.session("s").exists());

    turn(&store, "s", |s| {
        let big = "x".repeat(1 << 20);
        assert!(matches!(
            s.save(&big),
            Err(Error::State(StateError::TooLarge(1048576)))
        ));
        let many = vec![0; 1001];
        assert!(matches!(
            s.append(&many),
            Err(Error::State(StateError::QuotaExceeded(_)))
        ));
        let ttl0 = SaveOptions {
            ttl: Some(Duration::ZERO),
            ..SaveOptions::default()
        };
        // The SDK rounds a TTL up to a second, so a zero TTL is one second.
        assert_eq!(s.save_with(&1, ttl0)?, 1);
        assert!(matches!(
            Session::new("a\nb").load::<i32>(),
            Err(Error::State(StateError::InvalidKey(_)))
        ));
        assert!(matches!(values::set("k", &"text", None), Ok(())));
        assert!(matches!(
            values::increment("k", 1),
            Err(Error::State(StateError::Internal(_)))
        ));
        values::set("n", &i64::MAX, None)?;
        assert!(matches!(
            values::increment("n", 1),
            Err(Error::State(StateError::Internal(_)))
        ));
        assert!(values::remove("n")?);
        assert_eq!(values::increment("n", -2)?, -2);
        Ok(String::new())
    })?;
    Ok(())
}

#[test]
fn expiry_runs_on_the_stores_clock() -> Result<()> {
    let store = Store::new().with_default_ttl(Duration::from_secs(60));
    turn(&store, "s", |s| {
        s.save(&1)?;
        assert_eq!(s.ttl()?, Some(Duration::from_secs(60)));
        Ok(String::new())
    })?;
    store.advance(Duration::from_secs(59));
    assert_eq!(store.session("s").ttl(), Some(Duration::from_secs(1)));
    // touch sets it, or removes it.
    turn(&store, "s", |s| {
        assert!(s.touch(Some(Duration::from_secs(10)))?);
        assert!(!Session::new("nobody").touch(None)?);
        Ok(String::new())
    })?;
    store.advance(Duration::from_secs(10));
    assert!(!store.session("s").exists(), "expired with its history");
    assert!(store.sessions().is_empty());

    // With sliding expiry, reading extends it.
    let store = Store::new()
        .with_default_ttl(Duration::from_secs(60))
        .with_sliding_ttl(true);
    turn(&store, "s", |s| s.save(&1).map(|_| String::new()))?;
    for _ in 0..3 {
        store.advance(Duration::from_secs(50));
        turn(&store, "s", |s| Ok(s.load::<i32>()?.unwrap().to_string()))?;
    }
    assert_eq!(store.session("s").state::<i32>()?, Some(1));
    // A plugin-wide value expires too.
    turn(&store, "s", |_| {
        values::set("v", &1, Some(Duration::from_secs(5)))?;
        Ok(String::new())
    })?;
    store.advance(Duration::from_secs(5));
    assert_eq!(store.value::<i32>("v")?, None);
    Ok(())
}

/// Outside a component there is no host to send a request to: an error the
/// plugin handles like any failed request, not a panic.
#[test]
fn http_outside_a_component_is_an_error() {
    let chat = agent_sdk::llm::Chat::new("http://127.0.0.1:9/v1", "m");
    let error = chat
        .complete(&[agent_sdk::llm::Message::user("hi")])
        .unwrap_err();
    assert!(matches!(error, Error::Http(_)), "{error}");
    assert!(error.to_string().contains("no host"), "{error}");
}

/// Reminders: `in SECONDS TEXT` schedules TEXT for later (and fails after it when
/// TEXT is `then fail`), `cancel ID` cancels one; a reminder that comes back is
/// noted in the history, fails while it is `flaky` and the session has no state,
/// and when it is `limited` fails and schedules its own retry (`retried`, in 30
/// s), as a plugin that hit a model's rate limit would.
struct Remind;

impl Agent for Remind {
    fn handle(session: &Session, input: &str) -> Result<String> {
        if let Some(rest) = input.strip_prefix("in ") {
            let (secs, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let delay = Duration::from_secs(secs.parse().map_err(Error::msg)?);
            let id = schedule::after(session, delay, text)?;
            if text == "then fail" {
                return Err(Error::msg("failing after scheduling"));
            }
            return Ok(id);
        }
        if let Some(id) = input.strip_prefix("cancel ") {
            return Ok(schedule::cancel(id)?.to_string());
        }
        session.push(input)?;
        if input == "flaky" && session.load::<bool>()?.is_none() {
            session.save(&true)?;
            return Err(Error::msg("not this time"));
        }
        if input == "limited" {
            schedule::after(session, Duration::from_secs(30), "retried")?;
            return Err(Error::msg("rate limited: retrying in 30 s"));
        }
        Ok(format!("reminded: {input}"))
    }
}

fn inputs(list: Vec<Scheduled>) -> Vec<String> {
    list.into_iter().map(|s| s.input).collect()
}

#[test]
fn schedules_are_committed_with_their_turn_and_run_when_due() -> Result<()> {
    let store = Store::new();
    let later = store.run(Remind, "s", "in 60 later")?;
    store.run(Remind, "s", "in 10 sooner")?;
    assert_eq!(later.len(), 24, "{later}");
    assert!(
        later
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    store.run(Remind, "t", "in 30 elsewhere")?;
    assert_eq!(inputs(store.scheduled()), ["sooner", "elsewhere", "later"]);

    // A turn sees the session's pending schedules, its own included.
    turn(&store, "s", |s| {
        schedule::after(s, Duration::from_secs(5), "soonest")?;
        let pending = schedule::pending(s)?;
        assert_eq!(inputs(pending.clone()), ["soonest", "sooner", "later"]);
        assert_eq!(pending[1].at_ms + 50_000, pending[2].at_ms);
        assert_eq!((pending[0].session.as_str(), pending[0].attempts), ("s", 0));
        Ok(String::new())
    })?;
    assert_eq!(store.run(Remind, "s", &format!("cancel {later}"))?, "true");
    assert_eq!(store.run(Remind, "s", &format!("cancel {later}"))?, "false");

    // Nothing is due before its time; then each runs once, soonest first.
    assert!(store.run_due(Remind).is_empty());
    store.advance(Duration::from_secs(10));
    let ran = store.run_due(Remind);
    let answers: Vec<String> = ran.into_iter().map(|(_, r)| r.unwrap()).collect();
    assert_eq!(answers, ["reminded: soonest", "reminded: sooner"]);
    assert_eq!(inputs(store.scheduled()), ["elsewhere"]);
    assert_eq!(
        store.session("s").history::<String>()?,
        ["soonest", "sooner"]
    );
    store.advance(Duration::from_secs(20));
    assert_eq!(store.run_due(Remind).len(), 1);
    assert!(store.scheduled().is_empty());
    Ok(())
}

#[test]
fn a_failed_turn_keeps_its_schedules_and_cancels_and_a_panic_drops_them() -> Result<()> {
    let store = Store::new();
    // A turn that returns `Err` commits what it scheduled, as its state writes...
    let error = store.run(Remind, "s", "in 5 then fail").unwrap_err();
    assert_eq!(error.to_string(), "failing after scheduling");
    let made = store.scheduled();
    assert_eq!(inputs(made.clone()), ["then fail"]);
    // ...and what it cancelled.
    let id = made[0].id.clone();
    let error = turn(&store, "s", move |_| {
        assert!(schedule::cancel(&id)?);
        Err(Error::msg("failing after cancelling"))
    })
    .unwrap_err();
    assert_eq!(error.to_string(), "failing after cancelling");
    assert!(store.scheduled().is_empty());

    // A turn that panics (a trap, in a component) schedules and cancels nothing.
    let kept = store.run(Remind, "s", "in 5 kept")?;
    let crash = std::panic::catch_unwind(|| {
        turn(&store, "s", move |s| {
            schedule::after(s, Duration::from_secs(5), "lost")?;
            assert!(schedule::cancel(&kept)?);
            panic!("crashing after scheduling and cancelling");
        })
    });
    assert!(crash.is_err());
    assert_eq!(inputs(store.scheduled()), ["kept"]);

    // A scheduled run that fails and schedules its own retry: the retry is kept,
    // and the failed run stays pending with one more attempt.
    let store = Store::new();
    store.run(Remind, "s", "in 5 limited")?;
    store.advance(Duration::from_secs(5));
    let (scheduled, outcome) = store.run_due(Remind).remove(0);
    assert_eq!(scheduled.attempts, 1);
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "rate limited: retrying in 30 s"
    );
    let pending = store.scheduled();
    assert_eq!(inputs(pending.clone()), ["limited", "retried"]);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[1].at_ms, pending[0].at_ms + 30_000);
    Ok(())
}

#[test]
fn schedule_calls_follow_the_host_and_a_failed_run_is_retried() -> Result<()> {
    let store = Store::new();
    // The due time must be 1 s to 366 days ahead.
    for secs in ["0", "31622401"] {
        let error = store.run(Remind, "s", &format!("in {secs} x")).unwrap_err();
        assert!(
            matches!(error, Error::State(StateError::InvalidArgument(_))),
            "{error}"
        );
    }
    assert!(store.scheduled().is_empty());
    turn(&store, "s", |s| {
        assert!(matches!(
            schedule::at(s, 0, "past"),
            Err(Error::State(StateError::InvalidArgument(_)))
        ));
        assert!(matches!(
            schedule::pending(&Session::new("")),
            Err(Error::State(StateError::InvalidKey(_)))
        ));
        assert!(matches!(
            schedule::cancel("not-an-id"),
            Err(Error::State(StateError::InvalidArgument(_)))
        ));
        let long = "x".repeat((64 << 10) + 1);
        assert!(matches!(
            schedule::after(s, Duration::from_secs(5), &long),
            Err(Error::State(StateError::TooLarge(65536)))
        ));
        // `at` takes unix ms on the store's clock: 60 s from now.
        let id = schedule::after(s, Duration::from_secs(30), "flaky")?;
        let at_ms = schedule::pending(s)?[0].at_ms + 30_000;
        assert!(schedule::cancel(&id)?);
        schedule::at(s, at_ms, "flaky")
    })?;

    // A run that fails stays pending with one more attempt, and runs again.
    store.advance(Duration::from_secs(60));
    let (scheduled, outcome) = store.run_due(Remind).remove(0);
    assert_eq!((scheduled.attempts, outcome.is_err()), (1, true));
    assert_eq!(store.scheduled()[0].attempts, 1);
    let (_, outcome) = store.run_due(Remind).remove(0);
    assert_eq!(outcome?, "reminded: flaky");
    assert!(store.scheduled().is_empty());
    Ok(())
}
