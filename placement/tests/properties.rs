//! Placement properties over many names: balance, and minimal movement when N changes.

use std::collections::BTreeSet;

use quiver_placement::home_ordinal;

const NAMES: usize = 10_000;

fn names() -> Vec<String> {
    // A mix of shapes real deployments use: sequential ids, uuids-like, words.
    (0..NAMES)
        .map(|i| match i % 3 {
            0 => format!("customer-{i}"),
            1 => format!("ws_{:08x}{:04x}", i.wrapping_mul(2_654_435_761), i),
            _ => format!("Agent.{i}.kb"),
        })
        .collect()
}

#[test]
fn every_shard_gets_its_fair_share_within_ten_percent() {
    let names = names();
    for n in 2..=16u32 {
        let mut counts = vec![0usize; n as usize];
        for name in &names {
            counts[home_ordinal(name, n) as usize] += 1;
        }
        let fair = NAMES as f64 / f64::from(n);
        for (ordinal, &c) in counts.iter().enumerate() {
            let dev = (c as f64 - fair).abs() / fair;
            assert!(
                dev <= 0.10,
                "N={n}: shard {ordinal} has {c} projects, fair share {fair:.0} ({:.1}% off)",
                dev * 100.0
            );
        }
    }
}

#[test]
fn growing_by_one_moves_about_one_share_all_to_the_new_ordinal() {
    let names = names();
    for n in 1..=16u32 {
        let mut moved = 0usize;
        for name in &names {
            let before = home_ordinal(name, n);
            let after = home_ordinal(name, n + 1);
            if before != after {
                assert_eq!(
                    after,
                    n,
                    "{name} moved {before}→{after} when growing {n}→{}",
                    n + 1
                );
                moved += 1;
            }
        }
        let expected = NAMES as f64 / f64::from(n + 1);
        let dev = (moved as f64 - expected).abs() / expected;
        assert!(
            dev <= 0.10,
            "{n}→{}: {moved} of {NAMES} moved, expected about {expected:.0}",
            n + 1
        );
    }
}

#[test]
fn shrinking_by_one_moves_only_the_removed_ordinals_projects() {
    let names = names();
    for n in 2..=16u32 {
        let removed: BTreeSet<&String> = names
            .iter()
            .filter(|name| home_ordinal(name, n) == n - 1)
            .collect();
        assert!(!removed.is_empty());
        for name in &names {
            let before = home_ordinal(name, n);
            let after = home_ordinal(name, n - 1);
            if removed.contains(name) {
                assert!(after < n - 1, "{name} still on removed ordinal");
            } else {
                assert_eq!(
                    before,
                    after,
                    "{name} moved {before}→{after} shrinking {n}→{}",
                    n - 1
                );
            }
        }
    }
}
