//! Pausing one project's writes: every change to a project's store passes through its
//! gate, and pausing closes the gate and waits until the writes already inside are done.
//!
//! The gates are keyed by project name and live in the registry, not in the open
//! [`Project`](super::Project), so that a paused project that the LRU closes and reopens
//! stays paused. They are kept in memory only: a restart lifts every pause (the operator
//! pauses a project for the seconds a move takes, and a restart aborts that move anyway).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::error::{StoreError, StoreResult};

#[derive(Debug, Default)]
struct Gate {
    paused: bool,
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
        if gate.paused {
            return Err(StoreError::ProjectPaused(project.to_string()));
        }
        gate.writers += 1;
        Ok(WritePermit {
            gates: Arc::clone(self),
            project: project.to_string(),
        })
    }

    /// Refuses new writes of `project`, then waits for those in progress to finish.
    pub fn pause(&self, project: &str) -> Paused {
        let mut gates = self.gates.lock();
        let gate = gates.entry(project.to_string()).or_default();
        let outcome = Paused {
            was_paused: gate.paused,
            drained_writes: gate.writers,
        };
        gate.paused = true;
        // writers cannot enter any more, so this terminates once the current ones leave
        while gates.get(project).is_some_and(|g| g.writers > 0) {
            self.drained.wait(&mut gates);
        }
        outcome
    }

    /// Admits writes of `project` again. Returns whether it was paused.
    pub fn resume(&self, project: &str) -> bool {
        let mut gates = self.gates.lock();
        let Some(gate) = gates.get_mut(project) else {
            return false;
        };
        let was_paused = gate.paused;
        gate.paused = false;
        if gate.writers == 0 {
            gates.remove(project);
        }
        was_paused
    }

    pub fn is_paused(&self, project: &str) -> bool {
        self.gates.lock().get(project).is_some_and(|g| g.paused)
    }

    /// Names of the paused projects.
    pub fn paused(&self) -> Vec<String> {
        self.gates
            .lock()
            .iter()
            .filter(|(_, g)| g.paused)
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
            if !gate.paused {
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

    #[test]
    fn paused_project_refuses_writes_and_others_do_not() {
        let gates = WriteGates::new();
        assert!(!gates.pause("alpha").was_paused);
        assert!(gates.is_paused("alpha"));
        assert!(matches!(
            gates.enter("alpha"),
            Err(StoreError::ProjectPaused(n)) if n == "alpha"
        ));
        let other = gates.enter("beta").expect("beta is not paused");
        drop(other);
        assert!(
            gates.pause("alpha").was_paused,
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
                let outcome = gates.pause("alpha");
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
        gates.pause("alpha");
        let _ = gates.resume("alpha");
        assert!(gates.gates.lock().is_empty());
    }
}
