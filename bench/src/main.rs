//! `quiver-bench`: drives a Quiver tenant server over HTTP (through `quiver-client`) and
//! reports ingest, indexing, query, get/count and many-projects throughput, latency
//! percentiles, recall@10 against exact search, and the server's resident memory.
//!
//! With `--compare` (or `--target`) it speaks the Chroma v2 API instead, to both Quiver
//! and a real Chroma, phase by phase, and prints every figure side by side (see
//! `compare.rs`).

mod compare;
mod data;
mod moves;
mod router;
mod server;
mod stats;
mod v2;

use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use quiver_client::{
    AddRequest, ClientError, CollectionConfiguration, CollectionInfo, GetRequest,
    HnswConfiguration, Include, Metadata, QueryRequest, QuiverClient, Space,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use data::{exact_knn, recall, Mixture};
use server::{read_rss, Rss, SpawnedServer};
use stats::PhaseResult;

/// Neighbours asked for per query (recall@K).
const K: usize = 10;
/// Ids per get-by-ids request.
const GET_BATCH: usize = 10;
/// Collection names of the single-collection phases.
const COLL_A: &str = "bench-a";
const COLL_B: &str = "bench-b";
/// Collection name inside each project of the many-projects phase.
const PROJECT_COLL: &str = "docs";

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
}

/// Benchmark a Quiver tenant server over its HTTP API.
///
/// Vectors come from a seeded Gaussian mixture; record i has metadata
/// {"bucket": i % 100, "group": "g{i % 10}"}, so {"bucket": 7} selects 1% of the records
/// and {"group": "g3"} 10%. Recall@10 is measured against exact (brute-force squared L2)
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

    /// HNSW ef_search of the collections (space is l2).
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

    /// Seconds to wait for a spawned server's heartbeat.
    #[arg(long, default_value_t = 120)]
    startup_timeout_secs: u64,
}

/// What every phase needs.
struct Ctx {
    args: Args,
    url: String,
    client: QuiverClient,
    results: Vec<PhaseResult>,
    rss: RssLog,
    /// Appended to every phase label (router mode: which target and round).
    label_suffix: String,
}

impl Ctx {
    fn new_client(&self) -> Result<QuiverClient> {
        Ok(QuiverClient::with_timeout(
            &self.url,
            Duration::from_secs(self.args.request_timeout_secs),
        )?)
    }

    fn emit(&mut self, mut r: PhaseResult) {
        r.phase.push_str(&self.label_suffix);
        println!("{}", r.line());
        self.results.push(r);
    }
}

/// Server RSS observations.
struct RssLog {
    pid: Option<u32>,
    entries: Vec<(String, Option<Rss>)>,
}

impl RssLog {
    fn record(&mut self, label: &str) {
        let Some(pid) = self.pid else { return };
        let rss = read_rss(pid);
        match rss {
            Some(r) => println!("# server RSS {label}: {r}"),
            None => println!("# server RSS {label}: unavailable (pid {pid})"),
        }
        self.entries.push((label.to_owned(), rss));
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    validate(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.v2_target() {
        Some(target) => rt.block_on(compare::run(args, target)),
        None => rt.block_on(run(args)),
    }
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

async fn run(args: Args) -> Result<()> {
    let timeout = Duration::from_secs(args.request_timeout_secs);
    let (mut spawned, url, pid) = match &args.spawn {
        Some(bin) => {
            let s = SpawnedServer::start(bin, &args.server_args)?;
            let (url, pid) = (s.url().to_owned(), s.pid());
            (Some(s), url, Some(pid))
        }
        None => (None, args.url.clone(), args.server_pid),
    };
    let client = QuiverClient::with_timeout(&url, timeout)?;
    match spawned.as_mut() {
        Some(s) => {
            let t = s
                .wait_ready(&client, Duration::from_secs(args.startup_timeout_secs))
                .await?;
            println!(
                "# spawned server pid {} at {url}, ready in {:.2} s",
                s.pid(),
                t.as_secs_f64()
            );
        }
        None => {
            client
                .heartbeat()
                .await
                .with_context(|| format!("no tenant server answers at {url}"))?;
        }
    }
    let version = client.version().await.context("GET /api/v1/version")?;
    println!("# server version {version} at {url}");

    let mut ctx = Ctx {
        args,
        url,
        client,
        results: Vec::new(),
        rss: RssLog {
            pid,
            entries: Vec::new(),
        },
        label_suffix: String::new(),
    };
    if pid.is_none() {
        println!("# server RSS not reported (pass --spawn or --server-pid)");
    }
    ctx.rss.record("at start");

    let outcome = run_phases(&mut ctx).await;
    print_summary(&ctx, &version);
    if let Some(s) = spawned.as_mut() {
        if outcome.is_err() {
            eprintln!("# last lines of the server log:\n{}", s.log_tail(30));
        }
        println!("# server {}", s.stop(Duration::from_secs(10)));
    }
    outcome
}

async fn run_phases(ctx: &mut Ctx) -> Result<()> {
    if ctx.args.mode == Mode::Router {
        return router::overhead_phases(ctx).await;
    }
    if ctx.args.mode == Mode::Move {
        return moves::move_phases(ctx).await;
    }
    if ctx.args.mode != Mode::Projects {
        single_collection_phases(ctx).await?;
    }
    if ctx.args.mode != Mode::Single && ctx.args.projects > 0 {
        projects_phase(ctx).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------

/// Per-request latencies and results of a run, with its wall time.
struct RunOutput<R> {
    wall: Duration,
    latencies: Vec<Duration>,
    results: Vec<R>,
}

/// Runs one task per element of `work`, each with its own client (own connections),
/// calling `f` on its items one after the other and timing each call.
async fn run_workers<T, R, F, Fut>(ctx: &Ctx, work: Vec<Vec<T>>, f: F) -> Result<RunOutput<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(QuiverClient, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let clients = work
        .iter()
        .map(|_| ctx.new_client())
        .collect::<Result<Vec<_>>>()?;
    run_workers_with(clients, work, f).await
}

/// [`run_workers`] with the given clients, one per element of `work`.
async fn run_workers_with<C, T, R, F, Fut>(
    clients: Vec<C>,
    work: Vec<Vec<T>>,
    f: F,
) -> Result<RunOutput<R>>
where
    C: Clone + Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(C, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    anyhow::ensure!(clients.len() == work.len(), "one client per worker");
    let f = Arc::new(f);
    let total: usize = work.iter().map(Vec::len).sum();
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for (client, items) in clients.into_iter().zip(work) {
        let f = f.clone();
        set.spawn(async move {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let t = Instant::now();
                let r = f(client.clone(), item).await?;
                out.push((t.elapsed(), r));
            }
            anyhow::Ok(out)
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut results = Vec::with_capacity(total);
    while let Some(joined) = set.join_next().await {
        for (d, r) in joined.context("worker task failed")?? {
            latencies.push(d);
            results.push(r);
        }
    }
    Ok(RunOutput {
        wall: start.elapsed(),
        latencies,
        results,
    })
}

/// Deals `items` to `workers` lists round-robin.
fn round_robin<T>(items: impl IntoIterator<Item = T>, workers: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        out[i % workers].push(item);
    }
    out
}

/// Batches of at most `batch` indices covering `range`.
fn batches(range: Range<usize>, batch: usize) -> Vec<Range<usize>> {
    range
        .clone()
        .step_by(batch)
        .map(|s| s..(s + batch).min(range.end))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Data helpers
// ---------------------------------------------------------------------------------------

fn metadata_for(i: usize) -> Metadata {
    let mut m = Metadata::new();
    m.insert("bucket".into(), json!(i % 100));
    m.insert("group".into(), json!(format!("g{}", i % 10)));
    m
}

fn add_request(data: &[f32], dim: usize, rows: Range<usize>) -> AddRequest {
    AddRequest {
        ids: rows.clone().map(|i| i.to_string()).collect(),
        embeddings: rows
            .clone()
            .map(|i| data[i * dim..(i + 1) * dim].to_vec())
            .collect(),
        metadatas: Some(rows.map(|i| Some(metadata_for(i))).collect()),
        ..Default::default()
    }
}

fn l2_config(args: &Args) -> CollectionConfiguration {
    CollectionConfiguration {
        hnsw: Some(HnswConfiguration {
            space: Some(Space::L2),
            ef_search: Some(args.ef_search),
            ef_construction: args.ef_construction,
            max_neighbors: args.max_neighbors,
        }),
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<u32>> {
    ids.iter()
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("unexpected id {s:?}"))
        })
        .collect()
}

fn ignore_not_found<T>(r: Result<T, ClientError>) -> Result<(), ClientError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// Phases 1–4: one big collection
// ---------------------------------------------------------------------------------------

/// A metadata filter of the query phases with the predicate it stands for.
struct FilterCase {
    label: &'static str,
    filter: Option<Value>,
    key: &'static str,
    matches: fn(usize) -> bool,
    value: fn(usize) -> Value,
}

/// Data, queries, filters and exact ground truth of the single-collection phases.
struct Workload {
    data: Arc<Vec<f32>>,
    queries: Arc<Vec<f32>>,
    cases: [FilterCase; 3],
    truths: Vec<Arc<Vec<Vec<u32>>>>,
}

/// Generates the seeded data and queries and computes the exact answers, printing how
/// long it took.
fn prepare_workload(args: &Args) -> Result<Workload> {
    let (n, dim, seed) = (args.n, args.dim, args.seed);
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mixture = Mixture::new(dim, args.clusters, args.sigma, &mut rng)?;
    let data = Arc::new(mixture.sample(n, &mut rng));
    let queries = Arc::new(mixture.sample(
        args.queries,
        &mut StdRng::seed_from_u64(seed.wrapping_add(1)),
    ));
    println!(
        "# generated {n} vectors + {} queries of dim {dim} ({} clusters, sigma {}) in {}",
        args.queries,
        args.clusters,
        args.sigma,
        secs(t.elapsed())
    );
    let cases = [
        FilterCase {
            label: "",
            filter: None,
            key: "",
            matches: |_| true,
            value: |_| Value::Null,
        },
        FilterCase {
            label: " group=g3",
            filter: Some(json!({"group": "g3"})),
            key: "group",
            matches: |i| i % 10 == 3,
            value: |_| json!("g3"),
        },
        FilterCase {
            label: " bucket=7",
            filter: Some(json!({"bucket": 7})),
            key: "bucket",
            matches: |i| i % 100 == 7,
            value: |_| json!(7),
        },
    ];
    let t = Instant::now();
    let truths: Vec<Arc<Vec<Vec<u32>>>> = cases
        .iter()
        .map(|c| {
            let cands: Option<Vec<u32>> = c.filter.as_ref().map(|_| {
                (0..n)
                    .filter(|&i| (c.matches)(i))
                    .map(|i| i as u32)
                    .collect()
            });
            Arc::new(exact_knn(&data, dim, cands.as_deref(), &queries, K))
        })
        .collect();
    println!(
        "# exact ground truth for {} x 3 queries in {}",
        args.queries,
        secs(t.elapsed())
    );
    Ok(Workload {
        data,
        queries,
        cases,
        truths,
    })
}

/// Ids of the get-by-ids phase: `get_ops` batches of 10 distinct random rows.
fn get_id_batches(args: &Args) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(args.seed.wrapping_add(2));
    (0..args.get_ops)
        .map(|_| rand::seq::index::sample(&mut rng, args.n, GET_BATCH).into_vec())
        .collect()
}

async fn single_collection_phases(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.args.n;
    let Workload {
        data,
        queries,
        cases,
        truths,
    } = prepare_workload(&ctx.args)?;

    // Fresh collections.
    let project = ctx.args.project.clone();
    for coll in [COLL_A, COLL_B] {
        ignore_not_found(ctx.client.delete_collection(&project, coll).await)
            .with_context(|| format!("dropping {project}/{coll}"))?;
        ctx.client
            .create_collection(&project, coll, None, Some(l2_config(&ctx.args)), false)
            .await
            .with_context(|| format!("creating {project}/{coll}"))?;
    }
    println!("{}", PhaseResult::header());

    // Phase 1: ingest.
    let single = vec![batches(0..n, ctx.args.batch)];
    ingest(ctx, COLL_A, "ingest A (1 client)", single, &data).await?;
    let c = ctx.args.ingest_clients;
    let parts: Vec<Vec<Range<usize>>> = (0..c)
        .map(|w| batches(w * n / c..(w + 1) * n / c, ctx.args.batch))
        .collect();
    ingest(
        ctx,
        COLL_B,
        &format!("ingest B ({c} clients)"),
        parts,
        &data,
    )
    .await?;
    ctx.rss.record("after ingest");

    // Phases 2–3: queries, unfiltered and filtered.
    for (case, truth) in cases.iter().zip(&truths) {
        for clients in [1, ctx.args.query_clients] {
            query_phase(ctx, case, clients, &queries, truth).await?;
        }
    }
    ctx.rss.record("after queries");

    // Phase 4: get by ids and count.
    let id_batches = get_id_batches(&ctx.args);
    for clients in [1, ctx.args.query_clients] {
        get_phase(ctx, clients, &id_batches).await?;
    }
    for clients in [1, ctx.args.query_clients] {
        count_phase(ctx, clients).await?;
    }

    if !ctx.args.keep {
        for coll in [COLL_A, COLL_B] {
            ignore_not_found(ctx.client.delete_collection(&project, coll).await)?;
        }
    }
    Ok(())
}

/// Adds `work` (batches of row ranges, one list per client) to `coll`, then waits until
/// it is fully indexed; prints both.
async fn ingest(
    ctx: &mut Ctx,
    coll: &'static str,
    label: &str,
    work: Vec<Vec<Range<usize>>>,
    data: &Arc<Vec<f32>>,
) -> Result<()> {
    let (dim, project) = (ctx.args.dim, ctx.args.project.clone());
    let expected: usize = work.iter().flatten().map(ExactSizeIterator::len).sum();
    let data = data.clone();
    let out = {
        let project = project.clone();
        run_workers(ctx, work, move |c, rows| {
            let req = add_request(&data, dim, rows);
            let project = project.clone();
            async move {
                let r = c.add(&project, coll, &req).await?;
                anyhow::Ok(r.added)
            }
        })
        .await
        .with_context(|| format!("{label}: add"))?
    };
    let added: u64 = out.results.iter().sum();
    let note = if added as usize == expected {
        String::new()
    } else {
        format!("WARNING: server added {added} of {expected}")
    };
    ctx.emit(PhaseResult::new(label, expected, out.wall, "vec/s", &out.latencies).with_note(note));

    let timeout = Duration::from_secs(ctx.args.index_timeout_secs);
    let (wait, info, done) = wait_indexed(&ctx.client, &project, coll, timeout).await?;
    let indexed = info
        .indexing
        .map_or_else(|| "n/a (not loaded)".to_owned(), |i| i.indexed.to_string());
    let mut note = format!(
        "index wait; rate = n/(ingest+wait); count {}, indexed {indexed}",
        info.count
    );
    if !done {
        note = format!(
            "TIMEOUT: {} still unindexed; {note}",
            info.indexing.unwrap_or_default().unindexed
        );
    }
    if info.count as usize != expected || info.dimension != Some(dim) {
        note.push_str(&format!(
            "; WARNING: expected count {expected} dim {dim}, got {} {:?}",
            info.count, info.dimension
        ));
    }
    let mut r = PhaseResult::new(
        format!("  until indexed ({coll})"),
        expected,
        wait,
        "vec/s",
        &[],
    );
    r.rate = expected as f64 / (out.wall + wait).as_secs_f64();
    ctx.emit(r.with_note(note));
    Ok(())
}

/// Polls the collection until `indexing.unindexed == 0` (or `indexing` is `null`: the
/// collection is not loaded, so nothing is pending) or `timeout`.
async fn wait_indexed(
    client: &QuiverClient,
    project: &str,
    coll: &str,
    timeout: Duration,
) -> Result<(Duration, CollectionInfo, bool)> {
    let start = Instant::now();
    loop {
        let info = client
            .get_collection(project, coll)
            .await
            .with_context(|| format!("polling {project}/{coll}"))?;
        if info.indexing.is_none_or(|i| i.unindexed == 0) {
            return Ok((start.elapsed(), info, true));
        }
        if start.elapsed() >= timeout {
            return Ok((start.elapsed(), info, false));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One query, as returned by a worker: query index, result ids, filter violations.
type QueryOutcome = (usize, Vec<u32>, usize);

async fn query_phase(
    ctx: &mut Ctx,
    case: &FilterCase,
    clients: usize,
    queries: &Arc<Vec<f32>>,
    truth: &Arc<Vec<Vec<u32>>>,
) -> Result<()> {
    let (dim, project) = (ctx.args.dim, ctx.args.project.clone());
    let nq = queries.len() / dim;
    let queries = queries.clone();
    let filter = case.filter.clone();
    let (key, value) = (case.key, case.value);
    let label = format!(
        "query{} ({clients} client{})",
        case.label,
        if clients == 1 { "" } else { "s" }
    );
    let out = run_workers(ctx, round_robin(0..nq, clients), move |c, qi: usize| {
        let req = QueryRequest {
            query_embeddings: vec![queries[qi * dim..(qi + 1) * dim].to_vec()],
            n_results: Some(K),
            where_metadata: filter.clone(),
            include: Some(vec![Include::Metadatas, Include::Distances]),
            ..Default::default()
        };
        let project = project.clone();
        let check = filter.is_some();
        async move {
            let res = c.query(&project, COLL_A, &req).await?;
            let ids = parse_ids(res.ids.first().map_or(&[][..], Vec::as_slice))?;
            let mut violations = 0;
            if check {
                let metas = res.metadatas.as_ref().and_then(|m| m.first());
                for (j, &id) in ids.iter().enumerate() {
                    let got = metas
                        .and_then(|m| m.get(j))
                        .and_then(Option::as_ref)
                        .and_then(|m| m.get(key));
                    if got != Some(&value(id as usize)) {
                        violations += 1;
                    }
                }
            }
            anyhow::Ok((qi, ids, violations))
        }
    })
    .await
    .with_context(|| label.clone())?;
    let (rec, note) = judge_queries(&out.results, truth);
    ctx.emit(
        PhaseResult::new(label, nq, out.wall, "q/s", &out.latencies)
            .with_recall(rec)
            .with_note(note),
    );
    Ok(())
}

/// Mean recall of the outcomes, and a note on short results and filter violations.
fn judge_queries(results: &[QueryOutcome], truth: &[Vec<u32>]) -> (f64, String) {
    let mut sum = 0.0;
    let (mut short, mut violations) = (0, 0);
    for (qi, ids, v) in results {
        let t = &truth[*qi];
        sum += recall(ids, t);
        if ids.len() < t.len() {
            short += 1;
        }
        violations += v;
    }
    let mean = if results.is_empty() {
        0.0
    } else {
        sum / results.len() as f64
    };
    let mut notes = Vec::new();
    if short > 0 {
        notes.push(format!(
            "WARNING: {short} queries returned fewer than {K} ids"
        ));
    }
    if violations > 0 {
        notes.push(format!("WARNING: {violations} results violate the filter"));
    }
    (mean, notes.join("; "))
}

async fn get_phase(ctx: &mut Ctx, clients: usize, id_batches: &[Vec<usize>]) -> Result<()> {
    let project = ctx.args.project.clone();
    let label = format!(
        "get 10 ids ({clients} client{})",
        if clients == 1 { "" } else { "s" }
    );
    let ops = id_batches.len();
    let out = run_workers(
        ctx,
        round_robin(id_batches.to_vec(), clients),
        move |c, ids: Vec<usize>| {
            let req = GetRequest {
                ids: Some(ids.iter().map(usize::to_string).collect()),
                include: Some(vec![Include::Metadatas]),
                ..Default::default()
            };
            let project = project.clone();
            async move {
                let res = c.get(&project, COLL_A, &req).await?;
                // Each asked id must come back once, with its own metadata.
                let got = parse_ids(&res.ids)?;
                let metas = res.metadatas.unwrap_or_default();
                let mut bad = usize::from(got.len() != ids.len());
                for (j, id) in got.iter().enumerate() {
                    let bucket = metas
                        .get(j)
                        .and_then(Option::as_ref)
                        .and_then(|m| m.get("bucket"));
                    if !ids.contains(&(*id as usize)) || bucket != Some(&json!(*id as usize % 100))
                    {
                        bad += 1;
                    }
                }
                anyhow::Ok(bad)
            }
        },
    )
    .await
    .with_context(|| label.clone())?;
    let bad: usize = out.results.iter().sum();
    let note = if bad > 0 {
        format!("WARNING: {bad} wrong or missing records")
    } else {
        String::new()
    };
    ctx.emit(PhaseResult::new(label, ops, out.wall, "ops/s", &out.latencies).with_note(note));
    Ok(())
}

async fn count_phase(ctx: &mut Ctx, clients: usize) -> Result<()> {
    let project = ctx.args.project.clone();
    let expected = ctx.args.n as u64;
    let label = format!(
        "count ({clients} client{})",
        if clients == 1 { "" } else { "s" }
    );
    let ops = ctx.args.get_ops;
    let out = run_workers(ctx, round_robin(0..ops, clients), move |c, _| {
        let project = project.clone();
        async move { anyhow::Ok(c.count(&project, COLL_A).await?) }
    })
    .await
    .with_context(|| label.clone())?;
    let wrong = out.results.iter().filter(|&&c| c != expected).count();
    let note = if wrong > 0 {
        format!("WARNING: {wrong} counts differ from {expected}")
    } else {
        String::new()
    };
    ctx.emit(PhaseResult::new(label, ops, out.wall, "ops/s", &out.latencies).with_note(note));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Phase 5: many projects
// ---------------------------------------------------------------------------------------

fn project_name(prefix: &str, p: usize) -> String {
    format!("{prefix}-{p:06}")
}

/// Whether `name` is one of the bench's project names for `prefix`.
fn is_bench_project(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn delete_projects(ctx: &mut Ctx, names: Vec<String>, label: &str) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let ops = names.len();
    let out = run_workers(
        ctx,
        round_robin(names, ctx.args.concurrency),
        |c, name: String| async move {
            ignore_not_found(c.delete_project(&name).await)?;
            anyhow::Ok(())
        },
    )
    .await
    .with_context(|| label.to_owned())?;
    ctx.emit(PhaseResult::new(
        label,
        ops,
        out.wall,
        "proj/s",
        &out.latencies,
    ));
    Ok(())
}

/// Data and queries of the many-projects (many-tenants) phase: `count` collections of
/// `--project-records` rows each, and `--project-queries` queries to random ones with
/// their exact answers.
struct TenantWorkload {
    /// `count * records * dim` floats, collection by collection.
    data: Arc<Vec<f32>>,
    /// Query vectors.
    qvecs: Arc<Vec<f32>>,
    /// The collection each query goes to.
    targets: Vec<usize>,
    /// Exact top-10 of each query within its collection.
    truth: Vec<Vec<u32>>,
}

fn tenant_workload(a: &Args, count: usize) -> Result<TenantWorkload> {
    let (records, dim, seed) = (a.project_records, a.project_dim, a.seed);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(3));
    let mixture = Mixture::new(dim, a.clusters, a.sigma, &mut rng)?;
    let data = Arc::new(mixture.sample(count * records, &mut rng));
    let mut qrng = StdRng::seed_from_u64(seed.wrapping_add(4));
    let nq = a.project_queries;
    let qvecs = Arc::new(mixture.sample(nq, &mut qrng));
    let targets: Vec<usize> = (0..nq).map(|_| qrng.random_range(0..count)).collect();
    let truth: Vec<Vec<u32>> = targets
        .iter()
        .enumerate()
        .map(|(qi, &p)| {
            let rows = &data[p * records * dim..(p + 1) * records * dim];
            exact_knn(rows, dim, None, &qvecs[qi * dim..(qi + 1) * dim], K)
                .pop()
                .unwrap_or_default()
        })
        .collect();
    Ok(TenantWorkload {
        data,
        qvecs,
        targets,
        truth,
    })
}

async fn projects_phase(ctx: &mut Ctx) -> Result<()> {
    let a = &ctx.args;
    let (p_count, records, dim) = (a.projects, a.project_records, a.project_dim);
    let prefix = a.project_prefix.clone();
    let (concurrency, query_clients) = (a.concurrency, a.query_clients);

    let TenantWorkload {
        data,
        qvecs,
        targets,
        truth,
    } = tenant_workload(a, p_count)?;
    let nq = targets.len();

    println!();
    println!(
        "# many projects: {p_count} projects x {records} records of dim {dim}, {concurrency} creating clients"
    );
    let stale: Vec<String> = ctx
        .client
        .list_projects()
        .await
        .context("listing projects")?
        .into_iter()
        .filter(|p| is_bench_project(&prefix, &p.name))
        .map(|p| p.name)
        .collect();
    if !stale.is_empty() {
        println!("# deleting {} projects left by an earlier run", stale.len());
        for name in &stale {
            ignore_not_found(ctx.client.delete_project(name).await)?;
        }
    }
    println!("{}", PhaseResult::header());

    // Create the projects, each with one collection and its records.
    let cfg = l2_config(&ctx.args);
    let out = {
        let (data, prefix) = (data.clone(), prefix.clone());
        run_workers(
            ctx,
            round_robin(0..p_count, concurrency),
            move |c, p: usize| {
                let name = project_name(&prefix, p);
                let req = add_request(
                    &data[p * records * dim..(p + 1) * records * dim],
                    dim,
                    0..records,
                );
                let cfg = cfg.clone();
                async move {
                    c.create_collection(&name, PROJECT_COLL, None, Some(cfg), false)
                        .await?;
                    anyhow::Ok(c.add(&name, PROJECT_COLL, &req).await?.added)
                }
            },
        )
        .await
        .context("creating projects")?
    };
    let added: u64 = out.results.iter().sum();
    let note = if added as usize == p_count * records {
        format!("create collection + add {records} records per project")
    } else {
        format!(
            "WARNING: server added {added} of {} records",
            p_count * records
        )
    };
    ctx.emit(
        PhaseResult::new(
            format!("create projects ({concurrency} clients)"),
            p_count,
            out.wall,
            "proj/s",
            &out.latencies,
        )
        .with_note(note),
    );
    ctx.rss.record("after project creation");
    let listed: Vec<_> = ctx
        .client
        .list_projects()
        .await
        .context("listing projects")?
        .into_iter()
        .filter(|p| is_bench_project(&prefix, &p.name))
        .collect();
    println!(
        "# server lists {} bench projects, {} open, {} records, {:.1} MiB on disk",
        listed.len(),
        listed.iter().filter(|p| p.open).count(),
        listed.iter().map(|p| p.records).sum::<u64>(),
        listed.iter().map(|p| p.bytes).sum::<u64>() as f64 / (1024.0 * 1024.0)
    );

    // Queries to random projects.
    let out = {
        let (qvecs, prefix) = (qvecs.clone(), prefix.clone());
        let jobs: Vec<(usize, usize)> = targets.iter().copied().enumerate().collect();
        run_workers(
            ctx,
            round_robin(jobs, query_clients),
            move |c, (qi, p): (usize, usize)| {
                let name = project_name(&prefix, p);
                let req = QueryRequest {
                    query_embeddings: vec![qvecs[qi * dim..(qi + 1) * dim].to_vec()],
                    n_results: Some(K),
                    include: Some(vec![Include::Distances]),
                    ..Default::default()
                };
                async move {
                    let res = c.query(&name, PROJECT_COLL, &req).await?;
                    let ids = parse_ids(res.ids.first().map_or(&[][..], Vec::as_slice))?;
                    anyhow::Ok((qi, ids, 0))
                }
            },
        )
        .await
        .context("querying projects")?
    };
    let (rec, note) = judge_queries(&out.results, &truth);
    let label = format!("query random project ({query_clients} clients)");
    ctx.emit(
        PhaseResult::new(label, nq, out.wall, "q/s", &out.latencies)
            .with_recall(rec)
            .with_note(note),
    );
    ctx.rss.record("after project queries");

    if ctx.args.idle_secs > 0 {
        println!("# idle for {} s", ctx.args.idle_secs);
        tokio::time::sleep(Duration::from_secs(ctx.args.idle_secs)).await;
        let label = format!("after {} s idle", ctx.args.idle_secs);
        ctx.rss.record(&label);
    }

    if !ctx.args.keep {
        let names = (0..p_count).map(|p| project_name(&prefix, p)).collect();
        delete_projects(
            ctx,
            names,
            &format!("delete projects ({concurrency} clients)"),
        )
        .await?;
        ctx.rss.record("after project deletion");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

fn print_summary(ctx: &Ctx, version: &str) {
    let a = &ctx.args;
    println!();
    println!("==================== quiver-bench summary ====================");
    println!(
        "server      {} (version {version}), pid {}",
        ctx.url,
        ctx.rss.pid.map_or("unknown".into(), |p| p.to_string())
    );
    if a.mode != Mode::Projects {
        println!(
            "data        n={} dim={} clusters={} sigma={} seed={} batch={} ef_search={} queries={} get_ops={}",
            a.n, a.dim, a.clusters, a.sigma, a.seed, a.batch, a.ef_search, a.queries, a.get_ops
        );
    }
    if a.mode != Mode::Single && a.projects > 0 {
        println!(
            "projects    {} x {} records dim {}, concurrency {}, {} queries, idle {} s",
            a.projects,
            a.project_records,
            a.project_dim,
            a.concurrency,
            a.project_queries,
            a.idle_secs
        );
    }
    println!("{}", PhaseResult::header());
    for r in &ctx.results {
        println!("{}", r.line());
    }
    if !ctx.rss.entries.is_empty() {
        println!("server RSS:");
        for (label, rss) in &ctx.rss.entries {
            match rss {
                Some(r) => println!("  {label:<28} {r}"),
                None => println!("  {label:<28} unavailable"),
            }
        }
    }
    println!("===============================================================");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batching_and_dealing() {
        assert_eq!(batches(0..25, 10), vec![0..10, 10..20, 20..25]);
        assert_eq!(batches(5..5, 10), Vec::<Range<usize>>::new());
        assert_eq!(round_robin(0..5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
    }

    #[test]
    fn metadata_selects_fractions() {
        assert_eq!(metadata_for(107)["bucket"], json!(7));
        assert_eq!(metadata_for(13)["group"], json!("g3"));
        let r = add_request(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 2, 1..3);
        assert_eq!(r.ids, vec!["1", "2"]);
        assert_eq!(r.embeddings, vec![vec![2.0, 3.0], vec![4.0, 5.0]]);
    }

    #[test]
    fn bench_project_names() {
        assert_eq!(project_name("qbench", 12), "qbench-000012");
        assert!(is_bench_project("qbench", "qbench-000012"));
        assert!(!is_bench_project("qbench", "qbench-12"));
        assert!(!is_bench_project("qbench", "qbenchx-000012"));
    }

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
