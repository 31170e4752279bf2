//! The checks a plugin's request passes before the host connects anywhere: where it
//! goes (scheme, host, port: the allow-list's terms), and what an allowed origin
//! still may not be sent.

use http::uri::Scheme;
use http::{Method, Uri};

/// Where a request goes, as the allow-list sees it.
pub(super) struct Target {
    /// `http` or `https` (lowercase).
    pub(super) scheme: String,
    /// The host, lowercase, an IPv6 address without its brackets.
    pub(super) host: String,
    /// The port, the scheme's default when the URL gives none.
    pub(super) port: u16,
    /// Whether the connection is TLS.
    pub(super) tls: bool,
}

impl Target {
    pub(super) fn of(uri: &Uri) -> Self {
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let tls = uri.scheme() == Some(&Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Self {
            scheme,
            host,
            port,
            tls,
        }
    }
}

/// Why a request to an allowed origin is refused all the same, or `None`.
///
/// - `TRACE` makes the server send the request back as it received it, headers
///   included: the secret headers the host added would reach the plugin (RFC 9110
///   9.3.8: a client must not send credentials in TRACE). `TRACK`, IIS's old name
///   for it, too. Method names are case-sensitive in HTTP, but servers that
///   accept `trace` exist, so any case is refused.
/// - `CONNECT` asks the origin to open a tunnel to somewhere else, which the
///   allow-list would never see.
/// - A URL with user information (`http://name@host/`): wasi:http makes the
///   `Host` header from the authority as written, so the origin would get
///   `Host: name@host`, a header no server expects and one more way to confuse an
///   origin's virtual hosts. The host refuses such URLs rather than rewriting them:
///   credentials belong in `secret_headers`, and a refusal cannot be misread.
pub(super) fn refusal(method: &Method, uri: &Uri) -> Option<&'static str> {
    let method = method.as_str();
    if ["TRACE", "TRACK"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
    {
        return Some("TRACE is refused: it would echo the secret headers");
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        return Some("CONNECT is refused");
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Some("a URL with user information (user@host) is refused");
    }
    None
}

#[cfg(test)]
mod tests {
    use http::{Method, Uri};

    use super::{Target, refusal};

    #[test]
    fn trace_connect_and_userinfo_are_refused() {
        let uri: Uri = "http://127.0.0.1:8099/v1".parse().unwrap();
        for method in [Method::TRACE, Method::CONNECT] {
            assert!(refusal(&method, &uri).is_some(), "{method}");
        }
        for other_case in ["trace", "Trace", "TRACK", "connect"] {
            let method = Method::from_bytes(other_case.as_bytes()).unwrap();
            assert!(refusal(&method, &uri).is_some(), "{other_case}");
        }
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
        ] {
            assert_eq!(refusal(&method, &uri), None, "{method}");
        }
        for url in [
            "http://allowed@127.0.0.1:8099/",
            "http://user:pass@127.0.0.1:8099/",
            "https://@api.example.com/",
        ] {
            let uri: Uri = url.parse().unwrap();
            assert!(refusal(&Method::GET, &uri).is_some(), "{url}");
            // What the allow-list would have matched: the host without the user.
            let target = Target::of(&uri);
            assert!(!target.host.contains('@'), "{url}");
        }
    }

    #[test]
    fn targets_are_lowercase_with_default_ports() {
        let t = Target::of(&"HTTPS://API.Example.COM/x".parse().unwrap());
        assert_eq!(
            (t.scheme.as_str(), t.host.as_str(), t.port, t.tls),
            ("https", "api.example.com", 443, true)
        );
        let t = Target::of(&"http://[::1]:8080/".parse().unwrap());
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 8080, false));
    }
}
