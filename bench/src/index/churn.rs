//! `--mode index --churn`: the whole store in process (real RocksDB in a temporary
//! workspace, the real indexer and its compaction), no HTTP. Three figures:
//!
//! - **ingest to indexed**: the time from the first add until every record is in the
//!   graph, adds and indexing sharing the cores as they do in the server;
//! - **churn**: 30% of the records get new embeddings and 10% are deleted; recall and
//!   QPS are measured as soon as the graph has the new embeddings (the tombstones
//!   column says whether the indexer's compaction has already run), and again once it
//!   has;
//! - **fresh**: the same final records added to a new collection, the yardstick the
//!   churned collection is compared with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use quiver_tenant_server::store::query::{MissingIds, QueryRequest};
use quiver_tenant_server::store::types::{HnswConfig, Include, RecordInput};
use quiver_tenant_server::store::write::WriteMode;
use quiver_tenant_server::store::{
    CollectionMeta, Project, ProjectName, Registry, StoreConfig, DEFAULT_DATABASE,
};
use quiver_testkit::vectors::Mixture;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{IndexRun, K};
use crate::truth::exact_in;

const BATCH: usize = 1000;

/// One measured state of a collection.
struct Measured {
    label: String,
    recall: f64,
    qps: f64,
    p50_us: f64,
    tombstones: usize,
}

pub fn run(run: &IndexRun, ef_search: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::new(StoreConfig::for_workspace(dir.path()))
        .map_err(|e| anyhow!("opening the store: {e}"))?;
    let name = ProjectName::new("churn").map_err(|e| anyhow!("{e}"))?;
    let project = registry
        .project(&name)
        .map_err(|e| anyhow!("opening the project: {e}"))?;
    let hnsw = HnswConfig {
        space: run.space,
        ef_construction: run.ef_construction,
        ef_search,
        max_neighbors: run.m,
    };

    let mut rng = StdRng::seed_from_u64(run.seed ^ 0xc4u64);
    let mixture = Mixture::new(run.dim, run.clusters, run.sigma, &mut rng)?;
    let dim = run.dim;
    let n = run.n;
    let mut current: Vec<f32> = mixture.sample(n, &mut rng);
    let queries = mixture.sample(run.queries, &mut rng);
    let mut live: Vec<u32> = (0..n as u32).collect();

    println!(
        "\nstore churn: {n} x {dim} {}, M {}, ef_construction {}, ef_search {ef_search}, real RocksDB",
        run.space.as_str(),
        run.m,
        run.ef_construction
    );
    let churned = create(&project, "churned", &hnsw)?;
    let t = Instant::now();
    write_rows(&project, &churned, WriteMode::Add, &current, dim, &live)?;
    let acked = t.elapsed();
    settled(&project, &churned)?;
    let indexed = t.elapsed();
    println!(
        "ingest to indexed: {:.2} s for {n} ({:.0} vec/s; adds acknowledged after {:.2} s, {:.0} vec/s)",
        indexed.as_secs_f64(),
        n as f64 / indexed.as_secs_f64(),
        acked.as_secs_f64(),
        n as f64 / acked.as_secs_f64()
    );

    let mut rows = Vec::new();
    let truth = exact_in(run.space, &current, dim, Some(&live), &queries, K);
    rows.push(measure(
        &project,
        &churned,
        &queries,
        dim,
        &truth,
        "fresh build",
    )?);

    // churn: new embeddings for 30%, then 10% deleted
    let mut order: Vec<u32> = live.clone();
    order.shuffle(&mut rng);
    let (updated, rest) = order.split_at(n * 3 / 10);
    let deleted = &rest[..n / 10];
    let fresh = mixture.sample(updated.len(), &mut rng);
    for (row, &i) in fresh.chunks_exact(dim).zip(updated) {
        current[i as usize * dim..(i as usize + 1) * dim].copy_from_slice(row);
    }
    let t = Instant::now();
    write_rows(
        &project,
        &churned,
        WriteMode::Upsert,
        &current,
        dim,
        updated,
    )?;
    let ids: Vec<String> = deleted.iter().map(|i| id(*i)).collect();
    project
        .delete_records(&churned, Some(&ids), None, None, None)
        .map_err(|e| anyhow!("delete: {e}"))?;
    live.retain(|l| !deleted.contains(l));
    let truth = exact_in(run.space, &current, dim, Some(&live), &queries, K);
    // as soon as every new embedding is searchable through the graph
    wait_until(
        &project,
        &churned,
        Duration::from_secs(3600),
        |_, unindexed| unindexed == 0,
    )?;
    rows.push(measure(
        &project,
        &churned,
        &queries,
        dim,
        &truth,
        "after churn, as soon as indexed",
    )?);
    settled(&project, &churned)?;
    println!(
        "churn written and repaired (compacted) in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    rows.push(measure(
        &project,
        &churned,
        &queries,
        dim,
        &truth,
        "after churn, compacted",
    )?);

    // the yardstick: the final records built from scratch
    let rebuilt = create(&project, "rebuilt", &hnsw)?;
    write_rows(&project, &rebuilt, WriteMode::Add, &current, dim, &live)?;
    settled(&project, &rebuilt)?;
    rows.push(measure(
        &project,
        &rebuilt,
        &queries,
        dim,
        &truth,
        "final records, fresh build",
    )?);

    println!(
        "{:<40} {:>8} {:>10} {:>9} {:>11}",
        "state", "recall", "QPS 1t", "p50 us", "tombstones"
    );
    for r in &rows {
        println!(
            "{:<40} {:>8.4} {:>10.0} {:>9.1} {:>11}",
            r.label, r.recall, r.qps, r.p50_us, r.tombstones
        );
    }
    if let [_, churn, compacted, yardstick] = rows.as_slice() {
        println!(
            "recall after churn - fresh build of the same records: {:+.4} (as soon as indexed) / {:+.4} (compacted); QPS compacted / fresh: {:.2}x",
            churn.recall - yardstick.recall,
            compacted.recall - yardstick.recall,
            compacted.qps / yardstick.qps
        );
    }
    drop(project);
    registry.close_all();
    Ok(())
}

fn id(i: u32) -> String {
    format!("r{i}")
}

fn record(i: u32, current: &[f32], dim: usize) -> RecordInput {
    let i_ = i as usize;
    RecordInput {
        id: id(i),
        embedding: Some(current[i_ * dim..(i_ + 1) * dim].to_vec()),
        ..RecordInput::default()
    }
}

fn create(project: &Project, name: &str, hnsw: &HnswConfig) -> Result<CollectionMeta> {
    let meta = CollectionMeta {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        database: DEFAULT_DATABASE.into(),
        metadata: None,
        hnsw: hnsw.clone(),
        configuration: serde_json::Value::Null,
        schema: None,
        dimension: None,
    };
    project
        .create_collection(meta, false)
        .map(|(m, _)| m)
        .map_err(|e| anyhow!("creating {name}: {e}"))
}

/// Writes `rows` of `current` in batches.
fn write_rows(
    project: &Project,
    meta: &CollectionMeta,
    mode: WriteMode,
    current: &[f32],
    dim: usize,
    rows: &[u32],
) -> Result<()> {
    for chunk in rows.chunks(BATCH) {
        project
            .write(
                meta,
                mode,
                chunk.iter().map(|&i| record(i, current, dim)).collect(),
            )
            .map_err(|e| anyhow!("{mode:?}: {e}"))?;
    }
    Ok(())
}

/// Waits until every record is in the graph and no tombstone is left.
fn settled(project: &Project, meta: &CollectionMeta) -> Result<()> {
    wait_until(
        project,
        meta,
        Duration::from_secs(3600),
        |tomb, unindexed| unindexed == 0 && tomb == 0,
    )
}

/// Polls the collection until `done(tombstones, unindexed)`.
fn wait_until(
    project: &Project,
    meta: &CollectionMeta,
    timeout: Duration,
    done: impl Fn(usize, u64) -> bool,
) -> Result<()> {
    let coll = project
        .collection(meta)
        .map_err(|e| anyhow!("loading {}: {e}", meta.name))?;
    let start = Instant::now();
    loop {
        let (tomb, unindexed) = {
            let st = coll.state.read();
            (st.tombstones(), st.unindexed())
        };
        if done(tomb, unindexed) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(anyhow!(
                "{}: still {unindexed} unindexed and {tomb} tombstones after {timeout:?}",
                meta.name
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn measure(
    project: &Arc<Project>,
    meta: &CollectionMeta,
    queries: &[f32],
    dim: usize,
    truth: &[Vec<u32>],
    label: &str,
) -> Result<Measured> {
    let vectors: Vec<Vec<f32>> = queries.chunks_exact(dim).map(<[f32]>::to_vec).collect();
    let ask = |q: &Vec<f32>| -> Result<Vec<u32>> {
        let req = QueryRequest {
            embeddings: std::slice::from_ref(q),
            n_results: K,
            ids: None,
            where_: None,
            where_document: None,
            include: Include {
                embeddings: false,
                documents: false,
                metadatas: false,
                distances: true,
                uris: false,
            },
            missing_ids: MissingIds::Skip,
        };
        let (hits, _) = project
            .query(meta, &req)
            .map_err(|e| anyhow!("query: {e}"))?;
        hits.into_iter()
            .flatten()
            .map(|h| {
                h.record
                    .id
                    .strip_prefix('r')
                    .and_then(|s| s.parse().ok())
                    .context("a result id the bench did not write")
            })
            .collect()
    };
    for q in vectors.iter().take(100) {
        ask(q)?;
    }
    let mut latencies = Vec::with_capacity(vectors.len());
    let mut total = 0.0;
    let t = Instant::now();
    for (q, want) in vectors.iter().zip(truth) {
        let s = Instant::now();
        let got = ask(q)?;
        latencies.push(s.elapsed());
        total += quiver_testkit::vectors::recall(&got, want);
    }
    let qps = vectors.len() as f64 / t.elapsed().as_secs_f64();
    let tombstones = project
        .collection(meta)
        .map_err(|e| anyhow!("{e}"))?
        .state
        .read()
        .tombstones();
    Ok(Measured {
        label: label.into(),
        recall: total / truth.len().max(1) as f64,
        qps,
        p50_us: super::median_us(&latencies),
        tombstones,
    })
}
