//! Background indexing: inserts newly written embeddings into their collection's HNSW
//! graph, compacts vectors and graph when dead slots pile up, and writes them to disk.
//!
//! One worker thread for the whole server; each batch is inserted with every core (rayon).
//! Writes never wait for it: queries exact-scan whatever it has not reached yet.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Weak};
use std::thread;

use super::collection::{Collection, Vectors};
use super::counters;
use super::index::{persist, Arena, Hnsw, Params};

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

/// Indexes every slot at or above the watermark, compacting first when dead slots pile up.
pub fn catch_up(c: &Collection) {
    let _work = c.index_work.lock();
    let mut inserted = false;
    loop {
        if c.dropped.load(Ordering::SeqCst) {
            return;
        }
        let (needs_compaction, needs_graph) = {
            let st = c.state.read();
            let Some(vectors) = st.vectors.as_ref() else {
                return;
            };
            let live = st.live.len() as usize;
            (
                vectors.dead() > REBUILD_MIN.max((live as f64 * REBUILD_RATIO) as usize),
                st.graph.is_none(),
            )
        };
        if needs_compaction {
            compact(c);
            continue;
        }
        if needs_graph {
            let mut st = c.state.write();
            if let Some(arena) = st.vectors.as_ref().map(|v| Arc::clone(&v.arena)) {
                st.graph = Some(Arc::new(Hnsw::new(Params::from(&c.hnsw), arena)));
                st.indexed_upto = 0;
            }
        }
        if !insert_next_batch(c) {
            break;
        }
        inserted = true;
    }
    if inserted {
        let graph = c.state.read().graph.clone();
        if let Some(g) = graph.filter(|g| g.repair_due()) {
            g.link_unreachable();
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

/// Inserts the current slots of the next batch above the watermark. False when there was
/// nothing to do.
fn insert_next_batch(c: &Collection) -> bool {
    let (graph, slots, end) = {
        let st = c.state.read();
        let (Some(graph), Some(vectors)) = (st.graph.as_ref(), st.vectors.as_ref()) else {
            return false;
        };
        let from = st.indexed_upto;
        let end = vectors.arena.len().min(from.saturating_add(BATCH as u32));
        if from >= end {
            return false;
        }
        // slots superseded before the indexer reached them are never inserted
        let slots: Vec<u32> = (from..end).filter(|&s| vectors.is_current(s)).collect();
        (Arc::clone(graph), slots, end)
    };
    graph.insert_batch(&slots);
    counters::add(&counters::POINTS_INDEXED, slots.len() as u64);
    let mut st = c.state.write();
    // a compaction may have replaced the graph meanwhile; its watermark is its own
    if st.graph.as_ref().is_some_and(|g| Arc::ptr_eq(g, &graph)) {
        st.indexed_upto = st.indexed_upto.max(end);
        st.unsaved_points += slots.len();
    }
    true
}

/// Builds a new arena and graph holding only the current embeddings, while queries keep
/// using the old ones, then swaps them in. Embeddings written meanwhile are carried over
/// into the new arena's tail, for the normal catch-up.
#[tracing::instrument(name = "index.compact", skip_all, fields(quiver.collection = %c.id, quiver.points = tracing::field::Empty))]
fn compact(c: &Collection) {
    counters::add(&counters::INDEX_REBUILDS, 1);
    let started = std::time::Instant::now();
    let (old, snapshot) = {
        let st = c.state.read();
        let Some(vectors) = st.vectors.as_ref() else {
            return;
        };
        let snapshot: Vec<(u32, u32)> = vectors.current().collect();
        (Arc::clone(&vectors.arena), snapshot)
    };
    tracing::Span::current().record("quiver.points", snapshot.len());
    let arena = Arc::new(Arena::new(old.dimension()));
    let mut moved: Vec<(u32, u32, u32)> = Vec::with_capacity(snapshot.len());
    for &(label, old_slot) in &snapshot {
        if let Some(v) = old.vector(old_slot) {
            moved.push((label, old_slot, arena.push(label, v)));
        }
    }
    let graph = Hnsw::new(Params::from(&c.hnsw), Arc::clone(&arena));
    let built = arena.len();
    let nodes: Vec<u32> = (0..built).collect();
    for chunk in nodes.chunks(BATCH) {
        if c.dropped.load(Ordering::SeqCst) {
            return;
        }
        graph.insert_batch(chunk);
    }
    graph.link_unreachable();
    let mut st = c.state.write();
    let Some(current) = st.vectors.as_ref() else {
        return;
    };
    let mut vectors = Vectors::over(Arc::clone(&arena));
    let mut carried = 0usize;
    let unchanged: std::collections::HashMap<u32, (u32, u32)> =
        moved.iter().map(|&(l, o, n)| (l, (o, n))).collect();
    for (label, slot) in current.current() {
        match unchanged.get(&label) {
            Some(&(old_slot, new_slot)) if old_slot == slot => vectors.adopt(label, new_slot),
            _ => {
                // re-embedded or added while the graph was built
                if let Some(v) = old.vector(slot) {
                    vectors.set(label, v);
                    carried += 1;
                }
            }
        }
    }
    st.vectors = Some(vectors);
    st.graph = Some(Arc::new(graph));
    st.indexed_upto = built;
    st.unsaved_points = built.max(1) as usize;
    drop(st);
    tracing::info!(
        collection = %c.id,
        points = built,
        carried,
        ms = started.elapsed().as_millis() as u64,
        "hnsw graph compacted"
    );
}

/// Writes the index to disk. Callers hold `index_work`.
pub(super) fn save_locked(c: &Collection) {
    // a closed collection's directory may be fenced or on its way out
    if c.dropped.load(Ordering::SeqCst) {
        return;
    }
    // one moment's state: every slot pushed so far and the labels live with them
    let (graph, slots, upto, writes, version, live) = {
        let st = c.state.read();
        match (st.graph.as_ref(), st.vectors.as_ref()) {
            (Some(g), Some(v)) => (
                Arc::clone(g),
                v.arena.len(),
                st.indexed_upto,
                st.unsaved_writes,
                st.version,
                st.live.clone(),
            ),
            _ => return,
        }
    };
    // the files outlive this process: they get the repair a small batch did not pay for
    if graph.repair_pending() {
        graph.link_unreachable();
    }
    let snapshot = persist::Snapshot {
        version,
        live: &live,
    };
    match persist::save(
        &c.index_dir,
        graph.arena(),
        slots,
        &graph,
        upto,
        Some(snapshot),
    ) {
        Ok(()) => {
            let mut st = c.state.write();
            st.unsaved_points = 0;
            st.unsaved_writes = st.unsaved_writes.saturating_sub(writes);
        }
        Err(e) => tracing::warn!(collection = %c.id, "cannot write the vector index: {e}"),
    }
}

/// Writes the index if it changed since the last save; used when a project closes.
pub fn save_if_dirty(c: &Collection) {
    let _work = c.index_work.lock();
    if c.state.read().is_unsaved() {
        save_locked(c);
    }
}
