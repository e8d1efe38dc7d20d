//! Per-project storage: RocksDB as the source of truth, HNSW graphs as rebuildable caches.
//! Nothing here knows about HTTP.

pub mod collection;
pub mod config;
pub mod counters;
pub mod distance;
pub mod error;
pub mod fence;
pub mod filter;
pub mod fsio;
pub mod gate;
pub mod index;
pub mod indexer;
pub mod keys;
pub mod layout;
pub mod lifecycle;
pub mod listing;
pub mod names;
pub mod project;
pub mod query;
pub mod quota;
pub mod registry;
pub mod resources;
pub mod schema;
pub mod transfer;
pub mod types;
pub mod write;

pub use config::StoreConfig;
pub use error::{StoreError, StoreResult};
pub use lifecycle::PauseOutcome;
pub use listing::{
    LiveFigures, ProjectInfo, ProjectListing, ProjectState, ServerStats, StatsSource,
};
pub use names::ProjectName;
pub use project::{CollectionMeta, Project, DEFAULT_DATABASE};
pub use registry::Registry;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod schema_tests;
#[cfg(test)]
mod tests;
