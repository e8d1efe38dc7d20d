//! A collection's in-memory serving state: its vectors in search form, the set of live
//! labels, and its HNSW graph with the watermark below which the graph is complete.
//!
//! Built from RocksDB when the collection is first used and dropped with its project.
//! Records at or above the watermark (written but not yet indexed) are found by exact scan,
//! so a query never misses an acknowledged write while the indexer catches up.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use uuid::Uuid;

use super::distance::search_form;
use super::index::{Arena, Hnsw};
use super::types::{HnswConfig, Space};

const FILTER_CACHE_ENTRIES: NonZeroUsize = match NonZeroUsize::new(32) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A collection's vectors: the arena of slots and, per label, the slot of its current
/// embedding. A new embedding always takes a new slot (see [`Arena`]), so the graph and
/// the exact scan never see a vector change under them.
pub struct Vectors {
    pub dimension: usize,
    pub arena: Arc<Arena>,
    /// label -> slot of its current embedding, or `NO_SLOT`.
    slot_of: Vec<u32>,
    /// Slots that no longer hold a current embedding.
    dead: usize,
    /// One bit per slot, set when the slot is dead: what a search asks of every node it
    /// scores, so it is kept in a few cache lines rather than looked up through the
    /// slot's label.
    dead_bits: Vec<u64>,
}

pub const NO_SLOT: u32 = u32::MAX;

impl Vectors {
    pub fn new(dimension: usize) -> Vectors {
        Vectors::over(Arc::new(Arena::new(dimension)))
    }

    /// Vectors over an arena that has slots already (read from disk): every slot starts
    /// dead, and [`Vectors::adopt`] claims the ones that are current.
    pub fn over(arena: Arc<Arena>) -> Vectors {
        let slots = arena.len() as usize;
        let mut dead_bits = vec![u64::MAX; slots.div_ceil(64)];
        if let Some(last) = dead_bits.last_mut() {
            if !slots.is_multiple_of(64) {
                *last = (1u64 << (slots % 64)) - 1;
            }
        }
        Vectors {
            dimension: arena.dimension(),
            dead: slots,
            arena,
            slot_of: Vec::new(),
            dead_bits,
        }
    }

    fn set_dead(&mut self, slot: u32, dead: bool) {
        let (word, bit) = (slot as usize / 64, slot % 64);
        if self.dead_bits.len() <= word {
            self.dead_bits.resize(word + 1, 0);
        }
        if dead {
            self.dead_bits[word] |= 1 << bit;
        } else {
            self.dead_bits[word] &= !(1 << bit);
        }
    }

    #[inline]
    pub fn slot(&self, label: u32) -> Option<u32> {
        self.slot_of
            .get(label as usize)
            .copied()
            .filter(|&s| s != NO_SLOT)
    }

    #[inline]
    pub fn get(&self, label: u32) -> Option<&[f32]> {
        self.arena.vector(self.slot(label)?)
    }

    /// Gives `label` a new embedding (in search form) in a new slot.
    pub fn set(&mut self, label: u32, v: &[f32]) {
        let slot = self.arena.push(label, v);
        self.point(label, slot);
    }

    /// Makes an existing slot the current embedding of `label`.
    pub fn adopt(&mut self, label: u32, slot: u32) {
        self.dead = self.dead.saturating_sub(1);
        self.point(label, slot);
    }

    fn point(&mut self, label: u32, slot: u32) {
        let i = label as usize;
        if self.slot_of.len() <= i {
            self.slot_of.resize(i + 1, NO_SLOT);
        }
        let old = self.slot_of[i];
        if old != NO_SLOT {
            self.dead += 1;
            self.set_dead(old, true);
        }
        self.slot_of[i] = slot;
        self.set_dead(slot, false);
    }

    pub fn remove(&mut self, label: u32) {
        if let Some(s) = self.slot_of.get_mut(label as usize) {
            let old = *s;
            if old != NO_SLOT {
                *s = NO_SLOT;
                self.dead += 1;
                self.set_dead(old, true);
            }
        }
    }

    /// Whether `slot` holds the current embedding of its label.
    #[inline]
    pub fn is_current(&self, slot: u32) -> bool {
        !self.is_dead(slot) && slot < self.arena.len()
    }

    #[inline]
    fn is_dead(&self, slot: u32) -> bool {
        self.dead_bits
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// How many slots in `from..to` hold a current embedding: the range less its dead
    /// bits, a popcount per 64 slots (the stats and metrics ask this of every loaded
    /// collection).
    pub fn current_in(&self, from: u32, to: u32) -> u64 {
        let to = to.min(self.arena.len());
        if from >= to {
            return 0;
        }
        let mut dead = 0u64;
        let mut s = from;
        // ragged ends bit by bit, whole words between them by popcount
        while s < to && !s.is_multiple_of(64) {
            dead += u64::from(self.is_dead(s));
            s += 1;
        }
        while s + 64 <= to {
            dead += self
                .dead_bits
                .get(s as usize / 64)
                .map_or(0, |w| u64::from(w.count_ones()));
            s += 64;
        }
        while s < to {
            dead += u64::from(self.is_dead(s));
            s += 1;
        }
        u64::from(to - from) - dead
    }

    /// Slots holding superseded or deleted embeddings.
    pub fn dead(&self) -> usize {
        self.dead
    }

    /// (label, slot) of every current embedding, in label order.
    pub fn current(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slot_of
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != NO_SLOT)
            .map(|(l, s)| (l as u32, *s))
    }

    pub fn allocated_bytes(&self) -> usize {
        self.arena.allocated_bytes() + self.slot_of.capacity() * 4
    }
}

pub struct ServingState {
    pub live: RoaringBitmap,
    /// `None` until the collection's dimension is fixed by its first add.
    pub vectors: Option<Vectors>,
    /// The graph over `vectors.arena` (always that arena: they are replaced together).
    pub graph: Option<Arc<Hnsw>>,
    /// Every current slot below this is in `graph`; the slots from here on are found by
    /// exact scan until the indexer reaches them.
    pub indexed_upto: u32,
    /// Points inserted since the index was last written to disk.
    pub unsaved_points: usize,
    /// Writes applied since the index was last written to disk.
    pub unsaved_writes: u64,
    /// The collection's write version (`Counters::version`) this state reflects.
    pub version: u64,
}

impl ServingState {
    /// Current embeddings the graph does not answer for yet (found by exact scan meanwhile).
    pub fn unindexed(&self) -> u64 {
        self.vectors.as_ref().map_or(0, |v| {
            let len = v.arena.len();
            v.current_in(self.indexed_upto.min(len), len)
        })
    }

    /// Slots a query must scan exactly because the graph does not have them yet.
    pub fn unindexed_slots(&self) -> impl Iterator<Item = u32> + '_ {
        let (from, to, vectors) = match self.vectors.as_ref() {
            Some(v) => (self.indexed_upto.min(v.arena.len()), v.arena.len(), Some(v)),
            None => (0, 0, None),
        };
        (from..to).filter(move |&s| vectors.is_some_and(|v| v.is_current(s)))
    }

    /// Whether the index on disk lags behind this state.
    pub fn is_unsaved(&self) -> bool {
        self.unsaved_points > 0 || self.unsaved_writes > 0
    }

    /// Graph points (and not yet indexed slots) that no longer answer to a live record.
    pub fn tombstones(&self) -> usize {
        self.vectors.as_ref().map_or(0, |v| v.dead())
    }
}

pub struct Collection {
    pub id: Uuid,
    pub space: Space,
    pub hnsw: HnswConfig,
    pub index_dir: PathBuf,
    pub state: RwLock<ServingState>,
    /// Writers to one collection go one at a time: labels, counters and read-modify-write
    /// of existing records stay consistent without transactions.
    pub write_lock: Mutex<()>,
    pub dropped: AtomicBool,
    /// Bumped after every applied write; filter results cached under an older value are stale.
    write_generation: AtomicU64,
    filter_cache: Mutex<lru::LruCache<String, (u64, RoaringBitmap)>>,
    /// Set while the collection waits in the indexer's queue.
    pub index_queued: AtomicBool,
    /// Held while the graph is being changed or written, so closing waits for the indexer.
    pub index_work: Mutex<()>,
    pub memory_bytes: AtomicUsize,
    /// Whether the collection was loaded from its index files alone (no RocksDB scan).
    pub loaded_from_files: bool,
}

impl Collection {
    pub fn new(id: Uuid, hnsw: HnswConfig, index_dir: PathBuf, state: ServingState) -> Collection {
        let c = Collection {
            id,
            space: hnsw.space,
            hnsw,
            index_dir,
            state: RwLock::new(state),
            write_lock: Mutex::new(()),
            dropped: AtomicBool::new(false),
            write_generation: AtomicU64::new(0),
            filter_cache: Mutex::new(lru::LruCache::new(FILTER_CACHE_ENTRIES)),
            index_queued: AtomicBool::new(false),
            index_work: Mutex::new(()),
            memory_bytes: AtomicUsize::new(0),
            loaded_from_files: false,
        };
        c.refresh_memory();
        c
    }

    pub fn write_generation(&self) -> u64 {
        self.write_generation.load(Ordering::SeqCst)
    }

    /// Called after a write is applied to the serving state.
    pub fn note_write(&self) {
        self.write_generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn cached_filter(&self, key: &str, generation: u64) -> Option<RoaringBitmap> {
        let mut cache = self.filter_cache.lock();
        match cache.get(key) {
            Some((g, set)) if *g == generation => Some(set.clone()),
            _ => None,
        }
    }

    pub fn cache_filter(&self, key: String, generation: u64, set: &RoaringBitmap) {
        if self.write_generation() == generation {
            self.filter_cache.lock().put(key, (generation, set.clone()));
        }
    }

    pub fn search_vector(&self, v: &[f32]) -> Vec<f32> {
        search_form(self.space, v)
    }

    /// Resident size: the vectors (one copy, which the graph shares) plus graph links.
    pub fn refresh_memory(&self) {
        let st = self.state.read();
        let vec_bytes = st.vectors.as_ref().map_or(0, |v| v.allocated_bytes());
        let graph_bytes = st.graph.as_ref().map_or(0, |g| g.allocated_bytes());
        let live_bytes = st.live.serialized_size();
        self.memory_bytes
            .store(vec_bytes + graph_bytes + live_bytes, Ordering::Relaxed);
    }

    pub fn memory(&self) -> usize {
        self.memory_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_slots_follow_sets_adoptions_and_removals() {
        let arena = Arc::new(Arena::new(2));
        // two saved slots for label 0 (the second is current) and one for label 1
        arena.push(0, &[0.0, 0.0]);
        arena.push(0, &[1.0, 0.0]);
        arena.push(1, &[0.0, 1.0]);
        let mut v = Vectors::over(Arc::clone(&arena));
        assert!((0..3).all(|s| !v.is_current(s)), "saved slots start dead");
        assert_eq!(v.dead(), 3);
        v.adopt(0, 1);
        v.adopt(1, 2);
        assert_eq!(
            (0..3).map(|s| v.is_current(s)).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert_eq!(v.dead(), 1);
        // a new embedding for label 1 kills its old slot
        v.set(1, &[2.0, 2.0]);
        assert!(!v.is_current(2) && v.is_current(3));
        // a removal kills the current slot; a slot nobody pushed is not current
        v.remove(0);
        assert!(!v.is_current(1));
        assert!(!v.is_current(99));
        assert_eq!(v.dead(), 3);
        for slot in 64..200u32 {
            v.set(5, &[slot as f32, 0.0]);
            assert!(v.is_current(arena.len() - 1));
        }
        assert_eq!(v.current().count(), 2, "labels 1 and 5");
        // the popcount agrees with asking slot by slot, over ragged and whole words
        for (from, to) in [
            (0, 200),
            (1, 3),
            (3, 64),
            (0, 64),
            (60, 130),
            (64, 128),
            (199, 400),
        ] {
            let one_by_one = (from..to.min(arena.len()))
                .filter(|&s| v.is_current(s))
                .count() as u64;
            assert_eq!(v.current_in(from, to), one_by_one, "{from}..{to}");
        }
        assert_eq!(v.current_in(0, arena.len()), 2);
    }
}
