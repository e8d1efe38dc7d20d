//! Visited sets for graph searches: one mark per node, reset in O(1) by bumping an epoch,
//! and pooled so that a search allocates nothing once the pool is warm.

use parking_lot::Mutex;

pub struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    fn new() -> Visited {
        Visited {
            marks: Vec::new(),
            epoch: 0,
        }
    }

    /// Forgets every mark (O(1)); `nodes` is the size to prepare for.
    pub fn reset(&mut self, nodes: usize) {
        if self.marks.len() < nodes {
            self.marks.resize(nodes, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `node`; false if it was already marked in this search.
    #[inline]
    pub fn insert(&mut self, node: u32) -> bool {
        let i = node as usize;
        if i >= self.marks.len() {
            // the graph grew while this search ran
            self.marks.resize(i + 1024, 0);
        }
        let m = &mut self.marks[i];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }

    #[inline]
    pub fn contains(&self, node: u32) -> bool {
        self.marks.get(node as usize) == Some(&self.epoch)
    }
}

#[derive(Default)]
pub struct VisitedPool {
    free: Mutex<Vec<Visited>>,
}

impl VisitedPool {
    /// A cleared visited set able to hold `nodes` nodes; give it back with [`Self::put`].
    pub fn take(&self, nodes: usize) -> Visited {
        let mut v = self.free.lock().pop().unwrap_or_else(Visited::new);
        v.reset(nodes);
        v
    }

    pub fn put(&self, v: Visited) {
        self.free.lock().push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_clear_marks_even_across_wraparound() {
        let pool = VisitedPool::default();
        let mut v = pool.take(10);
        assert!(v.insert(3));
        assert!(!v.insert(3));
        assert!(
            v.insert(50),
            "a node past the reserved size is still tracked"
        );
        pool.put(v);
        for _ in 0..70_000 {
            let mut v = pool.take(10);
            assert!(!v.contains(3));
            assert!(v.insert(3));
            pool.put(v);
        }
    }
}
