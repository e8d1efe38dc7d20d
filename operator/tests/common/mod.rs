//! End-to-end harness of the operator: real `quiver-tenant-server` shards and a real
//! `quiver-router`, all on loopback, through the shared test kit (`quiver-testkit`: every
//! process gets a free port, its own temporary directories and a log file, dies with the
//! test and shows its log tail when a test panics).
//!
//! The operator's flavour: clients time out after 60 s and a shard's client answers a
//! transport failure with status 0 (moves restart shards under running traffic), and a
//! restarted shard keeps retrying its port (its identity in the placement table).

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use quiver_testkit::http::{Http, Resp};
pub use quiver_testkit::process::free_port;
pub use quiver_testkit::{RouterProc, TenantServer as Shard};

/// The operator binary; the tenant server and the router are its siblings.
pub const OPERATOR_BIN: &str = env!("CARGO_BIN_EXE_quiver-operator");

/// How long the tests' clients wait for an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const WHO: &str = "the operator's end-to-end tests";

pub fn tenant_server_bin() -> PathBuf {
    quiver_testkit::bins::tenant_server(OPERATOR_BIN, WHO)
}

pub fn router_bin() -> PathBuf {
    quiver_testkit::bins::router(OPERATOR_BIN, WHO)
}

pub fn http_client() -> reqwest::Client {
    quiver_testkit::http::http_client(REQUEST_TIMEOUT)
}

/// A client for `base` whose transport failures come back as status 0.
pub fn http(base: String) -> Http {
    Http::with_client(base, http_client()).tolerant()
}

/// Shard `ordinal`: a tenant server on its own workspace, logging into `logs`. Restarts
/// keep the port and the workspace.
pub async fn start_shard(ordinal: u32, logs: &Path) -> Shard {
    Shard::builder(tenant_server_bin())
        .shard(ordinal, "quiver-op-e2e")
        .restart_on_same_port(Duration::from_millis(500))
        .args(&["--block-cache-mb", "32"])
        .log_dir(logs)
        .client(http_client())
        .tolerant()
        .start()
        .await
}

/// The router with `args` (the placement source and any tuning), logging into `logs`;
/// returns once `/readyz` answers 200.
pub async fn start_router(args: &[String], logs: &Path) -> RouterProc {
    RouterProc::start(&router_bin(), args, logs).await
}
