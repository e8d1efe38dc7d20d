//! Prometheus metrics of the router. Labels are bounded: route classes, status codes,
//! shard ordinals and fixed reasons — never project names.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use quiver_telemetry::metrics::{HttpMetrics, LATENCY_BUCKETS};

pub struct Metrics {
    registry: Registry,
    /// Requests by route class (see `proxy::target::route_class`).
    pub http: HttpMetrics,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub retries: IntCounterVec,
    pub placement_epoch: IntGauge,
    pub placement_shards: IntGauge,
    pub placement_updates: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry);
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
            Box::new(upstream_duration.clone()) as Box<dyn prometheus::core::Collector>,
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
            http,
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
