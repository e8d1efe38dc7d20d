//! The graph against exact search: recall in every space over several seeds, filtered
//! traversal, inserts racing searches, and the files' round trip and damage.

use std::sync::Arc;

use quiver_testkit::vectors::{exact_knn, recall, Mixture};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::super::distance::{distance, search_form};
use super::super::types::Space;
use super::{persist, Arena, Hnsw, Params, Traversal};

const DIM: usize = 32;

/// A seeded clustered data set and its queries, in search form for `space`.
fn data(space: Space, n: usize, queries: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let m = Mixture::new(DIM, 20, 0.35, &mut rng).expect("mixture");
    let rows = |flat: Vec<f32>| -> Vec<Vec<f32>> {
        flat.chunks_exact(DIM)
            .map(|v| search_form(space, v))
            .collect()
    };
    (
        rows(m.sample(n, &mut rng)),
        rows(m.sample(queries, &mut rng)),
    )
}

fn build(space: Space, points: &[Vec<f32>]) -> Hnsw {
    let arena = Arc::new(Arena::new(DIM));
    for (i, v) in points.iter().enumerate() {
        arena.push(i as u32, v);
    }
    let g = Hnsw::new(Params::new(space, 16, 100), arena);
    let nodes: Vec<u32> = (0..points.len() as u32).collect();
    g.insert_batch(&nodes);
    g.link_unreachable();
    g
}

/// Exact top-k by the collection's distance, over the slots `accept` lets through.
fn exact(
    space: Space,
    points: &[Vec<f32>],
    q: &[f32],
    k: usize,
    accept: impl Fn(u32) -> bool,
) -> Vec<u32> {
    let mut all: Vec<(f32, u32)> = points
        .iter()
        .enumerate()
        .filter(|(i, _)| accept(*i as u32))
        .map(|(i, v)| (distance(space, v, q), i as u32))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all.into_iter().map(|(_, i)| i).collect()
}

fn mean_recall(
    g: &Hnsw,
    space: Space,
    points: &[Vec<f32>],
    queries: &[Vec<f32>],
    ef: usize,
    accept: impl Fn(u32) -> bool + Copy,
    traversal: Traversal,
) -> f64 {
    let total: f64 = queries
        .iter()
        .map(|q| {
            let got: Vec<u32> = g
                .search(q, 10, ef, accept, traversal)
                .iter()
                .map(|n| n.node)
                .collect();
            recall(&got, &exact(space, points, q, 10, accept))
        })
        .sum();
    total / queries.len() as f64
}

#[test]
fn recall_at_defaults_in_every_space_and_seed() {
    for space in [Space::L2, Space::Cosine, Space::Ip] {
        for seed in [1u64, 2, 3] {
            let (points, queries) = data(space, 4000, 100, seed);
            let g = build(space, &points);
            assert_eq!(g.len(), 4000);
            let r = mean_recall(
                &g,
                space,
                &points,
                &queries,
                100,
                |_| true,
                Traversal::Dense,
            );
            assert!(r >= 0.98, "{space:?} seed {seed}: recall {r}");
            // the distances returned are the collection's own, nearest first
            let hits = g.search(&queries[0], 10, 100, |_| true, Traversal::Dense);
            for w in hits.windows(2) {
                assert!(w[0].dist <= w[1].dist);
            }
            let d = distance(space, &points[hits[0].node as usize], &queries[0]);
            assert!((d - hits[0].dist).abs() < 1e-5);
        }
    }
}

#[test]
fn recall_matches_the_bench_ground_truth() {
    // the bench's exact search (squared l2) agrees with ours on what the neighbours are
    let (points, queries) = data(Space::L2, 3000, 20, 9);
    let flat: Vec<f32> = points.iter().flatten().copied().collect();
    let qflat: Vec<f32> = queries.iter().flatten().copied().collect();
    let truth = exact_knn(&flat, DIM, None, &qflat, 10);
    let g = build(Space::L2, &points);
    for (q, t) in queries.iter().zip(&truth) {
        let got: Vec<u32> = g
            .search(q, 10, 200, |_| true, Traversal::Dense)
            .iter()
            .map(|n| n.node)
            .collect();
        assert!(recall(&got, t) >= 0.9);
    }
}

#[test]
fn rejected_nodes_route_but_are_never_returned() {
    let space = Space::Cosine;
    let (points, queries) = data(space, 5000, 60, 4);
    let g = build(space, &points);
    // (at 1% and below the planner scans the accepted records exactly instead)
    for (share, traversal) in [
        (2u32, Traversal::Dense),
        (10, Traversal::Dense),
        (4, Traversal::Sparse),
        (10, Traversal::Sparse),
    ] {
        let accept = move |n: u32| n.is_multiple_of(share);
        for q in &queries {
            for hit in g.search(q, 10, 100, accept, traversal) {
                assert!(accept(hit.node));
            }
        }
        let r = mean_recall(&g, space, &points, &queries, 100, accept, traversal);
        assert!(r >= 0.95, "1/{share} accepted, {traversal:?}: recall {r}");
    }
}

#[test]
fn searches_run_while_nodes_are_inserted() {
    let space = Space::L2;
    let (points, queries) = data(space, 6000, 50, 5);
    let arena = Arc::new(Arena::new(DIM));
    let g = Arc::new(Hnsw::new(Params::new(space, 16, 100), Arc::clone(&arena)));
    let searcher = {
        let g = Arc::clone(&g);
        let queries = queries.clone();
        std::thread::spawn(move || {
            let mut searches = 0;
            while g.len() < 6000 {
                for q in &queries {
                    let hits = g.search(q, 10, 50, |_| true, Traversal::Dense);
                    assert!(hits.len() <= 10);
                    assert!(hits.iter().all(|h| h.node < 6000));
                    searches += 1;
                }
            }
            searches
        })
    };
    for chunk in points.chunks(500) {
        let start = arena.len();
        for (i, v) in chunk.iter().enumerate() {
            arena.push(start + i as u32, v);
        }
        let nodes: Vec<u32> = (start..arena.len()).collect();
        g.insert_batch(&nodes);
    }
    assert!(searcher.join().expect("searcher panicked") > 0);
    assert_eq!(g.len(), 6000);
    let r = mean_recall(
        &g,
        space,
        &points,
        &queries,
        100,
        |_| true,
        Traversal::Dense,
    );
    assert!(r >= 0.98, "recall after concurrent build {r}");
}

#[test]
fn saved_files_round_trip_and_damage_is_refused() {
    let space = Space::Ip;
    let (points, queries) = data(space, 2000, 20, 6);
    let g = build(space, &points);
    // a slot past the graph (written, not indexed yet) travels with the arena
    g.arena().push(7777, &points[0]);
    let dir = tempfile::tempdir().expect("tempdir");
    let idx = dir.path().join("c1");
    persist::save(&idx, g.arena(), g.arena().len(), &g, 2000, None).expect("save");
    let params = g.params();
    let loaded = persist::load(&idx, params, DIM).expect("reload");
    assert_eq!(loaded.manifest.indexed_upto, 2000);
    assert_eq!(loaded.arena.len(), 2001);
    assert_eq!(loaded.arena.label(2000), 7777);
    assert_eq!(loaded.graph.len(), 2000);
    assert!(!loaded.graph.contains(2000));
    for q in &queries {
        let a: Vec<u32> = g
            .search(q, 10, 64, |_| true, Traversal::Dense)
            .iter()
            .map(|n| n.node)
            .collect();
        let b: Vec<u32> = loaded
            .graph
            .search(q, 10, 64, |_| true, Traversal::Dense)
            .iter()
            .map(|n| n.node)
            .collect();
        assert_eq!(a, b, "the reloaded graph answers as the saved one");
    }
    // another configuration or dimension is not reused
    assert!(persist::load(&idx, Params::new(Space::L2, 16, 100), DIM).is_none());
    assert!(persist::load(&idx, Params::new(space, 32, 100), DIM).is_none());
    assert!(persist::load(&idx, params, DIM + 1).is_none());
    // a flipped byte in any file fails its checksum
    for file in ["graph.bin", "vectors.f32", "labels.u32"] {
        let path = idx.join(file);
        let good = std::fs::read(&path).expect("read");
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x5a;
        std::fs::write(&path, &bad).expect("write");
        assert!(persist::load(&idx, params, DIM).is_none(), "{file} damaged");
        std::fs::write(&path, &good).expect("write");
        assert!(persist::load(&idx, params, DIM).is_some());
    }
    // a truncated file is refused too, and a missing directory is simply "no index"
    std::fs::write(idx.join("graph.bin"), b"").expect("write");
    assert!(persist::load(&idx, params, DIM).is_none());
    assert!(persist::load(&dir.path().join("nope"), params, DIM).is_none());
}

#[test]
fn the_live_set_travels_with_its_version_and_is_dropped_when_damaged() {
    let space = Space::L2;
    let (points, _) = data(space, 300, 1, 8);
    let g = build(space, &points);
    let dir = tempfile::tempdir().expect("tempdir");
    let idx = dir.path().join("c1");
    let live: roaring::RoaringBitmap = (0..300u32).filter(|l| l % 3 != 0).collect();
    let snapshot = persist::Snapshot {
        version: 41,
        live: &live,
    };
    persist::save(&idx, g.arena(), 300, &g, 300, Some(snapshot)).expect("save");
    let loaded = persist::load(&idx, g.params(), DIM).expect("reload");
    assert_eq!(loaded.manifest.version, Some(41));
    assert_eq!(loaded.live.as_ref(), Some(&live));
    // a damaged live set costs the fast reopen only: the graph still loads
    let path = idx.join("live.roaring");
    let mut bad = std::fs::read(&path).expect("read");
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    std::fs::write(&path, &bad).expect("write");
    let loaded = persist::load(&idx, g.params(), DIM).expect("graph reloads");
    assert!(loaded.live.is_none());
    assert_eq!(loaded.graph.len(), 300);
    // saved without a snapshot, the files claim no version
    persist::save(&idx, g.arena(), 300, &g, 300, None).expect("save");
    let loaded = persist::load(&idx, g.params(), DIM).expect("reload");
    assert_eq!((loaded.manifest.version, loaded.live), (None, None));
}

#[test]
fn import_refuses_links_outside_the_arena() {
    use super::hnsw::NodeLinks;
    let arena = Arc::new(Arena::new(2));
    arena.push(0, &[1.0, 0.0]);
    arena.push(1, &[0.0, 1.0]);
    let params = Params::new(Space::L2, 4, 10);
    let links = |ids: Vec<u32>| NodeLinks {
        top: 0,
        layers: vec![ids],
    };
    let good = Hnsw::import(
        params,
        Arc::clone(&arena),
        Some((0, 0)),
        vec![(0, links(vec![1])), (1, links(vec![0]))],
    );
    assert!(good.is_some());
    let outside = Hnsw::import(
        params,
        Arc::clone(&arena),
        Some((0, 0)),
        vec![(0, links(vec![5]))],
    );
    assert!(outside.is_none());
    let dangling = Hnsw::import(
        params,
        Arc::clone(&arena),
        Some((0, 0)),
        vec![(0, links(vec![1]))],
    );
    assert!(dangling.is_none(), "a neighbour that is not a node");
    let bad_entry = Hnsw::import(
        params,
        arena,
        Some((1, 3)),
        vec![(0, links(vec![])), (1, links(vec![]))],
    );
    assert!(bad_entry.is_none());
}

#[test]
fn every_point_finds_itself() {
    // uniform data in a low dimension is where the heuristic orphans nodes most often
    use rand::Rng;
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let points: Vec<Vec<f32>> = (0..2000)
            .map(|_| (0..16).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect();
        let arena = Arc::new(Arena::new(16));
        for (i, v) in points.iter().enumerate() {
            arena.push(i as u32, v);
        }
        let g = Hnsw::new(Params::new(Space::L2, 16, 100), arena);
        let nodes: Vec<u32> = (0..2000).collect();
        g.insert_batch(&nodes);
        assert!(
            g.repair_due(),
            "a small graph is repaired after every batch"
        );
        g.link_unreachable();
        assert!(!g.repair_pending() && !g.repair_due());
        for (i, v) in points.iter().enumerate() {
            let hit = g.search(v, 1, 100, |_| true, Traversal::Dense);
            assert_eq!(
                hit.first().map(|n| n.node),
                Some(i as u32),
                "seed {seed}: point {i} does not find itself"
            );
        }
    }
}

#[test]
fn a_node_nobody_reaches_gets_an_in_edge() {
    use super::hnsw::NodeLinks;
    let arena = Arc::new(Arena::new(2));
    for (i, v) in [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]
        .iter()
        .enumerate()
    {
        arena.push(i as u32, v);
    }
    let params = Params::new(Space::L2, 2, 10);
    let links = |ids: Vec<u32>| NodeLinks {
        top: 0,
        layers: vec![ids],
    };
    // node 3 links out to 1 and 2, but no list holds 3
    let g = Hnsw::import(
        params,
        Arc::clone(&arena),
        Some((0, 0)),
        vec![
            (0, links(vec![1, 2])),
            (1, links(vec![0, 2])),
            (2, links(vec![0, 1])),
            (3, links(vec![1, 2])),
        ],
    )
    .expect("import");
    let found = |g: &Hnsw| {
        g.search(&[5.0, 5.0], 1, 1, |_| true, Traversal::Dense)
            .first()
            .map(|n| n.node)
    };
    assert_ne!(found(&g), Some(3), "unreachable before the repair");
    assert_eq!(g.link_unreachable(), 1);
    assert_eq!(found(&g), Some(3));
    assert_eq!(g.link_unreachable(), 0, "nothing left to repair");
}
