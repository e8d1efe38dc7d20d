//! `quiver-bench`: drives a Quiver tenant server over HTTP and reports ingest, indexing,
//! query, get/count and many-projects throughput, latency percentiles, recall@10 against
//! exact search, and the server's resident memory.
//!
//! With `--compare` (or `--target`) it speaks the Chroma v2 API instead, to both Quiver
//! and a real Chroma, phase by phase, and prints every figure side by side.
//!
//! This file is only the binary's edge: the flags, their checks, and which servers and
//! phases a run gets. The phases are written once ([`phases`]) over a small trait
//! ([`backend::Backend`]) with one implementation per API (`/api/v1`, `/api/v2`); the
//! servers under test are opened and closed by [`session`], and every figure goes
//! through [`report`].

mod backend;
use quiver_testkit::vectors as data;
mod index;
mod phases;
mod report;
mod server;
mod session;
mod stats;
mod truth;
mod v2_client;
mod workers;
mod workload;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};

use backend::{v2, Hnsw, Software, V1, V2};
use report::Layout;
use session::{Bench, Launch, Spawn};
use workload::GET_BATCH;

/// Which servers the v2 (Chroma API) mode drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// Quiver only (--spawn or --url).
    Quiver,
    /// Real Chroma only (--spawn-chroma or --chroma-url).
    Chroma,
    /// Both, alternating phase by phase, with a side-by-side table.
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Phases 1–4 only (ingest, index, queries, filtered queries, get/count).
    Single,
    /// The many-projects phase only (needs --projects > 0).
    Projects,
    /// Phases 1–4, then the many-projects phase if --projects > 0.
    All,
    /// Router overhead: the same query and count load against the tenant server directly
    /// and through a quiver-router in front of it, alternating, with ratios at the end
    /// (needs --spawn-router or --router-url).
    Router,
    /// Move the collection's project to a second spawned tenant server while a client
    /// writes to it through a spawned router; move time, write pause, client-visible
    /// errors (needs --spawn and --spawn-router).
    Move,
    /// The vector index alone, in process (no server): build throughput, memory and a
    /// recall/QPS curve over --ef-sweep, beside hnswlib at the same settings on the same
    /// data when --hnswlib-python is given.
    Index,
}

/// Benchmark a Quiver tenant server over its HTTP API.
///
/// Vectors come from a seeded Gaussian mixture; record i has metadata
/// {"bucket": i % 100, "group": "g{i % 10}"}, so {"bucket": 7} selects 1% of the records
/// and {"group": "g3"} 10%. Recall@10 is measured against exact (brute-force, in --space)
/// search computed by the bench itself. Each phase prints one line: phase, ops, seconds,
/// throughput, p50 and p99 request latency, recall@10 where relevant.
///
/// The bench drops and recreates the collections "bench-a" and "bench-b" of --project,
/// and deletes every project named "<project-prefix>-NNNNNN" before and after the
/// many-projects phase (unless --keep).
///
/// Comparison with Chroma: `--compare` (= `--target both`) drives Quiver (--spawn or
/// --url) and a real Chroma (--spawn-chroma or --chroma-url) through the Chroma v2 API
/// (/api/v2) for both, running each phase on Quiver and then on Chroma with the same data
/// and queries, and ends with a table of every figure for both and their ratio. The
/// single-collection phases use tenant --project, database "default_database"; the
/// many-tenants phase (--tenants T) creates tenants "<project-prefix>-NNNNNN".
#[derive(Debug, Parser)]
#[command(name = "quiver-bench", version)]
struct Args {
    /// Base URL of a running tenant server (ignored with --spawn).
    #[arg(long, default_value = "http://127.0.0.1:7100")]
    url: String,

    /// Start this quiver-tenant-server binary on a temporary workspace and a free port
    /// (`--host 127.0.0.1 --port P --workspace DIR`), wait for its heartbeat, and stop it
    /// at the end. Its RSS is reported.
    #[arg(long, value_name = "PATH")]
    spawn: Option<PathBuf>,

    /// Extra argument for the spawned server (repeatable), e.g. --server-arg=--flag.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,

    /// Router mode: start this quiver-router binary in front of the tenant server
    /// (`--shard <server url>`) on a free port; stopped at the end.
    #[arg(long, value_name = "PATH")]
    spawn_router: Option<PathBuf>,

    /// Router mode: base URL of a running router whose only shard is the tenant server.
    #[arg(long)]
    router_url: Option<String>,

    /// Router mode: rounds of direct-then-router runs (figures are the medians).
    #[arg(long, default_value_t = 3)]
    rounds: usize,

    /// Pid of the running server, to report its RSS (VmRSS) without --spawn.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Which phases to run.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,

    /// Compare Quiver with a real Chroma through the v2 API; same as `--target both`.
    #[arg(long)]
    compare: bool,

    /// Drive the server(s) through the Chroma v2 API (/api/v2) rather than Quiver's
    /// per-project API: Quiver only, Chroma only, or both alternating.
    #[arg(long, value_enum)]
    target: Option<Target>,

    /// Base URL of a running Chroma (v2 mode; ignored with --spawn-chroma).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    chroma_url: String,

    /// Start this Chroma executable (e.g. .../bin/chroma) as `chroma run CONFIG` with a
    /// temporary persist_path, a free port and listen_address 127.0.0.1; wait for
    /// /api/v2/heartbeat; stop it at the end. Its RSS is reported.
    #[arg(long, value_name = "PATH")]
    spawn_chroma: Option<PathBuf>,

    /// Pid of the running Chroma, to report its RSS without --spawn-chroma.
    #[arg(long, value_name = "PID")]
    chroma_pid: Option<u32>,

    /// v2 mode: number of tenants of the many-tenants phase, each with one small
    /// collection of --project-records records of dim --project-dim (0 = skip).
    #[arg(long, default_value_t = 0)]
    tenants: usize,

    /// Seed of every random choice (data, queries, ids, projects).
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Number of vectors ingested into each of the collections A and B.
    #[arg(long, default_value_t = 100_000)]
    n: usize,

    /// Vector dimension of the single-collection phases.
    #[arg(long, default_value_t = 384)]
    dim: usize,

    /// Number of Gaussian-mixture centres (drawn from N(0, 1) per coordinate).
    #[arg(long, default_value_t = 64)]
    clusters: usize,

    /// Standard deviation of the points around their centre, per coordinate.
    #[arg(long, default_value_t = 0.1)]
    sigma: f32,

    /// Records per add request during ingest.
    #[arg(long, default_value_t = 1000)]
    batch: usize,

    /// HNSW ef_search of the collections.
    #[arg(long, default_value_t = 100)]
    ef_search: usize,

    /// HNSW ef_construction of the collections (server default if unset; v2 mode sends
    /// 100, Chroma's default, to both servers if unset).
    #[arg(long)]
    ef_construction: Option<usize>,

    /// HNSW max_neighbors (M) of the collections (server default if unset; v2 mode sends
    /// 16, Chroma's default, to both servers if unset).
    #[arg(long)]
    max_neighbors: Option<usize>,

    /// Query vectors per query phase (drawn from the same mixture).
    #[arg(long, default_value_t = 1000)]
    queries: usize,

    /// Get-by-ids requests (10 random ids each) and count requests per phase.
    #[arg(long, default_value_t = 1000)]
    get_ops: usize,

    /// Concurrent clients for the second ingest (collection B).
    #[arg(long, default_value_t = 4)]
    ingest_clients: usize,

    /// Concurrent clients of the multi-client query, get, count and project-query phases.
    #[arg(long, default_value_t = 8)]
    query_clients: usize,

    /// Give up waiting for `indexing.unindexed == 0` after this many seconds.
    #[arg(long, default_value_t = 900)]
    index_timeout_secs: u64,

    /// Project of the single-collection phases.
    #[arg(long, default_value = "quiver-bench")]
    project: String,

    /// Many-projects mode: number of projects to create (0 = skip).
    #[arg(long, default_value_t = 0)]
    projects: usize,

    /// Prefix of the many-projects phase's project names (`<prefix>-000000`, ...).
    #[arg(long, default_value = "qbench")]
    project_prefix: String,

    /// Records in each project's collection.
    #[arg(long, default_value_t = 20)]
    project_records: usize,

    /// Vector dimension in the many-projects phase.
    #[arg(long, default_value_t = 64)]
    project_dim: usize,

    /// Concurrent clients creating (and deleting) projects.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,

    /// Queries sent to random projects after they are created.
    #[arg(long, default_value_t = 2000)]
    project_queries: usize,

    /// Seconds to stay idle after the project queries before measuring RSS again.
    #[arg(long, default_value_t = 0)]
    idle_secs: u64,

    /// Keep the bench's collections and projects at the end.
    #[arg(long)]
    keep: bool,

    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 600)]
    request_timeout_secs: u64,

    /// The distance of the collections (and of the index mode's graph): l2, cosine or ip.
    #[arg(long, default_value = "cosine", value_parser = parse_space)]
    space: quiver_tenant_server::store::types::Space,

    /// Index mode: the ef_search values of the recall/QPS curve.
    #[arg(long, value_delimiter = ',', default_value = "10,20,50,100,200")]
    ef_sweep: Vec<usize>,

    /// Index mode: a Python with hnswlib and numpy, to run the hnswlib reference
    /// (`scripts/bench_hnswlib.py`) on the same data.
    #[arg(long, value_name = "PATH")]
    hnswlib_python: Option<PathBuf>,

    /// Index mode: write the curve as CSV here (for scripts/plot_index_curve.py).
    #[arg(long, value_name = "PATH")]
    curve_out: Option<PathBuf>,

    /// Index mode: also measure the whole store in process (real RocksDB, the indexer):
    /// time from the first add to fully indexed, then recall and QPS after 30% of the
    /// records are re-embedded and 10% deleted, against a fresh build (at --ef-search).
    #[arg(long)]
    churn: bool,

    /// Seconds to wait for a spawned server's heartbeat.
    #[arg(long, default_value_t = 120)]
    startup_timeout_secs: u64,
}

fn parse_space(s: &str) -> Result<quiver_tenant_server::store::types::Space, String> {
    quiver_tenant_server::store::types::Space::parse(s)
        .ok_or_else(|| format!("unknown space {s:?}: l2, cosine or ip"))
}

fn main() -> Result<()> {
    let args = Args::parse();
    validate(&args)?;
    if args.mode == Mode::Index {
        return index::run(&index::IndexRun {
            n: args.n,
            dim: args.dim,
            clusters: args.clusters,
            sigma: args.sigma,
            seed: args.seed,
            queries: args.queries,
            space: args.space,
            m: args
                .max_neighbors
                .unwrap_or(backend::v2::DEFAULT_MAX_NEIGHBORS),
            ef_construction: args
                .ef_construction
                .unwrap_or(backend::v2::DEFAULT_EF_CONSTRUCTION),
            ef_sweep: args.ef_sweep.clone(),
            hnswlib_python: args.hnswlib_python.clone(),
            curve_out: args.curve_out.clone(),
            churn_ef_search: args.churn.then_some(args.ef_search),
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

impl Args {
    /// The servers of the v2 mode, or `None` for the per-project-API mode.
    fn v2_target(&self) -> Option<Target> {
        if self.compare {
            Some(Target::Both)
        } else {
            self.target
        }
    }
}

/// Opens the servers of the run, runs its phases, reports and stops the servers.
async fn run(args: Args) -> Result<()> {
    let hnsw = Hnsw {
        space: args.space,
        ef_search: args.ef_search,
        ef_construction: args.ef_construction,
        max_neighbors: args.max_neighbors,
    };
    match args.v2_target() {
        None => {
            let launches = vec![quiver(&args, "server")];
            let mut bench = Bench::<V1>::open(args, hnsw, Layout::Single, launches).await?;
            let outcome = match bench.args.mode {
                Mode::Router => phases::router::run(&mut bench).await,
                Mode::Move => phases::moves::run(&mut bench).await,
                // answered in process by `main`, before any server is opened
                Mode::Index => Err(anyhow::anyhow!("--mode index needs no server")),
                Mode::Single | Mode::Projects | Mode::All => {
                    let projects = bench.args.projects;
                    phases::standard(&mut bench, projects).await
                }
            };
            bench.finish(outcome)
        }
        Some(target) => {
            // both servers build the same graph: Chroma's defaults where unset
            let hnsw = Hnsw {
                ef_construction: Some(hnsw.ef_construction.unwrap_or(v2::DEFAULT_EF_CONSTRUCTION)),
                max_neighbors: Some(hnsw.max_neighbors.unwrap_or(v2::DEFAULT_MAX_NEIGHBORS)),
                ..hnsw
            };
            let mut launches = Vec::new();
            if target != Target::Chroma {
                launches.push(quiver(&args, "Quiver"));
            }
            if target != Target::Quiver {
                launches.push(chroma(&args));
            }
            let mut bench = Bench::<V2>::open(args, hnsw, Layout::SideBySide, launches).await?;
            let tenants = bench.args.tenants;
            let outcome = phases::standard(&mut bench, tenants).await;
            bench.finish(outcome)
        }
    }
}

/// The Quiver tenant server of `--spawn` or `--url`.
fn quiver(args: &Args, name: &'static str) -> Launch {
    Launch {
        name,
        software: Software::Quiver,
        spawn: args.spawn.clone().map(|bin| Spawn::TenantServer {
            bin,
            args: args.server_args.clone(),
        }),
        url: args.url.clone(),
        pid: args.server_pid,
        pid_flags: Some("--spawn or --server-pid"),
    }
}

/// The Chroma of `--spawn-chroma` or `--chroma-url`.
fn chroma(args: &Args) -> Launch {
    Launch {
        name: "Chroma",
        software: Software::Chroma,
        spawn: args.spawn_chroma.clone().map(|bin| Spawn::Chroma { bin }),
        url: args.chroma_url.clone(),
        pid: args.chroma_pid,
        pid_flags: Some("--spawn-chroma or --chroma-pid"),
    }
}

fn validate(args: &Args) -> Result<()> {
    let positive = [
        ("--dim", args.dim),
        ("--clusters", args.clusters),
        ("--batch", args.batch),
        ("--ingest-clients", args.ingest_clients),
        ("--query-clients", args.query_clients),
        ("--concurrency", args.concurrency),
        ("--project-dim", args.project_dim),
    ];
    for (name, v) in positive {
        if v == 0 {
            bail!("{name} must be positive");
        }
    }
    if args.mode == Mode::Index {
        if args.v2_target().is_some() || args.spawn.is_some() {
            bail!("--mode index runs in process: drop --compare/--target/--spawn");
        }
        if args.ef_sweep.is_empty() || args.ef_sweep.contains(&0) {
            bail!("--ef-sweep needs positive values");
        }
        if args.queries == 0 || args.n == 0 {
            bail!("--mode index needs --n and --queries positive");
        }
    }
    if args.mode == Mode::Move && (args.spawn.is_none() || args.spawn_router.is_none()) {
        bail!("--mode move needs --spawn and --spawn-router");
    }
    if args.mode == Mode::Router {
        if args.spawn_router.is_none() == args.router_url.is_none() {
            bail!("--mode router needs exactly one of --spawn-router and --router-url");
        }
        if args.v2_target().is_some() {
            bail!("--mode router drives the per-project API; drop --compare/--target");
        }
        if args.rounds == 0 {
            bail!("--rounds must be positive");
        }
    }
    if args.mode != Mode::Projects && args.n < GET_BATCH {
        bail!("--n must be at least {GET_BATCH}");
    }
    if args.compare && args.target.is_some_and(|t| t != Target::Both) {
        bail!("--compare means --target both");
    }
    if args.v2_target().is_some() {
        if args.mode == Mode::Projects && args.tenants == 0 {
            bail!("--mode projects with --compare/--target needs --tenants > 0");
        }
        if args.projects > 0 {
            bail!("--projects is the per-project-API phase; with --compare/--target use --tenants");
        }
        if args.tenants > 0 && args.project_records == 0 {
            bail!("--project-records must be positive");
        }
    } else {
        if args.mode == Mode::Projects && args.projects == 0 {
            bail!("--mode projects needs --projects > 0");
        }
        if args.tenants > 0 {
            bail!("--tenants needs --compare or --target (v2 mode); use --projects otherwise");
        }
        if args.spawn_chroma.is_some() {
            bail!("--spawn-chroma needs --compare or --target");
        }
    }
    if args.projects > 0 && args.project_records == 0 {
        bail!("--project-records must be positive");
    }
    if !(args.sigma.is_finite() && args.sigma >= 0.0) {
        bail!("--sigma must be a finite non-negative number");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_defaults() {
        let a = Args::try_parse_from(["quiver-bench"]).unwrap();
        assert_eq!((a.n, a.dim, a.batch, a.queries), (100_000, 384, 1000, 1000));
        assert_eq!(a.mode, Mode::All);
        validate(&a).unwrap();
        let a = Args::try_parse_from(["quiver-bench", "--mode", "projects"]).unwrap();
        assert!(validate(&a).is_err());
        assert_eq!(a.v2_target(), None);
    }

    #[test]
    fn cli_v2_flags() {
        let parse = |v: &[&str]| {
            let mut all = vec!["quiver-bench"];
            all.extend_from_slice(v);
            Args::try_parse_from(all).unwrap()
        };
        let a = parse(&["--compare", "--tenants", "5", "--spawn-chroma", "/x/chroma"]);
        assert_eq!(a.v2_target(), Some(Target::Both));
        validate(&a).unwrap();
        let a = parse(&["--target", "chroma", "--mode", "projects", "--tenants", "3"]);
        assert_eq!(a.v2_target(), Some(Target::Chroma));
        validate(&a).unwrap();
        for bad in [
            &["--tenants", "5"][..],
            &["--spawn-chroma", "/x/chroma"],
            &["--compare", "--target", "quiver"],
            &["--compare", "--projects", "3"],
            &["--compare", "--mode", "projects"],
        ] {
            assert!(validate(&parse(bad)).is_err(), "{bad:?}");
        }
    }
}
