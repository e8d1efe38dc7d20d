//! Checks of a tenant server's answer that several suites make.
//!
//! Why: how a paused or moved project answers (503, the project-state header, a
//! Chroma-style error of its own kind) is one protocol the router and the operator rely
//! on; a suite that checks it should check all of it, the same way as the others.

use quiver_placement::protocol::{PROJECT_MOVED, PROJECT_PAUSED, PROJECT_STATE_HEADER};

use crate::http::Resp;

/// Asserts a success (any 2xx); `what` names the request in the message.
#[track_caller]
pub fn assert_ok(r: &Resp, what: &str) {
    assert!(
        r.is_ok(),
        "{what}: expected success, got {}: {}",
        r.status,
        r.text
    );
}

/// Asserts the answer for a paused project: 503 with the `paused` project state and a
/// `ProjectPaused` error (see [`Resp::chroma_err`]). Returns the message.
#[track_caller]
pub fn assert_paused(r: &Resp, what: &str) -> String {
    assert_eq!(r.status, 503, "{what}: {}", r.text);
    assert_eq!(
        r.header(PROJECT_STATE_HEADER),
        Some(PROJECT_PAUSED),
        "{what}: {:?}",
        r.headers
    );
    r.chroma_err(503, "ProjectPaused")
}

/// [`assert_paused`], and the client is told to retry in a second, in words that say
/// why.
#[track_caller]
pub fn assert_paused_retry_soon(r: &Resp, what: &str) {
    let msg = assert_paused(r, what);
    assert_eq!(r.header("retry-after"), Some("1"), "{what}");
    assert!(msg.contains("paused"), "{what}: {msg}");
}

/// Asserts the answer for a project that moved away: 503 with the `moved` project state
/// and a `ProjectMoved` error. Returns the message.
#[track_caller]
pub fn assert_moved(r: &Resp, what: &str) -> String {
    assert_eq!(r.status, 503, "{what}: {}", r.text);
    assert_eq!(
        r.header(PROJECT_STATE_HEADER),
        Some(PROJECT_MOVED),
        "{what}: {:?}",
        r.headers
    );
    r.chroma_err(503, "ProjectMoved")
}

/// [`assert_moved`], and the message says where to (`to`, a shard's URL).
#[track_caller]
pub fn assert_moved_to(r: &Resp, to: &str, what: &str) {
    let msg = assert_moved(r, what);
    assert!(
        msg.contains(to),
        "{what}: message does not say where: {msg}"
    );
}

/// Sends a CORS preflight (`OPTIONS`) for `method path` from `origin` through `http` and
/// checks the answer: a `listed` origin gets itself back as the allowed origin, with
/// `method` among the allowed methods; any other origin gets no CORS headers, so a browser
/// refuses the request. The router and the tenant server must answer alike (one policy).
pub async fn assert_cors_preflight(
    http: &crate::http::Http,
    path: &str,
    origin: &str,
    method: &str,
    listed: bool,
) {
    let r = http
        .send(
            reqwest::Method::OPTIONS,
            path,
            None,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                (
                    "access-control-request-headers",
                    "content-type,authorization",
                ),
            ],
        )
        .await;
    let allowed_origin = r.header("access-control-allow-origin");
    if !listed {
        assert_eq!(
            allowed_origin, None,
            "{method} {path} from {origin}: {:?}",
            r.headers
        );
        return;
    }
    assert_eq!(
        r.status, 200,
        "preflight {method} {path} from {origin}: {}",
        r.text
    );
    assert_eq!(allowed_origin, Some(origin), "{:?}", r.headers);
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(
        methods.split(',').any(|m| m.trim() == method),
        "{method} not among the allowed methods {methods:?}"
    );
}
