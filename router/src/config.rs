//! Router settings: flags override environment variables (and a `.env` file), which
//! override the defaults. The listen address uses the tenant server's names so that a
//! client configured for one works unchanged against the other.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "quiver-router",
    version,
    about = "Quiver router: sends each project's requests to the tenant-server shard that \
             holds it (jump consistent hash over the shards, unless the placement table \
             overrides it) and answers server-level calls for all shards.",
    group(ArgGroup::new("placement").required(true).args(["shards", "placement_file", "placement_configmap"]))
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long = "host", env = "CHROMA_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(long = "port", env = "CHROMA_PORT", default_value_t = 7100)]
    pub port: u16,

    /// Static placement: shard URLs in ordinal order (repeat the flag, or a comma-separated
    /// list in the environment variable).
    #[arg(
        long = "shard",
        env = "QUIVER_SHARDS",
        value_delimiter = ',',
        num_args = 1
    )]
    pub shards: Vec<String>,

    /// Placement table file (JSON, the operator's format), reloaded whenever it changes.
    #[arg(long, env = "QUIVER_PLACEMENT_FILE")]
    pub placement_file: Option<PathBuf>,

    /// Name of the ConfigMap holding the placement table (key `placement.json`), watched
    /// through the Kubernetes API.
    #[arg(long, env = "QUIVER_PLACEMENT_CONFIGMAP")]
    pub placement_configmap: Option<String>,

    /// Namespace of that ConfigMap (default: the namespace of the router's service account
    /// or kubeconfig context).
    #[arg(long, env = "QUIVER_PLACEMENT_NAMESPACE")]
    pub placement_namespace: Option<String>,

    /// How often the placement file is re-read even without a change notification, in ms.
    #[arg(long, env = "QUIVER_PLACEMENT_POLL_MS", default_value_t = 2000)]
    pub placement_poll_ms: u64,

    /// Time allowed to open a connection to a shard, in ms. A shard that cannot be reached
    /// in this time answers 503 for its projects.
    #[arg(long, env = "QUIVER_CONNECT_TIMEOUT_MS", default_value_t = 1000)]
    pub connect_timeout_ms: u64,

    /// Time allowed for a shard to start answering a request, in ms.
    #[arg(long, env = "QUIVER_UPSTREAM_TIMEOUT_MS", default_value_t = 60_000)]
    pub upstream_timeout_ms: u64,

    /// How long a request may wait in total for a project paused by a move (or a placement
    /// change) before the shard's 503 is passed on, in ms.
    #[arg(long, env = "QUIVER_RETRY_BUDGET_MS", default_value_t = 15_000)]
    pub retry_budget_ms: u64,

    /// Request bytes kept so a request can be replayed after a pause or move answer; larger
    /// requests stream without a copy and are not retried.
    #[arg(long, env = "QUIVER_RETRY_BUFFER_BYTES", default_value_t = 1 << 20)]
    pub retry_buffer_bytes: usize,

    /// The same limit for projects the placement table marks as moving.
    #[arg(long, env = "QUIVER_MOVING_RETRY_BUFFER_BYTES", default_value_t = 64 << 20)]
    pub moving_retry_buffer_bytes: usize,

    /// Idle keep-alive connections kept per shard.
    #[arg(long, env = "QUIVER_POOL_MAX_IDLE_PER_SHARD", default_value_t = 256)]
    pub pool_max_idle_per_shard: usize,

    /// Allowed CORS origins for the router's own routes: `*`, a comma-separated list, or a
    /// JSON list. Proxied routes carry the shards' CORS headers.
    #[arg(long, env = "CORS_ORIGINS", default_value = "[\"*\"]")]
    pub cors_origins: String,

    /// Log format: `text` or `json`. Levels come from RUST_LOG (default `info`).
    #[arg(long, env = "QUIVER_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Config {
    /// Reads `.env` (if present) into the environment, then parses flags.
    pub fn load() -> Config {
        let _ = dotenvy::dotenv();
        Config::parse()
    }

    pub fn proxy_options(&self) -> crate::proxy::ProxyOptions {
        crate::proxy::ProxyOptions {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            upstream_timeout: Duration::from_millis(self.upstream_timeout_ms),
            retry_budget: Duration::from_millis(self.retry_budget_ms),
            retry_buffer_bytes: self.retry_buffer_bytes,
            moving_retry_buffer_bytes: self.moving_retry_buffer_bytes,
            pool_max_idle_per_shard: self.pool_max_idle_per_shard,
        }
    }

    /// The allowed origins; `None` means any origin.
    pub fn cors_origin_list(&self) -> Option<Vec<String>> {
        quiver_http_edge::cors::origins(&self.cors_origins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_placement_source_is_required() {
        assert!(Config::try_parse_from(["quiver-router"]).is_err());
        assert!(Config::try_parse_from([
            "quiver-router",
            "--shard",
            "http://a:1",
            "--placement-file",
            "/tmp/p.json"
        ])
        .is_err());
        let c = Config::try_parse_from([
            "quiver-router",
            "--shard",
            "http://a:1",
            "--shard",
            "http://b:1",
        ])
        .unwrap();
        assert_eq!(c.shards, vec!["http://a:1", "http://b:1"]);
        let c =
            Config::try_parse_from(["quiver-router", "--shard", "http://a:1,http://b:1"]).unwrap();
        assert_eq!(c.shards.len(), 2);
    }
}
