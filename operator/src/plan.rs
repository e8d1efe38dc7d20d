//! Pure decisions of the shard controller: how many shards, and which projects move.
//! No I/O here; the reconciler gathers the observations and applies the result.

use std::collections::BTreeMap;

use quiver_placement::home_ordinal;

/// What one shard holds, as observed through its admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardLoad {
    pub projects: u64,
    pub bytes: u64,
}

/// The bounds and targets of the shard set (Helm values `shards.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingPolicy {
    pub min_shards: u32,
    pub max_shards: u32,
    /// Projects one shard should hold.
    pub target_projects_per_shard: u64,
    /// Bytes one shard should hold.
    pub target_bytes_per_shard: u64,
    /// Scale down only when one shard fewer would still be at or below this fraction of
    /// the targets, so that the set does not flap around a boundary.
    pub scale_down_below: f64,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        ScalingPolicy {
            min_shards: 1,
            max_shards: 16,
            target_projects_per_shard: 5_000,
            target_bytes_per_shard: 100 << 30,
            scale_down_below: 0.5,
        }
    }
}

fn div_ceil(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        a.div_ceil(b)
    }
}

/// The shard count to move towards from `current` shards with these loads. Grows straight
/// to the count the targets call for; shrinks one shard at a time (the highest ordinal is
/// drained first), and only when the remaining shards would stay well below the targets.
/// Below the minimum it returns the minimum; above the maximum, one shard fewer.
pub fn desired_shards(current: u32, loads: &[ShardLoad], policy: &ScalingPolicy) -> u32 {
    let min = policy.min_shards.max(1);
    let max = policy.max_shards.max(min);
    let projects: u64 = loads.iter().map(|l| l.projects).sum();
    let bytes: u64 = loads.iter().map(|l| l.bytes).sum();
    let needed = div_ceil(projects, policy.target_projects_per_shard)
        .max(div_ceil(bytes, policy.target_bytes_per_shard))
        .min(u64::from(u32::MAX)) as u32;
    if current > max {
        // over the maximum (it was lowered): drain one shard at a time like any shrink
        return current - 1;
    }
    let current = current.max(min);
    if needed > current {
        return needed.min(max);
    }
    if current > min {
        let fewer = u64::from(current - 1);
        let fits = |total: u64, target: u64| {
            (total as f64) <= fewer as f64 * target as f64 * policy.scale_down_below
        };
        if fits(projects, policy.target_projects_per_shard)
            && fits(bytes, policy.target_bytes_per_shard)
        {
            return current - 1;
        }
    }
    current
}

/// One project to move.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedMove {
    pub project: String,
    pub from: u32,
    pub to: u32,
}

/// The moves that bring every project to its home among `shard_count` shards, given where
/// each one is now: exactly the projects whose current shard is not their home. Projects
/// on ordinals at or above `shard_count` always move, so drained ordinals end empty.
/// Highest source shard first (scaling down drains the highest ordinal first), then by
/// name, so that batches empty one shard after another.
pub fn move_plan(location: &BTreeMap<String, u32>, shard_count: u32) -> Vec<PlannedMove> {
    let mut plan: Vec<PlannedMove> = location
        .iter()
        .filter_map(|(project, &from)| {
            let to = home_ordinal(project, shard_count);
            (to != from).then(|| PlannedMove {
                project: project.clone(),
                from,
                to,
            })
        })
        .collect();
    plan.sort_by(|a, b| (b.from, &a.project).cmp(&(a.from, &b.project)));
    plan
}

/// The plan in batches of at most `size` moves, in order.
pub fn batches(plan: &[PlannedMove], size: usize) -> impl Iterator<Item = &[PlannedMove]> {
    plan.chunks(size.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScalingPolicy {
        ScalingPolicy {
            min_shards: 2,
            max_shards: 8,
            target_projects_per_shard: 1_000,
            target_bytes_per_shard: 1 << 30,
            scale_down_below: 0.5,
        }
    }

    fn loads(n: u32, projects_each: u64, bytes_each: u64) -> Vec<ShardLoad> {
        (0..n)
            .map(|_| ShardLoad {
                projects: projects_each,
                bytes: bytes_each,
            })
            .collect()
    }

    #[test]
    fn grows_to_what_the_targets_need_within_the_maximum() {
        let p = policy();
        assert_eq!(desired_shards(2, &loads(2, 1_500, 0), &p), 3);
        assert_eq!(
            desired_shards(2, &loads(2, 5_000, 0), &p),
            8,
            "capped at max"
        );
        // bytes alone can call for more shards
        assert_eq!(desired_shards(2, &loads(2, 10, 2 << 30), &p), 4);
    }

    #[test]
    fn shrinks_one_at_a_time_only_well_below_target() {
        let p = policy();
        // 4 shards x 100 projects: 3 shards would hold 133 each, far below 500 (half target)
        assert_eq!(desired_shards(4, &loads(4, 100, 0), &p), 3);
        // 4 shards x 400: 3 shards would hold 533 each, above half the target: stay
        assert_eq!(desired_shards(4, &loads(4, 400, 0), &p), 4);
        // never below the minimum
        assert_eq!(desired_shards(2, &loads(2, 0, 0), &p), 2);
    }

    #[test]
    fn out_of_bounds_counts_are_brought_back() {
        let p = policy();
        assert_eq!(desired_shards(1, &loads(1, 0, 0), &p), 2);
        // above the maximum: one shard at a time, like any shrink
        assert_eq!(desired_shards(12, &loads(12, 900, 0), &p), 11);
    }

    #[test]
    fn no_flapping_between_two_counts() {
        // whatever the load, growing to n and then deciding again does not shrink back
        let p = policy();
        for total in (0..20_000u64).step_by(250) {
            for current in p.min_shards..=p.max_shards {
                let per = total / u64::from(current);
                let next = desired_shards(current, &loads(current, per, 0), &p);
                if next > current {
                    let per_next = total / u64::from(next);
                    let again = desired_shards(next, &loads(next, per_next, 0), &p);
                    assert!(again >= next, "total {total}: {current}→{next}→{again}");
                }
            }
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tenant-{i:05}")).collect()
    }

    #[test]
    fn plan_moves_exactly_the_projects_whose_home_changes() {
        let names = names(3_000);
        for n in 1..=12u32 {
            for m in 1..=12u32 {
                let location: BTreeMap<String, u32> = names
                    .iter()
                    .map(|p| (p.clone(), home_ordinal(p, n)))
                    .collect();
                let plan = move_plan(&location, m);
                let moved: std::collections::BTreeSet<&str> =
                    plan.iter().map(|mv| mv.project.as_str()).collect();
                for p in &names {
                    let changes = home_ordinal(p, n) != home_ordinal(p, m);
                    assert_eq!(moved.contains(p.as_str()), changes, "{p}: {n}→{m}");
                }
                // applying the plan leaves every project at home, drained ordinals empty
                let mut after = location.clone();
                for mv in &plan {
                    assert_eq!(after[&mv.project], mv.from);
                    assert!(mv.to < m);
                    after.insert(mv.project.clone(), mv.to);
                }
                assert!(
                    after.values().all(|&o| o < m),
                    "{n}→{m}: an ordinal ≥ {m} kept projects"
                );
                assert!(after.iter().all(|(p, &o)| o == home_ordinal(p, m)));
                // one step changes about 1/(max) of the projects, all onto/from the edge
                if m == n + 1 {
                    assert!(plan.iter().all(|mv| mv.to == n));
                }
                if m + 1 == n {
                    assert!(plan.iter().all(|mv| mv.from == m));
                }
            }
        }
    }

    #[test]
    fn misplaced_projects_are_planned_too() {
        // a project left on a wrong shard (an interrupted move) goes home as well
        let mut location = BTreeMap::new();
        let home = home_ordinal("stray", 3);
        location.insert("stray".to_string(), (home + 1) % 3);
        let plan = move_plan(&location, 3);
        assert_eq!(
            plan,
            vec![PlannedMove {
                project: "stray".into(),
                from: (home + 1) % 3,
                to: home
            }]
        );
    }

    #[test]
    fn batches_keep_the_order_and_bound_the_size() {
        let names = names(500);
        let location: BTreeMap<String, u32> = names
            .iter()
            .map(|p| (p.clone(), home_ordinal(p, 4)))
            .collect();
        let plan = move_plan(&location, 3);
        let sizes: Vec<usize> = batches(&plan, 25).map(<[PlannedMove]>::len).collect();
        assert!(sizes.iter().all(|&s| s <= 25 && s > 0));
        assert_eq!(sizes.iter().sum::<usize>(), plan.len());
        let flat: Vec<PlannedMove> = batches(&plan, 25).flatten().cloned().collect();
        assert_eq!(flat, plan);
    }
}
