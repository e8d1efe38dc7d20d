//! Router overhead: one collection, then the same query and count load sent alternately
//! to the tenant server directly and through a `quiver-router` whose only shard is that
//! server. Rounds alternate so that drift (page cache, CPU frequency) hits both targets
//! alike; the summary reports medians and the router/direct ratios.

use std::time::Duration;

use anyhow::{Context, Result};
use quiver_client::QuiverClient;

use super::server::SpawnedServer;
use super::stats::PhaseResult;
use super::{
    batches, count_phase, ignore_not_found, ingest, l2_config, prepare_workload, query_phase, Ctx,
    Workload, COLL_A,
};

pub async fn overhead_phases(ctx: &mut Ctx) -> Result<()> {
    let direct = ctx.url.clone();
    let mut spawned = None;
    let router = match (&ctx.args.spawn_router, &ctx.args.router_url) {
        (Some(bin), _) => {
            let mut s = SpawnedServer::start_router(bin, &direct)?;
            let client = QuiverClient::with_timeout(s.url(), Duration::from_secs(10))?;
            let t = s.wait_ready(&client, Duration::from_secs(30)).await?;
            println!(
                "# spawned router pid {} at {}, ready in {:.2} s",
                s.pid(),
                s.url(),
                t.as_secs_f64()
            );
            let url = s.url().to_owned();
            spawned = Some(s);
            url
        }
        (None, Some(url)) => url.clone(),
        (None, None) => anyhow::bail!("--mode router needs --spawn-router or --router-url"),
    };

    let Workload {
        data,
        queries,
        cases,
        truths,
    } = prepare_workload(&ctx.args)?;
    let project = ctx.args.project.clone();
    ignore_not_found(ctx.client.delete_collection(&project, COLL_A).await)?;
    ctx.client
        .create_collection(&project, COLL_A, None, Some(l2_config(&ctx.args)), false)
        .await
        .with_context(|| format!("creating {project}/{COLL_A}"))?;
    println!("{}", PhaseResult::header());
    let work = vec![batches(0..ctx.args.n, ctx.args.batch)];
    ingest(ctx, COLL_A, "ingest (direct)", work, &data).await?;

    let router_pid = spawned.as_ref().map(|s| s.pid());
    let cpu_before = router_pid.and_then(cpu_seconds);
    let first = ctx.results.len();
    let unfiltered = &cases[0];
    for clients in [1, ctx.args.query_clients] {
        for round in 0..ctx.args.rounds {
            for (target, url) in [("direct", &direct), ("router", &router)] {
                ctx.url = url.clone();
                ctx.label_suffix = format!(" [{target} #{round}]");
                query_phase(ctx, unfiltered, clients, &queries, &truths[0]).await?;
                count_phase(ctx, clients).await?;
            }
        }
    }
    ctx.url = direct;
    ctx.label_suffix.clear();
    summarize(&ctx.results[first..]);
    if let (Some(pid), Some(before)) = (router_pid, cpu_before) {
        let routed: usize = ctx.results[first..]
            .iter()
            .filter(|r| r.phase.contains("[router "))
            .map(|r| r.ops)
            .sum();
        if let Some(after) = cpu_seconds(pid) {
            println!(
                "router CPU: {:.2} s for {routed} requests = {:.1} us per request",
                after - before,
                (after - before) * 1e6 / routed.max(1) as f64
            );
        }
    }

    if !ctx.args.keep {
        ignore_not_found(ctx.client.delete_collection(&project, COLL_A).await)?;
    }
    if let Some(mut s) = spawned {
        println!("# router {}", s.stop(Duration::from_secs(10)));
    }
    Ok(())
}

/// User + system CPU seconds of a process, from /proc (Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the parenthesised command name; utime and stime are the 14th and 15th
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz.max(1.0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians per phase and target, and router relative to direct.
fn summarize(results: &[PhaseResult]) {
    let mut phases: Vec<String> = Vec::new();
    for r in results {
        if let Some((base, _)) = r.phase.split_once(" [") {
            if !phases.iter().any(|p| p == base) {
                phases.push(base.to_owned());
            }
        }
    }
    println!();
    println!("router overhead (medians over rounds)");
    println!(
        "{:<28} {:>11} {:>11} {:>8} {:>10} {:>10} {:>9} {:>10} {:>10}",
        "phase",
        "direct/s",
        "router/s",
        "ratio",
        "p50 dir",
        "p50 rtr",
        "+p50 ms",
        "p99 dir",
        "p99 rtr"
    );
    for base in phases {
        let pick = |target: &str| -> Vec<&PhaseResult> {
            results
                .iter()
                .filter(|r| r.phase.starts_with(&format!("{base} [{target} ")))
                .collect()
        };
        let (d, r) = (pick("direct"), pick("router"));
        let rate = |v: &[&PhaseResult]| median(v.iter().map(|x| x.rate).collect());
        let p50 = |v: &[&PhaseResult]| median(v.iter().filter_map(|x| x.p50_ms).collect());
        let p99 = |v: &[&PhaseResult]| median(v.iter().filter_map(|x| x.p99_ms).collect());
        let (dq, rq) = (rate(&d), rate(&r));
        println!(
            "{:<28} {:>11.1} {:>11.1} {:>8.3} {:>10.3} {:>10.3} {:>+9.3} {:>10.3} {:>10.3}",
            base,
            dq,
            rq,
            rq / dq,
            p50(&d),
            p50(&r),
            p50(&r) - p50(&d),
            p99(&d),
            p99(&r)
        );
    }
}
