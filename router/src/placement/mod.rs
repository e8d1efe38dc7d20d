//! The live placement table and the sources that feed it.
//!
//! Every request takes one snapshot ([`Placement::current`]) and routes with it, so a new
//! table applies atomically: a request sees either the old table or the new one, never a
//! mix. A source that fails keeps serving the last good table and reports itself unhealthy
//! (the router's readiness).

pub mod configmap;
pub mod file;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use quiver_placement::PlacementTable;
use tokio::sync::watch;

use crate::metrics::Metrics;

pub struct Placement {
    table: ArcSwapOption<PlacementTable>,
    source_healthy: AtomicBool,
    source: &'static str,
    changed: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

impl Placement {
    pub fn new(source: &'static str, metrics: Arc<Metrics>) -> Arc<Placement> {
        let (changed, _) = watch::channel(0);
        Arc::new(Placement {
            table: ArcSwapOption::empty(),
            source_healthy: AtomicBool::new(false),
            source,
            changed,
            metrics,
        })
    }

    /// The table requests route with; `None` until a source delivered one.
    pub fn current(&self) -> Option<Arc<PlacementTable>> {
        self.table.load_full()
    }

    /// Installs `table` if it differs from the current one. Returns whether it changed.
    /// A table older than the current one (lower epoch) is refused as an error: tables
    /// only move forward.
    pub fn install(&self, table: PlacementTable) -> bool {
        if let Some(current) = self.current() {
            if table.epoch < current.epoch {
                self.report_error(&format!(
                    "refusing placement epoch {} older than the current {}",
                    table.epoch, current.epoch
                ));
                return false;
            }
        }
        self.set_source_healthy(true);
        if self.current().as_deref() == Some(&table) {
            return false;
        }
        let epoch = table.epoch;
        tracing::info!(
            source = self.source,
            epoch,
            shard_count = table.shard_count,
            shards = table.shards.len(),
            overrides = table.overrides.len(),
            moving = table.moving.len(),
            "placement table installed"
        );
        self.metrics
            .placement_epoch
            .set(i64::try_from(epoch).unwrap_or(i64::MAX));
        self.metrics
            .placement_shards
            .set(i64::from(table.shard_count));
        self.metrics
            .placement_updates
            .with_label_values(&[self.source, "applied"])
            .inc();
        self.table.store(Some(Arc::new(table)));
        self.changed.send_modify(|n| *n += 1);
        true
    }

    /// Records a source failure; the last good table stays in force.
    pub fn report_error(&self, what: &str) {
        tracing::warn!(source = self.source, "placement source error: {what}");
        self.metrics
            .placement_updates
            .with_label_values(&[self.source, "error"])
            .inc();
        self.set_source_healthy(false);
    }

    pub fn set_source_healthy(&self, healthy: bool) {
        self.source_healthy.store(healthy, Ordering::Relaxed);
    }

    /// Ready means: a table is installed and its source is currently reachable.
    pub fn ready(&self) -> Result<(), String> {
        if self.current().is_none() {
            return Err(format!(
                "no placement table yet from the {} source",
                self.source
            ));
        }
        if !self.source_healthy.load(Ordering::Relaxed) {
            return Err(format!("the {} placement source is failing", self.source));
        }
        Ok(())
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Resolves once a table newer than the one seen at subscription time is installed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_atomic_and_idempotent() {
        let p = Placement::new("static", Arc::new(Metrics::new()));
        assert!(p.ready().is_err());
        let t1 = PlacementTable::from_urls(1, vec!["http://a:1".into()]).unwrap();
        let mut rx = p.subscribe();
        assert!(p.install(t1.clone()));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert!(!p.install(t1.clone()));
        assert!(!rx.has_changed().unwrap());
        let snapshot = p.current().unwrap();
        let t2 = PlacementTable::from_urls(2, vec!["http://b:1".into()]).unwrap();
        p.install(t2);
        // an earlier snapshot is unaffected by the swap
        assert_eq!(snapshot.shards[0], "http://a:1");
        assert_eq!(p.current().unwrap().shards[0], "http://b:1");
        assert!(p.ready().is_ok());
        p.report_error("boom");
        assert!(p.ready().is_err());
        assert_eq!(p.current().unwrap().epoch, 2);
    }
}
