//! The v2 mode (`--compare` / `--target`): Quiver and a real Chroma driven through the
//! same Chroma v2 API, phase by phase (each phase on Quiver, then the same phase with the
//! same data and queries on Chroma), ending with a side-by-side table of every figure
//! and the ratio Quiver / Chroma.
//!
//! Ingest: both servers report the acknowledged rate. Quiver indexes in the background,
//! so the bench then polls its per-project API (`/api/v1`, the one thing v2 does not
//! expose) until nothing is left unindexed, and reports ingest + wait as a second rate.
//! Single-node Chroma has no indexing status; it applies each add to its HNSW before it
//! answers (its SQLite log's push waits for the local compaction), so its acknowledged
//! rate is also its indexed rate.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quiver_client::QuiverClient;
use serde_json::json;

use crate::server::{read_rss, Rss, SpawnedServer};
use crate::stats::PhaseResult;
use crate::v2::{
    tolerate_conflict, tolerate_not_found, AddRecords, Collection, CollectionConfiguration,
    CreateCollection, GetRecords, Include, QueryRecords, V2Client, DEFAULT_DATABASE,
};
use crate::{
    batches, get_id_batches, judge_queries, metadata_for, parse_ids, prepare_workload,
    project_name, round_robin, run_workers_with, tenant_workload, Args, FilterCase, Mode,
    QueryOutcome, Target, TenantWorkload, Workload, COLL_A, COLL_B, K, PROJECT_COLL,
};

/// Chroma's default HNSW ef_construction and max_neighbors, sent to both servers when
/// the command line does not set them.
const DEFAULT_EF_CONSTRUCTION: usize = 100;
const DEFAULT_MAX_NEIGHBORS: usize = 16;

/// The two servers, in the order each phase runs on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Quiver = 0,
    Chroma = 1,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Quiver => "Quiver",
            Server::Chroma => "Chroma",
        }
    }
}

/// One server under test.
struct Side {
    server: Server,
    url: String,
    version: String,
    client: V2Client,
    pid: Option<u32>,
    spawned: Option<SpawnedServer>,
    /// Quiver's per-project API, used only to wait until it has indexed.
    v1: Option<QuiverClient>,
    /// Whether add embeddings go as base64 (the server's pre-flight answer).
    base64: bool,
    /// Ids of the single-collection phases' collections, by name.
    colls: HashMap<&'static str, String>,
    /// Collection id of each tenant of the many-tenants phase.
    tenant_colls: Arc<Vec<String>>,
}

/// One line of the final table: a phase with each server's result.
struct Row {
    phase: String,
    results: [Option<PhaseResult>; 2],
}

/// Everything the v2 phases need.
struct Cmp {
    args: Args,
    sides: Vec<Side>,
    rows: Vec<Row>,
    rss: Vec<(String, [Option<Rss>; 2])>,
}

impl Cmp {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.request_timeout_secs)
    }

    /// `n` clients of side `i`, each with its own connection pool.
    fn clients(&self, i: usize, n: usize) -> Result<Vec<V2Client>> {
        (0..n)
            .map(|_| Ok(V2Client::new(&self.sides[i].url, self.timeout())?))
            .collect()
    }

    fn configuration(&self) -> CollectionConfiguration {
        CollectionConfiguration::l2(
            self.args.ef_search,
            self.args.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION),
            self.args.max_neighbors.unwrap_or(DEFAULT_MAX_NEIGHBORS),
        )
    }

    /// Prints `r` for side `i` and files it under its phase.
    fn emit(&mut self, i: usize, r: PhaseResult) {
        let server = self.sides[i].server;
        println!("{:<7} {}", server.name(), r.line());
        let row = match self.rows.iter_mut().position(|row| row.phase == r.phase) {
            Some(p) => &mut self.rows[p],
            None => {
                self.rows.push(Row {
                    phase: r.phase.clone(),
                    results: [None, None],
                });
                self.rows.last_mut().expect("just pushed")
            }
        };
        row.results[server as usize] = Some(r);
    }

    /// Reads and prints the RSS of every side whose pid is known.
    fn record_rss(&mut self, label: &str) {
        let mut got = [None, None];
        let mut any = false;
        for s in &self.sides {
            let Some(pid) = s.pid else { continue };
            any = true;
            let rss = read_rss(pid);
            match rss {
                Some(r) => println!("# {} RSS {label}: {r}", s.server.name()),
                None => println!("# {} RSS {label}: unavailable (pid {pid})", s.server.name()),
            }
            got[s.server as usize] = rss;
        }
        if any {
            self.rss.push((label.to_owned(), got));
        }
    }
}

fn header() -> String {
    format!("{:<7} {}", "server", PhaseResult::header())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

// ---------------------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------------------

/// Spawns or connects to `server`, waits for its v2 heartbeat, reads its version and
/// pre-flight checks.
async fn open_side(args: &Args, server: Server) -> Result<Side> {
    let timeout = Duration::from_secs(args.request_timeout_secs);
    let (spawn, url, pid) = match server {
        Server::Quiver => (args.spawn.as_deref(), &args.url, args.server_pid),
        Server::Chroma => (
            args.spawn_chroma.as_deref(),
            &args.chroma_url,
            args.chroma_pid,
        ),
    };
    let name = server.name();
    let (mut spawned, url, pid) = match spawn {
        Some(bin) => {
            let s = start(server, bin, &args.server_args)?;
            let (url, pid) = (s.url().to_owned(), s.pid());
            (Some(s), url, Some(pid))
        }
        None => (None, url.trim_end_matches('/').to_owned(), pid),
    };
    let client = V2Client::new(&url, timeout)?;
    match spawned.as_mut() {
        Some(s) => {
            let t = s
                .wait_until(
                    || async { client.heartbeat().await.is_ok_and(|h| h.nanos > 0) },
                    Duration::from_secs(args.startup_timeout_secs),
                )
                .await
                .with_context(|| format!("starting {name}"))?;
            println!(
                "# spawned {name} pid {} at {url}, ready in {:.2} s",
                s.pid(),
                t.as_secs_f64()
            );
        }
        None => {
            client
                .heartbeat()
                .await
                .with_context(|| format!("no {name} answers GET {url}/api/v2/heartbeat"))?;
        }
    }
    let version = client.version().await.context("GET /api/v2/version")?;
    let pre = client
        .pre_flight()
        .await
        .context("GET /api/v2/pre-flight-checks")?;
    let largest = args.batch.max(args.project_records);
    if pre.max_batch_size < largest as i64 {
        bail!(
            "{name} accepts at most {} records per add; lower --batch/--project-records (now {largest})",
            pre.max_batch_size
        );
    }
    println!(
        "# {name} version {version:?} at {url}; max batch {}, base64 embeddings {}",
        pre.max_batch_size,
        if pre.supports_base64_encoding {
            "yes"
        } else {
            "no"
        }
    );
    if pid.is_none() {
        let flag = match server {
            Server::Quiver => "--spawn or --server-pid",
            Server::Chroma => "--spawn-chroma or --chroma-pid",
        };
        println!("# {name} RSS not reported (pass {flag})");
    }
    let v1 = match server {
        Server::Quiver => Some(QuiverClient::with_timeout(&url, timeout)?),
        Server::Chroma => None,
    };
    Ok(Side {
        server,
        url,
        version,
        client,
        pid,
        spawned,
        v1,
        base64: pre.supports_base64_encoding,
        colls: HashMap::new(),
        tenant_colls: Arc::new(Vec::new()),
    })
}

fn start(server: Server, bin: &Path, server_args: &[String]) -> Result<SpawnedServer> {
    match server {
        Server::Quiver => SpawnedServer::start(bin, server_args),
        Server::Chroma => SpawnedServer::start_chroma(bin),
    }
}

/// Runs the v2 mode on `target`.
pub async fn run(args: Args, target: Target) -> Result<()> {
    let servers: &[Server] = match target {
        Target::Quiver => &[Server::Quiver],
        Target::Chroma => &[Server::Chroma],
        Target::Both => &[Server::Quiver, Server::Chroma],
    };
    let argv: Vec<String> = std::env::args().collect();
    println!("# {}", argv.join(" "));
    let mut sides = Vec::new();
    for &server in servers {
        // On failure the sides opened so far are dropped, which stops spawned servers.
        sides.push(open_side(&args, server).await?);
    }
    let mut cmp = Cmp {
        args,
        sides,
        rows: Vec::new(),
        rss: Vec::new(),
    };
    cmp.record_rss("at start");

    let outcome = run_phases(&mut cmp).await;
    print_table(&cmp);
    for s in &mut cmp.sides {
        if let Some(sp) = s.spawned.as_mut() {
            if outcome.is_err() {
                eprintln!(
                    "# last lines of the {} log:\n{}",
                    s.server.name(),
                    sp.log_tail(30)
                );
            }
            println!(
                "# {} server {}",
                s.server.name(),
                sp.stop(Duration::from_secs(10))
            );
        }
    }
    outcome
}

async fn run_phases(cmp: &mut Cmp) -> Result<()> {
    if cmp.args.mode != Mode::Projects {
        single_collection_phases(cmp).await?;
    }
    if cmp.args.mode != Mode::Single && cmp.args.tenants > 0 {
        tenants_phase(cmp).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Single-collection phases
// ---------------------------------------------------------------------------------------

/// Creates `tenant` and its default database, tolerating that they exist.
async fn ensure_tenant(c: &V2Client, tenant: &str) -> Result<()> {
    tolerate_conflict(c.create_tenant(tenant).await)
        .with_context(|| format!("creating tenant {tenant}"))?;
    tolerate_conflict(c.create_database(tenant, DEFAULT_DATABASE).await)
        .with_context(|| format!("creating database {tenant}/{DEFAULT_DATABASE}"))?;
    Ok(())
}

async fn single_collection_phases(cmp: &mut Cmp) -> Result<()> {
    let n = cmp.args.n;
    let Workload {
        data,
        queries,
        cases,
        truths,
    } = prepare_workload(&cmp.args)?;

    // Fresh collections on every side.
    let tenant = cmp.args.project.clone();
    let cfg = cmp.configuration();
    for s in &mut cmp.sides {
        let c = &s.client;
        ensure_tenant(c, &tenant).await?;
        for coll in [COLL_A, COLL_B] {
            tolerate_not_found(c.delete_collection(&tenant, DEFAULT_DATABASE, coll).await)
                .with_context(|| format!("{}: dropping {tenant}/{coll}", s.server.name()))?;
            let created = c
                .create_collection(
                    &tenant,
                    DEFAULT_DATABASE,
                    &CreateCollection {
                        name: coll.into(),
                        metadata: None,
                        configuration: Some(cfg.clone()),
                        schema: None,
                        get_or_create: false,
                    },
                )
                .await
                .with_context(|| format!("{}: creating {tenant}/{coll}", s.server.name()))?;
            for problem in check_created(&created, coll, &tenant, &cfg) {
                println!("# WARNING: {}: {problem}", s.server.name());
            }
            s.colls.insert(coll, created.id);
        }
    }
    println!(
        "# tenant {tenant}, database {DEFAULT_DATABASE}, collections {COLL_A} and {COLL_B}: {}",
        serde_json::to_string(&cfg)?
    );
    println!("{}", header());

    // Ingest.
    let sides = cmp.sides.len();
    let single = vec![batches(0..n, cmp.args.batch)];
    for i in 0..sides {
        ingest(cmp, i, COLL_A, "ingest A (1 client)", single.clone(), &data).await?;
    }
    let c = cmp.args.ingest_clients;
    let parts: Vec<Vec<Range<usize>>> = (0..c)
        .map(|w| batches(w * n / c..(w + 1) * n / c, cmp.args.batch))
        .collect();
    let label = format!("ingest B ({c} client{})", plural(c));
    for i in 0..sides {
        ingest(cmp, i, COLL_B, &label, parts.clone(), &data).await?;
    }
    cmp.record_rss("after ingest");

    // Queries, unfiltered and filtered.
    let names = ["query", "query 10% group=g3", "query 1% bucket=7"];
    for ((case, truth), name) in cases.iter().zip(&truths).zip(names) {
        for clients in [1, cmp.args.query_clients] {
            for i in 0..sides {
                query_phase(cmp, i, name, case, clients, &queries, truth).await?;
            }
        }
    }
    cmp.record_rss("after queries");

    // Get by ids and count.
    let id_batches = Arc::new(get_id_batches(&cmp.args));
    for clients in [1, cmp.args.query_clients] {
        for i in 0..sides {
            get_phase(cmp, i, clients, &id_batches).await?;
        }
    }
    for clients in [1, cmp.args.query_clients] {
        for i in 0..sides {
            count_phase(cmp, i, clients).await?;
        }
    }

    if !cmp.args.keep {
        for s in &cmp.sides {
            for coll in [COLL_A, COLL_B] {
                tolerate_not_found(
                    s.client
                        .delete_collection(&tenant, DEFAULT_DATABASE, coll)
                        .await,
                )?;
            }
        }
    }
    Ok(())
}

/// What differs between a newly created collection and what was asked for.
fn check_created(
    c: &Collection,
    name: &str,
    tenant: &str,
    cfg: &CollectionConfiguration,
) -> Vec<String> {
    let mut out = Vec::new();
    if (c.name.as_str(), c.tenant.as_str(), c.database.as_str()) != (name, tenant, DEFAULT_DATABASE)
    {
        out.push(format!(
            "created {}/{}/{}, asked for {tenant}/{DEFAULT_DATABASE}/{name}",
            c.tenant, c.database, c.name
        ));
    }
    if c.metadata.is_some() || c.dimension.is_some() {
        out.push(format!(
            "new collection {name} has metadata {:?} and dimension {:?}",
            c.metadata, c.dimension
        ));
    }
    if let Some(h) = &cfg.hnsw {
        let got = &c.configuration_json["hnsw"];
        let want = [
            ("space", json!(h.space)),
            ("ef_search", json!(h.ef_search)),
            ("ef_construction", json!(h.ef_construction)),
            ("max_neighbors", json!(h.max_neighbors)),
        ];
        for (k, v) in want {
            if got[k] != v {
                out.push(format!(
                    "collection {name}: hnsw {k} is {}, asked for {v}",
                    got[k]
                ));
            }
        }
    }
    out
}

/// Adds `work` (batches of row ranges, one list per client) to `coll` of side `i`;
/// prints the acknowledged rate, then the rate until indexed (Quiver) and checks the
/// count.
async fn ingest(
    cmp: &mut Cmp,
    i: usize,
    coll: &'static str,
    label: &str,
    work: Vec<Vec<Range<usize>>>,
    data: &Arc<Vec<f32>>,
) -> Result<()> {
    let dim = cmp.args.dim;
    let tenant = cmp.args.project.clone();
    let side = &cmp.sides[i];
    let id = side.colls[coll].clone();
    let base64 = side.base64;
    let expected: usize = work.iter().flatten().map(ExactSizeIterator::len).sum();
    let data = data.clone();
    let clients = cmp.clients(i, work.len())?;
    let out = {
        let (tenant, id) = (tenant.clone(), id.clone());
        run_workers_with(clients, work, move |c: V2Client, rows: Range<usize>| {
            let req = add_records(&data, dim, rows, base64);
            let (tenant, id) = (tenant.clone(), id.clone());
            async move {
                c.add(&tenant, DEFAULT_DATABASE, &id, &req).await?;
                anyhow::Ok(())
            }
        })
        .await
        .with_context(|| format!("{}: {label}: add", cmp.sides[i].server.name()))?
    };
    cmp.emit(
        i,
        PhaseResult::new(label, expected, out.wall, "vec/s", &out.latencies)
            .with_note("acknowledged"),
    );

    let side = &cmp.sides[i];
    let (wait, mut note) = match &side.v1 {
        Some(v1) => {
            let timeout = Duration::from_secs(cmp.args.index_timeout_secs);
            let (wait, info, done) = crate::wait_indexed(v1, &tenant, coll, timeout).await?;
            let mut note = "rate = n/(ingest + index wait)".to_owned();
            if !done {
                note = format!(
                    "TIMEOUT: {} still unindexed; {note}",
                    info.indexing.unwrap_or_default().unindexed
                );
            }
            (wait, note)
        }
        None => (
            Duration::ZERO,
            "no indexing status: acknowledged rate (adds are indexed before they are acknowledged)"
                .to_owned(),
        ),
    };
    let count = side
        .client
        .count(&tenant, DEFAULT_DATABASE, &id)
        .await
        .context("count after ingest")?;
    if count as usize != expected {
        note.push_str(&format!("; WARNING: count {count}, expected {expected}"));
    }
    let mut r = PhaseResult::new(
        format!("  + until indexed ({coll})"),
        expected,
        wait,
        "vec/s",
        &[],
    );
    r.rate = expected as f64 / (out.wall + wait).as_secs_f64();
    cmp.emit(i, r.with_note(note));
    Ok(())
}

/// Whether `d` holds `n` distances in ascending order.
fn ascending(d: &[Option<f64>], n: usize) -> bool {
    d.len() == n && d.iter().all(Option::is_some) && d.windows(2).all(|w| w[0] <= w[1])
}

fn add_records(data: &[f32], dim: usize, rows: Range<usize>, base64: bool) -> AddRecords {
    AddRecords::new(
        rows.clone().map(|r| r.to_string()).collect(),
        rows.clone().map(|r| &data[r * dim..(r + 1) * dim]),
        Some(rows.map(|r| Some(metadata_for(r))).collect()),
        base64,
    )
}

async fn query_phase(
    cmp: &mut Cmp,
    i: usize,
    name: &str,
    case: &FilterCase,
    clients: usize,
    queries: &Arc<Vec<f32>>,
    truth: &Arc<Vec<Vec<u32>>>,
) -> Result<()> {
    let dim = cmp.args.dim;
    let tenant = cmp.args.project.clone();
    let id = cmp.sides[i].colls[COLL_A].clone();
    let nq = queries.len() / dim;
    let queries = queries.clone();
    let filter = case.filter.clone();
    let (key, value) = (case.key, case.value);
    let label = format!("{name} ({clients} client{})", plural(clients));
    let out = run_workers_with(
        cmp.clients(i, clients)?,
        round_robin(0..nq, clients),
        move |c: V2Client, qi: usize| {
            let req = QueryRecords {
                ids: None,
                query_embeddings: vec![queries[qi * dim..(qi + 1) * dim].to_vec()],
                n_results: K,
                where_metadata: filter.clone(),
                where_document: None,
                include: vec![Include::Metadatas, Include::Distances],
            };
            let (tenant, id) = (tenant.clone(), id.clone());
            let check = filter.is_some();
            async move {
                let res = c.query(&tenant, DEFAULT_DATABASE, &id, &req).await?;
                let ids = parse_ids(res.ids.first().map_or(&[][..], Vec::as_slice))?;
                let sorted = res
                    .distances
                    .as_ref()
                    .and_then(|d| d.first())
                    .is_some_and(|d| ascending(d, ids.len()));
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
                anyhow::Ok(((qi, ids, violations), sorted))
            }
        },
    )
    .await
    .with_context(|| format!("{}: {label}", cmp.sides[i].server.name()))?;
    let unsorted = out.results.iter().filter(|(_, sorted)| !sorted).count();
    let outcomes: Vec<QueryOutcome> = out.results.into_iter().map(|(o, _)| o).collect();
    let (rec, mut note) = judge_queries(&outcomes, truth);
    if unsorted > 0 {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!(
            "WARNING: {unsorted} queries without one ascending distance per id"
        ));
    }
    cmp.emit(
        i,
        PhaseResult::new(label, nq, out.wall, "q/s", &out.latencies)
            .with_recall(rec)
            .with_note(note),
    );
    Ok(())
}

async fn get_phase(
    cmp: &mut Cmp,
    i: usize,
    clients: usize,
    id_batches: &Arc<Vec<Vec<usize>>>,
) -> Result<()> {
    let tenant = cmp.args.project.clone();
    let id = cmp.sides[i].colls[COLL_A].clone();
    let label = format!("get 10 ids ({clients} client{})", plural(clients));
    let ops = id_batches.len();
    let out = run_workers_with(
        cmp.clients(i, clients)?,
        round_robin(id_batches.iter().cloned(), clients),
        move |c: V2Client, ids: Vec<usize>| {
            let req = GetRecords {
                ids: Some(ids.iter().map(usize::to_string).collect()),
                where_metadata: None,
                limit: None,
                offset: None,
                where_document: None,
                include: vec![Include::Metadatas],
            };
            let (tenant, id) = (tenant.clone(), id.clone());
            async move {
                let res = c.get(&tenant, DEFAULT_DATABASE, &id, &req).await?;
                // Each asked id must come back once, with its own metadata.
                let got = parse_ids(&res.ids)?;
                let metas = res.metadatas.unwrap_or_default();
                let mut bad = usize::from(got.len() != ids.len());
                for (j, rid) in got.iter().enumerate() {
                    let bucket = metas
                        .get(j)
                        .and_then(Option::as_ref)
                        .and_then(|m| m.get("bucket"));
                    if !ids.contains(&(*rid as usize))
                        || bucket != Some(&json!(*rid as usize % 100))
                    {
                        bad += 1;
                    }
                }
                anyhow::Ok(bad)
            }
        },
    )
    .await
    .with_context(|| format!("{}: {label}", cmp.sides[i].server.name()))?;
    let bad: usize = out.results.iter().sum();
    let note = if bad > 0 {
        format!("WARNING: {bad} wrong or missing records")
    } else {
        String::new()
    };
    cmp.emit(
        i,
        PhaseResult::new(label, ops, out.wall, "ops/s", &out.latencies).with_note(note),
    );
    Ok(())
}

async fn count_phase(cmp: &mut Cmp, i: usize, clients: usize) -> Result<()> {
    let tenant = cmp.args.project.clone();
    let id = cmp.sides[i].colls[COLL_A].clone();
    let expected = cmp.args.n as u64;
    let label = format!("count ({clients} client{})", plural(clients));
    let ops = cmp.args.get_ops;
    let out = run_workers_with(
        cmp.clients(i, clients)?,
        round_robin(0..ops, clients),
        move |c: V2Client, _| {
            let (tenant, id) = (tenant.clone(), id.clone());
            async move { anyhow::Ok(c.count(&tenant, DEFAULT_DATABASE, &id).await?) }
        },
    )
    .await
    .with_context(|| format!("{}: {label}", cmp.sides[i].server.name()))?;
    let wrong = out.results.iter().filter(|&&c| c != expected).count();
    let note = if wrong > 0 {
        format!("WARNING: {wrong} counts differ from {expected}")
    } else {
        String::new()
    };
    cmp.emit(
        i,
        PhaseResult::new(label, ops, out.wall, "ops/s", &out.latencies).with_note(note),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Many tenants
// ---------------------------------------------------------------------------------------

async fn tenants_phase(cmp: &mut Cmp) -> Result<()> {
    let a = &cmp.args;
    let (t_count, records, dim) = (a.tenants, a.project_records, a.project_dim);
    let prefix = a.project_prefix.clone();
    let (concurrency, query_clients) = (a.concurrency, a.query_clients);
    let t = Instant::now();
    let TenantWorkload {
        data,
        qvecs,
        targets,
        truth,
    } = tenant_workload(a, t_count)?;
    let truth = Arc::new(truth);
    println!();
    println!(
        "# many tenants: {t_count} tenants x 1 collection x {records} records of dim {dim}, \
         {concurrency} creating clients, {} queries to random tenants (data + truth in {:.2} s)",
        targets.len(),
        t.elapsed().as_secs_f64()
    );
    println!("{}", header());
    let sides = cmp.sides.len();
    let create = CreateCollection {
        name: PROJECT_COLL.into(),
        metadata: None,
        configuration: Some(cmp.configuration()),
        schema: None,
        get_or_create: false,
    };

    // Create the tenants, each with a database, one collection and its records.
    let label = format!("create tenants ({concurrency} clients)");
    for i in 0..sides {
        let base64 = cmp.sides[i].base64;
        let (data, prefix, create) = (data.clone(), prefix.clone(), create.clone());
        let out = run_workers_with(
            cmp.clients(i, concurrency)?,
            round_robin(0..t_count, concurrency),
            move |c: V2Client, p: usize| {
                let name = project_name(&prefix, p);
                let rows = &data[p * records * dim..(p + 1) * records * dim];
                let req = add_records(rows, dim, 0..records, base64);
                let create = create.clone();
                async move {
                    ensure_tenant(&c, &name).await?;
                    let coll = match c.create_collection(&name, DEFAULT_DATABASE, &create).await {
                        // Left by an earlier run against the same server: start afresh.
                        Err(e) if e.is_conflict() => {
                            c.delete_collection(&name, DEFAULT_DATABASE, PROJECT_COLL)
                                .await?;
                            c.create_collection(&name, DEFAULT_DATABASE, &create)
                                .await?
                        }
                        r => r?,
                    };
                    c.add(&name, DEFAULT_DATABASE, &coll.id, &req).await?;
                    anyhow::Ok((p, coll.id))
                }
            },
        )
        .await
        .with_context(|| format!("{}: creating tenants", cmp.sides[i].server.name()))?;
        let mut ids = vec![String::new(); t_count];
        for (p, id) in out.results {
            ids[p] = id;
        }
        cmp.sides[i].tenant_colls = Arc::new(ids);
        cmp.emit(
            i,
            PhaseResult::new(&label, t_count, out.wall, "ten/s", &out.latencies).with_note(
                format!("tenant + database + collection + add {records} records each"),
            ),
        );
    }
    cmp.record_rss("after tenant creation");

    // Queries to random tenants.
    let label = format!("query random tenant ({query_clients} clients)");
    let nq = targets.len();
    for i in 0..sides {
        let ids = cmp.sides[i].tenant_colls.clone();
        let (qvecs, prefix) = (qvecs.clone(), prefix.clone());
        let jobs: Vec<(usize, usize)> = targets.iter().copied().enumerate().collect();
        let out = run_workers_with(
            cmp.clients(i, query_clients)?,
            round_robin(jobs, query_clients),
            move |c: V2Client, (qi, p): (usize, usize)| {
                let name = project_name(&prefix, p);
                let id = ids[p].clone();
                let req = QueryRecords {
                    ids: None,
                    query_embeddings: vec![qvecs[qi * dim..(qi + 1) * dim].to_vec()],
                    n_results: K,
                    where_metadata: None,
                    where_document: None,
                    include: vec![Include::Distances],
                };
                async move {
                    let res = c.query(&name, DEFAULT_DATABASE, &id, &req).await?;
                    let ids = parse_ids(res.ids.first().map_or(&[][..], Vec::as_slice))?;
                    anyhow::Ok::<QueryOutcome>((qi, ids, 0))
                }
            },
        )
        .await
        .with_context(|| format!("{}: querying tenants", cmp.sides[i].server.name()))?;
        let (rec, note) = judge_queries(&out.results, &truth);
        cmp.emit(
            i,
            PhaseResult::new(&label, nq, out.wall, "q/s", &out.latencies)
                .with_recall(rec)
                .with_note(note),
        );
    }
    cmp.record_rss("after tenant queries");

    if cmp.args.idle_secs > 0 {
        println!("# idle for {} s", cmp.args.idle_secs);
        tokio::time::sleep(Duration::from_secs(cmp.args.idle_secs)).await;
        cmp.record_rss(&format!("after {} s idle", cmp.args.idle_secs));
    }

    if !cmp.args.keep {
        // The v2 API cannot delete a tenant; drop each tenant's collection.
        let label = format!("drop tenant collections ({concurrency} clients)");
        for i in 0..sides {
            let prefix = prefix.clone();
            let out = run_workers_with(
                cmp.clients(i, concurrency)?,
                round_robin(0..t_count, concurrency),
                move |c: V2Client, p: usize| {
                    let name = project_name(&prefix, p);
                    async move {
                        tolerate_not_found(
                            c.delete_collection(&name, DEFAULT_DATABASE, PROJECT_COLL)
                                .await,
                        )?;
                        anyhow::Ok(())
                    }
                },
            )
            .await
            .with_context(|| format!("{}: deleting collections", cmp.sides[i].server.name()))?;
            cmp.emit(
                i,
                PhaseResult::new(&label, t_count, out.wall, "ten/s", &out.latencies),
            );
        }
        cmp.record_rss("after collection deletion");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The comparison table
// ---------------------------------------------------------------------------------------

/// Which way a metric is better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// "Quiver 2.50x", "Chroma 1.20x" or "even" for a ratio-type metric.
fn verdict(q: Option<f64>, c: Option<f64>, better: Better) -> String {
    let (Some(q), Some(c)) = (q, c) else {
        return String::new();
    };
    if !(q > 0.0 && c > 0.0) {
        return String::new();
    }
    let r = q / c;
    if (r - 1.0).abs() < 0.005 {
        return "even".into();
    }
    let quiver = match better {
        Better::Higher => r > 1.0,
        Better::Lower => r < 1.0,
    };
    let factor = if r > 1.0 { r } else { 1.0 / r };
    format!("{} {factor:.2}x", if quiver { "Quiver" } else { "Chroma" })
}

/// "Quiver +0.0123", "Chroma +0.0040" or "even" for recall.
fn recall_verdict(q: Option<f64>, c: Option<f64>) -> String {
    let (Some(q), Some(c)) = (q, c) else {
        return String::new();
    };
    let d = q - c;
    if d.abs() < 0.00005 {
        "even".into()
    } else if d > 0.0 {
        format!("Quiver +{d:.4}")
    } else {
        format!("Chroma +{:.4}", -d)
    }
}

fn ratio(q: Option<f64>, c: Option<f64>) -> String {
    match (q, c) {
        (Some(q), Some(c)) if c > 0.0 => format!("{:.3}", q / c),
        _ => "-".into(),
    }
}

fn fmt_value(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

/// One table line: phase, metric, Quiver, Chroma, Quiver/Chroma, better.
fn table_line(
    phase: &str,
    metric: &str,
    q: Option<f64>,
    c: Option<f64>,
    prec: usize,
    verdict: String,
) -> String {
    format!(
        "{:<36} {:<10} {:>12} {:>12} {:>8}  {}",
        phase,
        metric,
        fmt_value(q, prec),
        fmt_value(c, prec),
        ratio(q, c),
        verdict
    )
}

fn table_lines(rows: &[Row], rss: &[(String, [Option<Rss>; 2])]) -> Vec<String> {
    let mut out = vec![format!(
        "{:<36} {:<10} {:>12} {:>12} {:>8}  {}",
        "phase", "metric", "Quiver", "Chroma", "Q/C", "better"
    )];
    for row in rows {
        let [q, c] = &row.results;
        let get =
            |f: fn(&PhaseResult) -> Option<f64>| (q.as_ref().and_then(f), c.as_ref().and_then(f));
        let unit = q.as_ref().or(c.as_ref()).map_or("", |r| r.unit);
        let (rq, rc) = get(|r| Some(r.rate));
        out.push(table_line(
            &row.phase,
            unit,
            rq,
            rc,
            1,
            verdict(rq, rc, Better::Higher),
        ));
        for (metric, f) in [
            ("p50 ms", (|r| r.p50_ms) as fn(&PhaseResult) -> Option<f64>),
            ("p99 ms", |r| r.p99_ms),
        ] {
            let (vq, vc) = get(f);
            if vq.is_some() || vc.is_some() {
                out.push(table_line(
                    "",
                    metric,
                    vq,
                    vc,
                    3,
                    verdict(vq, vc, Better::Lower),
                ));
            }
        }
        let (vq, vc) = get(|r| r.recall);
        if vq.is_some() || vc.is_some() {
            out.push(table_line(
                "",
                "recall@10",
                vq,
                vc,
                4,
                recall_verdict(vq, vc),
            ));
        }
        for (server, r) in [("Quiver", q), ("Chroma", c)] {
            if let Some(r) = r {
                if r.note.contains("WARNING") || r.note.contains("TIMEOUT") {
                    out.push(format!("{:<36} ! {server}: {}", "", r.note));
                }
            }
        }
    }
    for (label, [q, c]) in rss {
        let mib = |r: &Option<Rss>, f: fn(&Rss) -> u64| r.as_ref().map(|r| f(r) as f64 / 1024.0);
        let (vq, vc) = (mib(q, |r| r.rss_kib), mib(c, |r| r.rss_kib));
        out.push(table_line(
            &format!("server RSS {label}"),
            "MiB",
            vq,
            vc,
            1,
            verdict(vq, vc, Better::Lower),
        ));
        let (vq, vc) = (mib(q, |r| r.hwm_kib), mib(c, |r| r.hwm_kib));
        out.push(table_line(
            "",
            "peak MiB",
            vq,
            vc,
            1,
            verdict(vq, vc, Better::Lower),
        ));
    }
    out
}

fn print_table(cmp: &Cmp) {
    let a = &cmp.args;
    println!();
    println!("============= quiver-bench v2 comparison: Quiver vs Chroma =============");
    for s in &cmp.sides {
        println!(
            "{:<11} {} (version {:?}), pid {}, via /api/v2",
            s.server.name(),
            s.url,
            s.version,
            s.pid.map_or("unknown".into(), |p| p.to_string())
        );
    }
    if a.mode != Mode::Projects {
        println!(
            "data        n={} dim={} clusters={} sigma={} seed={} batch={} queries={} get_ops={}",
            a.n, a.dim, a.clusters, a.sigma, a.seed, a.batch, a.queries, a.get_ops
        );
    }
    println!(
        "collections space l2, ef_search={} ef_construction={} max_neighbors={} (same for both)",
        a.ef_search,
        a.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION),
        a.max_neighbors.unwrap_or(DEFAULT_MAX_NEIGHBORS)
    );
    if a.mode != Mode::Single && a.tenants > 0 {
        println!(
            "tenants     {} x {} records dim {}, concurrency {}, {} queries, idle {} s",
            a.tenants,
            a.project_records,
            a.project_dim,
            a.concurrency,
            a.project_queries,
            a.idle_secs
        );
    }
    println!(
        "Q/C = Quiver / Chroma. Throughput (vec/s, q/s, ops/s, ten/s): higher is better, Q/C > 1 \
         favours Quiver.\nLatency (ms) and RSS (MiB): lower is better, Q/C < 1 favours Quiver. \
         'better' names the better server and by how much\n(recall: absolute difference). \
         '+ until indexed': Quiver = n/(ingest + index wait); Chroma = acknowledged rate."
    );
    for line in table_lines(&cmp.rows, &cmp.rss) {
        println!("{line}");
    }
    println!("=========================================================================");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_distances_and_created_collections() {
        assert!(ascending(&[Some(1.0), Some(1.0), Some(2.5)], 3));
        assert!(!ascending(&[Some(2.0), Some(1.0)], 2));
        assert!(!ascending(&[Some(1.0), None], 2));
        assert!(!ascending(&[Some(1.0)], 2));
        let cfg = CollectionConfiguration::l2(100, 100, 16);
        let c: Collection = serde_json::from_value(json!({
            "id": "x", "name": "bench-a", "tenant": "t1x", "database": "default_database",
            "configuration_json": {"hnsw": {"space": "l2", "ef_search": 100,
                "ef_construction": 100, "max_neighbors": 16, "resize_factor": 1.2}},
            "metadata": null, "dimension": null}))
        .unwrap();
        assert!(check_created(&c, "bench-a", "t1x", &cfg).is_empty());
        let c: Collection = serde_json::from_value(json!({
            "id": "x", "name": "bench-a", "tenant": "t1x", "database": "default_database",
            "configuration_json": {"hnsw": {"space": "cosine", "ef_search": 100,
                "ef_construction": 100, "max_neighbors": 16}}}))
        .unwrap();
        let problems = check_created(&c, "bench-a", "t1x", &cfg);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("space"));
    }

    #[test]
    fn verdicts_and_ratios() {
        assert_eq!(
            verdict(Some(300.0), Some(100.0), Better::Higher),
            "Quiver 3.00x"
        );
        assert_eq!(
            verdict(Some(100.0), Some(300.0), Better::Higher),
            "Chroma 3.00x"
        );
        assert_eq!(verdict(Some(2.0), Some(8.0), Better::Lower), "Quiver 4.00x");
        assert_eq!(verdict(Some(8.0), Some(2.0), Better::Lower), "Chroma 4.00x");
        assert_eq!(verdict(Some(1.0), Some(1.001), Better::Lower), "even");
        assert_eq!(verdict(None, Some(1.0), Better::Lower), "");
        assert_eq!(recall_verdict(Some(0.99), Some(0.98)), "Quiver +0.0100");
        assert_eq!(recall_verdict(Some(0.97), Some(0.98)), "Chroma +0.0100");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.250");
        assert_eq!(ratio(Some(1.0), None), "-");
    }

    #[test]
    fn table_has_every_figure() {
        let lat = [Duration::from_millis(2), Duration::from_millis(4)];
        let q = PhaseResult::new("query (1 client)", 10, Duration::from_secs(1), "q/s", &lat)
            .with_recall(1.0);
        let c = PhaseResult::new("query (1 client)", 10, Duration::from_secs(2), "q/s", &lat)
            .with_recall(0.9)
            .with_note("WARNING: 1 queries returned fewer than 10 ids");
        let rows = [Row {
            phase: q.phase.clone(),
            results: [Some(q), Some(c)],
        }];
        let rss = [(
            "after ingest".to_owned(),
            [
                Some(Rss {
                    rss_kib: 1024,
                    hwm_kib: 2048,
                }),
                None,
            ],
        )];
        let lines = table_lines(&rows, &rss);
        assert!(lines[1].starts_with("query (1 client)"));
        assert!(lines[1].contains("10.0") && lines[1].contains("5.0"));
        assert!(lines[1].contains("2.000") && lines[1].ends_with("Quiver 2.00x"));
        assert!(lines[2].contains("p50 ms") && lines[2].ends_with("even"));
        assert!(lines[4].contains("recall@10") && lines[4].ends_with("Quiver +0.1000"));
        assert!(lines[5].contains("! Chroma: WARNING"));
        assert!(lines[6].starts_with("server RSS after ingest") && lines[6].contains("1.0"));
        assert!(lines[7].contains("peak MiB") && lines[7].contains("2.0"));
    }
}
