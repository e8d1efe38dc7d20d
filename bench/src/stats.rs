//! Latency percentiles and the aligned result lines.

use std::time::Duration;

/// The outcome of one benchmark phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Phase label.
    pub phase: String,
    /// Operations (or vectors, or projects) done.
    pub ops: usize,
    /// Wall-clock seconds.
    pub secs: f64,
    /// Throughput in `unit`.
    pub rate: f64,
    /// Unit of `rate` (`vec/s`, `q/s`, `ops/s`, `proj/s`).
    pub unit: &'static str,
    /// Median request latency.
    pub p50_ms: Option<f64>,
    /// 99th-percentile request latency.
    pub p99_ms: Option<f64>,
    /// Mean recall@10 against exact search.
    pub recall: Option<f64>,
    /// Free-form remark (checks, warnings).
    pub note: String,
}

impl PhaseResult {
    /// A result from `ops` operations in `wall` with the given per-request latencies.
    pub fn new(
        phase: impl Into<String>,
        ops: usize,
        wall: Duration,
        unit: &'static str,
        latencies: &[Duration],
    ) -> Self {
        let secs = wall.as_secs_f64();
        let (p50_ms, p99_ms) = match percentiles_ms(latencies, &[50.0, 99.0]).as_slice() {
            [p50, p99] => (Some(*p50), Some(*p99)),
            _ => (None, None),
        };
        PhaseResult {
            phase: phase.into(),
            ops,
            secs,
            rate: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            unit,
            p50_ms,
            p99_ms,
            recall: None,
            note: String::new(),
        }
    }

    /// Sets the recall column.
    pub fn with_recall(mut self, recall: f64) -> Self {
        self.recall = Some(recall);
        self
    }

    /// Sets the note column.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The column titles matching [`PhaseResult::line`].
    pub fn header() -> String {
        format!(
            "{:<36} {:>9} {:>9} {:>12} {:<6} {:>9} {:>9} {:>9}  {}",
            "phase", "ops", "secs", "throughput", "unit", "p50 ms", "p99 ms", "recall@10", "note"
        )
    }

    /// One aligned line.
    pub fn line(&self) -> String {
        let opt = |v: Option<f64>, prec: usize| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.prec$}"))
        };
        format!(
            "{:<36} {:>9} {:>9.3} {:>12.1} {:<6} {:>9} {:>9} {:>9}  {}",
            self.phase,
            self.ops,
            self.secs,
            self.rate,
            self.unit,
            opt(self.p50_ms, 3),
            opt(self.p99_ms, 3),
            opt(self.recall, 4),
            self.note
        )
    }
}

/// Nearest-rank percentiles (in ms) of `latencies`; empty if there are none.
pub fn percentiles_ms(latencies: &[Duration], ps: &[f64]) -> Vec<f64> {
    if latencies.is_empty() {
        return Vec::new();
    }
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ps.iter().map(|&p| percentile_sorted(&ms, p)).collect()
}

/// Nearest-rank percentile `p` (0–100) of an ascending, non-empty slice.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&v, 50.0), 50.0);
        assert_eq!(percentile_sorted(&v, 99.0), 99.0);
        assert_eq!(percentile_sorted(&v, 100.0), 100.0);
        assert_eq!(percentile_sorted(&v, 0.0), 1.0);
        assert_eq!(percentile_sorted(&[3.0], 99.0), 3.0);
    }

    #[test]
    fn phase_line() {
        let lat: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let r = PhaseResult::new("x", 10, Duration::from_secs(2), "q/s", &lat).with_recall(0.95);
        assert_eq!(r.rate, 5.0);
        assert_eq!(r.p50_ms, Some(5.0));
        assert_eq!(r.p99_ms, Some(10.0));
        assert!(r.line().contains("0.9500"));
        assert_eq!(
            PhaseResult::new("y", 0, Duration::ZERO, "q/s", &[]).p50_ms,
            None
        );
    }
}
