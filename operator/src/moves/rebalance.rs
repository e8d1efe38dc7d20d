//! Changing the shard count of the placement table and moving exactly the projects whose
//! home changes, in bounded batches.
//!
//! The table's `shardCount` cannot simply change: every project whose hash home moves
//! would be routed to a shard that does not hold it yet. So the change is published
//! together with an override pinning each such project where it is; each move then
//! replaces its pin with the new home when it switches. Projects created later get their
//! home under the new count directly.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use quiver_placement::{home_ordinal, PlacementTable};
use tracing::Instrument;

use super::{finish_switched, move_project, recover, MoveContext, MoveError, MoveReport};
use crate::move_plan::{batches, move_plan};
use crate::placement_store::{update, PlacementStore};

/// Where the projects are, as the shards report them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    /// Each project that serves (active or paused) on exactly one shard, and that shard.
    pub serving: BTreeMap<String, u32>,
    /// Projects that serve on more than one shard: never moved automatically (which
    /// copy holds the acknowledged writes is for a human to decide).
    pub duplicated: BTreeMap<String, Vec<u32>>,
    /// Copies that serve nothing (fenced after a move, or incoming), by shard.
    pub parked: BTreeMap<u32, Vec<String>>,
}

/// Asks every shard the table lists which projects it holds.
pub async fn locate(ctx: &MoveContext, table: &PlacementTable) -> Result<Locations, MoveError> {
    let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut parked: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for ordinal in 0..table.shards.len() as u32 {
        let shard = ctx.shard(table, ordinal)?;
        let projects = shard
            .list_projects()
            .await
            .map_err(MoveError::admin("list projects"))?;
        for p in projects {
            if matches!(p.state.as_str(), "active" | "paused") {
                seen.entry(p.name).or_default().push(ordinal);
            } else {
                parked.entry(ordinal).or_default().push(p.name);
            }
        }
    }
    let mut locations = Locations {
        parked,
        ..Locations::default()
    };
    for (name, ordinals) in seen {
        if let [only] = ordinals[..] {
            locations.serving.insert(name, only);
        } else {
            locations.duplicated.insert(name, ordinals);
        }
    }
    Ok(locations)
}

/// Pins, in `table`, every located project that the table would route elsewhere, to the
/// shard that holds it. Returns whether anything changed.
fn pin_in_place(table: &mut PlacementTable, serving: &BTreeMap<String, u32>) -> bool {
    let mut changed = false;
    for (project, &at) in serving {
        if table.moving.contains_key(project) || table.ordinal_of(project) == at {
            continue;
        }
        table.overrides.insert(project.clone(), at);
        changed = true;
    }
    changed
}

/// Pins, in `next` (the table with its new shard count), every project the shards did
/// not report as serving in one place (moves in progress or in their grace period,
/// projects found on two shards) to where `old` routes it, when `next` would route it
/// elsewhere: a changed count must move no traffic by itself.
fn pin_routes(next: &mut PlacementTable, old: &PlacementTable, names: &BTreeSet<String>) -> bool {
    let mut changed = false;
    for project in names {
        let was = old.ordinal_of(project);
        if next.ordinal_of(project) != was {
            next.overrides.insert(project.clone(), was);
            changed = true;
        }
    }
    changed
}

/// Drops overrides of projects that exist nowhere any more (deleted by their client
/// before they were moved): they would keep a drained ordinal from ever emptying.
fn drop_vanished_overrides(table: &mut PlacementTable, located: &Locations) -> bool {
    let parked: BTreeSet<&String> = located.parked.values().flatten().collect();
    let before = table.overrides.len();
    let moving = &table.moving;
    table.overrides.retain(|p, _| {
        moving.contains_key(p)
            || located.serving.contains_key(p)
            || located.duplicated.contains_key(p)
            || parked.contains(p)
    });
    table.overrides.len() != before
}

/// Drops overrides that say what the hash says anyway.
fn drop_redundant_overrides(table: &mut PlacementTable) -> bool {
    let count = table.shard_count;
    let before = table.overrides.len();
    let moving = &table.moving;
    table
        .overrides
        .retain(|p, o| moving.contains_key(p) || home_ordinal(p, count) != *o);
    table.overrides.len() != before
}

/// What one rebalance did.
#[derive(Debug, Clone, Default)]
pub struct RebalanceReport {
    pub shard_count: u32,
    pub moved: Vec<MoveReport>,
    pub failed: Vec<(String, String)>,
    pub duplicated: BTreeMap<String, Vec<u32>>,
    /// Old copies still kept for the grace period.
    pub in_grace: Vec<String>,
}

/// Brings the table to `target` shards and moves every project whose home changes, at
/// most `batch_size` at a time; ends with the old copies whose grace is over removed
/// (all of them when `finish_now`). The table must list a URL for every ordinal below
/// `target` (the shard controller adds them when it scales up).
pub async fn rebalance(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    target: u32,
    finish_now: bool,
) -> Result<RebalanceReport, MoveError> {
    let span = tracing::info_span!("shards.rebalance", quiver.target = target);
    rebalance_in_span(ctx, store, target, finish_now)
        .instrument(span)
        .await
}

async fn rebalance_in_span(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    target: u32,
    finish_now: bool,
) -> Result<RebalanceReport, MoveError> {
    let recovered = recover(ctx, store).await?;
    for (project, why) in &recovered.stuck {
        tracing::warn!(project, "an earlier move could not be ended yet: {why}");
    }
    let table = store.load().await?.table;
    if target == 0 || target as usize > table.shards.len() {
        return Err(MoveError::NoShard(target.saturating_sub(1)));
    }
    let located = locate(ctx, &table).await?;
    // publish the new count with every project that would change home pinned in place
    for (project, shards) in &located.duplicated {
        tracing::warn!(
            project,
            ?shards,
            "project serves on more than one shard; not moved until resolved by hand"
        );
    }
    let table = update(store, |t: &mut PlacementTable| {
        let mut changed = drop_vanished_overrides(t, &located);
        if t.shard_count != target {
            let mut next = t.clone();
            next.shard_count = target;
            pin_in_place(&mut next, &located.serving);
            let others: BTreeSet<String> = t
                .moving
                .keys()
                .chain(located.duplicated.keys())
                .cloned()
                .collect();
            pin_routes(&mut next, t, &others);
            *t = next;
            changed = true;
        }
        changed |= drop_redundant_overrides(t);
        Ok::<bool, MoveError>(changed)
    })
    .await?
    .table;
    // projects created between the listing and the new table landed by the old count:
    // find them and pin them too
    let located = locate(ctx, &table).await?;
    let table = update(store, |t: &mut PlacementTable| {
        Ok::<bool, MoveError>(pin_in_place(t, &located.serving))
    })
    .await?
    .table;

    let skip: BTreeSet<&String> = table.moving.keys().collect();
    let mut serving = located.serving.clone();
    serving.retain(|p, _| !skip.contains(p));
    let plan = move_plan(&serving, target);
    let mut report = RebalanceReport {
        shard_count: target,
        duplicated: located.duplicated.clone(),
        ..RebalanceReport::default()
    };
    tracing::info!(
        moves = plan.len(),
        duplicated = located.duplicated.len(),
        "rebalancing to {target} shards"
    );
    for batch in batches(&plan, ctx.config.batch_size) {
        let results = join_all(
            batch
                .iter()
                .map(|m| move_project(ctx, store, &m.project, m.from, m.to)),
        )
        .await;
        for (m, r) in batch.iter().zip(results) {
            match r {
                Ok(done) => report.moved.push(done),
                Err(e) => report.failed.push((m.project.clone(), e.to_string())),
            }
        }
    }
    let (_, waiting) = finish_switched(ctx, store, finish_now).await?;
    report.in_grace = waiting;
    Ok(report)
}

/// Drops the table's URLs of ordinals at and above `target` once nothing is left there
/// (no project, not even a fenced copy, and no move from or to them). Returns whether the
/// table now lists exactly `target` shards; then the StatefulSet may shrink.
pub async fn trim_shards(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    target: u32,
) -> Result<bool, MoveError> {
    let table = store.load().await?.table;
    if table.shards.len() <= target as usize {
        return Ok(true);
    }
    if table.shard_count > target {
        return Ok(false);
    }
    for ordinal in target..table.shards.len() as u32 {
        let held = ctx
            .shard(&table, ordinal)?
            .list_projects()
            .await
            .map_err(MoveError::admin("list projects of a drained shard"))?;
        if !held.is_empty() {
            return Ok(false);
        }
    }
    update(store, |t: &mut PlacementTable| {
        let busy = t.overrides.values().any(|&o| o >= target)
            || t.moving
                .values()
                .any(|m| m.from >= target || m.to >= target);
        if busy || t.shard_count > target || t.shards.len() <= target as usize {
            return Ok::<bool, MoveError>(false);
        }
        t.shards.truncate(target as usize);
        Ok(true)
    })
    .await
    .map(|v| v.table.shards.len() == target as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(count: u32, urls: usize) -> PlacementTable {
        let mut t = PlacementTable::from_urls(
            1,
            (0..urls)
                .map(|i| format!("http://shard-{i}:8000"))
                .collect(),
        )
        .expect("table");
        t.shard_count = count;
        t
    }

    #[test]
    fn pins_keep_every_project_where_it_is_under_the_new_count() {
        let serving: BTreeMap<String, u32> = (0..500)
            .map(|i| {
                let p = format!("project-{i}");
                let at = home_ordinal(&p, 2);
                (p, at)
            })
            .collect();
        let mut t = table(2, 3);
        t.shard_count = 3;
        assert!(pin_in_place(&mut t, &serving));
        for (p, &at) in &serving {
            assert_eq!(t.ordinal_of(p), at, "{p} must stay routed where it is");
        }
        // exactly the projects whose home changes are pinned
        let changed = serving
            .iter()
            .filter(|(p, &at)| home_ordinal(p, 3) != at)
            .count();
        assert_eq!(t.overrides.len(), changed);
        assert!(
            !pin_in_place(&mut t, &serving),
            "pinning twice changes nothing"
        );
    }

    #[test]
    fn moving_and_duplicated_projects_keep_their_route_when_the_count_changes() {
        let old = table(2, 3);
        let names: BTreeSet<String> = (0..300).map(|i| format!("moving-{i}")).collect();
        let mut next = old.clone();
        next.shard_count = 3;
        pin_routes(&mut next, &old, &names);
        for p in &names {
            assert_eq!(next.ordinal_of(p), old.ordinal_of(p), "{p}");
        }
    }

    #[test]
    fn overrides_of_projects_found_nowhere_are_dropped() {
        let mut t = table(2, 3);
        t.overrides.insert("gone".into(), 2);
        t.overrides.insert("here".into(), 2);
        t.overrides.insert("parked".into(), 2);
        let mut located = Locations::default();
        located.serving.insert("here".into(), 2);
        located.parked.insert(2, vec!["parked".into()]);
        assert!(drop_vanished_overrides(&mut t, &located));
        assert!(!t.overrides.contains_key("gone"));
        assert!(t.overrides.contains_key("here"));
        assert!(t.overrides.contains_key("parked"));
    }

    #[test]
    fn redundant_overrides_are_dropped_and_moving_ones_kept() {
        let mut t = table(3, 3);
        let p = "alpha";
        let home = home_ordinal(p, 3);
        t.overrides.insert(p.into(), home);
        t.overrides
            .insert("beta".into(), (home_ordinal("beta", 3) + 1) % 3);
        assert!(drop_redundant_overrides(&mut t));
        assert!(!t.overrides.contains_key(p));
        assert!(t.overrides.contains_key("beta"));
    }
}
