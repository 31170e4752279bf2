//! One request over `wasi:http` with `wasi:io`'s blocking calls: the plugin waits
//! in the host (which runs other turns meanwhile) for the response's head and for
//! each piece of its body, one call each. No async runtime runs in the guest: a
//! streamed answer read through `wstd`'s reactor (used before) took up to four
//! host calls per piece (a poll, a check of the other pollables, a read that may
//! find nothing, the read), and cost a Rust turn 0.1-0.2 ms of its 0.8 ms of CPU
//! in the `agents` bench.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use crate::http::shown;
use crate::{Error, Result};

/// The most bytes read from a response body at once.
const READ_SIZE: u64 = 16 * 1024;
/// The most bytes one blocking write may take (`wasi:io`'s limit).
const WRITE_SIZE: usize = 4096;
/// The most bytes of an error body read, for its message.
pub(crate) const ERROR_START: usize = 1024;

/// A request's response, once its head has arrived.
pub(crate) struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body<'a>,
}

/// A response body, read as its pieces arrive. Its stream is dropped before the
/// body (a child resource dropped after its parent traps the component).
pub(crate) struct Body<'a> {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    /// The request's URL, shown (`shown`) only in an error.
    url: &'a str,
}

/// Sends the request (its `Content-Length` set, see [`crate::http`]) and waits for
/// the response's head.
pub(crate) fn send<'a>(
    method: &str,
    url: &'a str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response<'a>> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Error::Http(format!("bad request: {}: {e}", shown(url))))?;
    let failed = |why: String| Error::Http(format!("{method} {}: {why}", shown(url)));
    let mut fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    if !fields.iter().any(|(n, _)| n == "content-length")
        && (!body.is_empty() || crate::http::carries_body(method))
    {
        fields.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields =
        Fields::from_list(&fields).map_err(|e| Error::Http(format!("bad request: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let verb = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        _ => Method::Other(method.to_string()),
    };
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => {
            return Err(Error::Http(format!(
                "bad request: {} is not an http(s) URL",
                shown(url)
            )));
        }
    };
    let bad = |what: &str| Error::Http(format!("bad request: {what} of {}", shown(url)));
    request.set_method(&verb).map_err(|()| bad("the method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("the scheme"))?;
    request
        .set_authority(uri.authority().map(|a| a.as_str()))
        .map_err(|()| bad("the authority"))?;
    request
        .set_path_with_query(Some(uri.path_and_query().map_or("/", |p| p.as_str())))
        .map_err(|()| bad("the path"))?;
    let outgoing = request.body().map_err(|()| bad("the body"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| failed(words(&e)))?;
    write(outgoing, body);
    let answer = loop {
        match future.get() {
            Some(answer) => break answer,
            None => future.subscribe().block(),
        }
    };
    let response: IncomingResponse = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Err(failed(words(&code))),
        Err(()) => return Err(failed("the response was taken twice".into())),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .filter_map(|(n, v)| Some((n, String::from_utf8(v).ok()?)))
        .collect();
    let body = response.consume().map_err(|()| bad("the response body"))?;
    let stream = body.stream().map_err(|()| bad("the response body"))?;
    Ok(Response {
        status,
        headers,
        body: Body {
            stream: Some(stream),
            body: Some(body),
            url,
        },
    })
}

/// Writes the request's body and ends it. A write the host refuses stops it: the
/// request has failed, and its response says why.
fn write(outgoing: OutgoingBody, body: &[u8]) {
    if let Ok(stream) = outgoing.write() {
        for piece in body.chunks(WRITE_SIZE) {
            if stream.blocking_write_and_flush(piece).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

impl Body<'_> {
    /// The next piece, waiting for it; `None` at the end.
    pub(crate) fn next(&mut self) -> Result<Option<Vec<u8>>> {
        while let Some(stream) = &self.stream {
            match stream.blocking_read(READ_SIZE) {
                Ok(piece) if piece.is_empty() => continue,
                Ok(piece) => return Ok(Some(piece)),
                Err(StreamError::Closed) => self.close(),
                Err(StreamError::LastOperationFailed(error)) => {
                    let why = match wasip2::http::types::http_error_code(&error) {
                        Some(code) => words(&code),
                        None => error.to_debug_string(),
                    };
                    self.close();
                    return Err(Error::Http(format!(
                        "reading the response of {}: {why}",
                        shown(self.url)
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The rest of the body.
    pub(crate) fn rest(&mut self) -> Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(piece) = self.next()? {
            all.extend_from_slice(&piece);
        }
        Ok(all)
    }

    /// The first `size` bytes of what is left (the start of an error body, for
    /// its message); the rest is not waited for, as it may stream on until the
    /// deadline. Closes the body.
    pub(crate) fn start(&mut self, size: usize) -> Result<Vec<u8>> {
        let mut start = Vec::new();
        while start.len() < size {
            let Some(piece) = self.next()? else { break };
            start.extend_from_slice(&piece);
        }
        self.close();
        start.truncate(size);
        Ok(start)
    }

    fn close(&mut self) {
        drop(self.stream.take());
        drop(self.body.take());
    }
}

impl Drop for Body<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// An error code as a message says it: its name as `wasi:http` has it
/// (`HttpRequestDenied`, `ConnectionReadTimeout`...), then what it carries; an
/// `InternalError`'s text (the host's words, such as a limit) as it is.
fn words(code: &ErrorCode) -> String {
    match code {
        ErrorCode::InternalError(Some(text)) => text.clone(),
        other => {
            let debug = format!("{other:?}");
            debug
                .strip_prefix("ErrorCode::")
                .map(str::to_string)
                .unwrap_or(debug)
        }
    }
}
