//! Router overhead: one collection, then the same query and count load sent alternately
//! to the tenant server directly and through a `quiver-router` whose only shard is that
//! server. Rounds alternate so that drift (page cache, CPU frequency) hits both targets
//! alike; the summary reports medians and the router/direct ratios.

use anyhow::Result;

use super::{create_fresh, ingest, lookup, query};
use crate::backend::{Backend, Software, V1};
use crate::session::{Bench, Launch, Spawn};
use crate::stats::PhaseResult;
use crate::workers::batches;
use crate::workload::{prepare_workload, COLL_A};

/// Attaches the router (spawned with `--spawn-router`, else at `--router-url`) as a
/// second side, fills one collection directly, then runs the query and count phases
/// against both, alternating, and prints the medians and ratios.
pub async fn run(bench: &mut Bench<V1>) -> Result<()> {
    let direct = bench.report.sides[0].url.clone();
    let launch = Launch {
        name: "router",
        software: Software::Quiver,
        spawn: bench.args.spawn_router.clone().map(|bin| Spawn::Router {
            bin,
            shard: direct.clone(),
        }),
        url: bench.args.router_url.clone().unwrap_or_default(),
        pid: None,
        pid_flags: None,
    };
    let router = bench.attach(launch).await?;

    let w = prepare_workload(&bench.args)?;
    let project = bench.args.project.clone();
    let coll = create_fresh(bench, 0, &project, &[COLL_A]).await?.remove(0);
    bench.report.print_header();
    let work = vec![batches(0..bench.args.n, bench.args.batch)];
    ingest::run(bench, 0, &coll, "ingest (direct)", work, &w.data).await?;

    let router_pid = bench.report.sides[router].pid;
    let cpu_before = router_pid.and_then(cpu_seconds);
    let first = bench.report.results.len();
    let (unfiltered, truth) = (&w.cases[0], &w.truths[0]);
    let expected = bench.args.n as u64;
    for clients in [1, bench.args.query_clients] {
        for round in 0..bench.args.rounds {
            for (target, side) in [("direct", 0), ("router", router)] {
                bench.report.label_suffix = format!(" [{target} #{round}]");
                query::run(bench, side, &coll, unfiltered, clients, &w.queries, truth).await?;
                lookup::count(bench, side, &coll, clients, expected).await?;
            }
        }
    }
    bench.report.label_suffix.clear();
    let measured: Vec<PhaseResult> = bench.report.results[first..]
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    summarize(&measured);
    if let (Some(pid), Some(before)) = (router_pid, cpu_before) {
        let routed: usize = bench.report.results[first..]
            .iter()
            .filter(|(side, _)| *side == router)
            .map(|(_, r)| r.ops)
            .sum();
        if let Some(after) = cpu_seconds(pid) {
            println!(
                "router CPU: {:.2} s for {routed} requests = {:.1} us per request",
                after - before,
                (after - before) * 1e6 / routed.max(1) as f64
            );
        }
    }

    if !bench.args.keep {
        bench.sides[0]
            .backend
            .drop_collection(&coll.scope, &coll.name)
            .await?;
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
