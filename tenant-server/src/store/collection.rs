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
use super::graph::Graph;
use super::types::{HnswConfig, Space};

const FILTER_CACHE_ENTRIES: NonZeroUsize = match NonZeroUsize::new(32) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

pub struct VectorSet {
    pub dimension: usize,
    /// `dimension` floats per label; slots of dead labels are left in place.
    pub data: Vec<f32>,
}

impl VectorSet {
    pub fn get(&self, label: u32) -> Option<&[f32]> {
        let start = (label as usize).checked_mul(self.dimension)?;
        self.data.get(start..start + self.dimension)
    }

    pub fn set(&mut self, label: u32, v: &[f32]) {
        let start = label as usize * self.dimension;
        if self.data.len() < start + self.dimension {
            self.data.resize(start + self.dimension, 0.0);
        }
        self.data[start..start + self.dimension].copy_from_slice(v);
    }
}

pub struct ServingState {
    pub live: RoaringBitmap,
    /// `None` until the collection's dimension is fixed by its first add.
    pub vectors: Option<VectorSet>,
    pub graph: Option<Arc<Graph>>,
    /// Every live label below this is in `graph`, except those in `reindex`.
    pub indexed_upto: u32,
    /// Labels below `indexed_upto` whose embedding changed after it was put in the graph.
    pub reindex: RoaringBitmap,
    /// Embedding generation of each label whose embedding changed at least once.
    pub generations: std::collections::HashMap<u32, u32>,
    /// Points inserted since the graph was last written to disk.
    pub unsaved_points: usize,
    /// A saved graph waits to be loaded by the indexer (the collection serves by exact
    /// scan meanwhile); the value is the collection's next label when it was opened: a
    /// dump claiming more than that is newer than the records and is not trusted.
    pub pending_dump: Option<u32>,
}

impl ServingState {
    pub fn generation(&self, label: u32) -> u32 {
        self.generations.get(&label).copied().unwrap_or(0)
    }

    /// Live records the graph does not answer for yet (found by exact scan meanwhile).
    pub fn unindexed(&self) -> u64 {
        self.live.range_cardinality(self.indexed_upto..) + self.reindex.intersection_len(&self.live)
    }

    /// Whether graph point `id` is the current embedding of a live, indexed record.
    pub fn point_is_current(&self, id: usize) -> bool {
        let (label, generation) = super::keys::split_point(id);
        label < self.indexed_upto
            && self.live.contains(label)
            && !self.reindex.contains(label)
            && self.generation(label) == generation
    }

    /// Labels a query must scan exactly because the graph does not have them yet.
    pub fn unindexed_labels(&self) -> RoaringBitmap {
        let mut tail: RoaringBitmap = self.live.range(self.indexed_upto..).collect();
        tail |= &self.reindex & &self.live;
        tail
    }

    /// Graph points that no longer answer to a live record.
    pub fn tombstones(&self) -> usize {
        let graph_points = self.graph.as_ref().map_or(0, |g| g.len());
        let live_indexed = self.live.range_cardinality(..self.indexed_upto)
            - (&self.reindex & &self.live).range_cardinality(..self.indexed_upto);
        graph_points.saturating_sub(live_indexed as usize)
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

    /// Rough resident size: vectors twice (ours and the graph's copy) plus graph links.
    pub fn refresh_memory(&self) {
        let st = self.state.read();
        let vec_bytes = st.vectors.as_ref().map_or(0, |v| v.data.len() * 4);
        let graph_bytes = st.graph.as_ref().map_or(0, |g| {
            g.len() * (g.dimension * 4 + g.config.max_neighbors * 2 * 16 + 64)
        });
        let live_bytes = st.live.serialized_size();
        self.memory_bytes
            .store(vec_bytes + graph_bytes + live_bytes, Ordering::Relaxed);
    }

    pub fn memory(&self) -> usize {
        self.memory_bytes.load(Ordering::Relaxed)
    }
}
