//! End-to-end harness of the router: real `quiver-tenant-server` shards and a real
//! `quiver-router`, all on loopback, through the shared test kit (`quiver-testkit`: every
//! process gets a free port, its own temporary directories and a log file, dies with the
//! test and shows its log tail when a test panics). What is the router's own: a whole
//! [`Cluster`] and its placement sources, and the data helpers of its tests.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use quiver_placement::PlacementTable;
pub use quiver_testkit::assertions::assert_cors_preflight;
pub use quiver_testkit::http::{Http, Resp, REQUEST_TIMEOUT};
pub use quiver_testkit::json::{f32s, strings};
pub use quiver_testkit::process::{free_port, set_child_env};
pub use quiver_testkit::{RouterProc, TenantServer as Shard};

pub const ROUTER_BIN: &str = env!("CARGO_BIN_EXE_quiver-router");

/// The tenant server binary: the sibling of the router binary in the target directory.
pub fn tenant_server_bin() -> PathBuf {
    quiver_testkit::bins::tenant_server(ROUTER_BIN, "the router's end-to-end tests")
}

pub fn http_client() -> reqwest::Client {
    quiver_testkit::http::http_client(REQUEST_TIMEOUT)
}

/// Shard `ordinal`: a tenant server on its own workspace, logging into `logs`. Restarts
/// keep the port and the workspace.
pub async fn start_shard(ordinal: u32, logs: &Path) -> Shard {
    Shard::builder(tenant_server_bin())
        .shard(ordinal, "quiver-e2e")
        .args(&["--allow-reset", "--block-cache-mb", "32"])
        .log_dir(logs)
        .start()
        .await
}

/// The router with `args` (the placement source and any tuning), logging into `logs`;
/// returns once `/readyz` answers 200.
pub async fn start_router(args: &[String], logs: &Path) -> RouterProc {
    RouterProc::start(Path::new(ROUTER_BIN), args, logs).await
}

// ---------------------------------------------------------------------------------------
// a whole cluster

/// Where the router takes its placement from.
pub enum Source {
    /// `--shard` for every shard, in ordinal order.
    Static,
    /// `--placement-file` with this table (the shards' URLs are filled in) and poll period.
    File { table: PlacementTable, poll_ms: u64 },
}

/// N shards and one router. Fields drop in order: the router first, then the shards.
pub struct Cluster {
    pub router: RouterProc,
    pub shards: Vec<Shard>,
    pub http: Http,
    placement_file: Option<PathBuf>,
    // last: the directory holding the logs and the placement file
    dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(n: u32, source: Source) -> Cluster {
        Cluster::start_with(n, source, &[]).await
    }

    /// Like [`Cluster::start`], with extra router flags.
    pub async fn start_with(n: u32, source: Source, router_args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("quiver-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut shards = Vec::new();
        for ordinal in 0..n {
            shards.push(start_shard(ordinal, dir.path()).await);
        }
        let mut args: Vec<String> = Vec::new();
        let mut placement_file = None;
        match source {
            Source::Static => {
                for s in &shards {
                    args.push("--shard".into());
                    args.push(s.base_url());
                }
            }
            Source::File { table, poll_ms } => {
                let path = dir.path().join("placement.json");
                let table = PlacementTable {
                    shards: shards.iter().map(Shard::base_url).collect(),
                    ..table
                };
                write_atomically(&path, &table.to_json());
                args.push("--placement-file".into());
                args.push(path.display().to_string());
                args.push("--placement-poll-ms".into());
                args.push(poll_ms.to_string());
                placement_file = Some(path);
            }
        }
        args.extend(router_args.iter().map(|s| s.to_string()));
        let router = start_router(&args, dir.path()).await;
        let http = Http::new(router.url(""));
        Cluster {
            router,
            shards,
            http,
            placement_file,
            dir,
        }
    }

    pub fn shard_urls(&self) -> Vec<String> {
        self.shards.iter().map(Shard::base_url).collect()
    }

    /// Replaces the placement file with `table` (atomically, as kubelet and editors do).
    pub fn write_placement(&self, table: &PlacementTable) {
        let path = self.placement_file.as_ref().expect("no placement file");
        write_atomically(path, &table.to_json());
    }

    /// Writes `text` over the placement file in place (may be invalid on purpose).
    pub fn write_placement_raw(&self, text: &str) {
        let path = self.placement_file.as_ref().expect("no placement file");
        std::fs::write(path, text).expect("write placement file");
    }

    /// Which shards hold a directory for `project`.
    pub fn shards_holding(&self, project: &str) -> Vec<u32> {
        self.shards
            .iter()
            .filter(|s| s.has_project_dir(project))
            .map(|s| s.ordinal)
            .collect()
    }

    /// Polls `GET /placement` until its epoch is `epoch`; panics after `within`.
    pub async fn wait_for_epoch(&self, epoch: u64, within: Duration) -> PlacementTable {
        let waiting_for = format!("epoch {epoch} in force");
        self.http
            .poll_get("/placement", within, POLL, &waiting_for, |r| {
                if r.status != 200 {
                    return None;
                }
                let t = PlacementTable::from_json(&r.text).expect("GET /placement is a table");
                (t.epoch == epoch).then_some(t)
            })
            .await
    }

    /// Polls `GET /readyz` until it answers `status`; panics after `within`.
    pub async fn wait_for_readyz(&self, status: u16, within: Duration) -> Resp {
        let waiting_for = format!("/readyz turning {status}");
        self.http
            .poll_get("/readyz", within, POLL, &waiting_for, |r| {
                (r.status == status).then(|| r.clone())
            })
            .await
    }
}

/// How often the cluster's waits poll.
const POLL: Duration = Duration::from_millis(50);

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).expect("write placement file");
    std::fs::rename(&tmp, path).expect("rename placement file");
}

// ---------------------------------------------------------------------------------------
// data

/// `n` project names (valid for both APIs) starting from `prefix`.
pub fn project_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// The first name `{prefix}-{i}` whose home among `shard_count` shards satisfies `pred`.
pub fn name_where(prefix: &str, shard_count: u32, pred: impl Fn(u32) -> bool) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| pred(quiver_placement::home_ordinal(n, shard_count)))
        .expect("some name hashes there")
}

// ---------------------------------------------------------------------------------------
// metrics

/// The value of one series in a Prometheus text exposition, named as it is printed
/// (`quiver_router_retries_total{reason="paused"}`); `None` when it is absent.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
