//! What a plugin may reach over HTTP: the origins it may call and the secret
//! headers the host adds to them (the policy; `crate::outbound` carries it out).

/// What a plugin may reach over HTTP. Default: nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outbound {
    /// The origins requests may go to.
    pub origins: Vec<AllowedOrigin>,
    /// Lets an origin of `*` (any origin) be listed.
    pub allow_any_origin: bool,
}

impl Outbound {
    /// Checks the list: `*` only with `allow_any_origin`, and never with secret
    /// headers.
    pub fn check(&self) -> Result<(), OutboundError> {
        for origin in &self.origins {
            if origin.host == HostPattern::Any {
                if !self.allow_any_origin {
                    return Err(OutboundError::AnyOriginNotAllowed);
                }
                if !origin.secret_headers.is_empty() {
                    return Err(OutboundError::SecretHeadersOnAnyOrigin);
                }
            }
        }
        Ok(())
    }

    /// The allowed origin a request to `scheme://host:port` matches.
    pub(crate) fn find(&self, scheme: &str, host: &str, port: u16) -> Option<&AllowedOrigin> {
        self.origins.iter().find(|o| o.matches(scheme, host, port))
    }
}

/// Why an outbound allow-list cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// An origin is `*` but the plugin does not have `allow_any_origin`.
    #[error("outbound origin \"*\" needs allow_any_origin = true")]
    AnyOriginNotAllowed,
    /// Secret headers on the origin `*`: the host would send the key to every
    /// server the plugin names, so the plugin could read it from its own.
    #[error(
        "outbound origin \"*\" cannot have secret_headers: they would go to any server \
         the plugin names; list the origin that needs them"
    )]
    SecretHeadersOnAnyOrigin,
}

/// One allowed origin: `scheme://host[:port]`, and the headers the host adds to
/// every request to it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllowedOrigin {
    /// `http` or `https` (`*` origins match both).
    pub scheme: String,
    host: HostPattern,
    /// The port (the scheme's default when the origin gives none).
    pub port: u16,
    /// Headers added by the host, whose values the plugin never sees.
    pub secret_headers: Vec<SecretHeader>,
    /// The model API the origin speaks, when its answers are metered (see
    /// [`AllowedOrigin::with_meter`]).
    pub meter: Option<super::Meter>,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// Any host, any scheme and port.
    Any,
    /// Names under this suffix (`.example.com`).
    Under(String),
    /// This name or address (lowercase).
    Exact(String),
}

impl AllowedOrigin {
    /// Parses `scheme://host[:port]` (`http` or `https`; a host may start with
    /// `*.`; IPv6 in brackets), or `*` for any origin.
    pub fn parse(origin: &str) -> Result<Self, String> {
        let text = origin.trim().to_string();
        if text == "*" {
            return Ok(Self {
                scheme: "*".into(),
                host: HostPattern::Any,
                port: 0,
                secret_headers: Vec::new(),
                meter: None,
                text,
            });
        }
        let bad = |why: &str| format!("origin {origin:?}: {why}; write scheme://host[:port]");
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad("an origin has no path, query, or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("bad host or port"))?;
        let port = port.unwrap_or(default_port);
        let host = host.to_ascii_lowercase();
        let pattern = match host.strip_prefix("*.") {
            Some(suffix) if valid_name(suffix) => HostPattern::Under(format!(".{suffix}")),
            Some(_) => return Err(bad("a wildcard is *.name")),
            None if host.parse::<std::net::IpAddr>().is_ok() || valid_name(&host) => {
                HostPattern::Exact(host)
            }
            None => return Err(bad("bad host")),
        };
        Ok(Self {
            scheme,
            host: pattern,
            port,
            secret_headers: Vec::new(),
            meter: None,
            text,
        })
    }

    /// Marks the origin as a model endpoint speaking `meter`'s API: the host reads
    /// the tokens each answer used as it passes (never holding it back, never
    /// changing it), counts them for the plugin and its tenant, and enforces their
    /// budgets ([`crate::PluginConfig::with_budget`]) on requests to this origin.
    pub fn with_meter(mut self, meter: super::Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Adds a header the host sets on every request to this origin. Refused on
    /// the origin `*` ([`OutboundError::SecretHeadersOnAnyOrigin`]).
    pub fn with_secret_header(mut self, header: SecretHeader) -> Result<Self, OutboundError> {
        if self.host == HostPattern::Any {
            return Err(OutboundError::SecretHeadersOnAnyOrigin);
        }
        self.secret_headers.push(header);
        Ok(self)
    }

    /// Whether this is the origin `*` (any origin).
    pub(crate) fn is_any(&self) -> bool {
        self.host == HostPattern::Any
    }

    /// The origin as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Under(suffix) => {
                self.scheme == scheme
                    && self.port == port
                    && host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
            }
            HostPattern::Exact(name) => self.scheme == scheme && self.port == port && name == host,
        }
    }

    /// Whether the origin names its address itself (an IP literal or
    /// `localhost`), which lets it reach loopback and private addresses.
    pub(crate) fn is_literal(&self) -> bool {
        match &self.host {
            HostPattern::Exact(host) => {
                host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
            }
            _ => false,
        }
    }
}

/// `host[:port]`, the host of an IPv6 address without its brackets.
fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// A DNS name: labels of letters, digits and `-`, separated by dots.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A header the host adds to a plugin's requests; its value is never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHeader {
    pub(crate) name: http::HeaderName,
    pub(crate) value: http::HeaderValue,
}

impl SecretHeader {
    /// A header `name: value`; fails for a name or value HTTP does not allow
    /// (the error never contains the value).
    pub fn new(name: &str, value: &str) -> Result<Self, String> {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let mut value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
        value.set_sensitive(true);
        Ok(Self { name, value })
    }

    /// The header's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

impl std::fmt::Debug for SecretHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: <set>", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::{AllowedOrigin, Outbound, OutboundError, SecretHeader};
    use crate::PluginConfig;

    /// The builder refuses secret headers on `*`, and so does the check the host
    /// makes when it loads a plugin whose origin got them another way.
    #[test]
    fn secret_headers_on_any_origin_are_refused() {
        let key = SecretHeader::new("Authorization", "Bearer s3cret").unwrap();
        let any = AllowedOrigin::parse("*").unwrap();
        assert_eq!(
            any.clone().with_secret_header(key.clone()).unwrap_err(),
            OutboundError::SecretHeadersOnAnyOrigin
        );
        let mut keyed = any.clone();
        keyed.secret_headers.push(key.clone());
        let outbound = Outbound {
            origins: vec![keyed],
            allow_any_origin: true,
        };
        assert_eq!(
            outbound.check(),
            Err(OutboundError::SecretHeadersOnAnyOrigin)
        );
        let config = PluginConfig::new("open", "tenant-a").with_outbound(outbound);
        let error = config.namespace("root").unwrap_err().to_string();
        assert!(error.contains("cannot have secret_headers"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        // `*` alone, and a key on a named origin, are fine.
        let open = Outbound {
            origins: vec![any],
            allow_any_origin: true,
        };
        assert_eq!(open.check(), Ok(()));
        let named = AllowedOrigin::parse("https://api.openai.com")
            .unwrap()
            .with_secret_header(key)
            .unwrap();
        assert_eq!(named.secret_headers.len(), 1);
    }

    #[test]
    fn origins_parse_and_match() {
        let o = AllowedOrigin::parse("https://*.example.com").unwrap();
        assert!(o.matches("https", "api.example.com", 443));
        assert!(o.matches("https", "a.b.example.com", 443));
        assert!(!o.matches("https", "example.com", 443));
        assert!(!o.matches("https", "evilexample.com", 443));
        assert!(!o.matches("http", "api.example.com", 443));
        let o = AllowedOrigin::parse("http://127.0.0.1:8099").unwrap();
        assert!(o.matches("http", "127.0.0.1", 8099) && o.is_literal());
        assert!(!o.matches("http", "127.0.0.1", 8098));
        let o = AllowedOrigin::parse("http://[::1]").unwrap();
        assert!(o.matches("http", "::1", 80) && o.is_literal());
        assert!(
            !AllowedOrigin::parse("https://api.openai.com")
                .unwrap()
                .is_literal()
        );
        for bad in [
            "ftp://x",
            "x",
            "http://",
            "http://a/b",
            "http://a:0",
            "http://*",
            "http://u@h",
        ] {
            assert!(AllowedOrigin::parse(bad).is_err(), "{bad}");
        }
        let any = Outbound {
            origins: vec![AllowedOrigin::parse("*").unwrap()],
            allow_any_origin: false,
        };
        assert_eq!(any.check(), Err(OutboundError::AnyOriginNotAllowed));
    }
}
