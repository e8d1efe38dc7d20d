//! Moving a project between servers: a consistent snapshot of its store (RocksDB
//! checkpoint, graph dumps, quotas) as a tar stream, its import as an `incoming` copy, and
//! the write batches since a sequence number, read from the write-ahead log at the source
//! and replayed at the destination.
//!
//! Replaying is idempotent: the store's writes are puts and deletes of whole values, so
//! replaying, in order, batches the copy already holds leaves it as it was. That is what
//! lets a snapshot hold "every write up to S and maybe some later", and a move resume from
//! whatever sequence the destination last recorded.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, WriteBatch, WriteOptions, DB};

use super::error::{StoreError, StoreResult};
use super::fence::{self, Fence};
use super::fsio::{self, sync_tree};
use super::keys;
use super::names::ProjectName;
use super::quota::QUOTAS_FILE;
use super::registry::Registry;

/// Staging area under the workspace: a name no project can have (names start with a
/// letter or digit), on the same file system so checkpoints hard-link and imports rename.
pub const STAGING_DIR: &str = ".staging";

const FRAME_BATCH: u8 = 1;
const FRAME_END: u8 = 0;
const FRAME_SOURCE: u8 = 2;
/// Largest write batch accepted from a changes stream (the data APIs' batches are far
/// smaller); a bigger length means a corrupt stream, not a batch to allocate for.
const MAX_FRAME_BYTES: u32 = 1 << 30;

/// A snapshot ready to stream: `dir` holds `db/`, `index/` and maybe `QUOTAS`; it is
/// removed when this is dropped.
pub struct Snapshot {
    pub dir: PathBuf,
    /// Every write up to this sequence number is in the snapshot.
    pub sequence: u64,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "cannot remove a snapshot's staging directory: {e}");
        }
    }
}

impl Snapshot {
    /// Writes the snapshot as a tar archive (entries `db/…`, `index/…`, `QUOTAS`).
    pub fn write_tar<W: Write>(&self, out: W) -> StoreResult<W> {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        tar.append_dir_all("db", self.dir.join("db"))?;
        let index = self.dir.join("index");
        if index.is_dir() {
            tar.append_dir_all("index", &index)?;
        }
        let quotas = self.dir.join(QUOTAS_FILE);
        if quotas.is_file() {
            tar.append_path_with_name(&quotas, QUOTAS_FILE)?;
        }
        Ok(tar.into_inner()?)
    }
}

/// What applying a changes stream did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub batches: u64,
    /// The source sequence the copy now holds every write up to.
    pub source_sequence: u64,
}

/// One frame of a changes stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// First frame: which incarnation of the project the batches come from.
    Source {
        incarnation: uuid::Uuid,
    },
    Batch {
        sequence: u64,
        data: Vec<u8>,
    },
    End {
        upto: u64,
    },
}

pub fn write_frame<W: Write>(out: &mut W, frame: &Frame) -> std::io::Result<()> {
    match frame {
        Frame::Source { incarnation } => {
            out.write_all(&[FRAME_SOURCE])?;
            out.write_all(incarnation.as_bytes())
        }
        Frame::Batch { sequence, data } => {
            let len = u32::try_from(data.len())
                .map_err(|_| std::io::Error::other("write batch over 4 GiB"))?;
            out.write_all(&[FRAME_BATCH])?;
            out.write_all(&sequence.to_be_bytes())?;
            out.write_all(&len.to_be_bytes())?;
            out.write_all(data)
        }
        Frame::End { upto } => {
            out.write_all(&[FRAME_END])?;
            out.write_all(&upto.to_be_bytes())
        }
    }
}

/// The next frame, or `None` at a clean end of input (which, without an end frame, means
/// the stream was cut short).
pub fn read_frame<R: Read>(input: &mut R) -> StoreResult<Option<Frame>> {
    let mut kind = [0u8; 1];
    match input.read_exact(&mut kind) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let truncated = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::InvalidArgument("changes stream cut short inside a frame".into())
        } else {
            e.into()
        }
    };
    if kind[0] == FRAME_SOURCE {
        let mut id = [0u8; 16];
        input.read_exact(&mut id).map_err(truncated)?;
        return Ok(Some(Frame::Source {
            incarnation: uuid::Uuid::from_bytes(id),
        }));
    }
    let mut seq = [0u8; 8];
    input.read_exact(&mut seq).map_err(truncated)?;
    let sequence = u64::from_be_bytes(seq);
    match kind[0] {
        FRAME_END => Ok(Some(Frame::End { upto: sequence })),
        FRAME_BATCH => {
            let mut len = [0u8; 4];
            input.read_exact(&mut len).map_err(truncated)?;
            let len = u32::from_be_bytes(len);
            if len > MAX_FRAME_BYTES {
                return Err(StoreError::InvalidArgument(format!(
                    "changes stream frame of {len} bytes is over the limit"
                )));
            }
            // grown as the bytes arrive: a corrupt length costs no allocation up front
            let mut data = Vec::new();
            input.take(u64::from(len)).read_to_end(&mut data)?;
            if data.len() != len as usize {
                return Err(StoreError::InvalidArgument(
                    "changes stream cut short inside a frame".into(),
                ));
            }
            Ok(Some(Frame::Batch { sequence, data }))
        }
        other => Err(StoreError::InvalidArgument(format!(
            "changes stream has an unknown frame kind {other}"
        ))),
    }
}

/// Whether a tar entry may be part of a snapshot: `db/…`, `index/…` or `QUOTAS`,
/// relative, without `..`.
fn allowed_entry(path: &Path) -> bool {
    let mut parts = path.components();
    let first = match parts.next() {
        Some(Component::Normal(c)) => c,
        _ => return false,
    };
    if !parts.all(|c| matches!(c, Component::Normal(_))) {
        return false;
    }
    first == "db" || first == "index" || path == Path::new(QUOTAS_FILE)
}

impl Registry {
    fn staging_dir(&self) -> PathBuf {
        self.config
            .workspace
            .join(STAGING_DIR)
            .join(uuid::Uuid::new_v4().to_string())
    }

    /// Removes what interrupted exports and imports left behind; called at start.
    pub fn clear_staging(&self) {
        let dir = self.config.workspace.join(STAGING_DIR);
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!("cannot clear {}: {e}", dir.display());
            }
        }
    }

    /// A consistent snapshot of the project, taken while it keeps serving.
    pub fn export_snapshot(self: &Arc<Self>, name: &ProjectName) -> StoreResult<Snapshot> {
        let project = self.existing_project(name)?;
        let dir = self.staging_dir();
        std::fs::create_dir_all(&dir)?;
        let snapshot = Snapshot {
            dir: dir.clone(),
            // taken before the checkpoint: the checkpoint holds at least every write up
            // to here (later ones it may hold are replayed harmlessly)
            sequence: project.latest_sequence(),
        };
        rocksdb::checkpoint::Checkpoint::new(&project.db)?.create_checkpoint(dir.join("db"))?;
        project.copy_index_to(&dir.join("index"))?;
        let quotas = project.root.join(QUOTAS_FILE);
        if quotas.is_file() {
            std::fs::copy(&quotas, dir.join(QUOTAS_FILE))?;
        }
        Ok(snapshot)
    }

    /// Imports a snapshot (a tar from [`Snapshot::write_tar`]) as the `incoming` copy of
    /// the project, holding the source's writes up to `source_sequence`. An existing
    /// project is refused, unless it is itself an incoming copy (a retried move).
    pub fn import_snapshot<R: Read>(
        self: &Arc<Self>,
        name: &ProjectName,
        source_sequence: u64,
        tar: R,
    ) -> StoreResult<()> {
        if let Some(existing) = fence::read(&self.project_root_of(name))? {
            if !existing.is_incoming() {
                return Err(StoreError::ProjectExists(name.to_string()));
            }
        } else if self.project_root_of(name).is_dir() {
            return Err(StoreError::ProjectExists(name.to_string()));
        }
        let stage = self.staging_dir();
        std::fs::create_dir_all(&stage)?;
        let staged = StagedImport(stage.clone());
        // Reading entries only reads the request body, so their errors (a bad checksum,
        // a body cut inside a header) are the caller's: 400, not 500. Unpacking also
        // writes here: its errors are the caller's only if the body ran out or failed
        // meanwhile (an entry cut short), else the disk's.
        let malformed = |e: std::io::Error| {
            StoreError::InvalidArgument(format!("snapshot is not a complete tar archive: {e}"))
        };
        let body_ended = std::cell::Cell::new(false);
        let input = NotingEnd {
            inner: tar,
            ended: &body_ended,
        };
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries().map_err(malformed)? {
            let mut entry = entry.map_err(malformed)?;
            let path = entry.path().map_err(malformed)?.into_owned();
            let kind = entry.header().entry_type();
            // QUOTAS must be a file: a directory of that name would make the project
            // impossible to open once imported
            let allowed_kind = if path == Path::new(QUOTAS_FILE) {
                kind.is_file()
            } else if path == Path::new("db") || path == Path::new("index") {
                // and `db` or `index` must be directories, or the store cannot be laid out
                kind.is_dir()
            } else {
                kind.is_file() || kind.is_dir()
            };
            if !allowed_entry(&path) || !allowed_kind {
                return Err(StoreError::InvalidArgument(format!(
                    "snapshot entry {} is not part of a project store",
                    path.display()
                )));
            }
            entry.unpack_in(&stage).map_err(|e| {
                if body_ended.get() {
                    malformed(e)
                } else {
                    e.into()
                }
            })?;
        }
        // The entries end at the archive's end marker (a zero block), or where the body
        // ran out: then it was cut short between two entries, which would import a store
        // without its last files (QUOTAS comes last: silently without its quotas).
        if body_ended.get() {
            return Err(StoreError::InvalidArgument(
                "snapshot cut short: the tar archive ends without its end-of-archive blocks".into(),
            ));
        }
        if !stage.join("db").is_dir() {
            return Err(StoreError::InvalidArgument(
                "snapshot has no db/ directory".into(),
            ));
        }
        // unreadable quotas would keep the imported project from ever opening
        super::quota::read(&stage).map_err(|e| {
            StoreError::InvalidArgument(format!("snapshot has unreadable quotas: {e}"))
        })?;
        // it must open as a store of ours before it replaces anything; one that does not
        // is a bad snapshot (400), like any other malformed body
        drop(self.open_raw_db(&stage).map_err(|e| {
            StoreError::InvalidArgument(format!("snapshot does not open as a project store: {e}"))
        })?);
        std::fs::create_dir_all(stage.join("index"))?;
        // durable before it takes the project's place: once activated, this copy may be
        // the only one left
        sync_tree(&stage)?;
        fence::write(&stage, &Fence::incoming(source_sequence))?;
        self.with_exclusive(name, |root| {
            match fence::read(root)? {
                Some(f) if f.is_incoming() => std::fs::remove_dir_all(root)?,
                Some(_) => return Err(StoreError::ProjectExists(name.to_string())),
                None if root.is_dir() => return Err(StoreError::ProjectExists(name.to_string())),
                None => {}
            }
            self.layout.prepare(name)?;
            // prepare_dir made the (empty) store directory: the staged one takes its place
            std::fs::remove_dir(root)?;
            std::fs::rename(&stage, root)?;
            if let Some(parent) = root.parent() {
                fsio::sync_dir(parent)?;
            }
            Ok(())
        })?;
        std::mem::forget(staged);
        Ok(())
    }

    /// Streams the project's write batches above `since` into `sink`, then an end frame.
    /// `on_start` gets the project's sequence before any frame is written, once it is
    /// known that the log reaches back to `since + 1`; a project whose log does not gets
    /// [`StoreError::ChangesUnavailable`] before anything is written.
    pub fn changes_since(
        self: &Arc<Self>,
        name: &ProjectName,
        since: u64,
        on_start: impl FnOnce(u64),
        sink: &mut dyn FnMut(Frame) -> std::io::Result<()>,
    ) -> StoreResult<u64> {
        // a fenced copy (the source after the fence) still answers: the last catch-up of
        // a move reads it. It is never open, so it is opened here, exclusively.
        if fence::read(&self.project_root_of(name))?.is_some() {
            self.with_exclusive(name, |root| {
                let db = self.open_raw_db(root)?;
                stream_changes(&db, name, since, on_start, sink)
            })
        } else {
            let project = self.existing_project(name)?;
            stream_changes(&project.db, name, since, on_start, sink)
        }
    }

    /// Applies a changes stream to the project's incoming copy and records the source
    /// sequence reached. Batches before a cut are kept (replaying them again is harmless)
    /// but the recorded sequence moves only with a complete stream.
    pub fn apply_changes<R: Read>(
        self: &Arc<Self>,
        name: &ProjectName,
        mut input: R,
    ) -> StoreResult<Applied> {
        self.with_exclusive(name, |root| {
            let mut fence = match fence::read(root)? {
                Some(f) if f.is_incoming() => f,
                Some(_) => return Err(StoreError::NotIncoming(name.to_string())),
                None if root.is_dir() => return Err(StoreError::NotIncoming(name.to_string())),
                None => return Err(StoreError::ProjectNotFound(name.to_string())),
            };
            let db = self.open_raw_db(root)?;
            // the batches must come from the very store the snapshot was taken of: a
            // project deleted and created again under its name has sequence numbers of
            // its own, and its batches would corrupt this copy
            let ours = incarnation_of(&db)?;
            match read_frame(&mut input)? {
                Some(Frame::Source { incarnation }) if Some(incarnation) == ours => {}
                Some(Frame::Source { incarnation }) => {
                    return Err(StoreError::ChangesUnavailable(format!(
                        "the changes come from another incarnation of project [{name}] \
                         ({incarnation}) than its snapshot ({}); take a new snapshot",
                        ours.map_or_else(|| "unknown".to_string(), |u| u.to_string())
                    )))
                }
                None => {
                    return Err(StoreError::InvalidArgument(
                        "changes stream cut short before its source frame".into(),
                    ))
                }
                Some(_) => {
                    return Err(StoreError::InvalidArgument(
                        "changes stream does not start with its source frame".into(),
                    ))
                }
            }
            let held = fence.source_sequence.unwrap_or(0);
            let mut opts = WriteOptions::default();
            opts.disable_wal(false);
            let mut batches = 0u64;
            let upto = loop {
                match read_frame(&mut input) {
                    Ok(Some(Frame::Batch { sequence, data })) => {
                        if batches == 0 && sequence > held + 1 {
                            return Err(StoreError::ChangesUnavailable(format!(
                                "the changes start at sequence {sequence}, but this copy \
                                 holds only up to {held}; take a new snapshot"
                            )));
                        }
                        db.write_opt(WriteBatch::from_data(&data), &opts)?;
                        batches += 1;
                    }
                    Ok(Some(Frame::Source { .. })) => {
                        return Err(StoreError::InvalidArgument(
                            "changes stream has a second source frame".into(),
                        ))
                    }
                    Ok(Some(Frame::End { upto })) => break upto,
                    Ok(None) => {
                        db.flush_wal(true)?;
                        return Err(StoreError::InvalidArgument(format!(
                            "changes stream cut short after {batches} batches (no end frame)"
                        )));
                    }
                    Err(e) => {
                        db.flush_wal(true)?;
                        return Err(e);
                    }
                }
            };
            db.flush_wal(true)?;
            prune_index(&db, root);
            drop(db);
            let reached = fence.source_sequence.unwrap_or(0).max(upto);
            fence.source_sequence = Some(reached);
            fence::write(root, &fence)?;
            Ok(Applied {
                batches,
                source_sequence: reached,
            })
        })
    }

    /// Opens the store under `root` directly, outside the set of open projects (the
    /// caller holds it exclusively, or it is a staged copy nobody else knows).
    fn open_raw_db(&self, root: &Path) -> StoreResult<DB> {
        let shared = self.shared();
        let mut opts = shared.db_options();
        opts.create_if_missing(false);
        opts.create_missing_column_families(false);
        let cfs: Vec<ColumnFamilyDescriptor> = keys::COLUMN_FAMILIES
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, shared.cf_options()))
            .collect();
        Ok(DB::open_cf_descriptors(&opts, root.join("db"), cfs)?)
    }
}

/// The id written when the project's store was created (see [`keys::INCARNATION_KEY`]).
pub fn incarnation_of(db: &DB) -> StoreResult<Option<uuid::Uuid>> {
    Ok(db
        .get(keys::INCARNATION_KEY)?
        .and_then(|v| uuid::Uuid::from_slice(&v).ok()))
}

/// Removes the graph dumps under `index/` of collections the store does not hold. The
/// snapshot carries the dumps of collections that the source deleted after it; replaying
/// the deletion removes their records, not their files, and nothing else ever would (a
/// store never loads a collection it does not hold): they would stay for good, counted
/// in the project's bytes and its quota, and carried by its next snapshots. Leftovers of
/// interrupted saves (`<id>.tmp`, `<id>.old`) go too: nothing saves graphs of an
/// incoming copy. Best effort: dumps are caches, and a failure here only leaves files.
fn prune_index(db: &DB, root: &Path) {
    let mut held = std::collections::HashSet::new();
    for item in db.prefix_iterator(keys::COLLECTION_PREFIX) {
        let Ok((k, _)) = item else {
            // not knowing every collection, remove nothing
            return;
        };
        if !k.starts_with(keys::COLLECTION_PREFIX) {
            break;
        }
        if let Ok(id) = uuid::Uuid::from_slice(&k[keys::COLLECTION_PREFIX.len()..]) {
            held.insert(id.to_string());
        }
    }
    let Ok(entries) = std::fs::read_dir(root.join("index")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if held.contains(&name) {
            continue;
        }
        let path = e.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => tracing::debug!(path = %path.display(), "removed a stale graph dump"),
            Err(err) => {
                tracing::warn!(path = %path.display(), "cannot remove a stale graph dump: {err}")
            }
        }
    }
}

/// A reader that notes when its input ran out or failed.
struct NotingEnd<'a, R> {
    inner: R,
    ended: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for NotingEnd<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf);
        if matches!(read, Ok(0) | Err(_)) && !buf.is_empty() {
            self.ended.set(true);
        }
        read
    }
}

/// Removes an import's staging directory unless the import went through.
struct StagedImport(PathBuf);

impl Drop for StagedImport {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stream_changes(
    db: &DB,
    name: &str,
    since: u64,
    on_start: impl FnOnce(u64),
    sink: &mut dyn FnMut(Frame) -> std::io::Result<()>,
) -> StoreResult<u64> {
    let latest = db.latest_sequence_number();
    if since > latest {
        return Err(StoreError::InvalidArgument(format!(
            "sequence {since} is ahead of project [{name}] (at {latest})"
        )));
    }
    let incarnation = incarnation_of(db)?
        .ok_or_else(|| StoreError::Corrupt(format!("project [{name}] has no incarnation id")))?;
    if since == latest {
        on_start(latest);
        sink(Frame::Source { incarnation })?;
        sink(Frame::End { upto: latest })?;
        return Ok(latest);
    }
    let unavailable = || {
        StoreError::ChangesUnavailable(format!(
            "the write-ahead log of project [{name}] no longer reaches back to sequence {}; \
             take a new snapshot",
            since + 1
        ))
    };
    let mut updates = db.get_updates_since(since).map_err(|_| unavailable())?;
    let mut next = since + 1;
    let mut first = match updates.next() {
        Some(Ok((seq, batch))) if seq <= next => Some((seq, batch)),
        Some(Err(e)) => return Err(e.into()),
        _ => return Err(unavailable()),
    };
    on_start(latest);
    sink(Frame::Source { incarnation })?;
    while let Some((seq, batch)) = first
        .take()
        .map(Ok)
        .or_else(|| updates.next())
        .transpose()?
    {
        let count = batch.len() as u64;
        if seq > next {
            // a hole in the log: the stream ends without its end frame, so the receiver
            // keeps its recorded sequence and asks again (and gets the 410)
            return Err(unavailable());
        }
        let end = seq + count.max(1);
        if end > next {
            sink(Frame::Batch {
                sequence: seq,
                data: batch.data().to_vec(),
            })?;
            next = end;
        }
    }
    let upto = next - 1;
    if upto < latest {
        return Err(unavailable());
    }
    sink(Frame::End { upto })?;
    Ok(upto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_truncation_is_detected() {
        let mut buf = Vec::new();
        let frames = [
            Frame::Source {
                incarnation: uuid::Uuid::new_v4(),
            },
            Frame::Batch {
                sequence: 5,
                data: vec![1, 2, 3],
            },
            Frame::Batch {
                sequence: 9,
                data: vec![],
            },
            Frame::End { upto: 12 },
        ];
        for f in &frames {
            write_frame(&mut buf, f).expect("write");
        }
        let mut r = buf.as_slice();
        for f in &frames {
            assert_eq!(read_frame(&mut r).expect("read").as_ref(), Some(f));
        }
        assert_eq!(read_frame(&mut r).expect("eof"), None);
        // cut inside the first frame
        let mut cut = &buf[..7];
        assert!(read_frame(&mut cut).is_err());
        let mut garbage: &[u8] = &[7, 0, 0];
        assert!(read_frame(&mut garbage).is_err());
    }

    #[test]
    fn only_store_entries_are_allowed() {
        assert!(allowed_entry(Path::new("db/CURRENT")));
        assert!(allowed_entry(Path::new("index/abc/graph.hnsw.data")));
        assert!(allowed_entry(Path::new("QUOTAS")));
        assert!(!allowed_entry(Path::new("FENCED")));
        assert!(!allowed_entry(Path::new("/etc/passwd")));
        assert!(!allowed_entry(Path::new("db/../../x")));
        assert!(!allowed_entry(Path::new("QUOTAS/x")));
        assert!(!allowed_entry(Path::new("")));
    }
}
