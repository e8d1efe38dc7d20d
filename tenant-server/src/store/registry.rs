//! The set of projects on this server: opened lazily, closed when idle or when the bounds
//! on open projects and on memory are exceeded (least recently used first), sharing one
//! block cache and one write-buffer budget. It also holds each project's lifecycle for
//! moves between servers: paused writes ([`gate`](super::gate)) and the fence of a copy
//! that moved away ([`fence`](super::fence)).
//!
//! Invariant: a fenced project is never open. Fencing closes it, and opening refuses a
//! fenced project, so requests to open projects need no fence check.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use parking_lot::{Condvar, Mutex};
use rocksdb::{BlockBasedOptions, Cache, Options, WriteBufferManager};
use serde::Serialize;

use super::counters;
use super::error::{StoreError, StoreResult};
use super::fence::{self, Fence};
use super::gate::WriteGates;
use super::indexer::Indexer;
use super::names::validate_name;
use super::project::{dir_size, Project, ProjectStats};
use super::quota::{self, Quotas};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub workspace: PathBuf,
    pub knowledge_graph_subdir: String,
    pub max_open_projects: usize,
    /// Bound on the estimated memory of loaded collections across open projects.
    pub max_memory_bytes: usize,
    pub idle_close: Duration,
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    pub max_open_files_per_project: i32,
    /// How long write-ahead log files are kept once RocksDB no longer needs them, so
    /// that a move can read a project's changes since its snapshot.
    pub wal_retention: Duration,
}

impl StoreConfig {
    pub fn for_workspace(workspace: &Path) -> StoreConfig {
        StoreConfig {
            workspace: workspace.to_path_buf(),
            knowledge_graph_subdir: "knowledge-graph".into(),
            max_open_projects: 256,
            max_memory_bytes: 8 << 30,
            idle_close: Duration::from_secs(300),
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 256 << 20,
            max_open_files_per_project: 64,
            wal_retention: Duration::from_secs(900),
        }
    }
}

/// RocksDB resources shared by every open project.
pub struct SharedResources {
    cache: Cache,
    write_buffers: WriteBufferManager,
    max_open_files: i32,
    wal_retention: Duration,
}

impl SharedResources {
    fn new(cfg: &StoreConfig) -> SharedResources {
        let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            cfg.write_buffer_bytes,
            false,
            cache.clone(),
        );
        SharedResources {
            cache,
            write_buffers,
            max_open_files: cfg.max_open_files_per_project,
            wal_retention: cfg.wal_retention,
        }
    }

    pub fn db_options(&self) -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_max_open_files(self.max_open_files);
        o.set_write_buffer_manager(&self.write_buffers);
        o.set_max_background_jobs(2);
        o.set_keep_log_file_num(2);
        o.set_max_log_file_size(1 << 20);
        o.set_max_total_wal_size(64 << 20);
        o.set_max_manifest_file_size(4 << 20);
        // archived, not deleted: a move replays the changes since its snapshot from here
        o.set_wal_ttl_seconds(self.wal_retention.as_secs().max(1));
        o.set_table_cache_num_shard_bits(2);
        // Reopening must be cheap, because idle projects are closed and reopened on
        // demand: keep recovered WAL data in memtables instead of writing SST files on
        // every open, and skip the per-file checks RocksDB can do lazily.
        o.set_skip_stats_update_on_db_open(true);
        o.set_max_file_opening_threads(1);
        // not exposed by the rocksdb crate's setters. No fallocate: RocksDB would reserve
        // ~70 MB of WAL and manifest space per open project, which for hundreds of open,
        // mostly small projects means tens of GB of disk held for nothing.
        match o.get_options_from_string(
            "avoid_flush_during_recovery=true;skip_checking_sst_file_sizes_on_db_open=true;\
             allow_fallocate=false",
        ) {
            Ok(with_recovery_options) => with_recovery_options,
            Err(e) => {
                tracing::warn!("cannot set RocksDB recovery options: {e}");
                o
            }
        }
    }

    pub fn cf_options(&self, _name: &str) -> Options {
        let mut o = Options::default();
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(&self.cache);
        t.set_cache_index_and_filter_blocks(true);
        t.set_bloom_filter(10.0, false);
        o.set_block_based_table_factory(&t);
        o.set_write_buffer_size(16 << 20);
        // memtables allocate in arena blocks (default: 1/8 of the buffer); small blocks keep
        // hundreds of mostly idle open projects from reserving megabytes each
        o.set_arena_block_size(32 << 10);
        o.set_max_write_buffer_number(3);
        o.set_compression_type(rocksdb::DBCompressionType::Lz4);
        o
    }
}

/// Where a shortened directory keeps its project's full name.
const NAME_FILE: &str = "project-name";
/// Longest project name used as a directory name as is (file systems allow 255 bytes).
const MAX_DIR_NAME: usize = 200;

/// The directory of a project under the workspace: the name itself, or for names too long
/// for a file system, a prefix and a hash of the name (`~` never occurs in valid names, so
/// the two forms cannot collide).
pub fn project_dir_name(name: &str) -> String {
    if name.len() <= MAX_DIR_NAME {
        return name.to_string();
    }
    // FNV-1a: stable across builds and platforms, which std's hasher is not
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}~{hash:016x}", &name[..100])
}

/// Hands memory freed by closed projects back to the OS. glibc keeps freed memory in its
/// arenas otherwise, and a server that closed thousands of idle projects would keep
/// the footprint of its busiest moment.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Longest a pause waits for the writes in progress before it gives up.
pub const PAUSE_DRAIN: Duration = Duration::from_secs(10);

/// Where a project's figures were written at its last close.
pub(super) const STATS_FILE: &str = "stats.json";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProjectListing {
    pub name: String,
    pub path: String,
    pub open: bool,
    #[serde(flatten)]
    pub stats: ProjectStats,
}

/// What a project accepts.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProjectState {
    /// Reads and writes.
    Active,
    /// Reads only, until resumed.
    Paused,
    /// Nothing: it moved to another server.
    Fenced,
    /// Nothing yet: a copy being moved in, serving once activated.
    Incoming,
}

/// Where a project's figures come from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StatsSource {
    /// Computed from the open store.
    Live,
    /// The stats file written when the project last closed.
    Saved,
    /// A closed project without a stats file (its server was killed, or it predates the
    /// file): only its size on disk is known, counted from its directory.
    Directory,
}

/// A project's state and figures, as the admin API reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectInfo {
    pub name: String,
    pub root: PathBuf,
    pub open: bool,
    pub state: ProjectState,
    pub fence: Option<Fence>,
    /// `None` when only the directory size is known (see [`StatsSource::Directory`]).
    pub collections: Option<u64>,
    pub records: Option<u64>,
    pub bytes: u64,
    pub stats_source: StatsSource,
}

/// A paused project's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseOutcome {
    /// RocksDB's latest sequence number: every acknowledged write is at or below it.
    pub sequence: u64,
    /// Writes in progress that the pause waited for.
    pub drained_writes: usize,
}

/// Figures of the server that cost no filesystem access, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFigures {
    pub open_projects: u64,
    pub max_open_projects: u64,
    /// Projects being opened or closed right now.
    pub busy_projects: u64,
    pub loaded_memory_bytes: u64,
    pub paused_projects: u64,
    pub evictions: u64,
    pub idle_closes: u64,
    pub block_cache_usage_bytes: u64,
    pub block_cache_pinned_bytes: u64,
    pub block_cache_capacity_bytes: u64,
    pub write_buffer_usage_bytes: u64,
    pub write_buffer_capacity_bytes: u64,
}

/// Figures of the whole server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    /// Project directories in the workspace (fenced ones included).
    pub projects: u64,
    pub fenced_projects: u64,
    pub paused_projects: u64,
    pub open_projects: u64,
    pub max_open_projects: u64,
    /// Projects closed to respect the bounds on open projects and memory.
    pub evictions: u64,
    /// Projects closed after being idle.
    pub idle_closes: u64,
    /// Estimated memory of the collections loaded by open projects.
    pub loaded_memory_bytes: u64,
    /// Size of everything under the workspace directory.
    pub disk_bytes: u64,
}

struct OpenSet {
    open: LruCache<String, Arc<Project>>,
    /// Projects being opened or closed, outside the lock: others wait for them (RocksDB's
    /// lock file refuses a second instance of one database).
    busy: HashSet<String>,
    /// Of the busy projects, those held by an exclusive section (an import, a changes
    /// replay, a quota write), not being opened or closed: listings need not wait for
    /// them, since their figures are on disk already.
    exclusive: HashSet<String>,
}

pub struct Registry {
    pub config: StoreConfig,
    shared: SharedResources,
    indexer: Indexer,
    gates: Arc<WriteGates>,
    state: Mutex<OpenSet>,
    closed: Condvar,
    evictions: AtomicU64,
    idle_closes: AtomicU64,
}

impl Registry {
    pub fn new(config: StoreConfig) -> StoreResult<Arc<Registry>> {
        std::fs::create_dir_all(&config.workspace)?;
        let shared = SharedResources::new(&config);
        let registry = Arc::new(Registry {
            shared,
            indexer: Indexer::start(),
            gates: WriteGates::new(),
            state: Mutex::new(OpenSet {
                open: LruCache::unbounded(),
                busy: HashSet::new(),
                exclusive: HashSet::new(),
            }),
            closed: Condvar::new(),
            evictions: AtomicU64::new(0),
            idle_closes: AtomicU64::new(0),
            config,
        });
        registry.clear_staging();
        Ok(registry)
    }

    pub(super) fn shared(&self) -> &SharedResources {
        &self.shared
    }

    pub(super) fn project_root_of(&self, name: &str) -> PathBuf {
        self.project_root(name)
    }

    /// Runs `f` on the project's store directory while nobody has the project open or
    /// can open it: an open project is closed first (once its requests in progress are
    /// done). Openers wait meanwhile; file work in `f` holds no global lock.
    pub(super) fn with_exclusive<R>(
        &self,
        name: &str,
        f: impl FnOnce(&Path) -> StoreResult<R>,
    ) -> StoreResult<R> {
        self.with_exclusive_saving(name, true, |root, _| f(root))
    }

    /// As [`Registry::with_exclusive`]; `f` also gets the last sequence number of the
    /// project if this call closed it.
    fn with_exclusive_saving<R>(
        &self,
        name: &str,
        save_graphs: bool,
        f: impl FnOnce(&Path, Option<u64>) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let mut closed_at = None;
        let mut st = self.state.lock();
        loop {
            while st.busy.contains(name) {
                self.closed.wait(&mut st);
            }
            match st.open.pop(name) {
                Some(p) => {
                    st.busy.insert(name.to_string());
                    drop(st);
                    closed_at = Some(self.finish_close_with(p, save_graphs));
                    st = self.state.lock();
                }
                None => break,
            }
        }
        st.busy.insert(name.to_string());
        st.exclusive.insert(name.to_string());
        drop(st);
        let out = f(&self.project_root(name), closed_at);
        let mut st = self.state.lock();
        st.busy.remove(name);
        st.exclusive.remove(name);
        self.closed.notify_all();
        drop(st);
        out
    }

    /// Runs `f` with the project's store directory and the project if open, while no
    /// open or close of it can start (requests to it, if open, go on).
    fn with_settled<R>(
        &self,
        name: &str,
        f: impl FnOnce(&Path, Option<&Arc<Project>>) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let mut st = self.state.lock();
        while st.busy.contains(name) {
            self.closed.wait(&mut st);
        }
        let open = st.open.peek(name).cloned();
        st.busy.insert(name.to_string());
        st.exclusive.insert(name.to_string());
        drop(st);
        let out = f(&self.project_root(name), open.as_ref());
        let mut st = self.state.lock();
        st.busy.remove(name);
        st.exclusive.remove(name);
        self.closed.notify_all();
        drop(st);
        out
    }

    fn project_root(&self, name: &str) -> PathBuf {
        self.config
            .workspace
            .join(project_dir_name(name))
            .join(&self.config.knowledge_graph_subdir)
    }

    /// Creates the project's directory, recording its full name when the directory name
    /// had to be shortened.
    pub(super) fn prepare_dir(&self, name: &str) -> StoreResult<()> {
        let root = self.project_root(name);
        std::fs::create_dir_all(&root)?;
        if project_dir_name(name) != name {
            let file = self
                .config
                .workspace
                .join(project_dir_name(name))
                .join(NAME_FILE);
            if !file.exists() {
                std::fs::write(file, name)?;
            }
        }
        Ok(())
    }

    /// The open project `name`, opening or creating it (projects are created on first use).
    /// A fenced project is refused, never re-created.
    pub fn project(self: &Arc<Self>, name: &str) -> StoreResult<Arc<Project>> {
        self.open(name, true).map(|(p, _)| p)
    }

    /// The open project `name`, which must already exist (it is opened, not created).
    pub fn existing_project(self: &Arc<Self>, name: &str) -> StoreResult<Arc<Project>> {
        self.open(name, false).map(|(p, _)| p)
    }

    /// Creates the project if it does not exist. Returns it open, and whether it was created.
    pub fn provision(self: &Arc<Self>, name: &str) -> StoreResult<(Arc<Project>, bool)> {
        self.open(name, true)
    }

    fn open(self: &Arc<Self>, name: &str, create: bool) -> StoreResult<(Arc<Project>, bool)> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let mut st = self.state.lock();
        loop {
            if let Some(p) = st.open.get(name) {
                p.touch();
                return Ok((Arc::clone(p), false));
            }
            if !st.busy.contains(name) {
                break;
            }
            self.closed.wait(&mut st);
        }
        st.busy.insert(name.to_string());
        drop(st);
        // opening creates files and syncs them: done without the lock so that other
        // projects open in parallel (the busy mark keeps this one to one opener)
        let opened = tracing::info_span!(
            "project.open",
            quiver.project = name,
            quiver.create = create
        )
        .in_scope(|| self.open_unlisted(name, create));
        if opened.is_ok() {
            counters::add(&counters::PROJECT_OPENS, 1);
        }
        let mut st = self.state.lock();
        st.busy.remove(name);
        self.closed.notify_all();
        let (project, created) = opened?;
        let project = Arc::new(project);
        st.open.put(name.to_string(), Arc::clone(&project));
        let evicted = self.pick_evictions(&mut st, name);
        drop(st);
        for p in evicted {
            self.close_in_background(p);
        }
        Ok((project, created))
    }

    /// Opens a project that the caller marked busy.
    fn open_unlisted(&self, name: &str, create: bool) -> StoreResult<(Project, bool)> {
        let root = self.project_root(name);
        if let Some(f) = fence::read(&root)? {
            return Err(fenced(name, f));
        }
        let existed = root.is_dir();
        if !existed && !create {
            return Err(StoreError::ProjectNotFound(name.to_string()));
        }
        self.prepare_dir(name)?;
        let project = Project::open(
            name,
            &root,
            &self.shared,
            self.indexer.clone(),
            Arc::clone(&self.gates),
        )?;
        Ok((project, !existed))
    }

    fn pick_evictions(&self, st: &mut OpenSet, keep: &str) -> Vec<Arc<Project>> {
        let mut out = Vec::new();
        let mut memory: usize = st.open.iter().map(|(_, p)| p.memory_bytes()).sum();
        while st.open.len() > 1
            && (st.open.len() > self.config.max_open_projects.max(1)
                || memory > self.config.max_memory_bytes)
        {
            let Some((name, p)) = st.open.pop_lru() else {
                break;
            };
            if name == keep {
                // the project being opened is the only one left: keep it even if over budget
                st.open.put(name, p);
                break;
            }
            memory = memory.saturating_sub(p.memory_bytes());
            st.busy.insert(name);
            out.push(p);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Closes a project once its in-flight requests are done, off the request path.
    fn close_in_background(self: &Arc<Self>, p: Arc<Project>) {
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("quiver-close".into())
            .spawn(move || me.finish_close(p));
        if let Err(e) = spawned {
            tracing::error!("cannot spawn a closer thread: {e}");
        }
    }

    fn finish_close(&self, p: Arc<Project>) {
        self.finish_close_with(p, true);
    }

    /// Closes `p` once its requests are done; returns its last sequence number.
    fn finish_close_with(&self, p: Arc<Project>, save_graphs: bool) -> u64 {
        let name = p.name.clone();
        let _span = tracing::info_span!("project.close", quiver.project = %name).entered();
        counters::add(&counters::PROJECT_CLOSES, 1);
        while Arc::strong_count(&p) > 1 {
            std::thread::sleep(Duration::from_millis(2));
        }
        p.flush_for_close_with(save_graphs);
        let sequence = p.latest_sequence();
        drop(p);
        let mut st = self.state.lock();
        st.busy.remove(&name);
        let idle = st.busy.is_empty();
        self.closed.notify_all();
        drop(st);
        if idle {
            release_free_memory();
        }
        tracing::debug!(project = %name, "project closed");
        sequence
    }

    /// Closes projects idle longer than the configured time; called periodically.
    pub fn close_idle(self: &Arc<Self>) {
        let idle = self.config.idle_close.as_secs();
        let mut st = self.state.lock();
        let names: Vec<String> = st
            .open
            .iter()
            .filter(|(_, p)| p.idle_secs() >= idle)
            .map(|(n, _)| n.clone())
            .collect();
        let mut evicted = Vec::new();
        for n in names {
            if let Some(p) = st.open.pop(&n) {
                st.busy.insert(n);
                evicted.push(p);
                self.idle_closes.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(st);
        for p in evicted {
            self.close_in_background(p);
        }
    }

    /// Closes every project and waits for them; for shutdown.
    pub fn close_all(&self) {
        let mut st = self.state.lock();
        let all: Vec<Arc<Project>> =
            std::iter::from_fn(|| st.open.pop_lru().map(|(_, p)| p)).collect();
        for p in &all {
            st.busy.insert(p.name.clone());
        }
        drop(st);
        for p in all {
            self.finish_close(p);
        }
    }

    pub fn open_count(&self) -> usize {
        self.state.lock().open.len()
    }

    /// Deletes a project and its directory, as a client's write: refused while the project
    /// is paused or fenced. Returns false if it did not exist.
    pub fn delete_project(self: &Arc<Self>, name: &str) -> StoreResult<bool> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        if let Some(f) = fence::read(&self.project_root(name))? {
            return Err(fenced(name, f));
        }
        let _permit = self.gates.enter(name)?;
        self.remove_project(name, true)
    }

    /// Deletes a project and its directory whatever its state (the operator removes the
    /// fenced copies that moves leave behind), and forgets its pause, so that the name
    /// starts afresh. Returns false if it did not exist.
    pub fn purge_project(self: &Arc<Self>, name: &str) -> StoreResult<bool> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let existed = self.remove_project(name, false)?;
        let _ = self.gates.resume(name);
        Ok(existed)
    }

    /// Removes the project's directory; with `unless_fenced`, a project fenced meanwhile
    /// (a client's delete racing a move's fence) is refused instead: its data is the
    /// only record of where the project went.
    fn remove_project(&self, name: &str, unless_fenced: bool) -> StoreResult<bool> {
        self.with_exclusive(name, |root| {
            if !root.is_dir() {
                return Ok(false);
            }
            if unless_fenced {
                if let Some(f) = fence::read(root)? {
                    return Err(fenced(name, f));
                }
            }
            std::fs::remove_dir_all(self.config.workspace.join(project_dir_name(name)))?;
            Ok(true)
        })
    }

    /// The projects this server serves (fenced ones are not), with figures (open ones
    /// live, closed ones as of their last close).
    pub fn list(&self) -> StoreResult<Vec<ProjectListing>> {
        Ok(self
            .list_projects()?
            .into_iter()
            .filter(|p| !matches!(p.state, ProjectState::Fenced | ProjectState::Incoming))
            .map(|p| ProjectListing {
                name: p.name,
                path: p.root.display().to_string(),
                open: p.open,
                stats: ProjectStats {
                    collections: p.collections.unwrap_or(0),
                    records: p.records.unwrap_or(0),
                    bytes: p.bytes,
                },
            })
            .collect())
    }

    /// Every project in the workspace, fenced ones included, in name order. Never opens a
    /// project: closed ones report their saved figures (see [`StatsSource`]).
    pub fn list_projects(&self) -> StoreResult<Vec<ProjectInfo>> {
        let open: HashMap<String, Arc<Project>> = self
            .open_after_closes()
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        let mut out = Vec::new();
        for (name, root) in self.project_dirs()? {
            let p = open.get(&name);
            out.push(self.info_of(name, root, p)?);
        }
        Ok(out)
    }

    /// One project's state and figures; `None` if it does not exist. Not created, but
    /// opened when it is closed without saved figures, so that they are exact.
    pub fn project_info(self: &Arc<Self>, name: &str) -> StoreResult<Option<ProjectInfo>> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let root = self.project_root(name);
        if !root.is_dir() {
            return Ok(None);
        }
        let open = self.open_once_settled(name);
        let info = self.info_of(name.to_string(), root, open.as_ref())?;
        if info.stats_source != StatsSource::Directory {
            return Ok(Some(info));
        }
        match self.existing_project(name) {
            Ok(p) => {
                let root = p.root.clone();
                self.info_of(name.to_string(), root, Some(&p)).map(Some)
            }
            // deleted or fenced meanwhile: report what the directory showed
            Err(StoreError::ProjectNotFound(_) | StoreError::ProjectFenced { .. }) => {
                Ok(Some(info))
            }
            Err(e) => Err(e),
        }
    }

    /// The open projects, once closes in progress are done: a project being closed is in
    /// neither the open set nor its stats file yet, so its figures would be missing.
    fn open_after_closes(&self) -> Vec<Arc<Project>> {
        let mut st = self.state.lock();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while st.busy.len() > st.exclusive.len() && std::time::Instant::now() < deadline {
            self.closed.wait_for(&mut st, Duration::from_millis(50));
        }
        st.open.iter().map(|(_, p)| Arc::clone(p)).collect()
    }

    /// The project if it is open, once an open or close of it in progress is done.
    fn open_once_settled(&self, name: &str) -> Option<Arc<Project>> {
        let mut st = self.state.lock();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while st.busy.contains(name) && std::time::Instant::now() < deadline {
            self.closed.wait_for(&mut st, Duration::from_millis(50));
        }
        st.open.peek(name).cloned()
    }

    fn info_of(
        &self,
        name: String,
        root: PathBuf,
        open: Option<&Arc<Project>>,
    ) -> StoreResult<ProjectInfo> {
        let fence = fence::read(&root)?;
        let state = if fence.as_ref().is_some_and(Fence::is_incoming) {
            ProjectState::Incoming
        } else if fence.is_some() {
            ProjectState::Fenced
        } else if self.gates.is_paused(&name) {
            ProjectState::Paused
        } else {
            ProjectState::Active
        };
        let (stats, source) = match open {
            Some(p) => (Some(p.stats()?), StatsSource::Live),
            None => match read_saved_stats(&root) {
                Some(s) => (Some(s), StatsSource::Saved),
                None => (None, StatsSource::Directory),
            },
        };
        Ok(ProjectInfo {
            open: open.is_some(),
            state,
            fence,
            collections: stats.as_ref().map(|s| s.collections),
            records: stats.as_ref().map(|s| s.records),
            bytes: match &stats {
                Some(s) => s.bytes,
                None => dir_size(&root),
            },
            stats_source: source,
            name,
            root,
        })
    }

    /// Projects on disk (one directory listing).
    pub fn project_count(&self) -> StoreResult<usize> {
        Ok(self.project_dirs()?.len())
    }

    /// (name, store root) of every project directory in the workspace.
    fn project_dirs(&self) -> StoreResult<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.config.workspace) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for e in entries.flatten() {
            let Ok(dir_name) = e.file_name().into_string() else {
                continue;
            };
            let name = if dir_name.contains('~') {
                match std::fs::read_to_string(e.path().join(NAME_FILE)) {
                    Ok(n) if project_dir_name(&n) == dir_name => n,
                    _ => continue,
                }
            } else {
                dir_name
            };
            if validate_name("project", &name).is_err() {
                continue;
            }
            let root = self.project_root(&name);
            if root.is_dir() {
                out.push((name, root));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    // ---- moves: pause, fence ----

    /// Refuses new writes of the project, waits for those in progress, and returns the
    /// store's latest sequence number, which no write can pass until [`Registry::resume`].
    ///
    /// The pause lifts itself after `hold` unless renewed (paused again) or resumed; if
    /// the writes in progress take longer than [`PAUSE_DRAIN`] the pause is undone.
    pub fn pause(self: &Arc<Self>, name: &str, hold: Duration) -> StoreResult<PauseOutcome> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let root = self.project_root(name);
        if let Some(f) = fence::read(&root)? {
            return Err(fenced(name, f));
        }
        if !root.is_dir() {
            return Err(StoreError::ProjectNotFound(name.to_string()));
        }
        let paused = self.gates.pause(name, hold, PAUSE_DRAIN).map_err(|t| {
            StoreError::PauseTimeout(format!(
                "{} writes to project [{name}] still in progress after {} s; the pause \
                     was undone",
                t.writes_in_progress,
                PAUSE_DRAIN.as_secs()
            ))
        })?;
        match self.existing_project(name) {
            Ok(p) => Ok(PauseOutcome {
                sequence: p.latest_sequence(),
                drained_writes: paused.drained_writes,
            }),
            Err(e) => {
                if !paused.was_paused {
                    let _ = self.gates.resume(name);
                }
                Err(e)
            }
        }
    }

    /// Admits the project's writes again. Returns whether it was paused.
    pub fn resume(&self, name: &str) -> StoreResult<bool> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let was_paused = self.gates.resume(name);
        if !was_paused && !self.project_root(name).is_dir() {
            return Err(StoreError::ProjectNotFound(name.to_string()));
        }
        Ok(was_paused)
    }

    pub fn is_paused(&self, name: &str) -> bool {
        self.gates.is_paused(name)
    }

    /// Marks the project as moved away (durably), then closes it once the requests in
    /// progress are done. From then on every request to it is refused, and it is never
    /// re-created by a first access. Fencing a fenced project updates its destination.
    ///
    /// Also returns the project's last sequence number when it was open (a move that
    /// already shipped that far has nothing left to ship).
    pub fn fence(
        self: &Arc<Self>,
        name: &str,
        moved_to: Option<String>,
    ) -> StoreResult<(Fence, Option<u64>)> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let fence = Fence::new(moved_to)?;
        // closed first (its requests in progress finish), then fenced while nobody can
        // open it: no request is served after the fence is on disk. Its graphs are not
        // saved: the copy serves no more, and a move waits on this close.
        self.with_exclusive_saving(name, false, |root, closed_at| {
            if !root.is_dir() {
                return Err(StoreError::ProjectNotFound(name.to_string()));
            }
            fence::write(root, &fence)?;
            Ok((fence, closed_at))
        })
    }

    /// Lifts the fence (a move rolled back, or an incoming copy activated). Returns
    /// whether the project was fenced. An activated copy is opened and its collections
    /// loaded in the background, since its first requests are moments away.
    pub fn unfence(self: &Arc<Self>, name: &str) -> StoreResult<bool> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let was_incoming = self.with_exclusive(name, |root| {
            if !root.is_dir() {
                return Err(StoreError::ProjectNotFound(name.to_string()));
            }
            let incoming = fence::read(root)?.is_some_and(|f| f.is_incoming());
            Ok(fence::remove(root)?.then_some(incoming))
        })?;
        if was_incoming == Some(true) {
            let me = Arc::clone(self);
            let project = name.to_string();
            let warm = std::thread::Builder::new()
                .name("quiver-warm".into())
                .spawn(move || {
                    if let Err(e) = me
                        .existing_project(&project)
                        .and_then(|p| p.load_all_collections())
                    {
                        tracing::warn!(project, "cannot preload an activated project: {e}");
                    }
                });
            if let Err(e) = warm {
                tracing::warn!("cannot spawn a preload thread: {e}");
            }
        }
        Ok(was_incoming.is_some())
    }

    /// Creates the project if absent, with `quotas` in force from its first open (given
    /// quotas replace an existing project's). Returns it open, and whether it was created.
    pub fn provision_with_quotas(
        self: &Arc<Self>,
        name: &str,
        quotas: Option<Quotas>,
    ) -> StoreResult<(Arc<Project>, bool)> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let Some(q) = quotas else {
            return self.provision(name);
        };
        let fresh = !self.project_root(name).is_dir()
            && self.with_exclusive(name, |root| {
                if root.is_dir() {
                    return Ok(false);
                }
                if let Some(f) = fence::read(root)? {
                    return Err(fenced(name, f));
                }
                self.prepare_dir(name)?;
                quota::write(root, &q)?;
                Ok(true)
            })?;
        if !fresh {
            self.set_quotas(name, q)?;
        }
        let (project, created) = self.provision(name)?;
        Ok((project, created || fresh))
    }

    /// Replaces the project's quotas (it must exist; a fenced copy takes them too, so
    /// that they hold wherever it serves next).
    pub fn set_quotas(&self, name: &str, quotas: Quotas) -> StoreResult<()> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        self.with_settled(name, |root, open| {
            if !root.is_dir() {
                return Err(StoreError::ProjectNotFound(name.to_string()));
            }
            quota::write(root, &quotas)?;
            if let Some(p) = open {
                p.set_quotas(quotas);
            }
            Ok(())
        })
    }

    /// The project's quotas (read from its file; the project is not opened).
    pub fn quotas_of(&self, name: &str) -> StoreResult<Quotas> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        quota::read(&self.project_root(name))
    }

    /// The fence of the project, if it is fenced.
    pub fn fence_of(&self, name: &str) -> StoreResult<Option<Fence>> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        fence::read(&self.project_root(name))
    }

    // ---- server figures ----

    /// Figures for the metrics endpoint: no filesystem walk.
    pub fn live_figures(&self) -> LiveFigures {
        let st = self.state.lock();
        LiveFigures {
            open_projects: st.open.len() as u64,
            max_open_projects: self.config.max_open_projects as u64,
            busy_projects: st.busy.len() as u64,
            loaded_memory_bytes: st.open.iter().map(|(_, p)| p.memory_bytes() as u64).sum(),
            paused_projects: self.gates.paused().len() as u64,
            evictions: self.evictions.load(Ordering::Relaxed),
            idle_closes: self.idle_closes.load(Ordering::Relaxed),
            block_cache_usage_bytes: self.shared.cache.get_usage() as u64,
            block_cache_pinned_bytes: self.shared.cache.get_pinned_usage() as u64,
            block_cache_capacity_bytes: self.config.block_cache_bytes as u64,
            write_buffer_usage_bytes: self.shared.write_buffers.get_usage() as u64,
            write_buffer_capacity_bytes: self.shared.write_buffers.get_buffer_size() as u64,
        }
    }

    /// Figures of the whole server. Walks the workspace (every project directory and the
    /// size of every file), so it costs as much as a `du` of it.
    pub fn server_stats(&self) -> StoreResult<ServerStats> {
        let dirs = self.project_dirs()?;
        let mut fenced_projects = 0;
        for (_, root) in &dirs {
            if fence::read(root)?.is_some_and(|f| !f.is_incoming()) {
                fenced_projects += 1;
            }
        }
        let (open_projects, loaded_memory_bytes) = {
            let st = self.state.lock();
            let memory: usize = st.open.iter().map(|(_, p)| p.memory_bytes()).sum();
            (st.open.len(), memory)
        };
        Ok(ServerStats {
            projects: dirs.len() as u64,
            fenced_projects,
            paused_projects: self.gates.paused().len() as u64,
            open_projects: open_projects as u64,
            max_open_projects: self.config.max_open_projects as u64,
            evictions: self.evictions.load(Ordering::Relaxed),
            idle_closes: self.idle_closes.load(Ordering::Relaxed),
            loaded_memory_bytes: loaded_memory_bytes as u64,
            disk_bytes: dir_size(&self.config.workspace),
        })
    }
}

fn fenced(name: &str, fence: Fence) -> StoreError {
    StoreError::ProjectFenced {
        name: name.to_string(),
        moved_to: fence.moved_to,
    }
}

fn read_saved_stats(root: &Path) -> Option<ProjectStats> {
    let bytes = std::fs::read(root.join(STATS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
