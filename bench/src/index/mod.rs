//! `--mode index`: the vector index alone, in process, with no HTTP or JSON in the way,
//! against hnswlib (the library Chroma serves with) at the same M, ef_construction and
//! ef_search on the same seeded data, in the same run.
//!
//! Figures: build time and vectors/s (both use every core), memory (vector and link
//! bytes, and the process's resident growth), and for each ef_search of the sweep the
//! recall@10 against exact search, the median single-query latency and the QPS with one
//! and with two threads. `--curve-out` writes them as CSV for
//! `scripts/plot_index_curve.py`.

mod churn;
mod hnswlib;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quiver_tenant_server::store::distance::search_form;
use quiver_tenant_server::store::index::{Arena, Hnsw, Params, Traversal};
use quiver_tenant_server::store::types::Space;
use quiver_testkit::vectors::{recall, Mixture};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::server::read_rss;
use crate::stats::percentiles_ms;
use crate::truth::exact_in;

/// Neighbours asked for per query.
pub const K: usize = 10;

/// What one run measures.
#[derive(Debug, Clone)]
pub struct IndexRun {
    pub n: usize,
    pub dim: usize,
    pub clusters: usize,
    pub sigma: f32,
    pub seed: u64,
    pub queries: usize,
    pub space: Space,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_sweep: Vec<usize>,
    /// A Python with hnswlib and numpy importable (the reference is skipped without it).
    pub hnswlib_python: Option<PathBuf>,
    pub curve_out: Option<PathBuf>,
    /// Also run the store-level churn measurement ([`churn`]) at this ef_search.
    pub churn_ef_search: Option<usize>,
}

/// Build figures of one library.
#[derive(Debug, Clone, Default)]
pub struct Build {
    pub secs: f64,
    /// Bytes of vectors plus links the library holds, as it reports them.
    pub index_bytes: Option<usize>,
    /// Resident-set growth of the process over the build.
    pub rss_growth: Option<usize>,
}

/// One point of the recall/QPS curve.
#[derive(Debug, Clone)]
pub struct CurvePoint {
    pub ef: usize,
    pub recall: f64,
    pub p50_us: f64,
    pub qps1: f64,
    pub qps2: f64,
    /// Queries that found fewer than half of their true neighbours (on clustered data,
    /// usually a search that never reached the query's cluster).
    pub lost: usize,
}

/// Timed passes over the queries per ef; the best is kept, as the machine is shared.
pub const PASSES: usize = 3;

/// One library's figures.
#[derive(Debug, Clone)]
pub struct Side {
    pub name: &'static str,
    pub build: Build,
    pub curve: Vec<CurvePoint>,
}

/// The data set: points and queries as drawn (the libraries normalise for cosine
/// themselves), and the exact top-K of every query.
pub struct DataSet {
    pub dim: usize,
    pub points: Vec<f32>,
    pub queries: Vec<f32>,
    pub truth: Vec<Vec<u32>>,
}

impl DataSet {
    pub fn draw(run: &IndexRun) -> Result<DataSet> {
        let mut rng = StdRng::seed_from_u64(run.seed);
        let mixture = Mixture::new(run.dim, run.clusters, run.sigma, &mut rng)?;
        let points = mixture.sample(run.n, &mut rng);
        let queries = mixture.sample(run.queries, &mut rng);
        let dim = run.dim;
        let truth = exact_in(run.space, &points, dim, None, &queries, K);
        Ok(DataSet {
            dim,
            points,
            queries,
            truth,
        })
    }

    fn query(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }

    fn query_count(&self) -> usize {
        self.queries.len() / self.dim
    }

    /// Mean recall@K of `ids` (K labels per query), and the queries that found fewer
    /// than half of their neighbours.
    pub fn score(&self, ids: &[Vec<u32>]) -> (f64, usize) {
        let each: Vec<f64> = ids
            .iter()
            .zip(&self.truth)
            .map(|(got, want)| recall(got, want))
            .collect();
        let lost = each.iter().filter(|&&r| r < 0.5).count();
        (
            each.iter().sum::<f64>() / self.truth.len().max(1) as f64,
            lost,
        )
    }
}

/// Runs the comparison and prints it.
pub fn run(run: &IndexRun) -> Result<()> {
    if run.ef_sweep.is_empty() {
        bail!("--ef-sweep needs at least one value");
    }
    println!(
        "index bench: {} x {} {}, {} clusters, sigma {}, M {}, ef_construction {}, {} queries, k {K}, {} cores",
        run.n,
        run.dim,
        run.space.as_str(),
        run.clusters,
        run.sigma,
        run.m,
        run.ef_construction,
        run.queries,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let t = Instant::now();
    let data = DataSet::draw(run)?;
    println!(
        "data and exact ground truth: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut sides = vec![quiver(run, &data)];
    match &run.hnswlib_python {
        Some(python) => {
            sides.push(hnswlib::run(python, run, &data).context("the hnswlib reference failed")?)
        }
        None => println!("hnswlib reference skipped: no --hnswlib-python"),
    }
    print_table(run, &sides);
    if let Some(path) = &run.curve_out {
        std::fs::write(path, curve_csv(run, &sides))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("curve written to {}", path.display());
    }
    if let Some(ef) = run.churn_ef_search {
        churn::run(run, ef)?;
    }
    Ok(())
}

/// Builds our graph over the data and sweeps ef_search.
fn quiver(run: &IndexRun, data: &DataSet) -> Side {
    let dim = data.dim;
    let rss_before = own_rss();
    let t = Instant::now();
    let arena = Arc::new(Arena::new(dim));
    for (i, v) in data.points.chunks_exact(dim).enumerate() {
        arena.push(i as u32, &search_form(run.space, v));
    }
    let graph = Hnsw::new(
        Params::new(run.space, run.m, run.ef_construction),
        arena.clone(),
    );
    let nodes: Vec<u32> = (0..arena.len()).collect();
    graph.insert_batch(&nodes);
    graph.link_unreachable();
    let secs = t.elapsed().as_secs_f64();
    let build = Build {
        secs,
        index_bytes: Some(arena.vector_bytes() + graph.allocated_bytes()),
        rss_growth: own_rss()
            .zip(rss_before)
            .map(|(after, before)| after.saturating_sub(before)),
    };
    println!(
        "Quiver   build {:.2} s ({:.0} vec/s), vectors {:.1} MiB + links {:.1} MiB",
        secs,
        run.n as f64 / secs,
        mib(arena.vector_bytes()),
        mib(graph.allocated_bytes()),
    );

    let queries: Vec<Vec<f32>> = (0..data.query_count())
        .map(|i| search_form(run.space, data.query(i)))
        .collect();
    let search = |q: &[f32], ef: usize| -> Vec<u32> {
        graph
            .search(q, K, ef, |_| true, Traversal::Dense)
            .into_iter()
            .map(|n| arena.label(n.node))
            .collect()
    };
    let mut curve = Vec::new();
    for &ef in &run.ef_sweep {
        // warm the caches and the visited pool before timing
        for q in queries.iter().take(100) {
            search(q, ef);
        }
        let (mut qps1, mut p50_us, mut qps2) = (0.0f64, f64::INFINITY, 0.0f64);
        let mut ids = Vec::new();
        for _ in 0..PASSES {
            let mut latencies = Vec::with_capacity(queries.len());
            ids = Vec::with_capacity(queries.len());
            let t = Instant::now();
            for q in &queries {
                let s = Instant::now();
                ids.push(search(q, ef));
                latencies.push(s.elapsed());
            }
            qps1 = qps1.max(queries.len() as f64 / t.elapsed().as_secs_f64());
            p50_us = p50_us.min(median_us(&latencies));
            qps2 = qps2.max(two_threads(&queries, |q| {
                search(q, ef);
            }));
        }
        let (recall, lost) = data.score(&ids);
        curve.push(CurvePoint {
            ef,
            recall,
            p50_us,
            qps1,
            qps2,
            lost,
        });
    }
    Side {
        name: "Quiver",
        build,
        curve,
    }
}

/// Queries per second with the queries split between two threads.
fn two_threads(queries: &[Vec<f32>], search: impl Fn(&[f32]) + Sync) -> f64 {
    let half = queries.len().div_ceil(2).max(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in queries.chunks(half) {
            let search = &search;
            s.spawn(move || chunk.iter().for_each(|q| search(q)));
        }
    });
    queries.len() as f64 / t.elapsed().as_secs_f64()
}

fn median_us(latencies: &[Duration]) -> f64 {
    percentiles_ms(latencies, &[50.0])
        .first()
        .map_or(0.0, |ms| ms * 1000.0)
}

fn own_rss() -> Option<usize> {
    read_rss(std::process::id()).map(|r| r.rss_kib as usize * 1024)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// A column of the curve table: its figure, and whether a ratio follows it.
type Column = (fn(&CurvePoint) -> f64, bool);

fn print_table(run: &IndexRun, sides: &[Side]) {
    println!();
    for s in sides {
        let b = &s.build;
        println!(
            "{:<8} build {:>7.2} s {:>8.0} vec/s   index {:>8} MiB   RSS growth {:>8} MiB",
            s.name,
            b.secs,
            run.n as f64 / b.secs,
            b.index_bytes
                .map_or("-".into(), |v| format!("{:.1}", mib(v))),
            b.rss_growth
                .map_or("-".into(), |v| format!("{:.1}", mib(v))),
        );
    }
    println!();
    let names: Vec<&str> = sides.iter().map(|s| s.name).collect();
    let mut header = format!("{:>5}", "ef");
    for col in ["recall", "lost", "p50 us", "QPS 1t", "QPS 2t"] {
        for n in &names {
            header.push_str(&format!(" {:>15}", format!("{col} {n}")));
        }
        if sides.len() == 2 && col != "recall" && col != "lost" {
            header.push_str(&format!(" {:>7}", "ratio"));
        }
    }
    println!("{header}");
    for (i, &ef) in run.ef_sweep.iter().enumerate() {
        let points: Vec<&CurvePoint> = sides.iter().filter_map(|s| s.curve.get(i)).collect();
        let mut line = format!("{ef:>5}");
        let cols: [Column; 5] = [
            (|p| p.recall, false),
            (|p| p.lost as f64, false),
            (|p| p.p50_us, true),
            (|p| p.qps1, true),
            (|p| p.qps2, true),
        ];
        for (get, with_ratio) in cols {
            for p in &points {
                line.push_str(&format!(" {:>15.3}", get(p)));
            }
            if let ([a, b], true) = (points.as_slice(), with_ratio) {
                line.push_str(&format!(" {:>7}", ratio(get(a), get(b))));
            }
        }
        println!("{line}");
    }
}

fn curve_csv(run: &IndexRun, sides: &[Side]) -> String {
    let mut out =
        String::from("library,space,n,dim,m,ef_construction,ef,recall,lost,p50_us,qps1,qps2\n");
    for s in sides {
        for p in &s.curve {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{:.4},{},{:.2},{:.1},{:.1}\n",
                s.name,
                run.space.as_str(),
                run.n,
                run.dim,
                run.m,
                run.ef_construction,
                p.ef,
                p.recall,
                p.lost,
                p.p50_us,
                p.qps1,
                p.qps2
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(space: Space) -> IndexRun {
        IndexRun {
            n: 600,
            dim: 16,
            clusters: 4,
            sigma: 0.3,
            seed: 3,
            queries: 20,
            space,
            m: 8,
            ef_construction: 50,
            ef_sweep: vec![10, 50],
            hnswlib_python: None,
            curve_out: None,
            churn_ef_search: None,
        }
    }

    #[test]
    fn the_graph_finds_the_exact_neighbours_of_a_small_set() {
        for space in [Space::L2, Space::Cosine, Space::Ip] {
            let run = tiny(space);
            let data = DataSet::draw(&run).unwrap();
            assert_eq!(data.truth.len(), 20);
            let side = quiver(&run, &data);
            assert_eq!(side.curve.len(), 2);
            let best = side.curve.iter().map(|p| p.recall).fold(0.0, f64::max);
            assert!(best >= 0.95, "{space:?}: recall {best}");
            let csv = curve_csv(&run, &[side]);
            assert_eq!(csv.lines().count(), 3, "{csv}");
        }
    }
}
