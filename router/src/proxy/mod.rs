//! Forwarding a project's request to its shard.
//!
//! One attempt = resolve the project with the current placement snapshot, send, and stream
//! the answer back. A request is sent again only when the shard certainly did not act on
//! it: it answered that the project is paused for a move or has moved away, or the
//! connection could not be opened while the placement table changed under it. A timeout is
//! never retried: the shard may have applied a write, and a write must not reach two
//! shards.

pub mod fanout;
pub mod headers;
pub mod replay;
pub mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use axum::response::IntoResponse;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quiver_placement::protocol::{
    PROJECT_MOVED, PROJECT_PAUSED, PROJECT_STATE_HEADER, REQUEST_ID_HEADER, SHARD_HEADER,
};
use quiver_placement::PlacementTable;
use tracing::field::Empty;
use tracing::Instrument;

use crate::error::RouterError;
use crate::metrics::Metrics;
use crate::placement::Placement;
use replay::{Recorder, UpstreamBody};

#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub retry_budget: Duration,
    pub retry_buffer_bytes: usize,
    pub moving_retry_buffer_bytes: usize,
    pub pool_max_idle_per_shard: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            connect_timeout: Duration::from_secs(1),
            upstream_timeout: Duration::from_secs(60),
            retry_budget: Duration::from_secs(15),
            retry_buffer_bytes: 1 << 20,
            moving_retry_buffer_bytes: 64 << 20,
            pool_max_idle_per_shard: 256,
        }
    }
}

pub struct Proxy {
    client: Client<HttpConnector, UpstreamBody>,
    pub placement: Arc<Placement>,
    pub metrics: Arc<Metrics>,
    pub opts: ProxyOptions,
}

/// What one attempt produced.
enum Attempt {
    Answered(Response<hyper::body::Incoming>),
    /// No answer. `connected`: the request may have reached the shard (an I/O error after
    /// the connection opened), so it must not be sent anywhere again.
    Unreachable {
        reason: String,
        connected: bool,
    },
    TimedOut,
}

/// Why an attempt is sent again.
#[derive(Clone, Copy)]
enum RetryReason {
    Paused,
    Moved,
    PlacementChanged,
}

impl RetryReason {
    fn label(self) -> &'static str {
        match self {
            RetryReason::Paused => "paused",
            RetryReason::Moved => "moved",
            RetryReason::PlacementChanged => "placement_changed",
        }
    }
}

/// The request as the router received it, ready to be sent (again).
pub struct Outgoing {
    pub parts: Parts,
    pub headers: HeaderMap,
    pub request_id: HeaderValue,
}

impl Outgoing {
    pub fn new(parts: Parts, peer: Option<SocketAddr>) -> Outgoing {
        let trace_id = parts
            .extensions
            .get::<quiver_telemetry::http::TraceIdHex>()
            .map(|t| t.as_str().to_string());
        let (headers, request_id) =
            headers::upstream_headers(&parts.headers, peer, trace_id.as_deref());
        Outgoing {
            parts,
            headers,
            request_id,
        }
    }
}

impl Proxy {
    pub fn new(placement: Arc<Placement>, metrics: Arc<Metrics>, opts: ProxyOptions) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(opts.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(opts.pool_max_idle_per_shard)
            .build(connector);
        Proxy {
            client,
            placement,
            metrics,
            opts,
        }
    }

    pub fn table(&self) -> Result<Arc<PlacementTable>, RouterError> {
        self.placement
            .current()
            .ok_or(RouterError::NoPlacement(self.placement.source()))
    }

    /// Sends `out` with `body` to the shard at `url` once, in a client span whose context
    /// the shard continues.
    async fn attempt(
        &self,
        ordinal: u32,
        url: &str,
        out: &Outgoing,
        body: UpstreamBody,
    ) -> Attempt {
        let span = tracing::info_span!(
            "upstream",
            otel.name = %out.parts.method,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = %out.parts.method,
            server.address = %url.trim_start_matches("http://"),
            url.full = Empty,
            quiver.shard = ordinal,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        let attempt = self
            .attempt_in_span(ordinal, url, out, body, &span)
            .instrument(span.clone())
            .await;
        match &attempt {
            Attempt::Answered(resp) => {
                span.record("http.response.status_code", resp.status().as_u16());
                if resp.status().is_server_error() {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", resp.status().as_str());
                }
            }
            Attempt::Unreachable { .. } => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", "unreachable");
            }
            Attempt::TimedOut => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", "timeout");
            }
        }
        attempt
    }

    async fn attempt_in_span(
        &self,
        ordinal: u32,
        url: &str,
        out: &Outgoing,
        body: UpstreamBody,
        span: &tracing::Span,
    ) -> Attempt {
        let path = out
            .parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let uri: Uri = match format!("{url}{path}").parse() {
            Ok(u) => u,
            Err(e) => {
                return Attempt::Unreachable {
                    reason: format!("bad upstream URI: {e}"),
                    connected: false,
                }
            }
        };
        let mut req = Request::new(body);
        *req.method_mut() = out.parts.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = out.headers.clone();
        // the router's own calls send no body whatever the client's request declared; a
        // stale Content-Length would leave the shard waiting for bytes that never come
        if http_body::Body::size_hint(req.body()).exact() == Some(0) {
            req.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
        }
        span.record("url.full", tracing::field::display(req.uri()));
        quiver_telemetry::propagation::inject(span, req.headers_mut());
        let shard = ordinal.to_string();
        let started = Instant::now();
        let result =
            tokio::time::timeout(self.opts.upstream_timeout, self.client.request(req)).await;
        self.metrics
            .upstream_duration
            .with_label_values(&[shard.as_str()])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(resp)) => Attempt::Answered(resp),
            Ok(Err(e)) => {
                let kind = if e.is_connect() { "connect" } else { "io" };
                self.metrics
                    .upstream_errors
                    .with_label_values(&[shard.as_str(), kind])
                    .inc();
                Attempt::Unreachable {
                    reason: error_chain(&e),
                    connected: !e.is_connect(),
                }
            }
            Err(_) => {
                self.metrics
                    .upstream_errors
                    .with_label_values(&[shard.as_str(), "timeout"])
                    .inc();
                Attempt::TimedOut
            }
        }
    }

    /// Forwards a project's request to its shard, riding out pauses and moves within the
    /// retry budget, and streams the answer back.
    pub async fn forward(
        &self,
        project: &str,
        out: Outgoing,
        body: UpstreamBody,
        recorder: Recorder,
    ) -> Response<Body> {
        let deadline = Instant::now() + self.opts.retry_budget;
        let mut backoff = Duration::from_millis(20);
        let mut body = Some(body);
        let mut changes = self.placement.subscribe();
        loop {
            // before the snapshot: a table installed from here on wakes a waiting retry
            changes.mark_unchanged();
            let table = match self.table() {
                Ok(t) => t,
                Err(e) => return with_request_id(e.into_response(), &out.request_id),
            };
            let route = table.route(project);
            tracing::info_span!(
                "route",
                quiver.project = project,
                quiver.shard = route.ordinal,
                quiver.placement_epoch = table.epoch,
                quiver.moving = table.is_moving(project),
            )
            .in_scope(|| tracing::debug!(shard = route.ordinal, "routed"));
            let Some(this_body) = body.take().or_else(|| recorder.replay()) else {
                // unreachable: a retry is only chosen when the body can be replayed
                return with_request_id(
                    RouterError::ShardUnavailable {
                        ordinal: route.ordinal,
                        url: route.url.to_string(),
                        reason: "request body cannot be replayed".into(),
                    }
                    .into_response(),
                    &out.request_id,
                );
            };
            let attempt = self
                .attempt(route.ordinal, route.url, &out, this_body)
                .await;
            let reason = match &attempt {
                Attempt::Answered(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    match resp
                        .headers()
                        .get(PROJECT_STATE_HEADER)
                        .map(|v| v.as_bytes())
                    {
                        Some(v) if v == PROJECT_PAUSED.as_bytes() => Some(RetryReason::Paused),
                        Some(v) if v == PROJECT_MOVED.as_bytes() => Some(RetryReason::Moved),
                        _ => None,
                    }
                }
                // only a connection that never opened is certain not to have delivered
                // the request; and only a new table can send it somewhere else
                Attempt::Unreachable {
                    connected: false, ..
                } if self
                    .placement
                    .current()
                    .is_some_and(|now| !Arc::ptr_eq(&now, &table)) =>
                {
                    Some(RetryReason::PlacementChanged)
                }
                _ => None,
            };
            if let Some(reason) = reason {
                let now = Instant::now();
                if recorder.is_replayable() && now < deadline {
                    // the last wait ends at the deadline, for one last attempt there
                    let wait = jitter(backoff).min(deadline - now);
                    self.metrics
                        .retries
                        .with_label_values(&[reason.label()])
                        .inc();
                    tracing::debug!(
                        project,
                        shard = route.ordinal,
                        reason = reason.label(),
                        "retrying"
                    );
                    match reason {
                        // the new home arrives with the next placement table
                        RetryReason::Moved => {
                            let _ = tokio::time::timeout(wait, changes.changed()).await;
                        }
                        RetryReason::Paused => tokio::time::sleep(wait).await,
                        RetryReason::PlacementChanged => {}
                    }
                    backoff = (backoff * 2).min(MAX_PAUSED_BACKOFF);
                    continue;
                }
            }
            let resp = match attempt {
                Attempt::Answered(resp) => {
                    let (mut parts, incoming) = resp.into_parts();
                    headers::strip_hop_by_hop(&mut parts.headers);
                    if let Ok(v) = HeaderValue::from_str(&route.ordinal.to_string()) {
                        parts.headers.insert(SHARD_HEADER, v);
                    }
                    Response::from_parts(parts, Body::new(incoming))
                }
                Attempt::Unreachable { reason, .. } => RouterError::ShardUnavailable {
                    ordinal: route.ordinal,
                    url: route.url.to_string(),
                    reason,
                }
                .into_response(),
                Attempt::TimedOut => RouterError::ShardTimeout {
                    ordinal: route.ordinal,
                    url: route.url.to_string(),
                    millis: self.opts.upstream_timeout.as_millis(),
                }
                .into_response(),
            };
            return with_request_id(resp, &out.request_id);
        }
    }

    /// One request to one shard with an empty body, for the router's own fan-out calls.
    /// Returns the status and the collected body.
    pub async fn call_shard(
        &self,
        ordinal: u32,
        url: &str,
        out: &Outgoing,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), RouterError> {
        match self.attempt(ordinal, url, out, UpstreamBody::empty()).await {
            Attempt::Answered(resp) => {
                let (parts, incoming) = resp.into_parts();
                let collected = tokio::time::timeout(
                    self.opts.upstream_timeout,
                    http_body_util::BodyExt::collect(incoming),
                )
                .await;
                match collected {
                    Ok(Ok(c)) => Ok((parts.status, parts.headers, c.to_bytes())),
                    Ok(Err(e)) => Err(RouterError::ShardUnavailable {
                        ordinal,
                        url: url.to_string(),
                        reason: format!("reading the answer: {e}"),
                    }),
                    Err(_) => Err(RouterError::ShardTimeout {
                        ordinal,
                        url: url.to_string(),
                        millis: self.opts.upstream_timeout.as_millis(),
                    }),
                }
            }
            Attempt::Unreachable { reason, .. } => Err(RouterError::ShardUnavailable {
                ordinal,
                url: url.to_string(),
                reason,
            }),
            Attempt::TimedOut => Err(RouterError::ShardTimeout {
                ordinal,
                url: url.to_string(),
                millis: self.opts.upstream_timeout.as_millis(),
            }),
        }
    }
}

pub fn with_request_id(mut resp: Response<Body>, id: &HeaderValue) -> Response<Body> {
    resp.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
    resp
}

/// Longest wait between retries of a paused project: a move pauses a project for well
/// under a second, and a retry costs the shard one refused request.
const MAX_PAUSED_BACKOFF: Duration = Duration::from_millis(100);

/// Full-jitter-lite: between half and all of `d`, so retries of many clients spread out.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// The error and its sources, e.g. "client error (Connect): tcp connect error: Connection
/// refused (os error 111)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}
