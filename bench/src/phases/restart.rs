//! Cold open: each spawned server is stopped (SIGTERM) and started again on the same data,
//! and the first queries after its heartbeat answers are timed one by one. The first
//! query pays for opening the project and loading the collection; the ones after show how
//! soon the server is back at full speed. Servers the bench only reaches are skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::query::{judge, outcome};
use crate::backend::{Backend, CollRef, Query};
use crate::session::Bench;
use crate::stats::PhaseResult;
use crate::workload::K;

/// Queries timed after the first one.
const AFTER_FIRST: usize = 100;

pub async fn run<B: Backend>(
    bench: &mut Bench<B>,
    side: usize,
    coll: &CollRef,
    queries: &Arc<Vec<f32>>,
    truth: &[Vec<u32>],
) -> Result<()> {
    let name = bench.name(side);
    let Some(ready) = bench.restart(side).await? else {
        println!("# {name}: not spawned by the bench, no restart phase");
        return Ok(());
    };
    let dim = bench.args.dim;
    let nq = (queries.len() / dim).min(AFTER_FIRST + 1);
    let backend = bench.sides[side].backend.clone();
    let mut outcomes = Vec::with_capacity(nq);
    let mut latencies: Vec<Duration> = Vec::with_capacity(nq);
    let started = Instant::now();
    for qi in 0..nq {
        let query = Query {
            vector: &queries[qi * dim..(qi + 1) * dim],
            k: K,
            filter: None,
            metadatas: false,
        };
        let t = Instant::now();
        let answer = backend
            .query(coll, query)
            .await
            .with_context(|| format!("{name}: query {qi} after the restart"))?;
        latencies.push(t.elapsed());
        outcomes.push(outcome(qi, &answer, None)?);
    }
    let wall = started.elapsed();
    let (first, rest) = latencies.split_first().context("no query was run")?;
    let (first_recall, _) = judge(&outcomes[..1], truth);
    bench.emit(
        side,
        PhaseResult::new("restart: first query", 1, *first, "q/s", &[*first])
            .with_recall(first_recall)
            .with_note(format!(
                "ready {:.0} ms after the restart",
                ready.as_secs_f64() * 1000.0
            )),
    );
    let (rest_recall, note) = judge(&outcomes[1..], truth);
    bench.emit(
        side,
        PhaseResult::new(
            format!("restart: next {} queries", rest.len()),
            rest.len(),
            wall - *first,
            "q/s",
            rest,
        )
        .with_recall(rest_recall)
        .with_note(note),
    );
    Ok(())
}
