//! Pausing one project's writes: every change to a project's store passes through its
//! gate, and pausing closes the gate and waits until the writes already inside are done.
//!
//! The gates are keyed by project name and live in the registry, not in the open
//! [`Project`](super::Project), so that a paused project that the LRU closes and reopens
//! stays paused. They are kept in memory only: a restart lifts every pause (the operator
//! pauses a project for the seconds a move takes, and a restart aborts that move anyway).
//! Every pause also carries a deadline, so that a mover that dies mid-move cannot leave
//! a project refusing writes for ever.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::error::{StoreError, StoreResult};

#[derive(Debug, Default)]
struct Gate {
    /// Until when writes are refused; a pause past its deadline has lifted itself.
    paused_until: Option<Instant>,
    /// Writes of the project in progress.
    writers: usize,
}

/// The write gates of every project. An entry exists only while a project is paused or
/// being written, so the map stays as small as the number of active writers.
#[derive(Default)]
pub struct WriteGates {
    gates: Mutex<HashMap<String, Gate>>,
    /// Signalled when a project's last writer leaves; pausers wait on it.
    drained: Condvar,
}

impl Gate {
    fn paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|until| now < until)
    }
}

/// The writes in progress did not finish in time; the pause was undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainTimeout {
    pub writes_in_progress: usize,
}

/// What a pause found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused {
    pub was_paused: bool,
    /// Writes that were in progress and had to finish before the pause took hold.
    pub drained_writes: usize,
}

/// Held for the duration of one write; the pause of the project waits for it to drop.
#[must_use = "the write is only covered while the permit is held"]
pub struct WritePermit {
    gates: Arc<WriteGates>,
    project: String,
}

impl WriteGates {
    pub fn new() -> Arc<WriteGates> {
        Arc::new(WriteGates::default())
    }

    /// Admits one write of `project`, or refuses it while the project is paused.
    pub fn enter(self: &Arc<Self>, project: &str) -> StoreResult<WritePermit> {
        let mut gates = self.gates.lock();
        let gate = gates.entry(project.to_string()).or_default();
        if gate.paused(Instant::now()) {
            return Err(StoreError::ProjectPaused(project.to_string()));
        }
        gate.writers += 1;
        Ok(WritePermit {
            gates: Arc::clone(self),
            project: project.to_string(),
        })
    }

    /// Refuses new writes of `project` for `hold` (a pause in force is renewed), then
    /// waits up to `drain` for the writes in progress to finish. If they do not, the pause
    /// is undone (unless it was in force before) and the error says how many were left.
    pub fn pause(
        &self,
        project: &str,
        hold: Duration,
        drain: Duration,
    ) -> Result<Paused, DrainTimeout> {
        let now = Instant::now();
        let mut gates = self.gates.lock();
        let gate = gates.entry(project.to_string()).or_default();
        let was_paused = gate.paused(now);
        let outcome = Paused {
            was_paused,
            drained_writes: gate.writers,
        };
        let previous = gate.paused_until;
        gate.paused_until = Some(now + hold);
        let drain_deadline = now + drain;
        // writers cannot enter any more, so this ends once the current ones leave
        while let Some(g) = gates.get(project).filter(|g| g.writers > 0) {
            let writes_in_progress = g.writers;
            if self
                .drained
                .wait_until(&mut gates, drain_deadline)
                .timed_out()
                && gates.get(project).is_some_and(|g| g.writers > 0)
            {
                if let Some(g) = gates.get_mut(project) {
                    g.paused_until = if was_paused { previous } else { None };
                }
                return Err(DrainTimeout { writes_in_progress });
            }
        }
        // the hold runs from when the pause took hold: a hold shorter than the drain must
        // not have lapsed by the time the caller is told the project is paused
        gates.entry(project.to_string()).or_default().paused_until = Some(Instant::now() + hold);
        Ok(outcome)
    }

    /// Admits writes of `project` again. Returns whether it was paused.
    pub fn resume(&self, project: &str) -> bool {
        let mut gates = self.gates.lock();
        let Some(gate) = gates.get_mut(project) else {
            return false;
        };
        let was_paused = gate.paused(Instant::now());
        gate.paused_until = None;
        if gate.writers == 0 {
            gates.remove(project);
        }
        was_paused
    }

    pub fn is_paused(&self, project: &str) -> bool {
        self.gates
            .lock()
            .get(project)
            .is_some_and(|g| g.paused(Instant::now()))
    }

    /// Names of the paused projects.
    pub fn paused(&self) -> Vec<String> {
        let now = Instant::now();
        let mut gates = self.gates.lock();
        // expired pauses are dropped here, so the map does not keep them for ever
        gates.retain(|_, g| g.writers > 0 || g.paused(now));
        gates
            .iter()
            .filter(|(_, g)| g.paused(now))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        let mut gates = self.gates.gates.lock();
        let Some(gate) = gates.get_mut(&self.project) else {
            return;
        };
        gate.writers = gate.writers.saturating_sub(1);
        if gate.writers == 0 {
            if !gate.paused(Instant::now()) {
                gates.remove(&self.project);
            }
            self.gates.drained.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn pause(gates: &WriteGates, project: &str) -> Paused {
        gates
            .pause(project, Duration::from_secs(60), Duration::from_secs(10))
            .expect("drained")
    }

    #[test]
    fn pause_lifts_itself_at_its_deadline_and_renews() {
        let gates = WriteGates::new();
        gates
            .pause("alpha", Duration::from_millis(150), Duration::from_secs(1))
            .expect("pause");
        assert!(gates.enter("alpha").is_err());
        std::thread::sleep(Duration::from_millis(100));
        // renewing pushes the deadline out and reports the pause in force
        let again = gates
            .pause("alpha", Duration::from_millis(150), Duration::from_secs(1))
            .expect("pause");
        assert!(again.was_paused);
        std::thread::sleep(Duration::from_millis(100));
        assert!(gates.is_paused("alpha"), "renewed pause still holds");
        std::thread::sleep(Duration::from_millis(100));
        assert!(!gates.is_paused("alpha"));
        assert!(gates.enter("alpha").is_ok(), "expired pause admits writes");
        assert!(gates.paused().is_empty());
    }

    #[test]
    fn pause_is_undone_when_writes_do_not_drain() {
        let gates = WriteGates::new();
        let stuck = gates.enter("alpha").expect("enter");
        let err = gates
            .pause("alpha", Duration::from_secs(60), Duration::from_millis(100))
            .expect_err("a write is stuck");
        assert_eq!(err.writes_in_progress, 1);
        assert!(!gates.is_paused("alpha"), "the failed pause was undone");
        drop(stuck);
        assert!(gates.enter("alpha").is_ok());
    }

    #[test]
    fn paused_project_refuses_writes_and_others_do_not() {
        let gates = WriteGates::new();
        assert!(!pause(&gates, "alpha").was_paused);
        assert!(gates.is_paused("alpha"));
        assert!(matches!(
            gates.enter("alpha"),
            Err(StoreError::ProjectPaused(n)) if n == "alpha"
        ));
        let other = gates.enter("beta").expect("beta is not paused");
        drop(other);
        assert!(
            pause(&gates, "alpha").was_paused,
            "second pause reports it was paused"
        );
        assert_eq!(gates.paused(), ["alpha"]);
        assert!(gates.resume("alpha"));
        assert!(!gates.resume("alpha"));
        assert!(gates.enter("alpha").is_ok());
        assert!(gates.paused().is_empty());
    }

    #[test]
    fn pause_waits_for_writes_in_progress() {
        let gates = WriteGates::new();
        let first = gates.enter("alpha").expect("enter");
        let second = gates.enter("alpha").expect("enter");
        let (done_tx, done_rx) = mpsc::channel();
        let pauser = {
            let gates = Arc::clone(&gates);
            std::thread::spawn(move || {
                let outcome = pause(&gates, "alpha");
                done_tx.send(()).expect("send");
                outcome
            })
        };
        // the pause is visible at once to new writers, although it has not returned
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gates.is_paused("alpha") {
            assert!(std::time::Instant::now() < deadline, "pause never began");
            std::thread::yield_now();
        }
        assert!(gates.enter("alpha").is_err());
        drop(first);
        assert!(
            done_rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "pause returned while a write was still in progress"
        );
        drop(second);
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("pause returns once the writes are done");
        let outcome = pauser.join().expect("pauser");
        assert_eq!(outcome.drained_writes, 2);
        assert!(!outcome.was_paused);
    }

    #[test]
    fn entries_are_dropped_when_unused() {
        let gates = WriteGates::new();
        drop(gates.enter("alpha").expect("enter"));
        assert!(gates.gates.lock().is_empty());
        pause(&gates, "alpha");
        let _ = gates.resume("alpha");
        assert!(gates.gates.lock().is_empty());
    }
}
