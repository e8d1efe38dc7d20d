//! Talking to a server under test: [`Http`] sends, [`Resp`] is what came back.
//!
//! Why: the tests check exact wire shapes, so an answer is kept whole (status, headers,
//! the body as JSON *and* as text, how long it took) rather than decoded into client
//! types, and the checks every suite makes on it (a success, an error of a given kind,
//! which shard answered) are methods here instead of copies in each suite. Requests the
//! `reqwest` client would normalise (a path with `..`, a chunked body) have their own
//! senders, [`raw_exchange`] and [`Http::send_chunked`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::{json, Value};

/// How long a request may take before the client gives up (a slow test fails instead of
/// hanging); a suite with other needs builds its client with [`http_client`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A client for loopback servers: no proxy (a runner's `HTTP_PROXY` must not catch
/// 127.0.0.1), and a timeout.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// One response: status, headers, the body as JSON (`Null` when it is not JSON), its text
/// and how long the exchange took.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    pub elapsed: Duration,
}

impl Resp {
    /// An answer from its parts; `bytes` is the body as received.
    pub fn from_parts(status: u16, headers: HeaderMap, bytes: &[u8], elapsed: Duration) -> Resp {
        let text = String::from_utf8_lossy(bytes).into_owned();
        Resp {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            elapsed,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A 2xx status.
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The ordinal in `x-quiver-shard` (the router says which shard answered), if any.
    pub fn shard(&self) -> Option<u32> {
        self.header("x-quiver-shard").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("x-quiver-shard is not an ordinal: {v:?}"))
        })
    }

    /// Asserts a 2xx and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(
            self.is_ok(),
            "expected 2xx, got {}: {}",
            self.status,
            self.text
        );
        &self.body
    }

    /// Asserts a 2xx answered by shard `ordinal` and returns the JSON body.
    #[track_caller]
    pub fn ok_from(&self, ordinal: u32) -> &Value {
        let body = self.ok();
        assert_eq!(
            self.shard(),
            Some(ordinal),
            "x-quiver-shard of a 2xx answer (expected shard {ordinal}): {:?}",
            self.headers
        );
        body
    }

    /// Asserts a 200 whose body is a JSON object (every success of the tenant server's
    /// Chroma API) and returns it.
    #[track_caller]
    pub fn ok_object(&self) -> &Value {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.text
        );
        assert!(
            self.body.is_object(),
            "expected a JSON object: {}",
            self.text
        );
        &self.body
    }

    /// Asserts a JSON error `{"error": kind, "message": …}` with `status` and a JSON
    /// content type (what the router answers itself); returns the body.
    #[track_caller]
    pub fn err(&self, status: u16, kind: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "expected {status} {kind}, got {}: {}",
            self.status, self.text
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "error without a JSON content type: {:?}",
            self.headers
        );
        assert_eq!(self.body["error"], json!(kind), "error kind: {}", self.text);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.text
        );
        &self.body
    }

    /// Asserts a Chroma-style error, as the tenant server answers: the status,
    /// `{"error": kind, "message": ...}` with no other keys, and the `chroma-trace-id`
    /// header. Returns the message.
    #[track_caller]
    pub fn chroma_err(&self, status: u16, kind: &str) -> String {
        assert_eq!(
            self.status, status,
            "expected {status} {kind}, got {}: {}",
            self.status, self.text
        );
        let obj = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("error body is not a JSON object: {:?}", self.text));
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["error", "message"], "error body keys: {}", self.text);
        assert_eq!(obj["error"], json!(kind), "error kind: {}", self.text);
        let msg = obj["message"]
            .as_str()
            .unwrap_or_else(|| panic!("message is not a string: {}", self.text))
            .to_string();
        assert!(!msg.is_empty(), "empty error message");
        assert!(
            self.header("chroma-trace-id").is_some(),
            "error response without a chroma-trace-id header: {:?}",
            self.headers
        );
        msg
    }
}

/// An answer whose body is kept as bytes (it may be binary); from [`Http::send_binary`].
#[derive(Debug, Clone)]
pub struct Binary {
    pub status: u16,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    /// Set when the body could not be read to its end (the server cut the stream).
    pub body_error: Option<String>,
    pub elapsed: Duration,
}

impl Binary {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The answer as JSON, for the checks of [`Resp`].
    pub fn resp(&self) -> Resp {
        Resp::from_parts(self.status, self.headers.clone(), &self.bytes, self.elapsed)
    }
}

/// What [`Http::send`] does when a request gets no answer at all.
#[derive(Clone)]
enum OnTransportError {
    /// Panic naming the request.
    Panic,
    /// Panic naming the request and showing the tail of the server's log.
    PanicWithLog(PathBuf),
    /// Answer status 0, the error in `text` (for tests that keep going while servers
    /// restart).
    StatusZero,
}

/// A client for one base URL (a router's or a shard's).
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
    on_error: OnTransportError,
}

impl Http {
    /// A client with [`REQUEST_TIMEOUT`]; a request without an answer is a panic.
    pub fn new(base: impl Into<String>) -> Http {
        Http::with_client(base, http_client(REQUEST_TIMEOUT))
    }

    pub fn with_client(base: impl Into<String>, client: reqwest::Client) -> Http {
        Http {
            base: base.into(),
            client,
            on_error: OnTransportError::Panic,
        }
    }

    /// Transport failures come back as status 0 (the error in `text`) instead of a panic.
    pub fn tolerant(mut self) -> Http {
        self.on_error = OnTransportError::StatusZero;
        self
    }

    /// A transport failure panics with the tail of `log` (the server's).
    pub fn explained_by(mut self, log: impl Into<PathBuf>) -> Http {
        self.on_error = OnTransportError::PanicWithLog(log.into());
        self
    }

    /// `method path` with `headers`, to be sent.
    fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb
    }

    /// Sends `method path` with `headers` and, when given, a JSON `body`. A request
    /// without an answer is handled as the client was built (a panic, or status 0 for a
    /// [`tolerant`](Http::tolerant) one).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.request(method.clone(), path, headers);
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b);
        }
        let started = Instant::now();
        let exchange = async {
            let r = rb.send().await?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let text = r.text().await.unwrap_or_default();
            Ok::<_, reqwest::Error>(Resp {
                status,
                headers,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
                elapsed: started.elapsed(),
            })
        };
        match exchange.await {
            Ok(r) => r,
            Err(e) => self.transport_error(&method, path, e, started),
        }
    }

    /// A panic, or for a tolerant client an answer with status 0 saying what failed.
    fn transport_error(
        &self,
        method: &Method,
        path: &str,
        e: reqwest::Error,
        started: Instant,
    ) -> Resp {
        match &self.on_error {
            OnTransportError::Panic => panic!("{method} {path}: {e}"),
            OnTransportError::PanicWithLog(log) => panic!(
                "{method} {path} failed: {e}\n{}",
                crate::process::log_tail(log, crate::process::TAIL_BYTES)
            ),
            OnTransportError::StatusZero => Resp {
                status: 0,
                headers: HeaderMap::new(),
                body: Value::Null,
                text: format!("{method} {path}: {e}"),
                elapsed: started.elapsed(),
            },
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(json_bytes(body)), &[])
            .await
    }

    /// A POST with these exact bytes as its (JSON-typed) body.
    pub async fn post_raw(&self, path: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.send(Method::POST, path, Some(body.into()), &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PUT, path, Some(json_bytes(body)), &[])
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PATCH, path, Some(json_bytes(body)), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }

    pub async fn delete_json(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::DELETE, path, Some(json_bytes(body)), &[])
            .await
    }

    /// Polls `GET path` every `every` until `done` makes something of an answer, and
    /// returns that; panics after `within`, saying what it waited for (`waiting_for`) and
    /// what the last answer was.
    pub async fn poll_get<T>(
        &self,
        path: &str,
        within: Duration,
        every: Duration,
        waiting_for: &str,
        mut done: impl FnMut(&Resp) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            let r = self.get(path).await;
            if let Some(t) = done(&r) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{waiting_for}: not within {within:?}; GET {path}: {} {}",
                r.status,
                r.text
            );
            tokio::time::sleep(every).await;
        }
    }

    /// Sends `method path` with `headers` and, when given, a binary `body` of
    /// `content_type`, and keeps the answer's bytes (snapshots, change streams). A request
    /// without an answer is handled as in [`Http::send`]; a body cut short is reported in
    /// [`Binary::body_error`].
    pub async fn send_binary(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: &[(&str, &str)],
    ) -> Binary {
        let mut rb = self.request(method.clone(), path, headers);
        if let Some((b, content_type)) = body {
            rb = rb.header("content-type", content_type).body(b);
        }
        let started = Instant::now();
        let r = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                let r = self.transport_error(&method, path, e, started);
                return Binary {
                    status: r.status,
                    headers: r.headers,
                    bytes: Vec::new(),
                    body_error: Some(r.text),
                    elapsed: r.elapsed,
                };
            }
        };
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let (bytes, body_error) = match r.bytes().await {
            Ok(b) => (b.to_vec(), None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        Binary {
            status,
            headers,
            bytes,
            body_error,
            elapsed: started.elapsed(),
        }
    }

    /// Like [`Http::send`] with a JSON body, but sent with `Transfer-Encoding: chunked`
    /// (no `Content-Length`), in two chunks: the framing of a client that streams its body.
    pub async fn send_chunked(&self, method: Method, path: &str, body: Vec<u8>) -> Resp {
        use http_body_util::{BodyExt, StreamBody};
        use hyper::body::Frame;
        type Chunks = futures_util::stream::Iter<
            std::vec::IntoIter<Result<Frame<bytes::Bytes>, std::convert::Infallible>>,
        >;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<StreamBody<Chunks>>();
        let body = bytes::Bytes::from(body);
        let half = body.len() / 2;
        let chunks: Vec<Result<Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(body.slice(..half))),
            Ok(Frame::data(body.slice(half..))),
        ];
        let req = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(StreamBody::new(futures_util::stream::iter(chunks)))
            .expect("request");
        let started = Instant::now();
        let exchange = async {
            let r = client.request(req).await?;
            let (parts, incoming) = r.into_parts();
            let bytes = incoming.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: timed out"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Resp::from_parts(
            parts.status.as_u16(),
            parts.headers,
            &bytes,
            started.elapsed(),
        )
    }
}

fn json_bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("json")
}

/// Sends `method path` to `127.0.0.1:port` byte for byte (no URL normalisation, no
/// percent-decoding by a client), for paths such as `/api/v1/../collections`, over a
/// connection of its own that it closes.
pub fn raw_exchange(port: u16, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.unwrap_or(b"");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    parse_raw_response(&buf, started.elapsed())
}

/// An HTTP/1.1 response as read off the wire (a chunked body is reassembled).
fn parse_raw_response(buf: &[u8], elapsed: Duration) -> Resp {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header terminator in response");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut raw_body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .unwrap_or_else(|_| panic!("bad header name {k:?}"));
        let value = HeaderValue::from_str(v.trim())
            .unwrap_or_else(|_| panic!("bad value of header {k:?}: {v:?}"));
        headers.append(name, value);
    }
    let chunked = headers
        .get_all("transfer-encoding")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case("chunked")));
    if chunked {
        let mut out = Vec::new();
        let mut rest = raw_body.as_slice();
        while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..pos]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[pos + 2..pos + 2 + size]);
            rest = &rest[pos + 2 + size + 2..];
        }
        raw_body = out;
    }
    Resp::from_parts(status, headers, &raw_body, elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_raw_response_is_reassembled() {
        let wire = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
        let r = parse_raw_response(wire, Duration::ZERO);
        assert_eq!(r.status, 404);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, json!({"a": 1}));
    }
}
