//! Concurrent clients: the one loop every phase runs its requests through. Each worker is
//! a task with its own client (its own connections) that works through its list of items
//! one after the other, timing each call; the run's wall time covers all of them.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Per-request latencies and results of a run, with its wall time.
pub struct RunOutput<R> {
    pub wall: Duration,
    pub latencies: Vec<Duration>,
    pub results: Vec<R>,
}

/// Runs one task per element of `work`, with the client of the same position, calling
/// `f` on its items one after the other and timing each call.
pub async fn run<C, T, R, F, Fut>(clients: Vec<C>, work: Vec<Vec<T>>, f: F) -> Result<RunOutput<R>>
where
    C: Clone + Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(C, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    anyhow::ensure!(clients.len() == work.len(), "one client per worker");
    let f = Arc::new(f);
    let total: usize = work.iter().map(Vec::len).sum();
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for (client, items) in clients.into_iter().zip(work) {
        let f = f.clone();
        set.spawn(async move {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let t = Instant::now();
                let r = f(client.clone(), item).await?;
                out.push((t.elapsed(), r));
            }
            anyhow::Ok(out)
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut results = Vec::with_capacity(total);
    while let Some(joined) = set.join_next().await {
        for (d, r) in joined.context("worker task failed")?? {
            latencies.push(d);
            results.push(r);
        }
    }
    Ok(RunOutput {
        wall: start.elapsed(),
        latencies,
        results,
    })
}

/// Deals `items` to `workers` lists round-robin.
pub fn round_robin<T>(items: impl IntoIterator<Item = T>, workers: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        out[i % workers].push(item);
    }
    out
}

/// Batches of at most `batch` indices covering `range`.
pub fn batches(range: Range<usize>, batch: usize) -> Vec<Range<usize>> {
    range
        .clone()
        .step_by(batch)
        .map(|s| s..(s + batch).min(range.end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batching_and_dealing() {
        assert_eq!(batches(0..25, 10), vec![0..10, 10..20, 20..25]);
        assert_eq!(batches(5..5, 10), Vec::<Range<usize>>::new());
        assert_eq!(round_robin(0..5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
    }
}
