//! The reconciler's own metrics, registered on the operator's registry.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    /// Reconciles by `result` (`ok` or `error`).
    pub reconciles: IntCounterVec,
    /// Failed reconciles by `kind` of error (see `Error::kind`).
    pub errors: IntCounterVec,
    pub reconcile_duration: Histogram,
    /// Projects found on shards without a `Project` resource, at the last check.
    pub unmanaged: IntGauge,
}

impl ReconcileMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "quiver_operator_reconciles_total",
                "Project reconciles, by result (ok or error)",
            ),
            &["result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "quiver_operator_reconcile_errors_total",
                "Failed Project reconciles, by kind of error",
            ),
            &["kind"],
        )?;
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "quiver_operator_reconcile_duration_seconds",
                "Time one Project reconcile takes, shard calls included",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let unmanaged = IntGauge::new(
            "quiver_operator_unmanaged_projects",
            "Projects on the shards that no Project resource manages, at the last check",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(unmanaged.clone()))?;
        // Both results exist from the start, so a rate over them is defined before the
        // first failure.
        reconciles.with_label_values(&["ok"]);
        reconciles.with_label_values(&["error"]);
        Ok(ReconcileMetrics {
            reconciles,
            errors,
            reconcile_duration,
            unmanaged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_the_documented_names_once() {
        let registry = Registry::new();
        let m = ReconcileMetrics::register(&registry).unwrap();
        m.errors.with_label_values(&["shard"]).inc();
        m.unmanaged.set(3);
        let mut names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "quiver_operator_reconcile_duration_seconds",
                "quiver_operator_reconcile_errors_total",
                "quiver_operator_reconciles_total",
                "quiver_operator_unmanaged_projects",
            ]
        );
        // a second registration on the same registry is refused, not duplicated
        assert!(ReconcileMetrics::register(&registry).is_err());
    }
}
