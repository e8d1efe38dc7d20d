//! Moving projects between shards with nothing lost, and rebalancing the shard set.
//!
//! One move (see [`project`]): copy a snapshot while the source serves, catch up, pause
//! the source, ship the rest, fence the source, activate the destination, switch the
//! placement table, resume. Each step's phase is recorded in the placement table's
//! `moving` entry before the step, so whoever finds an entry (this process after a
//! failure, or a new operator after a restart, see [`recovery`]) knows what to do: before
//! the switch, roll back; after it, finish. Nothing about a move lives only in memory,
//! except the grace timer before the old copy is removed, which restarts (longer, never
//! shorter) with the process.
//!
//! [`rebalance`] moves exactly the projects whose home changes when the shard count does.

mod project;
mod rebalance;
mod recovery;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quiver_placement::PlacementTable;

use crate::admin::{AdminClient, AdminError};
use crate::metrics::OperatorMetrics;
use crate::placement_store::PlacementStoreError;

pub use project::{move_project, MoveReport};
pub use rebalance::{locate, rebalance, trim_shards, Locations, RebalanceReport};
pub use recovery::{finish_switched, recover, roll_back, RecoveryReport, RollBack};

#[derive(Debug, Clone)]
pub struct MoveConfig {
    /// Longest the source's writes stay paused if the mover vanishes mid-move.
    pub pause_hold: Duration,
    /// Catch-up rounds while the source still serves, before pausing it.
    pub catch_up_rounds: u32,
    /// A catch-up round that applied at most this many batches is small enough to pause.
    pub catch_up_small: u64,
    /// Projects moved at once.
    pub batch_size: usize,
    /// How long a moved project's old copy is kept (fenced) before it is removed.
    pub grace: Duration,
}

impl Default for MoveConfig {
    fn default() -> Self {
        MoveConfig {
            pause_hold: Duration::from_secs(30),
            catch_up_rounds: 5,
            catch_up_small: 16,
            batch_size: 4,
            grace: Duration::from_secs(300),
        }
    }
}

/// What moves need: a way to reach each shard's admin API, the settings, the metrics, and
/// the grace timers of switched moves.
pub struct MoveContext {
    http: reqwest::Client,
    token: Option<String>,
    pub config: MoveConfig,
    metrics: Option<OperatorMetrics>,
    /// When this process saw each switched move (the grace period runs from here).
    switched: Mutex<HashMap<String, Instant>>,
}

impl MoveContext {
    pub fn new(
        http: reqwest::Client,
        token: Option<String>,
        config: MoveConfig,
        metrics: Option<OperatorMetrics>,
    ) -> MoveContext {
        MoveContext {
            http,
            token,
            config,
            metrics,
            switched: Mutex::new(HashMap::new()),
        }
    }

    /// The admin client of the shard at `ordinal` in `table`.
    pub fn shard(&self, table: &PlacementTable, ordinal: u32) -> Result<AdminClient, MoveError> {
        let url = table
            .shards
            .get(ordinal as usize)
            .ok_or(MoveError::NoShard(ordinal))?;
        AdminClient::new(url, self.token.clone(), self.http.clone()).map_err(|source| {
            MoveError::Admin {
                step: "connect",
                source,
            }
        })
    }

    fn metrics(&self) -> Option<&OperatorMetrics> {
        self.metrics.as_ref()
    }

    fn note_switched(&self, project: &str) {
        if let Ok(mut s) = self.switched.lock() {
            s.entry(project.to_string()).or_insert_with(Instant::now);
        }
    }

    /// Whether the grace period of a switched move is over (its clock starts when this
    /// process first sees the move switched).
    fn grace_over(&self, project: &str) -> bool {
        let Ok(mut s) = self.switched.lock() else {
            return false;
        };
        let since = *s.entry(project.to_string()).or_insert_with(Instant::now);
        since.elapsed() >= self.config.grace
    }

    fn forget_switched(&self, project: &str) {
        if let Ok(mut s) = self.switched.lock() {
            s.remove(project);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("placement table: {0}")]
    Placement(#[from] PlacementStoreError),
    #[error("{step}: {source}")]
    Admin {
        step: &'static str,
        #[source]
        source: AdminError,
    },
    #[error("no shard URL for ordinal {0} in the placement table")]
    NoShard(u32),
    /// The table's record of the move is not what this mover expects (someone else moved
    /// the project, or the entry is gone).
    #[error("move of project {project:?}: {reason}")]
    Conflict { project: String, reason: String },
    /// The move failed at `step` and was rolled back: the project serves from its source.
    #[error("move of project {project:?} failed at {step} and was rolled back: {cause}")]
    RolledBack {
        project: String,
        step: &'static str,
        cause: String,
    },
}

impl MoveError {
    fn admin(step: &'static str) -> impl FnOnce(AdminError) -> MoveError {
        move |source| MoveError::Admin { step, source }
    }
}
