//! A mocked Kubernetes API server (kube's `tower_test` pattern).
//!
//! Why: the operator's stores and controllers and the router's ConfigMap watcher are
//! tested against the requests they send, not against a cluster. [`pair`] gives a
//! `kube::Client` whose requests arrive at a [`MockApi`]; the test takes each one in turn
//! ([`MockApi::expect`], [`MockApi::next`]), checks it (method, path, query, content type,
//! body) and answers it ([`Call::respond`], [`Call::fail`], or any response for a watch).
//! Since the code under test waits for each answer, the order of requests is checked too,
//! and a test can look at the state in between without sleeping.
//!
//! The response body type `B` is `kube::client::Body` unless a test streams a response
//! (a long-lived watch) through a body of its own.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use kube::client::Body;
use serde_json::{json, Value};
use tower_test::mock::{self, Handle};

/// The answering half of a request (see [`Call::into_sender`]).
pub use tower_test::mock::SendResponse;

/// How long [`MockApi::next`] waits for the code under test by default.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The API-server side of a mocked client; see [`pair`].
pub struct MockApi<B = Body> {
    handle: Handle<Request<Body>, Response<B>>,
    patience: Duration,
}

/// A client whose requests go to the returned mock; `namespace` is its default.
pub fn pair(namespace: &str) -> (kube::Client, MockApi) {
    pair_with_body(namespace)
}

/// [`pair`] whose responses have the body type `B` (a test that streams a response).
pub fn pair_with_body<B>(namespace: &str) -> (kube::Client, MockApi<B>)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (svc, handle) = mock::pair::<Request<Body>, Response<B>>();
    (
        kube::Client::new(svc, namespace.to_string()),
        MockApi {
            handle,
            patience: PATIENCE,
        },
    )
}

/// One request the code under test sent, read whole, with the means to answer it.
pub struct Call<B = Body> {
    pub method: Method,
    pub uri: Uri,
    /// The URI's path.
    pub path: String,
    /// The query as sorted `(key, value)` pairs, still percent-encoded (see
    /// [`query_pairs`]).
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub content_type: Option<String>,
    /// The body as sent.
    pub bytes: Bytes,
    /// The body as JSON; `Null` when it is empty.
    pub body: Value,
    send: SendResponse<Response<B>>,
}

impl<B> Call<B> {
    /// Answers with `response` as it is.
    pub fn send(self, response: Response<B>) {
        self.send.send_response(response);
    }

    /// The answering half alone, for a test that answers later (or streams the answer).
    pub fn into_sender(self) -> SendResponse<Response<B>> {
        self.send
    }
}

impl<B: From<Vec<u8>>> Call<B> {
    /// Answers `code` with `body` as JSON.
    pub fn respond(self, code: u16, body: &Value) {
        let code = StatusCode::from_u16(code).expect("a status code");
        self.send.send_response(json_response(code, body));
    }

    /// Answers with a Kubernetes `Status` failure of this code and reason.
    pub fn fail(self, code: u16, reason: &str) {
        self.respond(code, &status(code, reason, &format!("mocked {reason}")));
    }
}

impl<B> MockApi<B> {
    /// How long [`MockApi::next`] waits for a request (default [`PATIENCE`]; longer when
    /// the code under test backs off between requests).
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The next request as it came, unread; panics if none comes in time.
    pub async fn next_request(&mut self) -> (Request<Body>, SendResponse<Response<B>>) {
        tokio::time::timeout(self.patience, self.handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came within {:?}", self.patience))
            .expect("the mocked API server was closed")
    }

    /// The next request, read whole; panics if none comes in time or its body is neither
    /// empty nor JSON.
    pub async fn next(&mut self) -> Call<B> {
        let (req, send) = self.next_request().await;
        read_call(req, send).await
    }

    /// The next request, which must be `method` on `path`. The query is ignored unless
    /// `path` has one, which must then be the request's, to the letter.
    pub async fn expect(&mut self, method: Method, path: &str) -> Call<B> {
        let (req, send) = tokio::time::timeout(self.patience, self.handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
            .expect("the mocked API server was closed");
        let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
        assert_eq!(
            (req.method(), req.uri().path()),
            (&method, want_path),
            "unexpected request {} {}",
            req.method(),
            req.uri()
        );
        if !want_query.is_empty() {
            assert_eq!(
                req.uri().query().unwrap_or_default(),
                want_query,
                "{}",
                req.uri()
            );
        }
        read_call(req, send).await
    }

    /// Fails if a request arrives within 200 ms: the code under test is done.
    pub async fn assert_idle(&mut self) {
        self.assert_idle_for(Duration::from_millis(200)).await;
    }

    /// Fails if a request arrives within `quiet`.
    pub async fn assert_idle_for(&mut self, quiet: Duration) {
        if let Ok(Some((req, _))) = tokio::time::timeout(quiet, self.handle.next_request()).await {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

async fn read_call<B>(req: Request<Body>, send: SendResponse<Response<B>>) -> Call<B> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.expect("the request body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{} {}: a body that is not JSON: {e}",
                parts.method, parts.uri
            )
        })
    };
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Call {
        path: parts.uri.path().to_string(),
        query: query_pairs(parts.uri.query().unwrap_or_default()),
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        content_type,
        bytes,
        body,
        send,
    }
}

/// A query string as sorted `(key, value)` pairs, still percent-encoded, so that a test
/// compares queries regardless of their order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    pairs.sort();
    pairs
}

/// Expected query pairs, sorted, to compare with [`query_pairs`] or [`Call::query`].
pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// A response `code` with `body` as JSON.
pub fn json_response<B: From<Vec<u8>>>(code: StatusCode, body: &Value) -> Response<B> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(B::from(serde_json::to_vec(body).expect("json")))
        .expect("a response")
}

/// A Kubernetes `Status` failure, as the API server answers errors.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// Newline-delimited JSON, as a watch response carries its events.
pub fn ndjson(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(serde_json::to_string(e).expect("json").as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_ignore_order_and_keep_encoding() {
        assert_eq!(
            query_pairs("watch=true&fieldSelector=metadata.name%3Dx&flag"),
            pairs(&[
                ("flag", ""),
                ("fieldSelector", "metadata.name%3Dx"),
                ("watch", "true")
            ])
        );
        assert!(query_pairs("").is_empty());
    }

    #[tokio::test]
    async fn a_request_is_seen_and_answered() {
        let (client, mut api) = pair("ns");
        let asking = tokio::spawn(async move {
            let req = http::Request::get("/api/v1/namespaces/ns/configmaps/x?a=1")
                .body(Vec::new())
                .unwrap();
            client.request::<Value>(req).await
        });
        let call = api
            .expect(Method::GET, "/api/v1/namespaces/ns/configmaps/x?a=1")
            .await;
        assert_eq!(call.query, pairs(&[("a", "1")]));
        assert_eq!(call.body, Value::Null);
        call.respond(200, &json!({"ok": true}));
        assert_eq!(asking.await.unwrap().unwrap(), json!({"ok": true}));
        api.assert_idle_for(Duration::from_millis(20)).await;
    }
}
