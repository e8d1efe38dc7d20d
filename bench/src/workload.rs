//! What the bench sends: the seeded data, queries and filters of each phase, their exact
//! answers, and the names of the collections and scopes it makes. Built once per run
//! from the flags, the same for every server under test, so that their figures compare.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::backend::Metadata;
use crate::data::Mixture;
use crate::truth::exact_in;
use crate::Args;

/// Neighbours asked for per query (recall@K).
pub const K: usize = 10;
/// Ids per get-by-ids request.
pub const GET_BATCH: usize = 10;
/// Collection names of the single-collection phases.
pub const COLL_A: &str = "bench-a";
pub const COLL_B: &str = "bench-b";
/// Collection name inside each scope of the many-scopes phase.
pub const PROJECT_COLL: &str = "docs";

/// The metadata of row `i`: `{"bucket": i % 100, "group": "g{i % 10}"}`, so that
/// `{"bucket": 7}` selects 1% of the records and `{"group": "g3"}` 10%.
pub fn metadata_for(i: usize) -> Metadata {
    let mut m = Metadata::new();
    m.insert("bucket".into(), json!(i % 100));
    m.insert("group".into(), json!(format!("g{}", i % 10)));
    m
}

/// The name of the many-scopes phase's scope number `p`.
pub fn project_name(prefix: &str, p: usize) -> String {
    format!("{prefix}-{p:06}")
}

/// Whether `name` is one of the bench's scope names for `prefix`.
pub fn is_bench_project(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A metadata filter of the query phases with the predicate it stands for.
pub struct FilterCase {
    /// The phase label (`query`, `query 10% group=g3`, ...).
    pub label: &'static str,
    pub filter: Option<Value>,
    /// The metadata key the filter tests, and the value a matching row `i` has there.
    pub key: &'static str,
    pub matches: fn(usize) -> bool,
    pub value: fn(usize) -> Value,
}

/// Data, queries, filters and exact ground truth of the single-collection phases.
pub struct Workload {
    pub data: Arc<Vec<f32>>,
    pub queries: Arc<Vec<f32>>,
    pub cases: [FilterCase; 3],
    /// Exact top-K of each query, one list per case.
    pub truths: Vec<Arc<Vec<Vec<u32>>>>,
}

/// Generates the seeded data and queries and computes the exact answers, printing how
/// long it took.
pub fn prepare_workload(args: &Args) -> Result<Workload> {
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
        "# generated {n} vectors + {} queries of dim {dim} ({} clusters, sigma {}) in {:.2} s",
        args.queries,
        args.clusters,
        args.sigma,
        t.elapsed().as_secs_f64()
    );
    let cases = [
        FilterCase {
            label: "query",
            filter: None,
            key: "",
            matches: |_| true,
            value: |_| Value::Null,
        },
        FilterCase {
            label: "query 10% group=g3",
            filter: Some(json!({"group": "g3"})),
            key: "group",
            matches: |i| i % 10 == 3,
            value: |_| json!("g3"),
        },
        FilterCase {
            label: "query 1% bucket=7",
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
            Arc::new(exact_in(
                args.space,
                &data,
                dim,
                cands.as_deref(),
                &queries,
                K,
            ))
        })
        .collect();
    println!(
        "# exact ground truth for {} x 3 queries in {:.2} s",
        args.queries,
        t.elapsed().as_secs_f64()
    );
    Ok(Workload {
        data,
        queries,
        cases,
        truths,
    })
}

/// Ids of the get-by-ids phase: `get_ops` batches of 10 distinct random rows.
pub fn get_id_batches(args: &Args) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(args.seed.wrapping_add(2));
    (0..args.get_ops)
        .map(|_| rand::seq::index::sample(&mut rng, args.n, GET_BATCH).into_vec())
        .collect()
}

/// Data and queries of the many-scopes phase: `count` collections of `--project-records`
/// rows each, and `--project-queries` queries to random ones with their exact answers.
pub struct TenantWorkload {
    /// `count * records * dim` floats, collection by collection.
    pub data: Arc<Vec<f32>>,
    /// Query vectors.
    pub qvecs: Arc<Vec<f32>>,
    /// The collection each query goes to.
    pub targets: Vec<usize>,
    /// Exact top-10 of each query within its collection.
    pub truth: Vec<Vec<u32>>,
}

pub fn tenant_workload(a: &Args, count: usize) -> Result<TenantWorkload> {
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
            exact_in(
                a.space,
                rows,
                dim,
                None,
                &qvecs[qi * dim..(qi + 1) * dim],
                K,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_selects_fractions() {
        assert_eq!(metadata_for(107)["bucket"], json!(7));
        assert_eq!(metadata_for(13)["group"], json!("g3"));
    }

    #[test]
    fn bench_project_names() {
        assert_eq!(project_name("qbench", 12), "qbench-000012");
        assert!(is_bench_project("qbench", "qbench-000012"));
        assert!(!is_bench_project("qbench", "qbench-12"));
        assert!(!is_bench_project("qbench", "qbenchx-000012"));
    }
}
