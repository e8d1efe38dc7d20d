//! Prometheus metrics of the router. Labels are bounded: route classes, status codes,
//! shard ordinals and fixed reasons — never project names.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub retries: IntCounterVec,
    pub placement_epoch: IntGauge,
    pub placement_shards: IntGauge,
    pub placement_updates: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "quiver_http_requests_total",
                "HTTP requests answered, by route class and status code",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "quiver_http_request_duration_seconds",
                "Time from request to response headers, by route class",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new(
            "quiver_http_requests_in_flight",
            "Requests being handled right now",
        )
        .expect("valid metric");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "quiver_router_upstream_duration_seconds",
                "Time for a shard to answer one attempt, by shard ordinal",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["shard"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "quiver_router_upstream_errors_total",
                "Attempts that got no answer from a shard, by ordinal and kind (connect, timeout, io)",
            ),
            &["shard", "kind"],
        )
        .expect("valid metric");
        let retries = IntCounterVec::new(
            Opts::new(
                "quiver_router_retries_total",
                "Requests sent again, by reason (paused, moved, placement_changed)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let placement_epoch = IntGauge::new(
            "quiver_router_placement_epoch",
            "Epoch of the placement table in force",
        )
        .expect("valid metric");
        let placement_shards = IntGauge::new(
            "quiver_router_placement_shards",
            "Shard count (N of the hash) of the placement table in force",
        )
        .expect("valid metric");
        let placement_updates = IntCounterVec::new(
            Opts::new(
                "quiver_router_placement_updates_total",
                "Placement table updates by source and result (applied, error)",
            ),
            &["source", "result"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(retries.clone()),
            Box::new(placement_epoch.clone()),
            Box::new(placement_shards.clone()),
            Box::new(placement_updates.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            request_duration,
            in_flight,
            upstream_duration,
            upstream_errors,
            retries,
            placement_epoch,
            placement_shards,
            placement_updates,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
