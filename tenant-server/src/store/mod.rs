//! Per-project storage: RocksDB as the source of truth, HNSW graphs as rebuildable caches.
//! Nothing here knows about HTTP.

pub mod collection;
pub mod counters;
pub mod distance;
pub mod error;
pub mod fence;
pub mod filter;
pub mod gate;
pub mod graph;
pub mod indexer;
pub mod keys;
pub mod names;
pub mod project;
pub mod query;
pub mod quota;
pub mod registry;
pub mod transfer;
pub mod types;
pub mod write;

pub use error::{StoreError, StoreResult};
pub use project::{CollectionMeta, Project, DEFAULT_DATABASE};
pub use registry::{
    LiveFigures, PauseOutcome, ProjectInfo, ProjectState, Registry, ServerStats, StatsSource,
    StoreConfig,
};

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
