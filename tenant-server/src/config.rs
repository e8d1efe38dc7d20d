//! Server settings: flags override environment variables (and a `.env` file), which
//! override the defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::store::StoreConfig;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "quiver-tenant-server",
    version,
    about = "Quiver tenant server: every project in its own RocksDB + HNSW store, \
             behind the per-project HTTP API (/api/v1), the Chroma v2 API (/api/v2) and \
             the admin API (/admin/v1)."
)]
pub struct Config {
    /// Directory holding one subdirectory per project (`--path`, as `chroma run` names it).
    #[arg(
        long = "workspace",
        visible_alias = "path",
        env = "WORKSPACE_DIR",
        default_value = "./workspace"
    )]
    pub workspace_dir: PathBuf,

    /// Subdirectory of each project that holds its store (db/ and index/).
    #[arg(
        long,
        env = "KNOWLEDGE_GRAPH_SUBDIR",
        default_value = "knowledge-graph"
    )]
    pub knowledge_graph_subdir: String,

    /// Address to listen on.
    #[arg(long = "host", env = "CHROMA_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(long = "port", env = "CHROMA_PORT", default_value_t = 7100)]
    pub port: u16,

    /// Allowed CORS origins: `*`, a comma-separated list, or a JSON list such as `["*"]`.
    #[arg(long, env = "CORS_ORIGINS", default_value = "[\"*\"]")]
    pub cors_origins: String,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "QUIVER_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_body_bytes: usize,

    /// Most projects kept open at once (least recently used ones are closed).
    #[arg(long, env = "QUIVER_MAX_OPEN_PROJECTS", default_value_t = 256)]
    pub max_open_projects: usize,

    /// Memory budget for loaded collections (vectors and graphs) across open projects, in MiB.
    #[arg(long, env = "QUIVER_MAX_MEMORY_MB", default_value_t = 8192)]
    pub max_memory_mb: usize,

    /// Close a project after this many seconds without requests.
    #[arg(long, env = "QUIVER_IDLE_CLOSE_SECS", default_value_t = 300)]
    pub idle_close_secs: u64,

    /// RocksDB block cache shared by all open projects, in MiB.
    #[arg(long, env = "QUIVER_BLOCK_CACHE_MB", default_value_t = 256)]
    pub block_cache_mb: usize,

    /// RocksDB write-buffer (memtable) budget shared by all open projects, in MiB.
    #[arg(long, env = "QUIVER_WRITE_BUFFER_MB", default_value_t = 256)]
    pub write_buffer_mb: usize,

    /// RocksDB `max_open_files` of each open project.
    #[arg(long, env = "QUIVER_MAX_OPEN_FILES_PER_PROJECT", default_value_t = 64)]
    pub max_open_files_per_project: i32,

    /// Keep write-ahead log files this many seconds after RocksDB no longer needs them,
    /// so that moving a project can replay its changes since its snapshot.
    #[arg(long, env = "QUIVER_WAL_RETENTION_SECS", default_value_t = 900)]
    pub wal_retention_secs: u64,

    /// Allow `POST /api/v2/reset` to delete every project (as Chroma's ALLOW_RESET).
    #[arg(long, env = "ALLOW_RESET", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_reset: bool,

    /// Bearer token that every admin API request (/admin/v1) must carry as
    /// `Authorization: Bearer <token>`. Unset or empty, the admin API is open to anyone who
    /// can reach the port: fine on a laptop, never on a shared network.
    #[arg(long, env = "QUIVER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Log format: `text` or `json`. Levels come from RUST_LOG (default `info`).
    #[arg(long, env = "QUIVER_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Reads a `.env` file of the working directory (if there is one) into the environment,
/// without overriding variables already set.
pub fn read_dotenv() {
    let _ = dotenvy::dotenv();
}

impl Config {
    /// Reads `.env` (if present) into the environment, then parses flags.
    pub fn load() -> Config {
        read_dotenv();
        Config::parse()
    }

    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            workspace: self.workspace_dir.clone(),
            knowledge_graph_subdir: self.knowledge_graph_subdir.clone(),
            max_open_projects: self.max_open_projects,
            max_memory_bytes: self.max_memory_mb << 20,
            idle_close: Duration::from_secs(self.idle_close_secs),
            block_cache_bytes: self.block_cache_mb << 20,
            write_buffer_bytes: self.write_buffer_mb << 20,
            max_open_files_per_project: self.max_open_files_per_project,
            wal_retention: Duration::from_secs(self.wal_retention_secs),
        }
    }

    /// The admin token, if one is set (an empty value sets none, as templated
    /// environments often leave it).
    pub fn admin_token(&self) -> Option<String> {
        self.admin_token.clone().filter(|t| !t.trim().is_empty())
    }

    /// The allowed origins; `None` means any origin.
    pub fn cors_origin_list(&self) -> Option<Vec<String>> {
        quiver_http_edge::cors::origins(&self.cors_origins)
    }
}
