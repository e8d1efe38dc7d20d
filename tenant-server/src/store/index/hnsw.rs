//! The HNSW graph (Malkov & Yashunin): layered proximity graphs over the slots of one
//! [`Arena`], built concurrently with queries.
//!
//! * Neighbour lists are flat `u32` rows (layer 0 in one row per node, upper layers in one
//!   small block per node that has them), read without locks: a writer fills the ids and
//!   then publishes the count, so a reader sees at worst a list that is a moment old.
//! * Writers to one node's lists hold that node's lock, one lock at a time.
//! * New nodes and overflowing lists keep neighbours chosen by the diversity heuristic
//!   (a candidate is kept only if it is closer to the node than to every neighbour kept so
//!   far), which keeps clustered data connected where "drop the farthest" splits it.
//! * Upper layers are walked greedily to a local minimum before layer 0 is searched.
//! * Searches take a visited set from a pool, and an `accept` predicate: rejected nodes
//!   still route the search but are never returned. When most nodes are rejected (a
//!   selective filter) the search steps over rejected nodes to their neighbours instead of
//!   scoring them, so the accepted part of the graph stays connected (ACORN's two-hop idea).

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rand::Rng;

use super::super::distance::distance;
use super::super::types::{HnswConfig, Space};
use super::arena::Arena;
use super::buckets::Buckets;
use super::visited::{Visited, VisitedPool};

/// Highest layer a node may get; with M ≥ 2 the chance of reaching it is below 2⁻¹⁶.
pub const MAX_LEVEL: usize = 16;
/// Largest M accepted (layer-0 lists hold twice as many).
pub const MAX_M: usize = 256;
const NO_ENTRY: u64 = u64::MAX;

super::buckets::default_element!(OnceLock<Box<[AtomicU32]>>, Mutex<()>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub space: Space,
    /// Neighbours per node in the upper layers (and chosen per layer on insert).
    pub m: usize,
    pub ef_construction: usize,
}

impl Params {
    pub fn new(space: Space, m: usize, ef_construction: usize) -> Params {
        let m = m.clamp(2, MAX_M);
        Params {
            space,
            m,
            ef_construction: ef_construction.max(m),
        }
    }

    /// Layer-0 lists hold 2·M, as the paper recommends.
    pub fn m0(&self) -> usize {
        self.m * 2
    }
}

impl From<&HnswConfig> for Params {
    fn from(c: &HnswConfig) -> Params {
        Params::new(c.space, c.max_neighbors, c.ef_construction)
    }
}

/// A (distance, node) pair ordered by distance, ties by node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub dist: f32,
    pub node: u32,
}

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.node.cmp(&other.node))
    }
}

/// How a search treats nodes its predicate rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traversal {
    /// Score every neighbour; rejected ones route but are not returned.
    Dense,
    /// Step over rejected neighbours to their accepted neighbours without scoring them.
    Sparse,
}

pub struct Hnsw {
    params: Params,
    arena: Arc<Arena>,
    /// Per node: 0 while it is not in the graph, else its top layer + 1.
    levels: Buckets<AtomicU8>,
    /// Per node: `[count, ids; 2M]` of layer 0.
    layer0: Buckets<AtomicU32>,
    /// Per node with a top layer above 0: `[count, ids; M]` for layers 1..=top.
    upper: Buckets<OnceLock<Box<[AtomicU32]>>>,
    locks: Buckets<Mutex<()>>,
    /// `top layer << 32 | node` of the entry point, or `NO_ENTRY`.
    entry: AtomicU64,
    entry_lock: Mutex<()>,
    nodes: AtomicUsize,
    /// Nodes inserted by batches since the last [`Hnsw::link_unreachable`].
    unrepaired: AtomicUsize,
    level_mult: f64,
    visited: VisitedPool,
}

impl Hnsw {
    pub fn new(params: Params, arena: Arc<Arena>) -> Hnsw {
        Hnsw {
            levels: Buckets::new(1),
            layer0: Buckets::new(1 + params.m0()),
            upper: Buckets::new(1),
            locks: Buckets::new(1),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            nodes: AtomicUsize::new(0),
            unrepaired: AtomicUsize::new(0),
            level_mult: 1.0 / (params.m as f64).ln(),
            visited: VisitedPool::default(),
            params,
            arena,
        }
    }

    pub fn params(&self) -> Params {
        self.params
    }

    pub fn arena(&self) -> &Arc<Arena> {
        &self.arena
    }

    /// Nodes in the graph.
    pub fn len(&self) -> usize {
        self.nodes.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `node` was inserted.
    pub fn contains(&self, node: u32) -> bool {
        self.level_of(node).is_some()
    }

    /// Bytes of link storage allocated.
    pub fn allocated_bytes(&self) -> usize {
        let upper: usize = self.len() / self.params.m.max(1) * (1 + self.params.m) * 4;
        self.levels.allocated_bytes()
            + self.layer0.allocated_bytes()
            + self.upper.allocated_bytes()
            + self.locks.allocated_bytes()
            + upper
    }

    #[inline]
    fn level_of(&self, node: u32) -> Option<usize> {
        let l = self.levels.row(node as usize)?[0].load(Ordering::Acquire);
        (l > 0).then(|| l as usize - 1)
    }

    #[inline]
    fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        distance(self.params.space, a, b)
    }

    #[inline]
    fn dist_to(&self, q: &[f32], node: u32) -> f32 {
        match self.arena.vector(node) {
            Some(v) => self.dist(q, v),
            None => f32::INFINITY,
        }
    }

    /// The list row of `node` at `layer`: `[count, ids…]`.
    #[inline]
    fn row(&self, node: u32, layer: usize) -> Option<&[AtomicU32]> {
        if layer == 0 {
            return self.layer0.row(node as usize);
        }
        let block = self.upper.row(node as usize)?[0].get()?;
        let width = 1 + self.params.m;
        block.get((layer - 1) * width..layer * width)
    }

    /// Copies the neighbours of `node` at `layer` into `out`.
    #[inline]
    fn neighbours_into(&self, node: u32, layer: usize, out: &mut Vec<u32>) {
        out.clear();
        if let Some(row) = self.row(node, layer) {
            let n = (row[0].load(Ordering::Acquire) as usize).min(row.len() - 1);
            out.extend(row[1..1 + n].iter().map(|a| a.load(Ordering::Relaxed)));
        }
    }

    fn set_neighbours(&self, row: &[AtomicU32], ids: &[u32]) {
        let n = ids.len().min(row.len() - 1);
        for (slot, id) in row[1..1 + n].iter().zip(ids) {
            slot.store(*id, Ordering::Relaxed);
        }
        row[0].store(n as u32, Ordering::Release);
    }

    fn entry(&self) -> Option<(u32, usize)> {
        let e = self.entry.load(Ordering::Acquire);
        (e != NO_ENTRY).then_some((e as u32, (e >> 32) as usize))
    }

    fn random_level(&self) -> usize {
        let u: f64 = rand::rng().random_range(f64::MIN_POSITIVE..1.0);
        ((-u.ln() * self.level_mult) as usize).min(MAX_LEVEL)
    }

    /// Makes room for nodes below `nodes`; call before inserting them in parallel.
    pub fn reserve(&self, nodes: usize) {
        self.levels.reserve(nodes);
        self.layer0.reserve(nodes);
        self.upper.reserve(nodes);
        self.locks.reserve(nodes);
    }

    /// Inserts the nodes (published arena slots) using every core of the current rayon
    /// pool; nodes already in the graph are skipped.
    pub fn insert_batch(&self, nodes: &[u32]) {
        use rayon::prelude::*;
        if let Some(max) = nodes.iter().max() {
            self.reserve(*max as usize + 1);
        }
        nodes.par_iter().for_each(|&n| self.insert(n));
        self.unrepaired.fetch_add(nodes.len(), Ordering::AcqRel);
    }

    /// Inserts one node. The node's vector must be published in the arena.
    pub fn insert(&self, node: u32) {
        let Some(q) = self.arena.vector(node) else {
            return;
        };
        self.reserve(node as usize + 1);
        let (Some(lock), Some(level_cell)) = (
            self.locks.row(node as usize),
            self.levels.row(node as usize),
        ) else {
            return;
        };
        let level = {
            let _own = lock[0].lock();
            if level_cell[0].load(Ordering::Acquire) != 0 {
                return;
            }
            let level = self.random_level();
            if level > 0 {
                let width = 1 + self.params.m;
                if let Some(cell) = self.upper.row(node as usize) {
                    let _ = cell[0].set((0..level * width).map(|_| AtomicU32::new(0)).collect());
                }
            }
            level_cell[0].store(level as u8 + 1, Ordering::Release);
            level
        };
        let Some((mut cur, top)) = self.entry().or_else(|| self.become_first(node, level)) else {
            self.nodes.fetch_add(1, Ordering::AcqRel);
            return;
        };
        if cur == node {
            self.nodes.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let mut cur_dist = self.dist_to(q, cur);
        let mut scratch = Vec::with_capacity(self.params.m0());
        for layer in (level + 1..=top).rev() {
            (cur, cur_dist) = self.greedy(q, cur, cur_dist, layer, &mut scratch);
        }
        let mut visited = self.visited.take(self.arena.len() as usize);
        let mut entries = vec![Near {
            dist: cur_dist,
            node: cur,
        }];
        for layer in (0..=level.min(top)).rev() {
            let found = self.search_layer(
                q,
                &entries,
                self.params.ef_construction,
                layer,
                &mut visited,
                |_| true,
                Traversal::Dense,
                &mut scratch,
            );
            let chosen = self.select(&found, self.params.m, Some(node));
            if let Some(row) = self.row(node, layer) {
                let _own = lock[0].lock();
                self.set_neighbours(row, &chosen);
            }
            for &nb in &chosen {
                self.link(nb, node, layer, &mut scratch);
            }
            entries = found;
            visited.reset(self.arena.len() as usize);
        }
        self.visited.put(visited);
        if level > top {
            let _e = self.entry_lock.lock();
            if self.entry().is_none_or(|(_, t)| level > t) {
                self.entry
                    .store((level as u64) << 32 | u64::from(node), Ordering::Release);
            }
        }
        self.nodes.fetch_add(1, Ordering::AcqRel);
    }

    /// Makes `node` the entry point of an empty graph; `None` if it did (nothing to link).
    fn become_first(&self, node: u32, level: usize) -> Option<(u32, usize)> {
        let _e = self.entry_lock.lock();
        if let Some(e) = self.entry() {
            return Some(e);
        }
        self.entry
            .store((level as u64) << 32 | u64::from(node), Ordering::Release);
        None
    }

    /// Adds `new` to `node`'s list at `layer`, re-selecting by the heuristic on overflow.
    fn link(&self, node: u32, new: u32, layer: usize, scratch: &mut Vec<u32>) {
        let (Some(row), Some(lock)) = (self.row(node, layer), self.locks.row(node as usize)) else {
            return;
        };
        let cap = if layer == 0 {
            self.params.m0()
        } else {
            self.params.m
        };
        let _own = lock[0].lock();
        self.neighbours_into(node, layer, scratch);
        if scratch.contains(&new) {
            return;
        }
        if scratch.len() < cap {
            row[1 + scratch.len()].store(new, Ordering::Relaxed);
            row[0].store(scratch.len() as u32 + 1, Ordering::Release);
            return;
        }
        let Some(base) = self.arena.vector(node) else {
            return;
        };
        let mut cands: Vec<Near> = scratch
            .iter()
            .chain(std::iter::once(&new))
            .map(|&n| Near {
                dist: self.dist_to(base, n),
                node: n,
            })
            .collect();
        cands.sort_unstable();
        let kept = self.select(&cands, cap, Some(node));
        self.set_neighbours(row, &kept);
    }

    /// Makes every layer-0 node reachable from the entry point, and from a well-linked
    /// node. The diversity heuristic can strip a node, or a small group of nodes, of its
    /// in-edges from the rest of the graph as neighbour lists fill up and are re-selected
    /// (points far from the others are the usual victims, and their own lists are short);
    /// no search could then find them, not even a query for their own vector. A walk over
    /// layer 0 and a count of in-edges from nodes with lists of at least M/2 find them;
    /// each gets an in-edge from the nearest reachable node with room in its list that
    /// does not link to it yet, found by a search. One pass over every list, so call it
    /// once a batch of inserts is done, not per insert. Returns the nodes relinked.
    pub fn link_unreachable(&self) -> usize {
        self.unrepaired.store(0, Ordering::Release);
        let Some((entry, _)) = self.entry() else {
            return 0;
        };
        let n = self.arena.len() as usize;
        let mut reached = vec![false; n];
        // in-edges from nodes with a real list of their own: a group of outliers that only
        // link to each other has in-edges, but none a search coming from elsewhere takes
        let mut in_degree = vec![0u32; n];
        let mut scratch = Vec::with_capacity(self.params.m0());
        let well_linked = (self.params.m / 2).max(2);
        for node in 0..n as u32 {
            self.neighbours_into(node, 0, &mut scratch);
            if scratch.len() < well_linked {
                continue;
            }
            for &nb in &scratch {
                if let Some(d) = in_degree.get_mut(nb as usize) {
                    *d += 1;
                }
            }
        }
        self.mark_reachable(entry, &mut reached, &mut scratch);
        let mut relinked = 0;
        for node in 0..n as u32 {
            let weak = in_degree[node as usize] == 0;
            if (reached[node as usize] && !weak) || node == entry || !self.contains(node) {
                continue;
            }
            let Some(v) = self.arena.vector(node) else {
                continue;
            };
            // a host with room that does not link to the node yet
            let can_host = |x: u32| {
                x != node
                    && self.row(x, 0).is_some_and(|r| {
                        let len = (r[0].load(Ordering::Acquire) as usize).min(r.len() - 1);
                        len < self.params.m0()
                            && !r[1..1 + len]
                                .iter()
                                .any(|id| id.load(Ordering::Relaxed) == node)
                    })
            };
            let hosts = self.search(
                v,
                1,
                self.params.ef_construction,
                |x| reached.get(x as usize).copied().unwrap_or(false) && can_host(x),
                Traversal::Dense,
            );
            if hosts.first().is_some_and(|h| self.add_edge(h.node, node)) {
                relinked += 1;
                in_degree[node as usize] += 1;
                if !reached[node as usize] {
                    self.mark_reachable(node, &mut reached, &mut scratch);
                }
            }
        }
        relinked
    }

    /// Whether enough has been inserted since the last [`Hnsw::link_unreachable`] to pay
    /// for another: always for small graphs (the pass is a few milliseconds), otherwise
    /// once the new nodes reach 1/16 of the graph, so that on a large graph fed small
    /// batches the pass costs a bounded amount per inserted node.
    pub fn repair_due(&self) -> bool {
        const ALWAYS_BELOW: usize = 65_536;
        const EVERY_SHARE: usize = 16;
        let since = self.unrepaired.load(Ordering::Acquire);
        since > 0 && (self.len() < ALWAYS_BELOW || since * EVERY_SHARE >= self.len())
    }

    /// Whether nodes were inserted since the last [`Hnsw::link_unreachable`].
    pub fn repair_pending(&self) -> bool {
        self.unrepaired.load(Ordering::Acquire) > 0
    }

    /// Marks every node reachable from `from` over layer-0 lists.
    fn mark_reachable(&self, from: u32, reached: &mut [bool], scratch: &mut Vec<u32>) {
        let mut stack = vec![from];
        if let Some(r) = reached.get_mut(from as usize) {
            *r = true;
        }
        while let Some(node) = stack.pop() {
            self.neighbours_into(node, 0, scratch);
            for &nb in scratch.iter() {
                if let Some(r) = reached.get_mut(nb as usize) {
                    if !*r {
                        *r = true;
                        stack.push(nb);
                    }
                }
            }
        }
    }

    /// Adds `to` to `from`'s layer-0 list if it has room.
    fn add_edge(&self, from: u32, to: u32) -> bool {
        let (Some(row), Some(lock)) = (self.row(from, 0), self.locks.row(from as usize)) else {
            return false;
        };
        let _own = lock[0].lock();
        let mut ids = Vec::with_capacity(self.params.m0());
        self.neighbours_into(from, 0, &mut ids);
        if ids.contains(&to) {
            return true;
        }
        if ids.len() >= self.params.m0() {
            return false;
        }
        ids.push(to);
        self.set_neighbours(row, &ids);
        true
    }

    /// The diversity heuristic: walks candidates nearest first and keeps one only if it is
    /// closer to the base than to every candidate already kept.
    fn select(&self, sorted: &[Near], m: usize, exclude: Option<u32>) -> Vec<u32> {
        let mut kept: Vec<(u32, &[f32])> = Vec::with_capacity(m);
        for c in sorted {
            if kept.len() >= m {
                break;
            }
            if Some(c.node) == exclude {
                continue;
            }
            let Some(v) = self.arena.vector(c.node) else {
                continue;
            };
            if kept.iter().all(|(_, kv)| self.dist(v, kv) > c.dist) {
                kept.push((c.node, v));
            }
        }
        kept.into_iter().map(|(n, _)| n).collect()
    }

    /// Walks `layer` greedily from `cur` to a local minimum.
    fn greedy(
        &self,
        q: &[f32],
        mut cur: u32,
        mut cur_dist: f32,
        layer: usize,
        scratch: &mut Vec<u32>,
    ) -> (u32, f32) {
        loop {
            let mut moved = false;
            self.neighbours_into(cur, layer, scratch);
            for &n in scratch.iter() {
                let d = self.dist_to(q, n);
                if d < cur_dist {
                    cur = n;
                    cur_dist = d;
                    moved = true;
                }
            }
            if !moved {
                return (cur, cur_dist);
            }
        }
    }

    /// Best-first search of one layer; returns up to `ef` accepted nodes, nearest first.
    #[allow(clippy::too_many_arguments)]
    fn search_layer<F: Fn(u32) -> bool>(
        &self,
        q: &[f32],
        entries: &[Near],
        ef: usize,
        layer: usize,
        visited: &mut Visited,
        accept: F,
        traversal: Traversal,
        scratch: &mut Vec<u32>,
    ) -> Vec<Near> {
        let ef = ef.max(1);
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
        for e in entries {
            if visited.insert(e.node) {
                candidates.push(Reverse(*e));
                if accept(e.node) {
                    results.push(*e);
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        let mut second_hop = Vec::new();
        let mut fresh = Vec::with_capacity(self.params.m0());
        while let Some(Reverse(c)) = candidates.pop() {
            let bound = results.peek().map_or(f32::INFINITY, |w| w.dist);
            if c.dist > bound && results.len() >= ef {
                break;
            }
            self.neighbours_into(c.node, layer, scratch);
            // the next candidate's list is read next: start loading it now
            if let Some(Reverse(next)) = candidates.peek() {
                if let Some(row) = self.row(next.node, layer) {
                    prefetch(row.as_ptr().cast(), 1);
                }
            }
            // mark first, then keep the next few unvisited vectors loading while one is
            // scored, so that memory latencies overlap instead of adding up
            fresh.clear();
            fresh.extend(scratch.iter().copied().filter(|&n| visited.insert(n)));
            let dense = traversal == Traversal::Dense;
            if dense {
                prefetch_vectors(&self.arena, &fresh[..PREFETCH_AHEAD.min(fresh.len())]);
            }
            for (j, &n) in fresh.iter().enumerate() {
                if dense {
                    if let Some(ahead) = fresh.get(j + PREFETCH_AHEAD) {
                        prefetch_vectors(&self.arena, std::slice::from_ref(ahead));
                    }
                }
                if !dense && !accept(n) {
                    // step over the rejected node to its accepted neighbours
                    self.neighbours_into(n, layer, &mut second_hop);
                    for &n2 in &second_hop {
                        if !visited.contains(n2) && accept(n2) {
                            visited.insert(n2);
                            consider(self, q, n2, true, ef, &mut candidates, &mut results);
                        }
                    }
                    continue;
                }
                consider(self, q, n, accept(n), ef, &mut candidates, &mut results);
            }
        }
        results.into_sorted_vec()
    }

    /// The `k` nearest accepted nodes to `q` (a search-form vector), nearest first, with
    /// their distances. `ef` is the search breadth (at least `k` is used).
    pub fn search<F: Fn(u32) -> bool>(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        accept: F,
        traversal: Traversal,
    ) -> Vec<Near> {
        if k == 0 || q.len() != self.arena.dimension() {
            return Vec::new();
        }
        let Some((mut cur, top)) = self.entry() else {
            return Vec::new();
        };
        let mut cur_dist = self.dist_to(q, cur);
        let mut scratch = Vec::with_capacity(self.params.m0());
        for layer in (1..=top).rev() {
            (cur, cur_dist) = self.greedy(q, cur, cur_dist, layer, &mut scratch);
        }
        let mut visited = self.visited.take(self.arena.len() as usize);
        let mut found = self.search_layer(
            q,
            &[Near {
                dist: cur_dist,
                node: cur,
            }],
            ef.max(k),
            0,
            &mut visited,
            accept,
            traversal,
            &mut scratch,
        );
        self.visited.put(visited);
        found.truncate(k);
        found
    }
}

/// Scores `n` and keeps it if it may still improve the results.
#[inline]
fn consider(
    g: &Hnsw,
    q: &[f32],
    n: u32,
    accepted: bool,
    ef: usize,
    candidates: &mut BinaryHeap<Reverse<Near>>,
    results: &mut BinaryHeap<Near>,
) {
    let d = g.dist_to(q, n);
    let bound = results.peek().map_or(f32::INFINITY, |w| w.dist);
    if results.len() < ef || d < bound {
        let near = Near { dist: d, node: n };
        candidates.push(Reverse(near));
        if accepted {
            results.push(near);
            if results.len() > ef {
                results.pop();
            }
        }
    }
}

/// Vectors requested ahead of the one being scored. Measured at 50k × 384 (p50 at ef 10,
/// 50, 100): the first four lines of every neighbour at once, 47/121/169 µs; whole
/// vectors, three ahead, 31/82/118 µs; two or four ahead, a little slower.
const PREFETCH_AHEAD: usize = 3;
/// Cache lines requested per vector: all of it, up to 2 KiB (384 floats are 24 lines).
const PREFETCH_LINES: usize = 32;

/// Asks the CPU to start loading the vectors a search is about to score.
#[inline]
fn prefetch_vectors(arena: &Arena, nodes: &[u32]) {
    for &n in nodes {
        if let Some(v) = arena.vector(n) {
            let lines = (std::mem::size_of_val(v)).div_ceil(64).min(PREFETCH_LINES);
            prefetch(v.as_ptr().cast(), lines);
        }
    }
}

/// Hints that `lines` cache lines from `p` are about to be read.
#[inline]
fn prefetch(p: *const u8, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in 0..lines {
        // SAFETY: prefetching is a hint that never faults; the address is computed with
        // wrapping arithmetic and never dereferenced.
        unsafe {
            std::arch::x86_64::_mm_prefetch(
                p.wrapping_add(line * 64).cast::<i8>(),
                std::arch::x86_64::_MM_HINT_T0,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, lines);
}

/// One node's lists as stored: its top layer and its neighbours per layer (0 first).
pub struct NodeLinks {
    pub top: usize,
    pub layers: Vec<Vec<u32>>,
}

impl Hnsw {
    /// The entry point as (node, top layer).
    pub fn entry_point(&self) -> Option<(u32, usize)> {
        self.entry()
    }

    /// The lists of `node`, if it is in the graph.
    pub fn export_node(&self, node: u32) -> Option<NodeLinks> {
        let top = self.level_of(node)?;
        let mut scratch = Vec::new();
        let layers = (0..=top)
            .map(|layer| {
                self.neighbours_into(node, layer, &mut scratch);
                scratch.clone()
            })
            .collect();
        Some(NodeLinks { top, layers })
    }

    /// Rebuilds a graph from stored lists; `None` if they do not form a valid graph of
    /// `params` over `arena` (a node or neighbour outside the arena, a list too long, an
    /// entry point that is not a node of its layer).
    pub fn import(
        params: Params,
        arena: Arc<Arena>,
        entry: Option<(u32, usize)>,
        nodes: impl IntoIterator<Item = (u32, NodeLinks)>,
    ) -> Option<Hnsw> {
        let g = Hnsw::new(params, arena);
        let slots = g.arena.len();
        g.reserve(slots as usize);
        let width = 1 + params.m;
        let mut count = 0usize;
        for (node, links) in nodes {
            if node >= slots || links.top > MAX_LEVEL || links.layers.len() != links.top + 1 {
                return None;
            }
            if links.top > 0 {
                let cell = g.upper.row(node as usize)?;
                cell[0]
                    .set((0..links.top * width).map(|_| AtomicU32::new(0)).collect())
                    .ok()?;
            }
            for (layer, ids) in links.layers.iter().enumerate() {
                let cap = if layer == 0 { params.m0() } else { params.m };
                if ids.len() > cap || ids.iter().any(|&n| n >= slots) {
                    return None;
                }
                g.set_neighbours(g.row(node, layer)?, ids);
            }
            g.levels.row(node as usize)?[0].store(links.top as u8 + 1, Ordering::Release);
            count += 1;
        }
        match entry {
            Some((node, top)) => {
                if g.level_of(node) != Some(top) {
                    return None;
                }
                g.entry
                    .store((top as u64) << 32 | u64::from(node), Ordering::Release);
            }
            None if count > 0 => return None,
            None => {}
        }
        // every neighbour must be a node that has the layer it is linked at
        for node in 0..slots {
            let Some(top) = g.level_of(node) else {
                continue;
            };
            let mut scratch = Vec::new();
            for layer in 0..=top {
                g.neighbours_into(node, layer, &mut scratch);
                if scratch
                    .iter()
                    .any(|&n| g.level_of(n).is_none_or(|t| t < layer))
                {
                    return None;
                }
            }
        }
        g.nodes.store(count, Ordering::Release);
        Some(g)
    }
}
