//! The shard controller: every `--scale-interval-secs`, while this replica leads, it reads
//! the tenant StatefulSet and every shard's load, decides the shard count
//! ([`crate::shard_count::desired_shards`]) and walks towards it one [`Step`] at a time:
//!
//! - up: patch the StatefulSet's scale, wait for the new pods to be ready, publish their
//!   URLs in the placement table, then let the rebalancer move projects onto them;
//! - down: let the rebalancer drain the highest ordinal first, drop its URL from the table
//!   once it is empty, and only then patch the replicas down.
//!
//! The decisions are in [`scale`] (pure); [`observe`] holds the Kubernetes and shard I/O.
//! Moving projects is the rebalancer's ([`Rebalancer`], implemented by the binary over
//! [`crate::moves`]).

pub mod observe;
pub mod scale;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use quiver_placement::PlacementTable;

use crate::metrics::{OperatorMetrics, ScaleDirection};
use crate::placement_store::{self, PlacementStore, PlacementStoreError};
use crate::shard_count::ScalingPolicy;
pub use observe::{gather_loads, AdminShardStats, ShardStats, StatefulSetClient};
pub use scale::{next_step, target_shards, Replicas, Step};

/// Moves projects between shards; the binary implements it with [`crate::moves`].
pub trait Rebalancer: Send + Sync {
    /// Moves every project to its home among `target` shards (the table lists a URL for
    /// every ordinal below `target` and beyond), finishing or undoing interrupted moves.
    fn rebalance(&self, target: u32) -> BoxFuture<'_, Result<(), String>>;

    /// Drops the URLs of ordinals `target..` from the table once nothing is left on them
    /// (no project, no old copy, no move). `true` when the table lists exactly `target`
    /// shards, so the StatefulSet may shrink to `target`.
    fn trim(&self, target: u32) -> BoxFuture<'_, Result<bool, String>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("Kubernetes API error on StatefulSet {statefulset}: {source}")]
    Kube {
        statefulset: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("StatefulSet {0} does not exist")]
    StatefulSetMissing(String),
    #[error(transparent)]
    Store(#[from] PlacementStoreError),
    #[error("rebalancing to {target} shards failed: {message}")]
    Rebalance { target: u32, message: String },
    #[error("{ready} of {replicas} shards ready after {seconds} s")]
    NotReady {
        replicas: u32,
        ready: u32,
        seconds: u64,
    },
    #[error("shard URL for ordinal {ordinal} is not valid: {source}")]
    BadUrl {
        ordinal: u32,
        #[source]
        source: quiver_placement::PlacementError,
    },
}

/// Timings and bounds of the controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub policy: ScalingPolicy,
    /// Between two passes.
    pub interval: Duration,
    /// Between two looks at the StatefulSet while pods come up.
    pub ready_poll: Duration,
    /// How long one pass waits for pods to become ready.
    pub ready_timeout: Duration,
}

impl ControllerConfig {
    pub fn new(policy: ScalingPolicy, interval: Duration) -> ControllerConfig {
        ControllerConfig {
            policy,
            interval,
            ready_poll: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(600),
        }
    }
}

/// How one pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassOutcome {
    /// The shard set is where the policy wants it.
    Settled { shards: u32 },
    /// Shrinking waits for the drained ordinals to empty (old copies in their grace period).
    Draining { from: u32, to: u32 },
}

/// Steps one pass may take; a pass needs at most about six, more means something keeps
/// undoing them (another writer), and the next pass will look again.
const MAX_STEPS: usize = 16;

pub struct ShardController {
    config: ControllerConfig,
    statefulset: StatefulSetClient,
    urls: Box<dyn Fn(u32) -> String + Send + Sync>,
    store: Arc<dyn PlacementStore>,
    stats: Box<dyn ShardStats>,
    rebalancer: Box<dyn Rebalancer>,
    metrics: OperatorMetrics,
}

impl ShardController {
    /// `urls(i)` is the base URL of ordinal `i` (see [`crate::config::ShardAddresses`]).
    pub fn new(
        config: ControllerConfig,
        statefulset: StatefulSetClient,
        urls: impl Fn(u32) -> String + Send + Sync + 'static,
        store: Arc<dyn PlacementStore>,
        stats: Box<dyn ShardStats>,
        rebalancer: Box<dyn Rebalancer>,
        metrics: OperatorMetrics,
    ) -> ShardController {
        ShardController {
            config,
            statefulset,
            urls: Box::new(urls),
            store,
            stats,
            rebalancer,
            metrics,
        }
    }

    /// A pass every interval until `shutdown` resolves (or the future is dropped, which is
    /// how losing leadership stops it: every step is safe to abandon).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let pass = async {
                match self.pass().await {
                    Ok(PassOutcome::Settled { shards }) => {
                        tracing::debug!(shards, "shard set settled")
                    }
                    Ok(PassOutcome::Draining { from, to }) => tracing::info!(
                        "shrinking from {from} to {to} shards: waiting for the drained shards to empty"
                    ),
                    Err(e) => tracing::warn!("shard controller: {e}"),
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = pass => {}
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }

    fn urls(&self, count: u32) -> Vec<String> {
        (0..count).map(|i| (self.urls)(i)).collect()
    }

    async fn table(&self) -> Result<Option<PlacementTable>, ShardError> {
        match self.store.load().await {
            Ok(v) => Ok(Some(v.table)),
            Err(PlacementStoreError::Absent { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One pass: observe, decide the target, then step towards it.
    pub async fn pass(&self) -> Result<PassOutcome, ShardError> {
        let mut replicas = self.statefulset.replicas().await?;
        // only a fully ready set can report every load
        let loads = if replicas.ready >= replicas.spec {
            gather_loads(self.stats.as_ref(), &self.urls(replicas.spec)).await
        } else {
            None
        };
        let target = target_shards(replicas.spec, loads.as_deref(), &self.config.policy);
        self.metrics.set_shards(replicas.spec, target);
        if target != replicas.spec {
            tracing::info!(current = replicas.spec, target, "shard count to change");
        }
        let mut rebalanced = false;
        for _ in 0..MAX_STEPS {
            let table = self.table().await?;
            let urls = self.urls(replicas.spec);
            let step = next_step(target, replicas, table.as_ref(), &urls, rebalanced);
            tracing::debug!(?step, ?replicas, "shard controller step");
            match step {
                Step::ScaleUp { replicas: n } => {
                    tracing::info!("scaling StatefulSet {} up to {n}", self.statefulset.name());
                    self.statefulset.scale(n).await?;
                    self.metrics.scaled(ScaleDirection::Up);
                    replicas = self.statefulset.replicas().await?;
                }
                Step::WaitReady { replicas: n } => {
                    replicas = self.wait_ready(n).await?;
                }
                Step::PublishInitial { shard_count } => {
                    let initial = PlacementTable::from_urls(1, self.urls(shard_count))
                        .map_err(|source| ShardError::BadUrl { ordinal: 0, source })?;
                    let v = placement_store::load_or_init(self.store.as_ref(), &initial).await?;
                    tracing::info!(
                        epoch = v.table.epoch,
                        "placement table in {} (first publication: {shard_count} shards)",
                        self.store.describe()
                    );
                }
                Step::PublishShards { replicas: n } => {
                    let urls = self.urls(n);
                    let v = placement_store::update(self.store.as_ref(), |t| {
                        Ok::<bool, ShardError>(scale::set_shard_urls(t, &urls))
                    })
                    .await?;
                    tracing::info!(
                        epoch = v.table.epoch,
                        "placement table lists the URLs of {n} shards"
                    );
                }
                Step::Rebalance { target } => {
                    self.rebalancer
                        .rebalance(target)
                        .await
                        .map_err(|message| ShardError::Rebalance { target, message })?;
                    rebalanced = true;
                }
                Step::ScaleDown { replicas: n } => {
                    let drained = self
                        .rebalancer
                        .trim(n)
                        .await
                        .map_err(|message| ShardError::Rebalance { target: n, message })?;
                    if !drained {
                        return Ok(PassOutcome::Draining {
                            from: replicas.spec,
                            to: n,
                        });
                    }
                    tracing::info!(
                        "scaling StatefulSet {} down to {n}",
                        self.statefulset.name()
                    );
                    self.statefulset.scale(n).await?;
                    self.metrics.scaled(ScaleDirection::Down);
                    replicas = self.statefulset.replicas().await?;
                }
                Step::Done => {
                    self.metrics.set_shards(replicas.spec, target);
                    return Ok(PassOutcome::Settled {
                        shards: replicas.spec,
                    });
                }
            }
        }
        tracing::warn!("shard controller pass stopped after {MAX_STEPS} steps");
        Ok(PassOutcome::Settled {
            shards: replicas.spec,
        })
    }

    /// Polls the StatefulSet until `replicas` pods are ready (or it changed under us).
    async fn wait_ready(&self, replicas: u32) -> Result<Replicas, ShardError> {
        // the caller has just seen them unready: look again after a poll interval
        let started = Instant::now();
        loop {
            tokio::time::sleep(self.config.ready_poll).await;
            let now = self.statefulset.replicas().await?;
            if now.ready >= now.spec || now.spec != replicas {
                return Ok(now);
            }
            if started.elapsed() >= self.config.ready_timeout {
                return Err(ShardError::NotReady {
                    replicas,
                    ready: now.ready,
                    seconds: self.config.ready_timeout.as_secs(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
