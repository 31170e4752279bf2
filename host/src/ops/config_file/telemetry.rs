//! `[telemetry]`: where `serve` sends its traces (OpenTelemetry, OTLP over HTTP),
//! how many it keeps, and the service name they carry. Off unless an endpoint is
//! given here or in `OTEL_EXPORTER_OTLP_ENDPOINT`.
//!
//! ```toml
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4318"   # the collector; /v1/traces is added
//! sample_ratio = 0.1                         # of the traces that start here
//! service_name = "agent-host"
//! ```

use serde::Deserialize;
use toml::Spanned;

/// `[telemetry]` as written; [`TelemetrySection::problem`] checks it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetrySection {
    /// The OTLP/HTTP endpoint's base URL (`http://` or `https://`, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the host sends to `{it}/v1/traces`).
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` in the
    /// environment override it.
    #[serde(default)]
    pub otlp_endpoint: Option<Spanned<String>>,
    /// The share of traces kept (0 to 1) among those that start at this host;
    /// a trace continued from a caller's `traceparent` follows the caller's
    /// choice. Default 1.
    #[serde(default)]
    pub sample_ratio: Option<Spanned<f64>>,
    /// `service.name` of the traces (default `agent-host`); `OTEL_SERVICE_NAME`
    /// overrides it.
    #[serde(default)]
    pub service_name: Option<Spanned<String>>,
}

impl TelemetrySection {
    /// The endpoint's base URL, without a trailing `/`, if one is set.
    pub fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint
            .as_ref()
            .map(|e| e.get_ref().trim_end_matches('/'))
    }

    /// The URL traces are sent to when the file's endpoint is used.
    pub fn traces_url(&self) -> Option<String> {
        self.endpoint().map(|base| format!("{base}/v1/traces"))
    }

    /// The sampling ratio (default 1).
    pub fn sample_ratio(&self) -> f64 {
        self.sample_ratio.as_ref().map_or(1.0, |r| *r.get_ref())
    }

    /// The service name (default `agent-host`).
    pub fn service_name(&self) -> &str {
        self.service_name
            .as_ref()
            .map_or("agent-host", |n| n.get_ref().as_str())
    }

    /// The first mistake in the section, as the offset in the file where it is
    /// and what is wrong.
    pub(super) fn problem(&self) -> Option<(usize, String)> {
        if let Some(endpoint) = &self.otlp_endpoint
            && let Err(why) = check_endpoint(endpoint.get_ref())
        {
            return Some((
                endpoint.span().start,
                format!("[telemetry] otlp_endpoint: {why}"),
            ));
        }
        if let Some(ratio) = &self.sample_ratio {
            let r = *ratio.get_ref();
            if !(0.0..=1.0).contains(&r) {
                return Some((
                    ratio.span().start,
                    format!("[telemetry] sample_ratio is {r}: give a share from 0 to 1"),
                ));
            }
        }
        if let Some(name) = &self.service_name
            && name.get_ref().trim().is_empty()
        {
            return Some((
                name.span().start,
                "[telemetry] service_name is empty".to_string(),
            ));
        }
        None
    }
}

/// An endpoint is an `http` or `https` URL with a host, and no user
/// information (a collector's credentials belong in `OTEL_EXPORTER_OTLP_HEADERS`,
/// not in a file that is shown and copied). The error never repeats the URL.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| "not a URL; write it like \"http://127.0.0.1:4318\"".to_string())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("give an http:// or https:// URL".into()),
    }
    let Some(authority) = uri.authority() else {
        return Err("the URL has no host".into());
    };
    if authority.as_str().contains('@') {
        return Err(
            "no user or password in the URL: give the collector's credentials in \
             OTEL_EXPORTER_OTLP_HEADERS"
                .into(),
        );
    }
    if authority.host().is_empty() {
        return Err("the URL has no host".into());
    }
    if uri.query().is_some() {
        return Err("the URL may not have a query".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config_file::ConfigFile;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("./conf.toml"), text, None, |_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn telemetry_is_off_by_default_with_its_defaults() {
        let file = parse("").unwrap();
        assert_eq!(file.telemetry.endpoint(), None);
        assert_eq!(file.telemetry.sample_ratio(), 1.0);
        assert_eq!(file.telemetry.service_name(), "agent-host");
    }

    #[test]
    fn a_telemetry_section_is_read() {
        let file = parse(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/\"\n\
             sample_ratio = 0.25\nservice_name = \"agents-eu\"\n",
        )
        .unwrap();
        assert_eq!(file.telemetry.endpoint(), Some("http://127.0.0.1:4318"));
        assert_eq!(
            file.telemetry.traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(file.telemetry.sample_ratio(), 0.25);
        assert_eq!(file.telemetry.service_name(), "agents-eu");
        let zero = parse("[telemetry]\nsample_ratio = 0\n").unwrap();
        assert_eq!(zero.telemetry.sample_ratio(), 0.0);
    }

    #[test]
    fn telemetry_mistakes_say_where_and_what() {
        for (text, said) in [
            (
                "[telemetry]\notlp_endpoint = \"collector:4318 x\"\n",
                "conf.toml:2:17: [telemetry] otlp_endpoint: not a URL",
            ),
            (
                "[telemetry]\notlp_endpoint = \"grpc://127.0.0.1:4317\"\n",
                "conf.toml:2:17: [telemetry] otlp_endpoint: give an http:// or https:// URL",
            ),
            (
                "[telemetry]\notlp_endpoint = \"/v1/traces\"\n",
                "[telemetry] otlp_endpoint: give an http:// or https:// URL",
            ),
            (
                "[telemetry]\nsample_ratio = 1.5\n",
                "conf.toml:2:16: [telemetry] sample_ratio is 1.5: give a share from 0 to 1",
            ),
            (
                "[telemetry]\nsample_ratio = -0.1\n",
                "sample_ratio is -0.1: give a share from 0 to 1",
            ),
            ("[telemetry]\nsample_ratio = nan\n", "sample_ratio is NaN"),
            (
                "[telemetry]\nservice_name = \" \"\n",
                "service_name is empty",
            ),
            (
                "[telemetry]\nendpoint = \"http://x\"\n",
                "unknown field `endpoint`",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(said), "{text}: {error}");
        }
    }

    #[test]
    fn a_password_in_the_endpoint_is_refused_and_never_repeated() {
        let error = parse(
            "[telemetry]\notlp_endpoint = \"https://user:hunter2-secret@collector.example:4318\"\n",
        )
        .unwrap_err();
        assert!(error.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
