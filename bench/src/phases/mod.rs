//! The benchmark's phases, each written once over [`Backend`] and run on every server
//! under test in turn (with `--compare`, each phase on Quiver and then the same phase,
//! with the same data and queries, on Chroma):
//!
//! - [`ingest`]: adds at 1 and N clients, then the wait until everything is indexed;
//! - [`query`]: query latency and throughput at 1 and N clients, unfiltered and
//!   filtered, with recall@10 against exact search;
//! - [`restart`]: each spawned server stopped and started again on its data, and its
//!   first queries timed (cold open);
//! - [`lookup`]: get by ids and count, at 1 and N clients;
//! - [`tenants`]: many small scopes (projects or tenants): create, query, remove;
//! - [`router`] and [`moves`]: the router-overhead and project-move modes, which need
//!   Quiver's own API and extra processes.
//!
//! This module holds the standard sequence and the collection set-up they share.

pub mod ingest;
pub mod lookup;
pub mod moves;
pub mod query;
pub mod restart;
pub mod router;
pub mod tenants;

use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::backend::{Backend, CollRef};
use crate::session::Bench;
use crate::workers::batches;
use crate::workload::{get_id_batches, prepare_workload, Workload, COLL_A, COLL_B};
use crate::Mode;

/// The single-collection phases (unless `--mode projects`), then the many-scopes phase
/// with `scopes` scopes (unless `--mode single` or none).
pub async fn standard<B: Backend>(bench: &mut Bench<B>, scopes: usize) -> Result<()> {
    if bench.args.mode != Mode::Projects {
        single_collection(bench).await?;
    }
    if bench.args.mode != Mode::Single && scopes > 0 {
        tenants::run(bench, scopes).await?;
    }
    Ok(())
}

/// Two collections of `--n` records of the scope `--project`: A ingested by one client,
/// B by several; then queries, get and count on A.
async fn single_collection<B: Backend>(bench: &mut Bench<B>) -> Result<()> {
    let n = bench.args.n;
    let Workload {
        data,
        queries,
        cases,
        truths,
    } = prepare_workload(&bench.args)?;

    let scope = bench.args.project.clone();
    // collections A and B of each side
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for side in 0..bench.sides.len() {
        let [ca, cb] = create_fresh(bench, side, &scope, &[COLL_A, COLL_B])
            .await?
            .try_into()
            .expect("two collections");
        a.push(ca);
        b.push(cb);
    }
    println!(
        "{}",
        bench.sides[0]
            .backend
            .describe_collections(&scope, &[COLL_A, COLL_B], &bench.hnsw)
    );
    bench.report.print_header();

    let single = vec![batches(0..n, bench.args.batch)];
    for (side, coll) in a.iter().enumerate() {
        let label = "ingest A (1 client)";
        ingest::run(bench, side, coll, label, single.clone(), &data).await?;
    }
    let c = bench.args.ingest_clients;
    let parts: Vec<Vec<Range<usize>>> = (0..c)
        .map(|w| batches(w * n / c..(w + 1) * n / c, bench.args.batch))
        .collect();
    let label = format!("ingest B ({c} client{})", plural(c));
    for (side, coll) in b.iter().enumerate() {
        ingest::run(bench, side, coll, &label, parts.clone(), &data).await?;
    }
    bench.report.record_rss("after ingest");

    let clients = [1, bench.args.query_clients];
    for (case, truth) in cases.iter().zip(&truths) {
        for clients in clients {
            for (side, coll) in a.iter().enumerate() {
                query::run(bench, side, coll, case, clients, &queries, truth).await?;
            }
        }
    }
    bench.report.record_rss("after queries");

    if let (Some(case), Some(truth)) = (cases.first(), truths.first()) {
        if case.filter.is_none() {
            for (side, coll) in a.iter().enumerate() {
                restart::run(bench, side, coll, &queries, truth).await?;
            }
            bench.report.record_rss("after the restart");
        }
    }

    let id_batches = Arc::new(get_id_batches(&bench.args));
    for clients in clients {
        for (side, coll) in a.iter().enumerate() {
            lookup::get(bench, side, coll, clients, &id_batches).await?;
        }
    }
    for clients in clients {
        for (side, coll) in a.iter().enumerate() {
            lookup::count(bench, side, coll, clients, n as u64).await?;
        }
    }

    if !bench.args.keep {
        for (side, pair) in a.iter().zip(&b).enumerate() {
            for coll in [pair.0, pair.1] {
                bench.sides[side]
                    .backend
                    .drop_collection(&coll.scope, &coll.name)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Makes `scope` on side `side` hold empty collections `names`, dropping any left by an
/// earlier run; prints what differs from what was asked for.
pub async fn create_fresh<B: Backend>(
    bench: &Bench<B>,
    side: usize,
    scope: &str,
    names: &[&str],
) -> Result<Vec<CollRef>> {
    let (b, name) = (&bench.sides[side].backend, bench.name(side));
    b.prepare_scope(scope)
        .await
        .with_context(|| format!("{name}: preparing {scope}"))?;
    let mut out = Vec::new();
    for coll in names {
        b.drop_collection(scope, coll)
            .await
            .with_context(|| name.to_owned())?;
        let created = b
            .create_collection(scope, coll, &bench.hnsw)
            .await
            .with_context(|| name.to_owned())?;
        for problem in &created.problems {
            println!("# WARNING: {name}: {problem}");
        }
        out.push(created.coll);
    }
    Ok(out)
}

/// `""` for one, `"s"` otherwise.
pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
