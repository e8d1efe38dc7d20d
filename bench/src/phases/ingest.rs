//! Ingest: rows added in batches by one or several clients (the acknowledged rate), then
//! the wait until the server has indexed them all, reported as a second rate, records
//! over ingest plus wait. A server without indexing status (the real Chroma indexes each
//! add before it answers) has no wait: its second rate is its acknowledged rate. Either
//! way the count must then be the number of rows added.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::backend::{Backend, CollRef, Rows};
use crate::session::Bench;
use crate::stats::PhaseResult;
use crate::workers;

/// Adds `work` (batches of row ranges, one list per client) to `coll` on side `side`,
/// then waits until it is fully indexed; emits both.
pub async fn run<B: Backend>(
    bench: &mut Bench<B>,
    side: usize,
    coll: &CollRef,
    label: &str,
    work: Vec<Vec<Range<usize>>>,
    data: &Arc<Vec<f32>>,
) -> Result<()> {
    let dim = bench.args.dim;
    let name = bench.name(side);
    let expected: usize = work.iter().flatten().map(ExactSizeIterator::len).sum();
    let out = {
        let (data, coll) = (data.clone(), coll.clone());
        workers::run(
            bench.clients(side, work.len())?,
            work,
            move |b: B, rows: Range<usize>| {
                let (data, coll) = (data.clone(), coll.clone());
                async move {
                    let rows = Rows {
                        data: &data,
                        dim,
                        range: rows,
                    };
                    b.add(&coll, rows).await
                }
            },
        )
        .await
        .with_context(|| format!("{name}: {label}: add"))?
    };
    let added: Option<u64> = out.results.iter().copied().sum();
    let note = match added {
        Some(added) if added as usize != expected => {
            format!("WARNING: server added {added} of {expected}")
        }
        _ => "acknowledged".to_owned(),
    };
    bench.emit(
        side,
        PhaseResult::new(label, expected, out.wall, "vec/s", &out.latencies).with_note(note),
    );

    let b = &bench.sides[side].backend;
    let timeout = Duration::from_secs(bench.args.index_timeout_secs);
    let status = b.wait_indexed(coll, timeout).await?;
    let count = b
        .count(coll)
        .await
        .with_context(|| format!("{name}: count after ingest"))?;
    let (wait, mut note) = match status {
        Some(ix) => {
            let indexed = ix
                .indexed
                .map_or_else(|| "n/a (not loaded)".to_owned(), |i| i.to_string());
            let mut note = format!(
                "index wait; rate = n/(ingest + index wait); count {count}, indexed {indexed}"
            );
            if !ix.done {
                note = format!("TIMEOUT: {} still unindexed; {note}", ix.unindexed);
            }
            if ix.dimension != Some(dim) {
                note.push_str(&format!(
                    "; WARNING: dimension {:?}, expected {dim}",
                    ix.dimension
                ));
            }
            (ix.wait, note)
        }
        None => (
            Duration::ZERO,
            "no indexing status: acknowledged rate (adds are indexed before they are acknowledged)"
                .to_owned(),
        ),
    };
    if count as usize != expected {
        note.push_str(&format!("; WARNING: count {count}, expected {expected}"));
    }
    let mut r = PhaseResult::new(
        format!("  + until indexed ({})", coll.name),
        expected,
        wait,
        "vec/s",
        &[],
    );
    r.rate = expected as f64 / (out.wall + wait).as_secs_f64();
    bench.emit(side, r.with_note(note));
    Ok(())
}
