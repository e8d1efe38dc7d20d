//! The index on disk, under `index/<collection>/`: the arena's vectors and labels as flat
//! little-endian arrays, the graph's lists, and a manifest with a CRC-32 of each file.
//!
//! The files are a cache over RocksDB. A directory that is missing, of another format or
//! configuration, or fails a checksum or a structural check is ignored, and the caller
//! rebuilds from RocksDB; nothing unchecked reaches the graph.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use super::super::types::Space;
use super::arena::Arena;
use super::hnsw::{Hnsw, NodeLinks, Params};

const MANIFEST: &str = "manifest.json";
const VECTORS: &str = "vectors.f32";
const LABELS: &str = "labels.u32";
const GRAPH: &str = "graph.bin";
const LIVE: &str = "live.roaring";
/// Format 1 was hnsw_rs's dump; its directories are ignored and rebuilt.
const FORMAT: u32 = 2;
const NO_ENTRY: u32 = u32::MAX;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub space: Space,
    pub dimension: usize,
    pub m: usize,
    pub ef_construction: usize,
    /// Arena slots saved.
    pub slots: u32,
    /// Every current slot below this is in the graph.
    pub indexed_upto: u32,
    pub points: usize,
    pub crc_vectors: u32,
    pub crc_labels: u32,
    pub crc_graph: u32,
    /// The collection's write version the files reflect, when they were saved with the
    /// live records (`live.roaring`); absent in files that cannot stand in for RocksDB.
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub crc_live: Option<u32>,
}

/// What the files need to stand in for RocksDB on a reopen: the write version the
/// arena's slots reflect and the labels live at that version. With them, the current slot
/// of a live label is its last slot in the arena, since a new embedding always takes a new
/// slot.
pub struct Snapshot<'a> {
    pub version: u64,
    pub live: &'a RoaringBitmap,
}

/// A writer that checksums what passes through it.
struct Crc<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn create(path: &Path) -> std::io::Result<Crc<BufWriter<fs::File>>> {
    Ok(Crc {
        inner: BufWriter::with_capacity(1 << 20, fs::File::create(path)?),
        hasher: crc32fast::Hasher::new(),
    })
}

fn finish(w: Crc<BufWriter<fs::File>>) -> std::io::Result<u32> {
    let crc = w.hasher.finalize();
    let file = w.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(crc)
}

/// Writes slots `0..slots` of `arena` and the graph to `dir`, atomically: into a sibling
/// directory first, then swapped in, so a crash leaves the old files or the new ones.
pub fn save(
    dir: &Path,
    arena: &Arena,
    slots: u32,
    graph: &Hnsw,
    indexed_upto: u32,
    snapshot: Option<Snapshot<'_>>,
) -> std::io::Result<()> {
    let tmp = sibling(dir, "tmp");
    let old = sibling(dir, "old");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let slots = slots.min(arena.len());

    let mut w = create(&tmp.join(VECTORS))?;
    for s in 0..slots {
        let v = arena.vector(s).unwrap_or(&[]);
        for x in v {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    let crc_vectors = finish(w)?;

    let mut w = create(&tmp.join(LABELS))?;
    for s in 0..slots {
        w.write_all(&arena.label(s).to_le_bytes())?;
    }
    let crc_labels = finish(w)?;

    let mut w = create(&tmp.join(GRAPH))?;
    let (entry_node, entry_top) = graph.entry_point().unwrap_or((NO_ENTRY, 0));
    w.write_all(&entry_node.to_le_bytes())?;
    w.write_all(&(entry_top as u32).to_le_bytes())?;
    let mut points = 0usize;
    for node in 0..slots {
        let Some(links) = graph.export_node(node) else {
            continue;
        };
        points += 1;
        w.write_all(&node.to_le_bytes())?;
        w.write_all(&(links.top as u32).to_le_bytes())?;
        for ids in &links.layers {
            w.write_all(&(ids.len() as u32).to_le_bytes())?;
            for id in ids {
                w.write_all(&id.to_le_bytes())?;
            }
        }
    }
    let crc_graph = finish(w)?;

    let crc_live = match &snapshot {
        Some(s) => {
            let mut w = create(&tmp.join(LIVE))?;
            s.live.serialize_into(&mut w)?;
            Some(finish(w)?)
        }
        None => None,
    };

    let params = graph.params();
    let manifest = Manifest {
        format: FORMAT,
        space: params.space,
        dimension: arena.dimension(),
        m: params.m,
        ef_construction: params.ef_construction,
        slots,
        indexed_upto: indexed_upto.min(slots),
        points,
        crc_vectors,
        crc_labels,
        crc_graph,
        version: snapshot.as_ref().map(|s| s.version),
        crc_live,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    let mut w = create(&tmp.join(MANIFEST))?;
    w.write_all(&body)?;
    finish(w)?;
    let _ = fs::remove_dir_all(&old);
    if dir.exists() {
        fs::rename(dir, &old)?;
    }
    fs::rename(&tmp, dir)?;
    let _ = fs::remove_dir_all(&old);
    if let Some(parent) = dir.parent() {
        let _ = fs::File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Whether `dir` holds saved files at all (cheap; [`load`] checks them).
pub fn exists(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// A saved index read back: its arena (every saved slot, labels included), its graph, and
/// the manifest.
pub struct Loaded {
    pub arena: Arc<Arena>,
    pub graph: Hnsw,
    pub manifest: Manifest,
    /// The live labels at `manifest.version`, when the files were saved with them.
    pub live: Option<RoaringBitmap>,
}

/// Reads the files in `dir` if they are intact and were written for `params` and
/// `dimension`; `None` means "rebuild".
pub fn load(dir: &Path, params: Params, dimension: usize) -> Option<Loaded> {
    let manifest: Manifest = serde_json::from_slice(&fs::read(dir.join(MANIFEST)).ok()?).ok()?;
    let expected = (
        FORMAT,
        params.space,
        dimension,
        params.m,
        params.ef_construction,
    );
    let found = (
        manifest.format,
        manifest.space,
        manifest.dimension,
        manifest.m,
        manifest.ef_construction,
    );
    if expected != found || manifest.indexed_upto > manifest.slots {
        return None;
    }
    let slots = manifest.slots as usize;
    let labels = read_checked(&dir.join(LABELS), manifest.crc_labels)?;
    let graph = read_checked(&dir.join(GRAPH), manifest.crc_graph)?;
    if labels.len() != slots * 4 {
        return None;
    }
    let labels: Vec<u32> = labels
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // the vectors, the bulk of the files, go from the file straight into the arena
    let mut file = fs::File::open(dir.join(VECTORS)).ok()?;
    let expected_len = (slots as u64)
        .checked_mul(dimension as u64)?
        .checked_mul(4)?;
    if file.metadata().ok()?.len() != expected_len {
        return None;
    }
    let mut hasher = crc32fast::Hasher::new();
    let arena = Arena::read_from(dimension, &labels, &mut file, &mut hasher).ok()?;
    if hasher.finalize() != manifest.crc_vectors {
        return None;
    }
    let arena = Arc::new(arena);
    let mut words = graph
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if graph.len() % 4 != 0 {
        return None;
    }
    let entry_node = words.next()?;
    let entry_top = words.next()? as usize;
    let entry = (entry_node != NO_ENTRY).then_some((entry_node, entry_top));
    let mut nodes = Vec::with_capacity(manifest.points);
    while let Some(node) = words.next() {
        let top = words.next()? as usize;
        if top > super::hnsw::MAX_LEVEL {
            return None;
        }
        let mut layers = Vec::with_capacity(top + 1);
        for _ in 0..=top {
            let n = words.next()? as usize;
            if n > params.m0() {
                return None;
            }
            let ids: Vec<u32> = words.by_ref().take(n).collect();
            if ids.len() != n {
                return None;
            }
            layers.push(ids);
        }
        nodes.push((node, NodeLinks { top, layers }));
    }
    if nodes.len() != manifest.points {
        return None;
    }
    let graph = Hnsw::import(params, Arc::clone(&arena), entry, nodes)?;
    // without an intact live set the files still serve, but only after a RocksDB scan
    let live = match (manifest.version, manifest.crc_live) {
        (Some(_), Some(crc)) => read_checked(&dir.join(LIVE), crc)
            .and_then(|b| RoaringBitmap::deserialize_from(b.as_slice()).ok()),
        _ => None,
    };
    Some(Loaded {
        arena,
        graph,
        manifest,
        live,
    })
}

fn read_checked(path: &Path, crc: u32) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    BufReader::new(fs::File::open(path).ok()?)
        .read_to_end(&mut bytes)
        .ok()?;
    (crc32fast::hash(&bytes) == crc).then_some(bytes)
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}
