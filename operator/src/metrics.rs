//! The operator's own Prometheus metrics: leadership, the shard set and project moves.
//! They live in the operator's one [`Registry`], next to the reconciler's metrics and the
//! HTTP metrics of the operator's own endpoint. Labels are fixed words, never names.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Seconds a whole move may take: a small project moves in seconds, a large one copies
/// its snapshot for many minutes (up to ~30 min).
pub const MOVE_DURATION_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0,
];

/// Seconds a project's writes stay paused during the final catch-up: milliseconds when
/// little changed, up to the pause deadline in the worst case.
pub const WRITE_PAUSE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleDirection {
    Up,
    Down,
}

impl ScaleDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDirection::Up => "up",
            ScaleDirection::Down => "down",
        }
    }
}

/// How a move ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveResult {
    /// The project serves from its new shard.
    Done,
    /// Undone cleanly: the project still serves from its old shard.
    RolledBack,
    /// Stopped on an error that left something for a later run to finish or undo.
    Failed,
}

impl MoveResult {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveResult::Done => "done",
            MoveResult::RolledBack => "rolled_back",
            MoveResult::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug)]
pub struct OperatorMetrics {
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    pub shards_desired: IntGauge,
    pub shards_current: IntGauge,
    /// StatefulSet resizes, by `direction`.
    pub scale_events: IntCounterVec,
    pub moves_in_progress: IntGauge,
    /// Finished moves, by `result`.
    pub moves: IntCounterVec,
    pub move_duration: Histogram,
    pub move_write_pause: Histogram,
}

impl OperatorMetrics {
    /// Creates the metrics and registers them in `registry`; fails only if a metric of the
    /// same name is already registered there.
    pub fn register(registry: &Registry) -> Result<OperatorMetrics, prometheus::Error> {
        let leader = IntGauge::new(
            "quiver_operator_leader",
            "1 while this operator replica holds the leader lease, else 0",
        )?;
        let shards_desired = IntGauge::new(
            "quiver_operator_shards_desired",
            "Tenant-server shards the scaling policy asks for, at the last decision",
        )?;
        let shards_current = IntGauge::new(
            "quiver_operator_shards_current",
            "Replicas of the tenant-server StatefulSet, at the last observation",
        )?;
        let scale_events = IntCounterVec::new(
            Opts::new(
                "quiver_operator_scale_events_total",
                "Changes of the tenant-server StatefulSet's replicas, by direction (up, down)",
            ),
            &["direction"],
        )?;
        let moves_in_progress = IntGauge::new(
            "quiver_operator_moves_in_progress",
            "Project moves started and not finished",
        )?;
        let moves = IntCounterVec::new(
            Opts::new(
                "quiver_operator_moves_total",
                "Finished project moves, by result (done, rolled_back, failed)",
            ),
            &["result"],
        )?;
        let move_duration = Histogram::with_opts(
            HistogramOpts::new(
                "quiver_operator_move_duration_seconds",
                "Time from the start of a project move to its end, whatever the result",
            )
            .buckets(MOVE_DURATION_BUCKETS.to_vec()),
        )?;
        let move_write_pause = Histogram::with_opts(
            HistogramOpts::new(
                "quiver_operator_move_write_pause_seconds",
                "Time a moving project's writes were paused for the final catch-up",
            )
            .buckets(WRITE_PAUSE_BUCKETS.to_vec()),
        )?;
        for c in [
            Box::new(leader.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(shards_desired.clone()),
            Box::new(shards_current.clone()),
            Box::new(scale_events.clone()),
            Box::new(moves_in_progress.clone()),
            Box::new(moves.clone()),
            Box::new(move_duration.clone()),
            Box::new(move_write_pause.clone()),
        ] {
            registry.register(c)?;
        }
        // every label value exists from the start, so rates and alerts over them are
        // defined before the first event
        for d in [ScaleDirection::Up, ScaleDirection::Down] {
            scale_events.with_label_values(&[d.as_str()]);
        }
        for r in [MoveResult::Done, MoveResult::RolledBack, MoveResult::Failed] {
            moves.with_label_values(&[r.as_str()]);
        }
        Ok(OperatorMetrics {
            leader,
            shards_desired,
            shards_current,
            scale_events,
            moves_in_progress,
            moves,
            move_duration,
            move_write_pause,
        })
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn set_shards(&self, current: u32, desired: u32) {
        self.shards_current.set(i64::from(current));
        self.shards_desired.set(i64::from(desired));
    }

    pub fn scaled(&self, direction: ScaleDirection) {
        self.scale_events
            .with_label_values(&[direction.as_str()])
            .inc();
    }

    /// Counts a move as in progress until [`MoveTimer::finish`] (or drop, as `failed`).
    pub fn start_move(&self) -> MoveTimer {
        self.moves_in_progress.inc();
        MoveTimer {
            metrics: self.clone(),
            started: std::time::Instant::now(),
            result: None,
        }
    }

    pub fn observe_write_pause(&self, paused: Duration) {
        self.move_write_pause.observe(paused.as_secs_f64());
    }
}

/// One move in progress. Dropped without [`MoveTimer::finish`] (the mover returned early
/// or its task was cancelled) it counts as `failed`: something was left to clean up.
pub struct MoveTimer {
    metrics: OperatorMetrics,
    started: std::time::Instant,
    result: Option<MoveResult>,
}

impl MoveTimer {
    pub fn finish(mut self, result: MoveResult) {
        self.result = Some(result);
    }
}

impl Drop for MoveTimer {
    fn drop(&mut self) {
        let m = &self.metrics;
        m.moves_in_progress.dec();
        m.move_duration
            .observe(self.started.elapsed().as_secs_f64());
        let result = self.result.unwrap_or(MoveResult::Failed);
        m.moves.with_label_values(&[result.as_str()]).inc();
    }
}

/// The Prometheus text exposition of everything in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    // encoding gathered families into a Vec cannot fail but for invalid metric data,
    // which the typed constructors above rule out
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_with_its_labels() {
        let registry = Registry::new();
        let m = OperatorMetrics::register(&registry).unwrap();
        m.set_leader(true);
        m.set_shards(3, 4);
        m.scaled(ScaleDirection::Up);
        m.start_move().finish(MoveResult::Done);
        drop(m.start_move());
        m.observe_write_pause(Duration::from_millis(40));
        let text = render(&registry);
        for line in [
            "quiver_operator_leader 1",
            "quiver_operator_shards_current 3",
            "quiver_operator_shards_desired 4",
            "quiver_operator_scale_events_total{direction=\"up\"} 1",
            "quiver_operator_scale_events_total{direction=\"down\"} 0",
            "quiver_operator_moves_in_progress 0",
            "quiver_operator_moves_total{result=\"done\"} 1",
            "quiver_operator_moves_total{result=\"failed\"} 1",
            "quiver_operator_moves_total{result=\"rolled_back\"} 0",
            "quiver_operator_move_duration_seconds_count 2",
            "quiver_operator_move_duration_seconds_bucket{le=\"1800\"} 2",
            "quiver_operator_move_write_pause_seconds_bucket{le=\"0.001\"} 0",
            "quiver_operator_move_write_pause_seconds_bucket{le=\"0.05\"} 1",
            "quiver_operator_move_write_pause_seconds_bucket{le=\"60\"} 1",
            "# TYPE quiver_operator_move_duration_seconds histogram",
            "# TYPE quiver_operator_moves_total counter",
            "# TYPE quiver_operator_leader gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn registering_twice_in_one_registry_fails() {
        let registry = Registry::new();
        OperatorMetrics::register(&registry).unwrap();
        assert!(OperatorMetrics::register(&registry).is_err());
    }
}
