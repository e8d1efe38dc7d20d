//! Which projects move: for a shard count, exactly the projects not on their home shard,
//! highest source shard first, cut into batches.
//!
//! Pure, no I/O: the rebalancer ([`crate::moves`]) reads where each project is, plans
//! here and moves the plan batch by batch. How many shards there should be is the other
//! policy, [`crate::shard_count`].

use std::collections::BTreeMap;

use quiver_placement::home_ordinal;

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
