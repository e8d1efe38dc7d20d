//! The HTTP request metrics every Quiver binary serves, under the same names.

use std::time::Instant;

use axum::http::StatusCode;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Latency buckets (seconds) shared by the binaries' histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `quiver_http_requests_total{route,status}`, `quiver_http_request_duration_seconds{route}`
/// and `quiver_http_requests_in_flight`. `route` is a bounded label: a route template or
/// class, never a concrete path.
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> HttpMetrics {
        let requests = IntCounterVec::new(
            Opts::new(
                "quiver_http_requests_total",
                "HTTP requests answered, by route and status code (499: the client hung up)",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "quiver_http_request_duration_seconds",
                "Time from request to response headers, by route",
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
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("unique metric");
        HttpMetrics {
            requests,
            duration,
            in_flight,
        }
    }

    /// Counts a request as in flight until the returned guard drops.
    pub fn start<'a>(&'a self, route: &'a str) -> InFlight<'a> {
        self.in_flight.inc();
        InFlight {
            metrics: self,
            route,
            started: Instant::now(),
            status: None,
        }
    }
}

/// One request in flight. Dropped without [`InFlight::finish`] — the client hung up and
/// the request future was dropped — it is counted with status 499, as nginx does.
pub struct InFlight<'a> {
    metrics: &'a HttpMetrics,
    route: &'a str,
    started: Instant,
    status: Option<StatusCode>,
}

impl InFlight<'_> {
    pub fn finish(&mut self, status: StatusCode) {
        self.status = Some(status);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let m = self.metrics;
        m.in_flight.dec();
        m.duration
            .with_label_values(&[self.route])
            .observe(self.started.elapsed().as_secs_f64());
        let status = self.status;
        let status = status.as_ref().map_or("499", StatusCode::as_str);
        m.requests.with_label_values(&[self.route, status]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_and_abandoned_requests_are_counted() {
        let r = Registry::new();
        let m = HttpMetrics::register(&r);
        {
            let mut f = m.start("/a");
            assert_eq!(m.in_flight.get(), 1);
            f.finish(StatusCode::OK);
        }
        drop(m.start("/a"));
        assert_eq!(m.in_flight.get(), 0);
        assert_eq!(m.requests.with_label_values(&["/a", "200"]).get(), 1);
        assert_eq!(m.requests.with_label_values(&["/a", "499"]).get(), 1);
        assert_eq!(m.duration.with_label_values(&["/a"]).get_sample_count(), 2);
    }
}
