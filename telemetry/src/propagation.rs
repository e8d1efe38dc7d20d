//! W3C trace context on HTTP headers.

use axum::http::HeaderMap;
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry::Context;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The caller's context from `traceparent`/`tracestate` (empty when absent or invalid).
pub fn extract(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Writes the context of `span` as `traceparent`/`tracestate`. Does nothing when spans
/// are not exported (the span then has no OpenTelemetry context): the headers keep what
/// the caller sent.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(headers))
        });
    }
}

/// The trace id of a context, if it has one.
pub fn trace_id_of(cx: &Context) -> Option<TraceId> {
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id())
}

/// A fresh random trace id, for requests that arrive without one while spans are not
/// exported (the logs still correlate).
pub fn random_trace_id() -> TraceId {
    TraceId::from_bytes(rand::random::<u128>().max(1).to_be_bytes())
}
