//! `serve`'s traces: the OpenTelemetry exporter (OTLP over HTTP, protobuf, on the
//! Tokio runtime) behind a `tracing` layer that takes the library's trace spans
//! (`agent_host::trace`) and nothing else, installed only when traces are on.
//!
//! On when `[telemetry] otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and `OTEL_SDK_DISABLED` is not
//! `true`; the environment overrides the file, as `REDIS_URL` does. The SDK reads
//! the rest of the standard variables (`OTEL_EXPORTER_OTLP_HEADERS` for a
//! collector's credentials, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_SCHEDULE_DELAY`
//! and the batch's other limits, `OTEL_RESOURCE_ATTRIBUTES`). Sampling is
//! parent-based: a trace continued from a caller's `traceparent` is kept if the
//! caller kept it; one that starts here is kept at `[telemetry] sample_ratio`.
//! A `serve --workers N` supervisor exports nothing (it runs no turns); each
//! worker exports its own spans.

use std::path::Path;

use agent_host::config_file::ConfigFile;
use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::Registry;

/// A layer of the process's subscriber (the logs', the traces').
pub(crate) type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// What traces are sent with, read from the config file and the environment.
#[derive(Debug, PartialEq)]
pub(crate) struct Settings {
    /// The URL to send to, when the file gives it; `None`: the SDK reads it from
    /// the environment.
    traces_url: Option<String>,
    sample_ratio: f64,
    service_name: String,
}

/// The environment variables that name an endpoint, most specific first.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

impl Settings {
    /// Where traces go and how many, for the start's log line (an endpoint
    /// never holds credentials: one with a user or password is refused).
    pub(crate) fn summary(&self) -> String {
        let endpoint = self
            .traces_url
            .as_deref()
            .unwrap_or("the OTEL_EXPORTER_OTLP_* endpoint");
        format!(
            "to {endpoint}, sample_ratio {}, service {}",
            self.sample_ratio, self.service_name
        )
    }

    /// The settings of `serve --config config`, or `None` when traces are off or
    /// this process is a `--workers` supervisor. A file that does not load gives
    /// `None` too: `serve` reads it again and reports why.
    pub(crate) fn of_serve(
        config: &Path,
        workers: Option<u32>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Self>> {
        let Ok(file) = ConfigFile::load(config) else {
            return Ok(None);
        };
        let supervisor =
            crate::serve::workers::number().is_none() && workers.unwrap_or(file.server.workers) > 1;
        if supervisor {
            return Ok(None);
        }
        Self::from(&file, env)
    }

    /// The settings `file` and the environment `env` give (`None`: traces off),
    /// or why they cannot be used (`agent-host check` reports it too).
    pub(crate) fn from(
        file: &ConfigFile,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Self>> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let from_env = ENDPOINT_VARS
            .iter()
            .find_map(|var| set(var).map(|v| (var, v)));
        if let Some((var, url)) = &from_env
            && !url.trim_start().starts_with("http://")
        {
            // The exporter's client speaks plain HTTP (see docs/operators.md#traces).
            anyhow::bail!(
                "{var}: give an http:// URL (a collector on this host or network); \
                 https is not supported yet"
            );
        }
        let telemetry = &file.telemetry;
        let traces_url = match (&from_env, telemetry.traces_url()) {
            (Some(_), _) => None,
            (None, Some(url)) => Some(url),
            (None, None) => return Ok(None),
        };
        if let Some(url) = &traces_url
            && !url.starts_with("http://")
        {
            anyhow::bail!(
                "{}: [telemetry] otlp_endpoint: give an http:// URL (a collector on this \
                 host or network); https is not supported yet",
                file.path.display()
            );
        }
        let service_name =
            set("OTEL_SERVICE_NAME").unwrap_or_else(|| telemetry.service_name().to_string());
        Ok(Some(Self {
            traces_url,
            sample_ratio: telemetry.sample_ratio(),
            service_name,
        }))
    }
}

/// The running exporter; [`Telemetry::shutdown`] sends what is left.
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Starts the exporter and makes W3C Trace Context the global propagator
    /// (which the library's outbound requests and `serve`'s incoming ones use).
    /// Must be called inside the Tokio runtime the server runs on: the batch
    /// processor is a task of it.
    pub(crate) fn start(settings: Settings) -> anyhow::Result<(Self, BoxedLayer)> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary);
        if let Some(url) = settings.traces_url {
            exporter = exporter.with_endpoint(url);
        }
        let exporter = exporter.build().context("the OTLP trace exporter")?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let resource = Resource::builder()
            .with_service_name(settings.service_name)
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        // Decided once per call site (a filter function would be asked at every
        // event of every level). The target has spans only: no log line becomes a
        // span event.
        let only_traces = tracing_subscriber::filter::Targets::new()
            .with_target(agent_host::trace::TARGET, tracing::Level::TRACE);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("agent-host"))
            // The library reads the current span's context from OpenTelemetry's
            // (`agent_host::trace::inject`): it must be made current on enter.
            .with_context_activation(true)
            // Nothing of where in our code, which thread, or how long idle.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(only_traces)
            .boxed();
        Ok((Self { provider }, layer))
    }

    /// Sends the spans not sent yet and stops the exporter, within the exporter's
    /// timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default). The processor runs
    /// on `runtime`, which drives it while a blocking thread waits.
    pub(crate) fn shutdown(self, runtime: &tokio::runtime::Runtime) {
        let provider = self.provider;
        let done = runtime.block_on(async move {
            tokio::task::spawn_blocking(move || provider.shutdown()).await
        });
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "traces not all sent at shutdown"),
            Err(e) => tracing::warn!(error = %e, "traces not all sent at shutdown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn file(text: &str) -> ConfigFile {
        ConfigFile::parse(Path::new("./conf.toml"), text, None, |_| None).unwrap()
    }

    fn settings(text: &str, env: &[(&str, &str)]) -> anyhow::Result<Option<Settings>> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from(&file(text), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    const ON: &str = "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.5\n";

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(settings("", &[]).unwrap(), None);
        assert_eq!(
            settings(ON, &[("OTEL_SDK_DISABLED", "true")]).unwrap(),
            None
        );
    }

    #[test]
    fn the_file_or_the_environment_turns_traces_on() {
        let on = settings(ON, &[]).unwrap().unwrap();
        assert_eq!(
            on.traces_url.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            (on.sample_ratio, on.service_name.as_str()),
            (0.5, "agent-host")
        );
        // The environment's endpoint wins; the SDK reads it.
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SERVICE_NAME", "agents-eu"),
        ];
        let on = settings(ON, &env).unwrap().unwrap();
        assert_eq!(on.traces_url, None);
        assert_eq!(on.service_name, "agents-eu");
        assert!(settings("", &env).unwrap().is_some());
    }

    #[test]
    fn https_is_refused_with_a_reason() {
        let text = "[telemetry]\notlp_endpoint = \"https://collector.example\"\n";
        let error = settings(text, &[]).unwrap_err().to_string();
        assert!(error.contains("https is not supported"), "{error}");
        let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example")];
        let error = settings("", &env).unwrap_err().to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{error}");
    }
}
