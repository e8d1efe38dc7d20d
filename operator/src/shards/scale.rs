//! The shard controller's pure decisions: given the StatefulSet, the placement table and
//! the shard count the policy asks for, what to do next.
//!
//! The order is what keeps every project reachable:
//! - growing: more pods first, then (once they are ready) their URLs in the table, then
//!   the moves onto them;
//! - shrinking: the moves off the highest ordinals first, then the table without their
//!   URLs, and only then fewer pods.
//!
//! Each decision is taken from what is observed now, not from what the controller did
//! before, so an operator restarted half-way (or a new leader) carries on where it stopped.

use quiver_placement::PlacementTable;

use crate::shard_count::{desired_shards, ScalingPolicy, ShardLoad};

/// The StatefulSet's replicas as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replicas {
    /// `spec.replicas`: the pods that exist or are coming.
    pub spec: u32,
    /// `status.readyReplicas`.
    pub ready: u32,
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Set the StatefulSet's replicas to this (more) count.
    ScaleUp { replicas: u32 },
    /// Pods are missing or unready; moves need every shard up.
    WaitReady { replicas: u32 },
    /// No table published yet: publish one of `shard_count` shards.
    PublishInitial { shard_count: u32 },
    /// List every existing ordinal's URL in the table (before moving projects onto it).
    PublishShards { replicas: u32 },
    /// Move every project home among `target` shards (also finishes interrupted moves and
    /// removes old copies whose grace is over, so it runs on every pass).
    Rebalance { target: u32 },
    /// Drop the drained ordinals from the table once empty, then shrink to `replicas`.
    ScaleDown { replicas: u32 },
    /// Nothing more this pass.
    Done,
}

/// The shard count to move towards. `loads` is `None` when some shard could not report:
/// then the count holds (a missing shard's load would read as zero and could shrink the
/// set), except to come back within the policy's bounds.
pub fn target_shards(spec: u32, loads: Option<&[ShardLoad]>, policy: &ScalingPolicy) -> u32 {
    match loads {
        Some(loads) => desired_shards(spec, loads, policy),
        None => {
            let min = policy.min_shards.max(1);
            let max = policy.max_shards.max(min);
            if spec < min {
                min
            } else if spec > max {
                spec - 1
            } else {
                spec
            }
        }
    }
}

/// Whether the table's first URLs are `urls` (the ordinals that exist); extra URLs after
/// them are allowed (ordinals being drained).
pub fn lists_shards(table: &PlacementTable, urls: &[String]) -> bool {
    table.shards.len() >= urls.len() && table.shards[..urls.len()] == *urls
}

/// Makes the table list `urls` for the first ordinals, keeping any URLs after them
/// (projects may still be routed there). Returns whether it changed anything.
pub fn set_shard_urls(table: &mut PlacementTable, urls: &[String]) -> bool {
    if lists_shards(table, urls) {
        return false;
    }
    for (i, url) in urls.iter().enumerate() {
        match table.shards.get_mut(i) {
            Some(current) => current.clone_from(url),
            None => table.shards.push(url.clone()),
        }
    }
    true
}

/// The next step towards `target` shards. `urls` are the URLs of ordinals
/// `0..replicas.spec`; `rebalanced` says whether the rebalancer already ran in this pass.
pub fn next_step(
    target: u32,
    replicas: Replicas,
    table: Option<&PlacementTable>,
    urls: &[String],
    rebalanced: bool,
) -> Step {
    let target = target.max(1);
    if target > replicas.spec {
        return Step::ScaleUp { replicas: target };
    }
    // moves copy from and to every shard, and a shard that is not ready would lose the
    // projects routed to it while it comes up
    if replicas.ready < replicas.spec {
        return Step::WaitReady {
            replicas: replicas.spec,
        };
    }
    let Some(table) = table else {
        return Step::PublishInitial {
            shard_count: replicas.spec,
        };
    };
    if !lists_shards(table, urls) {
        return Step::PublishShards {
            replicas: replicas.spec,
        };
    }
    if !rebalanced {
        return Step::Rebalance { target };
    }
    if target < replicas.spec {
        return Step::ScaleDown { replicas: target };
    }
    Step::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: u32) -> Vec<String> {
        (0..n)
            .map(|i| format!("http://t-{i}.t.ns.svc:7100"))
            .collect()
    }

    fn table(count: u32, listed: u32) -> PlacementTable {
        let mut t = PlacementTable::from_urls(3, urls(listed)).unwrap();
        t.shard_count = count;
        t
    }

    fn r(spec: u32, ready: u32) -> Replicas {
        Replicas { spec, ready }
    }

    #[test]
    fn steady_state_rebalances_once_then_rests() {
        let t = table(3, 3);
        assert_eq!(
            next_step(3, r(3, 3), Some(&t), &urls(3), false),
            Step::Rebalance { target: 3 }
        );
        assert_eq!(next_step(3, r(3, 3), Some(&t), &urls(3), true), Step::Done);
    }

    #[test]
    fn growing_adds_pods_then_urls_then_moves() {
        let t = table(3, 3);
        assert_eq!(
            next_step(5, r(3, 3), Some(&t), &urls(3), false),
            Step::ScaleUp { replicas: 5 }
        );
        // patched, pods coming up
        assert_eq!(
            next_step(5, r(5, 3), Some(&t), &urls(5), false),
            Step::WaitReady { replicas: 5 }
        );
        assert_eq!(
            next_step(5, r(5, 5), Some(&t), &urls(5), false),
            Step::PublishShards { replicas: 5 }
        );
        let t = table(3, 5);
        assert_eq!(
            next_step(5, r(5, 5), Some(&t), &urls(5), false),
            Step::Rebalance { target: 5 }
        );
        // the rebalancer switched the count
        let t = table(5, 5);
        assert_eq!(next_step(5, r(5, 5), Some(&t), &urls(5), true), Step::Done);
    }

    #[test]
    fn shrinking_moves_first_and_removes_pods_last() {
        let t = table(4, 4);
        assert_eq!(
            next_step(3, r(4, 4), Some(&t), &urls(4), false),
            Step::Rebalance { target: 3 }
        );
        assert_eq!(
            next_step(3, r(4, 4), Some(&t), &urls(4), true),
            Step::ScaleDown { replicas: 3 }
        );
        // shrunk: the drained ordinal's URL is gone with its pod
        let t = table(3, 3);
        assert_eq!(next_step(3, r(3, 3), Some(&t), &urls(3), true), Step::Done);
    }

    #[test]
    fn a_half_done_shrink_is_resumed() {
        // the table was trimmed but the patch did not happen (operator restarted): the URL
        // comes back, the (empty) ordinal is checked again, then the pods go
        let t = table(3, 3);
        assert_eq!(
            next_step(3, r(4, 4), Some(&t), &urls(4), false),
            Step::PublishShards { replicas: 4 }
        );
    }

    #[test]
    fn first_start_publishes_the_existing_shards() {
        assert_eq!(
            next_step(2, r(2, 2), None, &urls(2), false),
            Step::PublishInitial { shard_count: 2 }
        );
        // an empty StatefulSet grows first
        assert_eq!(
            next_step(1, r(0, 0), None, &urls(0), false),
            Step::ScaleUp { replicas: 1 }
        );
        // a bigger StatefulSet than needed is published as it is, then shrunk by moves
        assert_eq!(
            next_step(2, r(3, 3), None, &urls(3), false),
            Step::PublishInitial { shard_count: 3 }
        );
    }

    #[test]
    fn unready_pods_stop_everything_but_growth() {
        let t = table(3, 3);
        assert_eq!(
            next_step(3, r(3, 2), Some(&t), &urls(3), false),
            Step::WaitReady { replicas: 3 }
        );
        assert_eq!(
            next_step(2, r(3, 2), Some(&t), &urls(3), false),
            Step::WaitReady { replicas: 3 }
        );
        assert_eq!(
            next_step(4, r(3, 2), Some(&t), &urls(3), false),
            Step::ScaleUp { replicas: 4 }
        );
    }

    #[test]
    fn wrong_urls_are_corrected_and_extra_ones_kept() {
        let mut t = table(3, 3);
        t.shards[1] = "http://old-1:7100".into();
        assert_eq!(
            next_step(3, r(3, 3), Some(&t), &urls(3), false),
            Step::PublishShards { replicas: 3 }
        );
        assert!(set_shard_urls(&mut t, &urls(3)));
        assert_eq!(t.shards, urls(3));
        assert!(!set_shard_urls(&mut t, &urls(3)));

        let mut t = table(2, 4);
        assert!(
            !set_shard_urls(&mut t, &urls(3)),
            "a longer table already lists them"
        );
        let mut t = table(2, 2);
        assert!(set_shard_urls(&mut t, &urls(4)));
        assert_eq!(t.shards, urls(4));
        assert_eq!(
            t.shard_count, 2,
            "the hash's N is the rebalancer's to change"
        );
        t.validate().unwrap();
    }

    #[test]
    fn without_every_load_the_count_holds_within_bounds() {
        let p = ScalingPolicy {
            min_shards: 2,
            max_shards: 6,
            ..ScalingPolicy::default()
        };
        assert_eq!(target_shards(4, None, &p), 4);
        assert_eq!(target_shards(1, None, &p), 2);
        assert_eq!(target_shards(9, None, &p), 8);
        let heavy = vec![
            ShardLoad {
                projects: 20_000,
                bytes: 0
            };
            4
        ];
        assert_eq!(target_shards(4, Some(&heavy), &p), 6);
    }
}
