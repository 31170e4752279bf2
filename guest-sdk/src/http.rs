//! HTTP requests from a plugin, over `wasi:http`: plain synchronous code, which
//! waits in the host for the answer and for each piece of its body (`wire.rs`).
//!
//! The host decides which origins a plugin may reach (deny by default) and adds
//! the credentials an origin needs itself, after the request leaves the plugin: a
//! plugin never holds an API key. A request to an origin that is not allowed fails
//! with [`Error::Http`] naming `HttpRequestDenied`; the other failures name
//! `wasi:http`'s error code the same way (`ConnectionRefused`,
//! `ConnectionReadTimeout`, `HttpResponseBodySize`...) or say the host's words
//! (`at most 16 requests per turn`).
//!
//! A request body is sent whole, with its `Content-Length` (never chunked), so
//! servers that read only that header get it.
//!
//! ```no_run
//! # fn run() -> agent_sdk::Result<()> {
//! let response = agent_sdk::http::get("https://api.example.com/v1/status")?;
//! if response.is_success() {
//!     let status: serde_json::Value = response.json()?;
//! }
//! # Ok(()) }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// A response, read whole.
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header whose value is text, in the order received (names in lower
    /// case).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<String> {
        String::from_utf8(self.body.clone())
            .map_err(|_| Error::Http("the response body is not UTF-8".into()))
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response> {
    send("GET", url, &[], Vec::new())
}

/// `POST url` with `body` as JSON.
pub fn post_json<T: Serialize + ?Sized>(url: &str, body: &T) -> Result<Response> {
    let body = serde_json::to_vec(body)?;
    send("POST", url, &[("content-type", "application/json")], body)
}

/// Outside a component (a plugin's native unit tests, `agent_sdk::testing`) there
/// is no host to send a request: an error rather than a panic in WASI's stubs.
pub(crate) fn no_host(method: &str, url: &str) -> Result<()> {
    if cfg!(target_arch = "wasm32") {
        return Ok(());
    }
    Err(Error::Http(format!(
        "{method} {}: no host to send it to outside a component (a unit test runs \
         without one: test the code around the request)",
        shown(url)
    )))
}

/// Sends a request and reads the whole response.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Response> {
    no_host(method, url)?;
    let mut response = crate::wire::send(method, url, headers, &body)?;
    let body = response.body.rest()?;
    Ok(Response {
        status: response.status,
        headers: response.headers,
        body,
    })
}

/// Sends a request and hands its response body to `line` one line at a time, as
/// the lines arrive (a server-sent event stream); returns the status and, if it is
/// not a success, the body's first bytes instead of lines.
pub fn send_lines(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    mut line: impl FnMut(&str) -> Result<()>,
) -> Result<u16> {
    no_host(method, url)?;
    let mut response = crate::wire::send(method, url, headers, &body)?;
    let status = response.status;
    if !(200..300).contains(&status) {
        let start = response.body.start(crate::wire::ERROR_START)?;
        let start: String = String::from_utf8_lossy(&start).chars().take(200).collect();
        return Err(Error::Http(format!(
            "the server answered {status} ({start})"
        )));
    }
    let mut pending: Vec<u8> = Vec::new();
    while let Some(data) = response.body.next()? {
        // Only the new bytes are searched: a long line costs its length once.
        let Some(last) = data.iter().rposition(|&b| b == b'\n') else {
            pending.extend_from_slice(&data);
            continue;
        };
        pending.extend_from_slice(&data[..last]);
        for text in pending.split(|&b| b == b'\n') {
            line(String::from_utf8_lossy(text).trim_end_matches('\r'))?;
        }
        pending.clear();
        pending.extend_from_slice(&data[last + 1..]);
    }
    if !pending.is_empty() {
        line(String::from_utf8_lossy(&pending).trim_end_matches('\r'))?;
    }
    Ok(status)
}

/// Methods whose requests have a body, even an empty one (`Content-Length: 0`).
pub(crate) fn carries_body(method: &str) -> bool {
    ["POST", "PUT", "PATCH"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// A URL for messages: without its query and fragment, which may hold things
/// that are nobody's business, and without user information (a password).
pub(crate) fn shown(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn a_url_in_a_message_has_no_query_and_no_password() {
        assert_eq!(shown("https://h:8/p/q?key=1#f"), "https://h:8/p/q");
        assert_eq!(shown("http://user:pw@h/x?k"), "http://h/x");
        assert_eq!(shown("http://user@h"), "http://h");
        assert_eq!(shown("not a url?x"), "not a url");
    }
}
