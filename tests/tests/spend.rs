//! Model spend (issue 27): the host reads the tokens of every answer from a
//! metered origin, in each form (OpenAI chat completions and Responses, Anthropic
//! messages; plain and streamed), counts them per plugin and per tenant per UTC
//! day and month in the store, and refuses a plugin's next metered request once a
//! budget is spent, before anything leaves the host; on Redis, a Cluster and the
//! embedded store (`cargo test -p agent-host-tests --test spend`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use agent_host::{
    AllowedOrigin, Budget, Host, Meter, ModelCount, PluginConfig, Price, Pricing, TurnError,
    TurnOptions,
};
use agent_host_tests::model_server::{ModelServer, USAGE_FORMS, usage_of};
use agent_host_tests::{Backend, load, plugins};

/// 2026-12-05T12:00:00Z.
const NOON: u64 = 1_796_472_000;
const DAY: u64 = 86_400;

/// A host on `backend` whose clock reads `clock` (Unix seconds).
fn host_at(backend: &Backend, clock: &Arc<AtomicU64>) -> Host {
    let clock = clock.clone();
    Host::builder()
        .shared_store(backend.store())
        .clock(move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::Relaxed)))
        .build()
        .expect("host")
}

/// The hostile plugin as `id`, allowed the model at `127.0.0.1` metered by
/// `meter`, and at `localhost` not metered.
async fn poster(host: &Host, id: &str, model: &ModelServer, meter: Meter, budget: Budget) {
    let metered = AllowedOrigin::parse(&model.origin())
        .unwrap()
        .with_meter(meter);
    let plain = AllowedOrigin::parse(&format!("http://localhost:{}", model.port())).unwrap();
    let config = PluginConfig::new(id, "tenant-a")
        .with_origin(metered)
        .with_origin(plain)
        .with_budget(budget);
    load(host, config, plugins::HOSTILE).await;
}

/// A chat example as `chat`, talking to `model` through a metered origin.
fn chat(model: &ModelServer) -> PluginConfig {
    PluginConfig::new("chat", "tenant-a")
        .with_env(vec![
            ("MODEL_URL".into(), format!("{}/v1", model.origin())),
            ("MODEL".into(), "small".into()),
        ])
        .with_origin(
            AllowedOrigin::parse(&model.origin())
                .unwrap()
                .with_meter(Meter::OpenAi),
        )
}

/// A turn that POSTs 100 bytes to `url`: the plugin's answer and the turn's usage.
async fn post(host: &Host, id: &str, url: &str, options: TurnOptions) -> (String, ModelCount) {
    let answer = host
        .run_turn_with(id, "s", &format!("post 100 {url}"), options)
        .await
        .unwrap_or_else(|e| panic!("{id} {url}: {e}"));
    (answer.output, answer.usage)
}

/// Every form is read exactly; an answer with no usage, or a broken one, is
/// estimated from the bytes (about 4 per token) and marked so, never a failure;
/// the store's day and month counters hold the sum.
async fn every_form_is_read_and_counted(backend: Backend) {
    let clock = Arc::new(AtomicU64::new(NOON));
    let host = host_at(&backend, &clock);
    let model = ModelServer::start().await;
    poster(&host, "oa", &model, Meter::OpenAi, Budget::UNLIMITED).await;
    poster(&host, "an", &model, Meter::Anthropic, Budget::UNLIMITED).await;
    let mut sums = [ModelCount::default(), ModelCount::default()];
    for (form, input, output, cached) in USAGE_FORMS {
        let (id, sum) = match form.starts_with("anthropic") {
            true => ("an", &mut sums[1]),
            false => ("oa", &mut sums[0]),
        };
        let url = format!("{}/usage/{form}", model.origin());
        let (said, usage) = post(&host, id, &url, TurnOptions::default()).await;
        assert!(said.starts_with("200 "), "{form}: {said}");
        let expected = match form {
            "none" | "broken" => {
                let body = said.len() as u64 - 4; // "200 " + the body
                ModelCount::call(100u64.div_ceil(4), body.div_ceil(4), 0, true)
            }
            _ => ModelCount::call(input, output, cached, false),
        };
        assert_eq!(usage, expected, "{form}");
        *sum = sum.plus(&usage);
    }
    for (id, sum) in [("oa", sums[0]), ("an", sums[1])] {
        let spend = host.model_usage(id).await.unwrap();
        assert_eq!(spend.day, sum, "{id}: today");
        assert_eq!(spend.month, sum, "{id}: this month");
        assert_eq!(spend.periods.day, "d2026-12-05");
    }
    // Not metered: the same server through the other origin counts nothing.
    let url = format!("http://localhost:{}/usage/chat", model.port());
    let (said, usage) = post(&host, "oa", &url, TurnOptions::default()).await;
    assert!(said.starts_with("200 "), "{said}");
    assert_eq!(usage, ModelCount::default());
    assert_eq!(host.model_usage("oa").await.unwrap().day, sums[0]);
}

/// Once the plugin's budget is spent its next metered request fails inside the
/// plugin, saying so, and never reaches the model; its unmetered origin still
/// works; the next day it may spend again, and the month keeps counting.
async fn a_spent_budget_stops_metered_requests_until_the_next_day(backend: Backend) {
    let clock = Arc::new(AtomicU64::new(NOON));
    let host = host_at(&backend, &clock);
    let model = ModelServer::start().await;
    // One "chat" answer is 150 tokens: the second one spends the budget.
    let budget = Budget::tokens(Some(200), None);
    poster(&host, "oa", &model, Meter::OpenAi, budget).await;
    let url = format!("{}/usage/chat", model.origin());
    for _ in 0..2 {
        let (said, _) = post(&host, "oa", &url, TurnOptions::default()).await;
        assert!(said.starts_with("200 "), "{said}");
    }
    let before = model.requests().len();
    let (said, usage) = post(&host, "oa", &url, TurnOptions::default()).await;
    assert!(
        said.contains("model budget spent (plugin oa: 300 of 200 tokens today)"),
        "{said}"
    );
    assert_eq!(usage, ModelCount::default());
    assert_eq!(
        model.requests().len(),
        before,
        "the refused request left the host"
    );
    let plain = format!("http://localhost:{}/usage/chat", model.port());
    let (said, _) = post(&host, "oa", &plain, TurnOptions::default()).await;
    assert!(
        said.starts_with("200 "),
        "another origin is not affected: {said}"
    );

    clock.fetch_add(DAY, Ordering::Relaxed);
    let (said, _) = post(&host, "oa", &url, TurnOptions::default()).await;
    assert!(said.starts_with("200 "), "a new day: {said}");
    let spend = host.model_usage("oa").await.unwrap();
    assert_eq!(spend.day.tokens(), 150);
    assert_eq!(spend.month.tokens(), 450);
    assert_eq!(spend.month.requests, 3);
}

/// A tenant's budget spans its plugins; another tenant's turns go on.
async fn a_tenants_budget_spans_its_plugins(backend: Backend) {
    let clock = Arc::new(AtomicU64::new(NOON));
    let host = host_at(&backend, &clock);
    let model = ModelServer::start().await;
    for id in ["one", "two"] {
        poster(&host, id, &model, Meter::OpenAi, Budget::UNLIMITED).await;
    }
    let budget = Budget::tokens(None, Some(100));
    let as_tenant = |t: &str| TurnOptions::default().with_tenant(t, budget);
    let url = format!("{}/usage/chat", model.origin());
    let (said, _) = post(&host, "one", &url, as_tenant("acme")).await;
    assert!(said.starts_with("200 "), "{said}");
    let (said, _) = post(&host, "two", &url, as_tenant("acme")).await;
    assert!(
        said.contains("model budget spent (tenant acme: 150 of 100 tokens this month)"),
        "{said}"
    );
    let (said, _) = post(&host, "two", &url, as_tenant("globex")).await;
    assert!(said.starts_with("200 "), "another tenant: {said}");
    let acme = host.tenant_model_usage("acme", budget).await.unwrap();
    assert_eq!((acme.month.tokens(), acme.month.requests), (150, 1));
    let two = host.model_usage("two").await.unwrap();
    assert_eq!(
        two.day.requests, 1,
        "the plugin counts the call of globex's turn"
    );
}

/// The chat example, streamed through the SDK's `Chat` (which asks for usage):
/// the turn's usage is what the model reported, exactly.
async fn the_chat_examples_calls_are_metered_exactly(backend: Backend) {
    let clock = Arc::new(AtomicU64::new(NOON));
    let host = host_at(&backend, &clock);
    let model = ModelServer::start().await;
    load(&host, chat(&model), plugins::LLM_CHAT).await;
    let answer = host
        .run_turn_with("chat", "alice", "Hello there", TurnOptions::default())
        .await
        .unwrap();
    let (input, output) = usage_of(2, &answer.output);
    assert_eq!(answer.usage, ModelCount::call(input, output, 0, false));
    assert_eq!(host.model_usage("chat").await.unwrap().day, answer.usage);
}

/// Two hosts sharing a store enforce one budget: with turns running at once
/// through both, what is spent passes the budget by at most the calls in flight
/// when it ran out (one per turn here), and then both refuse.
async fn two_hosts_enforce_one_budget(backend: Backend) {
    let clock = Arc::new(AtomicU64::new(NOON));
    let hosts = [host_at(&backend, &clock), host_at(&backend, &clock)];
    let model = ModelServer::start().await;
    let budget = Budget::tokens(Some(1000), None);
    for host in &hosts {
        poster(host, "oa", &model, Meter::OpenAi, budget).await;
    }
    let url = format!("{}/usage/chat", model.origin());
    const AT_ONCE: usize = 4;
    let mut tasks = Vec::new();
    for i in 0..2 * AT_ONCE {
        let host = hosts[i % 2].clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            for _ in 0..10 {
                let (said, _) = post(&host, "oa", &url, TurnOptions::default()).await;
                if said.starts_with("200 ") {
                    ok += 1;
                } else {
                    assert!(said.contains("model budget spent"), "{said}");
                }
            }
            ok
        }));
    }
    let mut answered = 0;
    for task in tasks {
        answered += task.await.unwrap();
    }
    let spent = hosts[0].model_usage("oa").await.unwrap().day;
    assert_eq!(
        spent.requests, answered,
        "every answered call is counted once"
    );
    let bound = 1000 + (2 * AT_ONCE as u64) * 150;
    assert!(spent.tokens() >= 1000, "the budget was reached: {spent:?}");
    assert!(
        spent.tokens() < bound,
        "{} tokens spent, at most {bound} expected",
        spent.tokens()
    );
    for host in &hosts {
        let (said, _) = post(host, "oa", &url, TurnOptions::default()).await;
        assert!(said.contains("model budget spent"), "{said}");
    }
}

/// A turn refused by the budget still answers: the plugin's own error, with the
/// reason, and nothing stored (the chat example writes nothing when its model
/// call fails).
async fn the_chat_example_answers_its_error_when_the_budget_is_spent(backend: Backend) {
    chat_refused(&backend, plugins::LLM_CHAT).await;
}

async fn chat_refused(backend: &Backend, wasm: &str) {
    let clock = Arc::new(AtomicU64::new(NOON));
    let host = host_at(backend, &clock);
    let model = ModelServer::start().await;
    let config = chat(&model).with_budget(Budget::tokens(Some(1), None));
    load(&host, config, wasm).await;
    host.run_turn("chat", "alice", "Hello").await.unwrap();
    let error = host.run_turn("chat", "bob", "Hello").await.unwrap_err();
    assert!(
        matches!(error, TurnError::Plugin { .. }),
        "{wasm}: {error:?}"
    );
    assert!(
        error.to_string().contains("model budget spent"),
        "{wasm}: {error}"
    );
    assert!(!host.inspect("chat", "bob").await.unwrap().exists);
}

/// The Python and JavaScript SDKs surface the reason too (the Rust one above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_javascript_chat_examples_say_the_budget_is_spent() {
    for wasm in [plugins::PY_CHAT, plugins::JS_CHAT] {
        chat_refused(&Backend::embedded(), wasm).await;
    }
}

/// With prices, each call's cost is counted with its tokens and a budget in US
/// dollars holds; a model with no price costs nothing.
async fn a_dollar_budget_holds_priced_calls(backend: Backend) {
    let clock = Arc::new(AtomicU64::new(NOON));
    let pricing = Pricing::new([(
        "gpt-test".to_string(),
        Price::per_million(1.0, 2.0).unwrap(),
    )]);
    let clock_for_host = clock.clone();
    let host = Host::builder()
        .shared_store(backend.store())
        .clock(move || UNIX_EPOCH + Duration::from_secs(clock_for_host.load(Ordering::Relaxed)))
        .pricing(pricing)
        .build()
        .unwrap();
    let model = ModelServer::start().await;
    // A "chat" answer: 120 input and 30 output tokens of gpt-test, 180 millionths.
    let budget = Budget::UNLIMITED.with_usd(Some(0.0003), None);
    poster(&host, "oa", &model, Meter::OpenAi, budget).await;
    let url = format!("{}/usage/chat", model.origin());
    let (_, usage) = post(&host, "oa", &url, TurnOptions::default()).await;
    assert_eq!(usage.cost_micros, 180);
    post(&host, "oa", &url, TurnOptions::default()).await;
    let (said, _) = post(&host, "oa", &url, TurnOptions::default()).await;
    assert!(
        said.contains("model budget spent (plugin oa: $0.000360 of $0.000300 today)"),
        "{said}"
    );
    // The Anthropic form names claude-test, which has no price.
    poster(&host, "an", &model, Meter::Anthropic, budget).await;
    let url = format!("{}/usage/anthropic", model.origin());
    let (said, usage) = post(&host, "an", &url, TurnOptions::default()).await;
    assert!(said.starts_with("200 "), "{said}");
    assert_eq!((usage.cost_micros, usage.tokens()), (0, 275));
    assert_eq!(host.model_usage("oa").await.unwrap().day.cost_micros, 360);
}

/// An embedder's policy refuses as a budget does, with its reason; it sees the
/// plugin, the tenant and the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedders_policy_can_refuse_a_model_call() {
    let backend = Backend::embedded();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let host = Host::builder()
        .shared_store(backend.store())
        .model_policy(move |request| {
            log.lock().unwrap().push(request.clone());
            match request.tenant.as_deref() {
                Some("blocked") => Err("credit card declined".into()),
                _ => Ok(()),
            }
        })
        .build()
        .unwrap();
    let model = ModelServer::start().await;
    poster(&host, "oa", &model, Meter::OpenAi, Budget::UNLIMITED).await;
    let url = format!("{}/usage/chat", model.origin());
    let blocked = TurnOptions::default().with_tenant("blocked", Budget::UNLIMITED);
    let (said, _) = post(&host, "oa", &url, blocked).await;
    assert!(
        said.starts_with("402 ") && said.contains("credit card declined"),
        "{said}"
    );
    let fine = TurnOptions::default().with_tenant("fine", Budget::UNLIMITED);
    let (said, _) = post(&host, "oa", &url, fine).await;
    assert!(said.starts_with("200 "), "{said}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].plugin.as_str(), seen[0].origin.as_str()),
        ("oa", model.origin().as_str())
    );
}

macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$test(Backend::redis()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() {
                    super::$test(Backend::cluster()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$test(Backend::embedded()).await;
                }
            }
        )*
    };
}

on_every_store!(
    every_form_is_read_and_counted,
    a_spent_budget_stops_metered_requests_until_the_next_day,
    a_tenants_budget_spans_its_plugins,
    the_chat_examples_calls_are_metered_exactly,
    two_hosts_enforce_one_budget,
    the_chat_example_answers_its_error_when_the_budget_is_spent,
    a_dollar_budget_holds_priced_calls,
);
