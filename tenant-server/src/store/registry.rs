//! The set of projects on this server: opened lazily, closed when idle or when the bounds
//! on open projects and on memory are exceeded (least recently used first), sharing one
//! block cache and one write-buffer budget.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use parking_lot::{Condvar, Mutex};
use rocksdb::{BlockBasedOptions, Cache, Options, WriteBufferManager};
use serde::Serialize;

use super::error::{StoreError, StoreResult};
use super::indexer::Indexer;
use super::names::validate_name;
use super::project::{Project, ProjectStats};

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
        }
    }
}

/// RocksDB resources shared by every open project.
pub struct SharedResources {
    cache: Cache,
    write_buffers: WriteBufferManager,
    max_open_files: i32,
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
        o.set_table_cache_num_shard_bits(2);
        // Reopening must be cheap, because idle projects are closed and reopened on
        // demand: keep recovered WAL data in memtables instead of writing SST files on
        // every open, and skip the per-file checks RocksDB can do lazily.
        o.set_skip_stats_update_on_db_open(true);
        o.set_max_file_opening_threads(1);
        // not exposed by the rocksdb crate's setters
        match o.get_options_from_string(
            "avoid_flush_during_recovery=true;skip_checking_sst_file_sizes_on_db_open=true",
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

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProjectListing {
    pub name: String,
    pub path: String,
    pub open: bool,
    #[serde(flatten)]
    pub stats: ProjectStats,
}

struct OpenSet {
    open: LruCache<String, Arc<Project>>,
    /// Projects being opened or closed, outside the lock: others wait for them (RocksDB's
    /// lock file refuses a second instance of one database).
    busy: HashSet<String>,
}

pub struct Registry {
    pub config: StoreConfig,
    shared: SharedResources,
    indexer: Indexer,
    state: Mutex<OpenSet>,
    closed: Condvar,
}

impl Registry {
    pub fn new(config: StoreConfig) -> StoreResult<Arc<Registry>> {
        std::fs::create_dir_all(&config.workspace)?;
        let shared = SharedResources::new(&config);
        Ok(Arc::new(Registry {
            shared,
            indexer: Indexer::start(),
            state: Mutex::new(OpenSet {
                open: LruCache::unbounded(),
                busy: HashSet::new(),
            }),
            closed: Condvar::new(),
            config,
        }))
    }

    fn project_root(&self, name: &str) -> PathBuf {
        self.config
            .workspace
            .join(project_dir_name(name))
            .join(&self.config.knowledge_graph_subdir)
    }

    pub fn exists(&self, name: &str) -> bool {
        validate_name("project", name).is_ok() && self.project_root(name).is_dir()
    }

    /// Creates the project's directory, recording its full name when the directory name
    /// had to be shortened.
    fn prepare_dir(&self, name: &str) -> StoreResult<()> {
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
    pub fn project(self: &Arc<Self>, name: &str) -> StoreResult<Arc<Project>> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let mut st = self.state.lock();
        loop {
            if let Some(p) = st.open.get(name) {
                p.touch();
                return Ok(Arc::clone(p));
            }
            if !st.busy.contains(name) {
                break;
            }
            self.closed.wait(&mut st);
        }
        st.busy.insert(name.to_string());
        drop(st);
        // opening creates files and syncs them: done without the lock so that other
        // projects open in parallel
        let opened = self.prepare_dir(name).and_then(|()| {
            Project::open(
                name,
                &self.project_root(name),
                &self.shared,
                self.indexer.clone(),
            )
        });
        let mut st = self.state.lock();
        st.busy.remove(name);
        self.closed.notify_all();
        let project = Arc::new(opened?);
        st.open.put(name.to_string(), Arc::clone(&project));
        let evicted = self.pick_evictions(&mut st, name);
        drop(st);
        for p in evicted {
            self.close_in_background(p);
        }
        Ok(project)
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
        let name = p.name.clone();
        while Arc::strong_count(&p) > 1 {
            std::thread::sleep(Duration::from_millis(2));
        }
        p.flush_for_close();
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

    /// Deletes a project and its directory. Returns false if it did not exist.
    pub fn delete_project(self: &Arc<Self>, name: &str) -> StoreResult<bool> {
        validate_name("project", name).map_err(StoreError::InvalidArgument)?;
        let mut st = self.state.lock();
        while st.busy.contains(name) {
            self.closed.wait(&mut st);
        }
        let open = st.open.pop(name);
        if let Some(p) = open {
            st.busy.insert(name.to_string());
            drop(st);
            self.finish_close(p);
            st = self.state.lock();
        }
        // hold the lock so nobody reopens it while its files go
        let dir = self.config.workspace.join(project_dir_name(name));
        if !dir.join(&self.config.knowledge_graph_subdir).is_dir() {
            return Ok(false);
        }
        std::fs::remove_dir_all(&dir)?;
        drop(st);
        Ok(true)
    }

    /// Every project in the workspace, with figures (open ones live, closed ones as of
    /// their last close).
    pub fn list(&self) -> StoreResult<Vec<ProjectListing>> {
        let open: Vec<Arc<Project>> = {
            // a project being closed is in neither the open set nor its stats file yet:
            // give closes in progress a moment to finish so their figures are exact
            let mut st = self.state.lock();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !st.busy.is_empty() && std::time::Instant::now() < deadline {
                self.closed.wait_for(&mut st, Duration::from_millis(50));
            }
            st.open.iter().map(|(_, p)| Arc::clone(p)).collect()
        };
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
            if !root.is_dir() {
                continue;
            }
            let (is_open, stats) = match open.iter().find(|p| p.name == name) {
                Some(p) => (true, p.stats()?),
                None => (
                    false,
                    std::fs::read(root.join("stats.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or_default(),
                ),
            };
            out.push(ProjectListing {
                name,
                path: root.display().to_string(),
                open: is_open,
                stats,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
