//! Lookups: get by ids (10 random ids a request, each of which must come back once with
//! its own metadata) and count (which must be the number of records), at 1 and N
//! clients.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use super::plural;
use super::query::parse_ids;
use crate::backend::{Backend, CollRef};
use crate::session::Bench;
use crate::stats::PhaseResult;
use crate::workers::{self, round_robin, RunOutput};

/// One get per batch of `id_batches` against `coll` on side `side`, with `clients`
/// clients.
pub async fn get<B: Backend>(
    bench: &mut Bench<B>,
    side: usize,
    coll: &CollRef,
    clients: usize,
    id_batches: &Arc<Vec<Vec<usize>>>,
) -> Result<()> {
    let label = format!("get 10 ids ({clients} client{})", plural(clients));
    let coll = coll.clone();
    let out = workers::run(
        bench.clients(side, clients)?,
        round_robin(id_batches.iter().cloned(), clients),
        move |b: B, ids: Vec<usize>| {
            let coll = coll.clone();
            async move {
                let res = b
                    .get(&coll, ids.iter().map(usize::to_string).collect())
                    .await?;
                // Each asked id must come back once, with its own metadata.
                let got = parse_ids(&res.ids)?;
                let mut bad = usize::from(got.len() != ids.len());
                for (j, id) in got.iter().enumerate() {
                    let bucket = res
                        .metadatas
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
    .with_context(|| format!("{}: {label}", bench.name(side)))?;
    let bad: usize = out.results.iter().sum();
    let warning = (bad > 0).then(|| format!("WARNING: {bad} wrong or missing records"));
    emit(bench, side, label, &out, warning);
    Ok(())
}

/// `--get-ops` counts of `coll` on side `side`, with `clients` clients; each must be
/// `expected`.
pub async fn count<B: Backend>(
    bench: &mut Bench<B>,
    side: usize,
    coll: &CollRef,
    clients: usize,
    expected: u64,
) -> Result<()> {
    let label = format!("count ({clients} client{})", plural(clients));
    let coll = coll.clone();
    let out = workers::run(
        bench.clients(side, clients)?,
        round_robin(0..bench.args.get_ops, clients),
        move |b: B, _| {
            let coll = coll.clone();
            async move { b.count(&coll).await }
        },
    )
    .await
    .with_context(|| format!("{}: {label}", bench.name(side)))?;
    let wrong = out.results.iter().filter(|&&c| c != expected).count();
    let warning = (wrong > 0).then(|| format!("WARNING: {wrong} counts differ from {expected}"));
    emit(bench, side, label, &out, warning);
    Ok(())
}

/// Emits a lookup phase: one op a request, with the warning as its note.
fn emit<B: Backend, R>(
    bench: &mut Bench<B>,
    side: usize,
    label: String,
    out: &RunOutput<R>,
    warning: Option<String>,
) {
    let ops = out.latencies.len();
    let r = PhaseResult::new(label, ops, out.wall, "ops/s", &out.latencies);
    bench.emit(side, r.with_note(warning.unwrap_or_default()));
}
