//! Moving one project between two local shards while a client keeps writing to it
//! through the router: how long the move takes, how long the project's writes wait, and
//! what the client sees (errors, slowest write). The move is the operator's own code
//! (`quiver_operator::moves::move_project`), publishing through a placement file that
//! the router watches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quiver_client::{AddRequest, QueryRequest, QuiverClient};
use quiver_operator::moves::{finish_switched, move_project, MoveConfig, MoveContext};
use quiver_operator::placement_store::{FileStore, PlacementStore};
use quiver_placement::{home_ordinal, PlacementTable};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{create_fresh, ingest};
use crate::backend::V1;
use crate::server::SpawnedServer;
use crate::session::Bench;
use crate::stats::percentiles_ms;
use crate::workers::batches;
use crate::workload::{prepare_workload, COLL_A};

/// Records per write of the live writer.
const LIVE_BATCH: usize = 10;

/// Spawns the destination shard and a router over a placement file, fills the
/// collection on the source (side 0), then moves the project while a client writes
/// through the router, and prints what the move cost.
pub async fn run(bench: &mut Bench<V1>) -> Result<()> {
    let (Some(server_bin), Some(router_bin)) =
        (bench.args.spawn.clone(), bench.args.spawn_router.clone())
    else {
        bail!("--mode move needs --spawn and --spawn-router");
    };
    let project = bench.args.project.clone();
    let source_url = bench.report.sides[0].url.clone();
    let mut dest = SpawnedServer::start(&server_bin, &bench.args.server_args)?;
    let dest_client = QuiverClient::with_timeout(dest.url(), Duration::from_secs(30))?;
    dest.wait_ready(&dest_client, Duration::from_secs(30))
        .await?;

    // the project's hash home among 2 shards is the source, the other ordinal the
    // destination
    let from = home_ordinal(&project, 2);
    let to = 1 - from;
    let mut shards = vec![String::new(), String::new()];
    shards[from as usize] = source_url.clone();
    shards[to as usize] = dest.url().to_owned();
    let dir = tempfile::Builder::new()
        .prefix("quiver-bench-move-")
        .tempdir()?;
    let placement = dir.path().join("placement.json");
    let store = FileStore::new(&placement);
    store
        .save(&PlacementTable::from_urls(1, shards)?, "")
        .await
        .context("writing the placement file")?;
    let mut router = SpawnedServer::start_router_args(
        &router_bin,
        &[
            "--placement-file".into(),
            placement.display().to_string(),
            "--retry-budget-ms".into(),
            "30000".into(),
        ],
    )?;
    let router_client = QuiverClient::with_timeout(router.url(), Duration::from_secs(60))?;
    router
        .wait_ready(&router_client, Duration::from_secs(30))
        .await?;
    println!(
        "# move: project {project} from shard {from} ({source_url}) to shard {to} ({})",
        dest.url()
    );

    let workload = prepare_workload(&bench.args)?;
    let coll = create_fresh(bench, 0, &project, &[COLL_A]).await?.remove(0);
    bench.report.print_header();
    let work = vec![batches(0..bench.args.n, bench.args.batch)];
    ingest::run(
        bench,
        0,
        &coll,
        "ingest (source shard)",
        work,
        &workload.data,
    )
    .await?;

    // a client writing through the router for the whole move
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, acked, errors) = (stop.clone(), acked.clone(), errors.clone());
        let (client, project, dim) = (router_client.clone(), project.clone(), bench.args.dim);
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(7);
            let mut latencies: Vec<(Instant, Duration)> = Vec::new();
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<String> = (0..LIVE_BATCH)
                    .map(|i| format!("live-{}", next + i as u64))
                    .collect();
                let embeddings: Vec<Vec<f32>> = (0..LIVE_BATCH)
                    .map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect())
                    .collect();
                let started = Instant::now();
                match client
                    .add(&project, COLL_A, &AddRequest::new(ids, embeddings))
                    .await
                {
                    Ok(_) => {
                        acked.fetch_add(LIVE_BATCH as u64, Ordering::Relaxed);
                        next += LIVE_BATCH as u64;
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("# live write failed: {e}");
                    }
                }
                latencies.push((started, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mctx = MoveContext::new(
        reqwest::Client::new(),
        None,
        MoveConfig {
            grace: Duration::ZERO,
            ..MoveConfig::default()
        },
        None,
    );
    let move_started = Instant::now();
    let report = move_project(&mctx, &store, &project, from, to)
        .await
        .context("moving the project")?;
    let move_ended = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let latencies = writer.await?;
    let (finished, _) = finish_switched(&mctx, &store, true).await?;

    let during: Vec<Duration> = latencies
        .iter()
        .filter(|(t, d)| *t + *d >= move_started && *t <= move_ended)
        .map(|(_, d)| *d)
        .collect();
    let all: Vec<Duration> = latencies.iter().map(|(_, d)| *d).collect();
    let slowest = all.iter().max().copied().unwrap_or_default();
    let p = percentiles_ms(&during, &[50.0, 99.0]);
    let expected = bench.args.n as u64 + acked.load(Ordering::Relaxed);
    let counted = router_client.count(&project, COLL_A).await?;
    let on_dest = dest_client.count(&project, COLL_A).await?;
    let probe = QueryRequest::new(vec![workload.queries[..bench.args.dim].to_vec()], 10);
    let answered = router_client
        .query(&project, COLL_A, &probe)
        .await
        .map(|r| r.ids.first().map_or(0, Vec::len))
        .unwrap_or(0);

    println!();
    println!(
        "move of {} records ({}-d) while writing through the router",
        bench.args.n, bench.args.dim
    );
    println!(
        "  move time (start to placement switch)   {:>10.3} s",
        report.duration.as_secs_f64()
    );
    println!(
        "  write pause (pause to switch)            {:>10.1} ms",
        report.write_pause.as_secs_f64() * 1e3
    );
    println!(
        "  batches shipped after the snapshot       {:>10}",
        report.batches_shipped
    );
    println!(
        "  live writes: {} acknowledged records, {} router-visible errors",
        acked.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "  write latency during the move: p50 {:.2} ms, p99 {:.2} ms, slowest overall {:.1} ms ({} writes)",
        p.first().copied().unwrap_or(f64::NAN),
        p.get(1).copied().unwrap_or(f64::NAN),
        slowest.as_secs_f64() * 1e3,
        during.len()
    );
    println!(
        "  after: router count {counted}, destination count {on_dest}, expected {expected}; \
         query through router returned {answered} ids; old copy removed: {}",
        finished.contains(&project)
    );
    if counted != expected || on_dest != expected {
        bail!("records lost or duplicated: router {counted}, destination {on_dest}, expected {expected}");
    }
    println!("# router {}", router.stop(Duration::from_secs(10)));
    println!("# destination {}", dest.stop(Duration::from_secs(10)));
    Ok(())
}
