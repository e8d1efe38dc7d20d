//! Background indexing: inserts newly written records into their collection's HNSW graph,
//! rebuilds a graph when deleted points pile up, and writes graphs to disk.
//!
//! One worker thread for the whole server; each batch is inserted with every core (rayon).
//! Writes never wait for it: queries exact-scan whatever it has not reached yet.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Weak};
use std::thread;

use super::collection::{Collection, ServingState};
use super::counters;
use super::graph::Graph;
use super::keys::point_id;

const BATCH: usize = 2048;
/// Rebuild once dead points exceed this share of the live ones.
const REBUILD_RATIO: f64 = 0.2;
const REBUILD_MIN: usize = 1000;
/// Write the graph to disk after this many new points (or this share of the graph).
const SAVE_EVERY_POINTS: usize = 20_000;
const SAVE_EVERY_RATIO: f64 = 0.25;

#[derive(Clone)]
pub struct Indexer {
    tx: Sender<Weak<Collection>>,
}

/// Indexing is background work: its threads run at a lower scheduling priority so that
/// requests keep the CPU when both compete.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with who = 0 changes only the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

impl Indexer {
    pub fn start() -> Indexer {
        let (tx, rx) = channel::<Weak<Collection>>();
        let spawned = thread::Builder::new()
            .name("quiver-indexer".into())
            .spawn(move || {
                lower_priority();
                let pool = rayon::ThreadPoolBuilder::new()
                    .thread_name(|i| format!("quiver-index-{i}"))
                    .start_handler(|_| lower_priority())
                    .build();
                let pool = match pool {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!("cannot start the indexing thread pool: {e}");
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    if let Some(c) = job.upgrade() {
                        c.index_queued.store(false, Ordering::SeqCst);
                        pool.install(|| catch_up(&c));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the indexer thread: {e}");
        }
        Indexer { tx }
    }

    /// Asks for `c` to be brought up to date; cheap to call after every write.
    pub fn schedule(&self, c: &Arc<Collection>) {
        if !c.index_queued.swap(true, Ordering::SeqCst) {
            let _ = self.tx.send(Arc::downgrade(c));
        }
    }
}

/// Indexes everything live at or above the watermark, rebuilding first if needed.
pub fn catch_up(c: &Collection) {
    let _work = c.index_work.lock();
    loop {
        if c.dropped.load(Ordering::SeqCst) {
            return;
        }
        let pending = c.state.read().pending_dump;
        if let Some(bound) = pending {
            load_dump(c, bound);
            continue;
        }
        let needs_rebuild = {
            let st = c.state.read();
            if st.vectors.is_none() {
                return;
            }
            let live = st.live.len() as usize;
            st.graph.is_none() && live > 0
                || st.tombstones() > REBUILD_MIN.max((live as f64 * REBUILD_RATIO) as usize)
        };
        if needs_rebuild {
            rebuild(c);
            continue;
        }
        if !insert_next_batch(c) {
            break;
        }
    }
    let should_save = {
        let st = c.state.read();
        let graph_len = st.graph.as_ref().map_or(0, |g| g.len());
        st.unsaved_points > 0
            && (st.unsaved_points >= SAVE_EVERY_POINTS
                || st.unsaved_points as f64 >= graph_len as f64 * SAVE_EVERY_RATIO)
    };
    if should_save {
        save_locked(c);
    }
    c.refresh_memory();
}

/// Loads the collection's saved graph (it was opened without it). Records written since
/// the dump, or re-embedded since, are left to the normal catch-up; a missing, corrupt or
/// too new dump leaves no graph, and the collection is rebuilt.
#[tracing::instrument(name = "index.load", skip_all, fields(quiver.collection = %c.id, quiver.points = tracing::field::Empty))]
fn load_dump(c: &Collection, bound: u32) {
    let started = std::time::Instant::now();
    let dimension = c.state.read().vectors.as_ref().map(|v| v.dimension);
    let loaded = dimension.and_then(|d| Graph::load(&c.index_dir, &c.hnsw, d));
    let mut st = c.state.write();
    st.pending_dump = None;
    let Some((graph, manifest)) = loaded else {
        return;
    };
    // a graph newer than the records (e.g. a restored db/) cannot be trusted
    if manifest.indexed_upto > bound || st.graph.is_some() {
        return;
    }
    // labels whose current embedding the saved graph does not hold (changed after it was
    // saved, or while it loaded) are scanned exactly until the indexer adds them
    let current: std::collections::HashSet<usize> = graph.point_ids().into_iter().collect();
    let mut reindex = roaring::RoaringBitmap::new();
    for l in st.live.range(..manifest.indexed_upto) {
        if !current.contains(&point_id(l, st.generation(l))) {
            reindex.insert(l);
        }
    }
    tracing::Span::current().record("quiver.points", graph.len());
    st.graph = Some(Arc::new(graph));
    st.indexed_upto = manifest.indexed_upto;
    st.reindex = reindex;
    drop(st);
    tracing::debug!(
        collection = %c.id,
        ms = started.elapsed().as_millis() as u64,
        "hnsw graph loaded"
    );
}

/// Copies the current embeddings of `labels` as (vector, point id, label, generation).
fn copy_points(st: &ServingState, labels: &[u32]) -> Vec<(Vec<f32>, usize, u32, u32)> {
    let Some(vectors) = st.vectors.as_ref() else {
        return Vec::new();
    };
    labels
        .iter()
        .filter_map(|&l| {
            let generation = st.generation(l);
            vectors
                .get(l)
                .map(|v| (v.to_vec(), point_id(l, generation), l, generation))
        })
        .collect()
}

/// Inserts the next batch: re-embedded records first, then records above the watermark.
/// False when there was nothing to do.
fn insert_next_batch(c: &Collection) -> bool {
    let (graph, batch, end, reindexed_labels) = {
        let st = c.state.read();
        let Some(graph) = st.graph.as_ref() else {
            return false;
        };
        let mut labels: Vec<u32> = (&st.reindex & &st.live).iter().take(BATCH).collect();
        let reindexed = labels.len();
        labels.extend(st.live.range(st.indexed_upto..).take(BATCH - reindexed));
        if labels.is_empty() {
            return false;
        }
        let end = labels[reindexed..].last().map(|l| l + 1);
        let reindexed_labels: Vec<u32> = labels[..reindexed].to_vec();
        (
            Arc::clone(graph),
            copy_points(&st, &labels),
            end,
            reindexed_labels,
        )
    };
    let refs: Vec<(&[f32], usize)> = batch
        .iter()
        .map(|(v, id, _, _)| (v.as_slice(), *id))
        .collect();
    graph.insert(&refs);
    counters::add(&counters::POINTS_INDEXED, refs.len() as u64);
    let mut st = c.state.write();
    // a label without a vector cannot be indexed; never pick it again
    for l in reindexed_labels {
        if st.vectors.as_ref().and_then(|v| v.get(l)).is_none() {
            st.reindex.remove(l);
        }
    }
    for (_, _, label, generation) in &batch {
        // re-embedded again meanwhile: the point just added is already a tombstone
        if st.generation(*label) == *generation {
            st.reindex.remove(*label);
        }
    }
    if let Some(end) = end {
        st.indexed_upto = st.indexed_upto.max(end);
    }
    // deleted records leave nothing to re-embed
    let live = st.live.clone();
    st.reindex &= &live;
    st.unsaved_points += refs.len();
    true
}

/// Builds a fresh graph from the live records while queries keep using the old one.
#[tracing::instrument(name = "index.rebuild", skip_all, fields(quiver.collection = %c.id, quiver.points = tracing::field::Empty))]
fn rebuild(c: &Collection) {
    counters::add(&counters::INDEX_REBUILDS, 1);
    let (labels, dimension, upto) = {
        let st = c.state.read();
        let Some(vectors) = st.vectors.as_ref() else {
            return;
        };
        let upto = st.live.max().map_or(0, |m| m + 1);
        (
            st.live.iter().collect::<Vec<u32>>(),
            vectors.dimension,
            upto,
        )
    };
    tracing::Span::current().record("quiver.points", labels.len());
    let mut inserted: Vec<(u32, u32)> = Vec::with_capacity(labels.len());
    let started = std::time::Instant::now();
    let graph = Graph::new(&c.hnsw, dimension, labels.len());
    for chunk in labels.chunks(BATCH) {
        if c.dropped.load(Ordering::SeqCst) {
            return;
        }
        let batch = copy_points(&c.state.read(), chunk);
        let refs: Vec<(&[f32], usize)> = batch
            .iter()
            .map(|(v, id, _, _)| (v.as_slice(), *id))
            .collect();
        graph.insert(&refs);
        inserted.extend(batch.iter().map(|(_, _, l, g)| (*l, *g)));
    }
    let mut st = c.state.write();
    st.unsaved_points = graph.len().max(1);
    st.graph = Some(Arc::new(graph));
    st.indexed_upto = upto;
    // what changed while the graph was being built goes through the normal catch-up
    st.reindex.clear();
    for (label, generation) in inserted {
        if st.live.contains(label) && st.generation(label) != generation {
            st.reindex.insert(label);
        }
    }
    tracing::info!(
        collection = %c.id,
        points = labels.len(),
        ms = started.elapsed().as_millis() as u64,
        "hnsw graph rebuilt"
    );
}

/// Writes the graph to disk. Callers hold `index_work`.
pub(super) fn save_locked(c: &Collection) {
    // a closed collection's directory may be fenced or on its way out
    if c.dropped.load(Ordering::SeqCst) {
        return;
    }
    let (graph, upto) = {
        let st = c.state.read();
        match st.graph.as_ref() {
            Some(g) => (Arc::clone(g), st.indexed_upto),
            None => return,
        }
    };
    match graph.dump(&c.index_dir, upto) {
        Ok(()) => c.state.write().unsaved_points = 0,
        Err(e) => tracing::warn!(collection = %c.id, "cannot write hnsw graph: {e}"),
    }
}

/// Writes the graph if it changed since the last save; used when a project closes.
pub fn save_if_dirty(c: &Collection) {
    let _work = c.index_work.lock();
    if c.state.read().unsaved_points > 0 {
        save_locked(c);
    }
}
