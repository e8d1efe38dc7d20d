//! Queries: latency and throughput of k-NN queries with 1 and N clients, unfiltered and
//! with the metadata filters of the workload, each judged against the exact answers:
//! mean recall@10, plus warnings for short answers, results that violate the filter, and
//! distances that are missing or not ascending.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::Value;

use super::plural;
use crate::backend::{Backend, CollRef, Query, QueryAnswer};
use crate::data::recall;
use crate::session::Bench;
use crate::stats::PhaseResult;
use crate::workers::{self, round_robin};
use crate::workload::{FilterCase, K};

/// One answered query, as a worker returns it.
pub struct Outcome {
    /// Which query.
    pub qi: usize,
    /// Result ids, nearest first.
    pub ids: Vec<u32>,
    /// Results whose metadata does not match the filter.
    pub violations: usize,
    /// Whether there is one ascending distance per id.
    pub sorted: bool,
}

/// The filter check of a case: the metadata key and the value row `i` has there.
pub type Check = Option<(&'static str, fn(usize) -> Value)>;

/// Judges one answer to query `qi`.
pub fn outcome(qi: usize, answer: &QueryAnswer, check: Check) -> Result<Outcome> {
    let ids = parse_ids(&answer.ids)?;
    let sorted = answer
        .distances
        .as_ref()
        .is_some_and(|d| ascending(d, ids.len()));
    let mut violations = 0;
    if let Some((key, value)) = check {
        let metas = answer.metadatas.as_ref();
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
    Ok(Outcome {
        qi,
        ids,
        violations,
        sorted,
    })
}

/// Runs every query of `queries` with `case`'s filter against `coll` on side `side`, with
/// `clients` clients, and emits the phase.
pub async fn run<B: Backend>(
    bench: &mut Bench<B>,
    side: usize,
    coll: &CollRef,
    case: &FilterCase,
    clients: usize,
    queries: &Arc<Vec<f32>>,
    truth: &[Vec<u32>],
) -> Result<()> {
    let dim = bench.args.dim;
    let nq = queries.len() / dim;
    let label = format!("{} ({clients} client{})", case.label, plural(clients));
    let check: Check = case.filter.as_ref().map(|_| (case.key, case.value));
    let (queries, filter, coll) = (queries.clone(), case.filter.clone(), coll.clone());
    let out = workers::run(
        bench.clients(side, clients)?,
        round_robin(0..nq, clients),
        move |b: B, qi: usize| {
            let (queries, filter, coll) = (queries.clone(), filter.clone(), coll.clone());
            async move {
                let query = Query {
                    vector: &queries[qi * dim..(qi + 1) * dim],
                    k: K,
                    filter: filter.as_ref(),
                    metadatas: true,
                };
                let answer = b.query(&coll, query).await?;
                outcome(qi, &answer, check)
            }
        },
    )
    .await
    .with_context(|| format!("{}: {label}", bench.name(side)))?;
    let (rec, note) = judge(&out.results, truth);
    bench.emit(
        side,
        PhaseResult::new(label, nq, out.wall, "q/s", &out.latencies)
            .with_recall(rec)
            .with_note(note),
    );
    Ok(())
}

/// Mean recall of the outcomes, and a note on short results, filter violations and
/// unsorted distances.
pub fn judge(results: &[Outcome], truth: &[Vec<u32>]) -> (f64, String) {
    let mut sum = 0.0;
    let (mut short, mut violations, mut unsorted) = (0, 0, 0);
    for o in results {
        let t = &truth[o.qi];
        sum += recall(&o.ids, t);
        if o.ids.len() < t.len() {
            short += 1;
        }
        violations += o.violations;
        unsorted += usize::from(!o.sorted);
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
    if unsorted > 0 {
        notes.push(format!(
            "WARNING: {unsorted} queries without one ascending distance per id"
        ));
    }
    (mean, notes.join("; "))
}

/// Whether `d` holds `n` distances in ascending order.
fn ascending(d: &[Option<f64>], n: usize) -> bool {
    d.len() == n && d.iter().all(Option::is_some) && d.windows(2).all(|w| w[0] <= w[1])
}

/// The bench's ids are row numbers.
pub fn parse_ids(ids: &[String]) -> Result<Vec<u32>> {
    ids.iter()
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("unexpected id {s:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_distances() {
        assert!(ascending(&[Some(1.0), Some(1.0), Some(2.5)], 3));
        assert!(!ascending(&[Some(2.0), Some(1.0)], 2));
        assert!(!ascending(&[Some(1.0), None], 2));
        assert!(!ascending(&[Some(1.0)], 2));
    }
}
