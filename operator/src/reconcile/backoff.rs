//! Per-object retry delays after failed reconciles: 5 s doubling up to 5 min, reset by a
//! successful reconcile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `attempt` (1 for the first failure).
pub fn backoff_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    BACKOFF_BASE
        .checked_mul(1u32 << doublings)
        .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX))
}

/// `delay` stretched by up to `fraction` of itself, `unit` in `[0, 1)` choosing how much:
/// the projects of a shard that went down fail together, and should not all come back to
/// it in the same instant.
pub fn with_jitter(delay: Duration, fraction: f64, unit: f64) -> Duration {
    let stretch = (fraction * unit).clamp(0.0, 1.0);
    delay.mul_f64(1.0 + stretch)
}

/// Consecutive failures per object key.
#[derive(Debug, Default)]
pub(crate) struct BackoffTracker {
    attempts: Mutex<HashMap<String, u32>>,
}

impl BackoffTracker {
    /// Counts one more failure of `key` and returns its attempt number.
    pub(crate) fn fail(&self, key: &str) -> u32 {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let n = attempts.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub(crate) fn reset(&self, key: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub(crate) fn attempts(&self, key: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_five_seconds_to_five_minutes() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff_delay(a).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        // attempt 0 (never failed) is treated as the first
        assert_eq!(backoff_delay(0), BACKOFF_BASE);
        // no overflow however long it keeps failing
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
        assert_eq!(backoff_delay(33), BACKOFF_MAX);
    }

    #[test]
    fn jitter_only_stretches_within_its_fraction() {
        let d = Duration::from_secs(10);
        assert_eq!(with_jitter(d, 0.1, 0.0), d);
        assert_eq!(with_jitter(d, 0.0, 0.9), d);
        assert_eq!(with_jitter(d, 0.1, 0.5), Duration::from_millis(10_500));
        assert!(with_jitter(d, 0.1, 0.999_999) < Duration::from_secs(11));
        // nonsense inputs stay bounded
        assert_eq!(with_jitter(d, -1.0, 0.5), d);
        assert_eq!(with_jitter(d, 5.0, 0.9), Duration::from_secs(20));
    }

    #[test]
    fn tracker_counts_per_key_and_resets() {
        let t = BackoffTracker::default();
        assert_eq!(t.fail("ns/a"), 1);
        assert_eq!(t.fail("ns/a"), 2);
        assert_eq!(t.fail("ns/b"), 1);
        assert_eq!(t.attempts("ns/a"), 2);
        t.reset("ns/a");
        assert_eq!(t.attempts("ns/a"), 0);
        assert_eq!(t.fail("ns/a"), 1);
        assert_eq!(t.attempts("ns/b"), 1);
    }
}
