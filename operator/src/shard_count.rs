//! How many shards: the shard count the load calls for, within the bounds of the scaling
//! policy (grow at once, shrink one shard at a time, no flapping).
//!
//! Pure, no I/O: the shard controller ([`crate::shards`]) observes each shard's load and
//! walks towards the count [`desired_shards`] returns. Which projects then move is the
//! other policy, [`crate::move_plan`].

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
}
