//! Many scopes: `count` projects (v1) or tenants (v2), each with one small collection,
//! created by several clients at once; then queries to random ones (with recall against
//! each one's exact answers), an optional idle period, and their removal, with the
//! server's RSS after each step. This is what a multi-tenant server is for: how fast it
//! takes on a new scope, what an open one costs, and how much it gives back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::query::{judge, outcome};
use crate::backend::{Backend, CollRef, Query, Rows};
use crate::session::Bench;
use crate::stats::PhaseResult;
use crate::workers::{self, round_robin};
use crate::workload::{project_name, tenant_workload, TenantWorkload, K, PROJECT_COLL};

pub async fn run<B: Backend>(bench: &mut Bench<B>, count: usize) -> Result<()> {
    let w = B::WORDS;
    let s = w.scope;
    let a = &bench.args;
    let (records, dim) = (a.project_records, a.project_dim);
    let prefix = a.project_prefix.clone();
    let (concurrency, query_clients) = (a.concurrency, a.query_clients);
    let t = Instant::now();
    let TenantWorkload {
        data,
        qvecs,
        targets,
        truth,
    } = tenant_workload(a, count)?;
    let nq = targets.len();
    println!();
    println!(
        "# many {s}s: {count} {s}s x 1 collection x {records} records of dim {dim}, \
         {concurrency} creating clients, {nq} queries to random {s}s (data + truth in {:.2} s)",
        t.elapsed().as_secs_f64()
    );
    let sides = bench.sides.len();
    for side in 0..sides {
        let b = &bench.sides[side].backend;
        let stale = b.stale_scopes(&prefix).await?;
        if !stale.is_empty() {
            println!(
                "# {}: removing {} {s}s left by an earlier run",
                bench.name(side),
                stale.len()
            );
            for name in &stale {
                b.remove_scope(name, PROJECT_COLL).await?;
            }
        }
    }
    bench.report.print_header();

    // Create the scopes, each with one collection and its records.
    let label = format!("create {s}s ({concurrency} clients)");
    let hnsw = bench.hnsw;
    let mut colls: Vec<Arc<Vec<CollRef>>> = Vec::new();
    for side in 0..sides {
        let (data, prefix) = (data.clone(), prefix.clone());
        let out = workers::run(
            bench.clients(side, concurrency)?,
            round_robin(0..count, concurrency),
            move |b: B, p: usize| {
                let (data, name) = (data.clone(), project_name(&prefix, p));
                async move {
                    b.prepare_scope(&name).await?;
                    let coll = b.create_collection(&name, PROJECT_COLL, &hnsw).await?.coll;
                    let rows = Rows {
                        data: &data[p * records * dim..(p + 1) * records * dim],
                        dim,
                        range: 0..records,
                    };
                    let added = b.add(&coll, rows).await?;
                    anyhow::Ok((p, coll, added))
                }
            },
        )
        .await
        .with_context(|| format!("{}: creating {s}s", bench.name(side)))?;
        let added: Option<u64> = out.results.iter().map(|(_, _, a)| *a).sum();
        let note = match added {
            Some(added) if added as usize != count * records => {
                format!("WARNING: server added {added} of {}", count * records)
            }
            _ => format!("{} + add {records} records each", w.creation),
        };
        let mut by_scope: Vec<Option<CollRef>> = vec![None; count];
        for (p, coll, _) in out.results {
            by_scope[p] = Some(coll);
        }
        colls.push(Arc::new(by_scope.into_iter().flatten().collect()));
        bench.emit(
            side,
            PhaseResult::new(&label, count, out.wall, w.unit, &out.latencies).with_note(note),
        );
    }
    bench.report.record_rss(&format!("after {s} creation"));
    for side in 0..sides {
        if let Some(line) = bench.sides[side].backend.describe_scopes(&prefix).await? {
            println!("# {} {line}", bench.name(side));
        }
    }

    // Queries to random scopes.
    let label = format!("query random {s} ({query_clients} clients)");
    for (side, colls) in colls.iter().enumerate() {
        let (qvecs, colls) = (qvecs.clone(), colls.clone());
        let jobs: Vec<(usize, usize)> = targets.iter().copied().enumerate().collect();
        let out = workers::run(
            bench.clients(side, query_clients)?,
            round_robin(jobs, query_clients),
            move |b: B, (qi, p): (usize, usize)| {
                let (qvecs, colls) = (qvecs.clone(), colls.clone());
                async move {
                    let query = Query {
                        vector: &qvecs[qi * dim..(qi + 1) * dim],
                        k: K,
                        filter: None,
                        metadatas: false,
                    };
                    let answer = b.query(&colls[p], query).await?;
                    outcome(qi, &answer, None)
                }
            },
        )
        .await
        .with_context(|| format!("{}: querying {s}s", bench.name(side)))?;
        let (rec, note) = judge(&out.results, &truth);
        bench.emit(
            side,
            PhaseResult::new(&label, nq, out.wall, "q/s", &out.latencies)
                .with_recall(rec)
                .with_note(note),
        );
    }
    bench.report.record_rss(&format!("after {s} queries"));

    if bench.args.idle_secs > 0 {
        println!("# idle for {} s", bench.args.idle_secs);
        tokio::time::sleep(Duration::from_secs(bench.args.idle_secs)).await;
        let label = format!("after {} s idle", bench.args.idle_secs);
        bench.report.record_rss(&label);
    }

    if !bench.args.keep {
        let label = format!("{} ({concurrency} clients)", w.removal);
        for side in 0..sides {
            let prefix = prefix.clone();
            let out = workers::run(
                bench.clients(side, concurrency)?,
                round_robin(0..count, concurrency),
                move |b: B, p: usize| {
                    let name = project_name(&prefix, p);
                    async move { b.remove_scope(&name, PROJECT_COLL).await }
                },
            )
            .await
            .with_context(|| format!("{}: {label}", bench.name(side)))?;
            bench.emit(
                side,
                PhaseResult::new(&label, count, out.wall, w.unit, &out.latencies),
            );
        }
        bench.report.record_rss(&format!("after {}", w.removed));
    }
    Ok(())
}
