//! One collection's HNSW graph (hnsw_rs), and its persistence under `index/<collection>/`.
//!
//! The graph is a cache over RocksDB: a dump that is missing, stale or fails its checksum
//! is ignored and rebuilt. Point ids in the graph are record labels.

use std::fs;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use serde::{Deserialize, Serialize};

use super::distance::{GraphDot, GraphL2};
use super::types::{HnswConfig, Space};

const BASENAME: &str = "graph";
const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;
/// hnsw_rs calls `process::exit` above 256 connections.
pub const MAX_NEIGHBORS_LIMIT: usize = 256;

/// What a dump holds, so that a reload can check it belongs to this collection's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub space: Space,
    pub dimension: usize,
    pub max_neighbors: usize,
    pub ef_construction: usize,
    /// Every live record with a label below this was inserted.
    pub indexed_upto: u32,
    pub points: usize,
    pub crc_graph: u32,
    pub crc_data: u32,
}

/// A graph that owns the loader it was read from when it came from disk. hnsw_rs ties a
/// reloaded graph's lifetime to its `HnswIo`; the loader is boxed here and freed only
/// after the graph, which is exactly the borrow hnsw_rs asks for.
struct Owned<D: Distance<f32> + Send + Sync + 'static> {
    hnsw: ManuallyDrop<Hnsw<'static, f32, D>>,
    loader: Option<*mut HnswIo>,
}

// SAFETY: `Hnsw` is Send + Sync; the loader pointer is only dereferenced (freed) in Drop,
// after the graph that borrows it is gone.
unsafe impl<D: Distance<f32> + Send + Sync> Send for Owned<D> {}
unsafe impl<D: Distance<f32> + Send + Sync> Sync for Owned<D> {}

impl<D: Distance<f32> + Send + Sync> Drop for Owned<D> {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, before the loader it may borrow from.
        unsafe { ManuallyDrop::drop(&mut self.hnsw) };
        if let Some(p) = self.loader.take() {
            // SAFETY: created by Box::into_raw in `load`, and nothing borrows it any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

enum Inner {
    L2(Owned<GraphL2>),
    Dot(Owned<GraphDot>),
}

pub struct Graph {
    inner: Inner,
    pub space: Space,
    pub dimension: usize,
    pub config: HnswConfig,
}

fn new_hnsw<D: Distance<f32> + Send + Sync>(cfg: &HnswConfig, capacity: usize, d: D) -> Owned<D> {
    let m = cfg.max_neighbors.clamp(2, MAX_NEIGHBORS_LIMIT);
    let mut h = Hnsw::new(m, capacity.max(1024), 16, cfg.ef_construction.max(m), d);
    h.set_extend_candidates(false);
    Owned {
        hnsw: ManuallyDrop::new(h),
        loader: None,
    }
}

impl Graph {
    pub fn new(cfg: &HnswConfig, dimension: usize, capacity: usize) -> Graph {
        let inner = match cfg.space {
            Space::L2 => Inner::L2(new_hnsw(cfg, capacity, GraphL2)),
            Space::Cosine | Space::Ip => Inner::Dot(new_hnsw(cfg, capacity, GraphDot)),
        };
        Graph {
            inner,
            space: cfg.space,
            dimension,
            config: cfg.clone(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::L2(o) => o.hnsw.get_nb_point(),
            Inner::Dot(o) => o.hnsw.get_nb_point(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of every point in the graph.
    pub fn point_ids(&self) -> Vec<usize> {
        match &self.inner {
            Inner::L2(o) => o
                .hnsw
                .get_point_indexation()
                .into_iter()
                .map(|p| p.get_origin_id())
                .collect(),
            Inner::Dot(o) => o
                .hnsw
                .get_point_indexation()
                .into_iter()
                .map(|p| p.get_origin_id())
                .collect(),
        }
    }

    /// Inserts points (vector in search form, point id); uses every core (rayon).
    pub fn insert(&self, points: &[(&[f32], usize)]) {
        let batch: Vec<(&[f32], usize)> = points.to_vec();
        match &self.inner {
            Inner::L2(o) => o.hnsw.parallel_insert_slice(&batch),
            Inner::Dot(o) => o.hnsw.parallel_insert_slice(&batch),
        }
    }

    /// The `k` nearest points, nearest first, as labels. The graph's distance only orders;
    /// callers re-score with the collection's distance and drop labels they do not want.
    ///
    /// Never pass hnsw_rs a filter: with one, its search gives up the early exit and walks
    /// the whole graph. Callers over-fetch and filter afterwards instead.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<usize> {
        if query.len() != self.dimension || k == 0 {
            return Vec::new();
        }
        let found = match &self.inner {
            Inner::L2(o) => o.hnsw.search(query, k, ef.max(k)),
            Inner::Dot(o) => o.hnsw.search(query, k, ef.max(k)),
        };
        found.into_iter().map(|n| n.d_id).collect()
    }

    /// Writes the graph to `dir` atomically: into a sibling temporary directory first, then
    /// swapped in, so a crash leaves either the old dump or the new one.
    pub fn dump(&self, dir: &Path, indexed_upto: u32) -> std::io::Result<()> {
        let tmp = sibling(dir, "tmp");
        let old = sibling(dir, "old");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        let name = match &self.inner {
            Inner::L2(o) => o.hnsw.file_dump(&tmp, BASENAME),
            Inner::Dot(o) => o.hnsw.file_dump(&tmp, BASENAME),
        }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        if name != BASENAME {
            return Err(std::io::Error::other(format!(
                "hnsw dump chose name {name}"
            )));
        }
        let manifest = Manifest {
            format: FORMAT,
            space: self.space,
            dimension: self.dimension,
            max_neighbors: self.config.max_neighbors,
            ef_construction: self.config.ef_construction,
            indexed_upto,
            points: self.len(),
            crc_graph: crc_of(&tmp.join(format!("{BASENAME}.hnsw.graph")))?,
            crc_data: crc_of(&tmp.join(format!("{BASENAME}.hnsw.data")))?,
        };
        let body = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        fs::write(tmp.join(MANIFEST), body)?;
        let _ = fs::remove_dir_all(&old);
        if dir.exists() {
            fs::rename(dir, &old)?;
        }
        fs::rename(&tmp, dir)?;
        let _ = fs::remove_dir_all(&old);
        Ok(())
    }

    /// Loads a dump if it is intact and matches `cfg`/`dimension`; `None` means "rebuild".
    /// Whether `dir` holds a dump at all (cheap; [`Graph::load`] checks it).
    pub fn dump_exists(dir: &Path) -> bool {
        dir.join(MANIFEST).is_file()
    }

    pub fn load(dir: &Path, cfg: &HnswConfig, dimension: usize) -> Option<(Graph, Manifest)> {
        let manifest: Manifest =
            serde_json::from_slice(&fs::read(dir.join(MANIFEST)).ok()?).ok()?;
        let expected = (
            FORMAT,
            cfg.space,
            dimension,
            cfg.max_neighbors,
            cfg.ef_construction,
        );
        let found = (
            manifest.format,
            manifest.space,
            manifest.dimension,
            manifest.max_neighbors,
            manifest.ef_construction,
        );
        if expected != found {
            return None;
        }
        // hnsw_rs trusts its files (it asserts, and a bad length can abort on allocation),
        // so nothing reaches it that fails our checksum.
        if crc_of(&dir.join(format!("{BASENAME}.hnsw.graph"))).ok()? != manifest.crc_graph
            || crc_of(&dir.join(format!("{BASENAME}.hnsw.data"))).ok()? != manifest.crc_data
        {
            return None;
        }
        let inner = std::panic::catch_unwind(|| match cfg.space {
            Space::L2 => load_owned::<GraphL2>(dir).map(Inner::L2),
            Space::Cosine | Space::Ip => load_owned::<GraphDot>(dir).map(Inner::Dot),
        })
        .ok()??;
        let graph = Graph {
            inner,
            space: cfg.space,
            dimension,
            config: cfg.clone(),
        };
        if graph.len() != manifest.points {
            return None;
        }
        Some((graph, manifest))
    }
}

fn load_owned<D: Distance<f32> + Default + Send + Sync>(dir: &Path) -> Option<Owned<D>> {
    let loader = Box::into_raw(Box::new(HnswIo::new(dir, BASENAME)));
    // SAFETY: `loader` stays allocated until `Owned::drop` frees it after the graph.
    let io: &'static mut HnswIo = unsafe { &mut *loader };
    match io.load_hnsw::<f32, D>() {
        Ok(h) => Some(Owned {
            hnsw: ManuallyDrop::new(h),
            loader: Some(loader),
        }),
        Err(_) => {
            // SAFETY: the failed load returned no graph borrowing from it.
            drop(unsafe { Box::from_raw(loader) });
            None
        }
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

fn crc_of(path: &Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize, dim: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|i| {
                (0..dim)
                    .map(|j| ((i * 31 + j * 7) as f32 * 0.13).sin())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn dump_and_reload_roundtrip_and_reject_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("c1");
        let cfg = HnswConfig::default();
        let g = Graph::new(&cfg, 16, 100);
        let pts = points(300, 16);
        let batch: Vec<(&[f32], usize)> = pts
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i))
            .collect();
        g.insert(&batch);
        g.dump(&idx, 300).unwrap();
        let (loaded, m) = Graph::load(&idx, &cfg, 16).expect("reload");
        assert_eq!(m.indexed_upto, 300);
        assert_eq!(loaded.len(), 300);
        let hits = loaded.search(&pts[42], 1, 50);
        assert_eq!(hits, vec![42]);
        // a dump for another configuration is not reused
        let other = HnswConfig {
            space: Space::Ip,
            ..cfg.clone()
        };
        assert!(Graph::load(&idx, &other, 16).is_none());
        assert!(Graph::load(&idx, &cfg, 8).is_none());
        // a flipped byte fails the checksum instead of reaching hnsw_rs
        let graph_file = idx.join("graph.hnsw.graph");
        let mut bytes = fs::read(&graph_file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&graph_file, bytes).unwrap();
        assert!(Graph::load(&idx, &cfg, 16).is_none());
        // and a missing directory is simply "no graph"
        assert!(Graph::load(&dir.path().join("nope"), &cfg, 16).is_none());
    }

    #[test]
    fn cosine_graph_finds_exact_matches() {
        let cfg = HnswConfig {
            space: Space::Cosine,
            ..HnswConfig::default()
        };
        let g = Graph::new(&cfg, 8, 100);
        let pts: Vec<Vec<f32>> = points(200, 8)
            .into_iter()
            .map(|v| super::super::distance::search_form(Space::Cosine, &v))
            .collect();
        let batch: Vec<(&[f32], usize)> = pts
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i))
            .collect();
        g.insert(&batch);
        for i in [0, 10, 199] {
            let hits = g.search(&pts[i], 5, 64);
            assert_eq!(hits.len(), 5);
            assert_eq!(hits[0], i);
        }
    }
}
