//! The store's settings: where the workspace is, and the budgets shared by open projects.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub workspace: PathBuf,
    pub knowledge_graph_subdir: String,
    pub max_open_projects: usize,
    /// Bound on the estimated memory of loaded collections across open projects.
    pub max_memory_bytes: usize,
    pub idle_close: Duration,
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    pub max_open_files_per_project: i32,
    /// How long write-ahead log files are kept once RocksDB no longer needs them, so
    /// that a move can read a project's changes since its snapshot.
    pub wal_retention: Duration,
}

impl StoreConfig {
    pub fn for_workspace(workspace: &Path) -> StoreConfig {
        StoreConfig {
            workspace: workspace.to_path_buf(),
            knowledge_graph_subdir: "knowledge-graph".into(),
            max_open_projects: 256,
            max_memory_bytes: 8 << 30,
            idle_close: Duration::from_secs(300),
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 256 << 20,
            max_open_files_per_project: 64,
            wal_retention: Duration::from_secs(900),
        }
    }
}
