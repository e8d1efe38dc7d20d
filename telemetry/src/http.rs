//! The server span of an HTTP request.
//!
//! Named `"{method} {route}"` with the attributes of OpenTelemetry's HTTP server semantic
//! conventions, child of the caller's `traceparent` when there is one. Its `trace_id`
//! field is set in every case — from the exported span, the caller's context or a fresh
//! id — so that every log line inside the request carries it.

use axum::extract::Request;
use axum::response::Response;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

/// The trace id of the request being served, for handlers that echo it (Chroma's
/// `chroma-trace-id`).
#[derive(Clone, Copy, Debug)]
pub struct TraceIdHex(pub [u8; 32]);

impl TraceIdHex {
    pub fn of(id: opentelemetry::trace::TraceId) -> TraceIdHex {
        let mut out = [b'0'; 32];
        let hex = format!("{id}");
        if hex.len() == 32 {
            out.copy_from_slice(hex.as_bytes());
        }
        TraceIdHex(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("00000000000000000000000000000000")
    }
}

/// Creates the server span of `req`, with `route` as its template, and returns it with
/// the request's trace id.
pub fn server_span(req: &Request, route: &str) -> (tracing::Span, TraceIdHex) {
    let method = req.method().as_str();
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %req.uri().path(),
        url.query = Empty,
        network.protocol.version = ?req.version(),
        user_agent.original = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
        trace_id = Empty,
        request_id = Empty,
    );
    if let Some(q) = req.uri().query() {
        span.record("url.query", q);
    }
    if let Some(ua) = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
    {
        span.record("user_agent.original", ua);
    }
    if let Some(id) = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        span.record("request_id", id);
    }
    let parent = propagation::extract(req.headers());
    let _ = span.set_parent(parent.clone());
    let trace_id = propagation::trace_id_of(&span.context())
        .or_else(|| propagation::trace_id_of(&parent))
        .unwrap_or_else(propagation::random_trace_id);
    span.record("trace_id", tracing::field::display(trace_id));
    (span, TraceIdHex::of(trace_id))
}

/// Records the outcome of a request on its span.
pub fn record_response(span: &tracing::Span, resp: &Response) {
    let status = resp.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
}
