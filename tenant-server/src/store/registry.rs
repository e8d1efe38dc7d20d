//! The set of projects open on this server: opened lazily on their first request, closed
//! when idle or when the bounds on open projects and on memory are exceeded (least
//! recently used first), all sharing one block cache and one write-buffer budget
//! ([`resources`](super::resources)). What else a server does with its projects lives
//! beside it: creating, deleting, pausing and fencing them in
//! [`lifecycle`](super::lifecycle), their figures in [`listing`](super::listing).
//!
//! Invariant: a fenced project is never open. Fencing closes it, and opening refuses a
//! fenced project, so requests to open projects need no fence check.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use parking_lot::{Condvar, Mutex};

use super::config::StoreConfig;
use super::counters;
use super::error::{StoreError, StoreResult};
use super::fence::{self, Fence};
use super::gate::WriteGates;
use super::indexer::Indexer;
use super::layout::Layout;
use super::names::ProjectName;
use super::project::{NewCatalog, Project};
use super::resources::SharedResources;

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

pub(super) struct OpenSet {
    pub(super) open: LruCache<String, Arc<Project>>,
    /// Projects being opened or closed, outside the lock: others wait for them (RocksDB's
    /// lock file refuses a second instance of one database).
    pub(super) busy: HashSet<String>,
    /// Of the busy projects, those held by an exclusive section (an import, a changes
    /// replay, a quota write), not being opened or closed: listings need not wait for
    /// them, since their figures are on disk already.
    pub(super) exclusive: HashSet<String>,
}

pub struct Registry {
    pub config: StoreConfig,
    pub(super) layout: Layout,
    pub(super) shared: SharedResources,
    pub(super) indexer: Indexer,
    pub(super) gates: Arc<WriteGates>,
    pub(super) state: Mutex<OpenSet>,
    pub(super) closed: Condvar,
    pub(super) evictions: AtomicU64,
    pub(super) idle_closes: AtomicU64,
}

impl Registry {
    pub fn new(config: StoreConfig) -> StoreResult<Arc<Registry>> {
        std::fs::create_dir_all(&config.workspace)?;
        let shared = SharedResources::new(&config);
        let registry = Arc::new(Registry {
            layout: Layout::new(&config.workspace, &config.knowledge_graph_subdir),
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

    pub(super) fn project_root_of(&self, name: &ProjectName) -> PathBuf {
        self.layout.root(name)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Runs `f` on the project's store directory while nobody has the project open or
    /// can open it: an open project is closed first (once its requests in progress are
    /// done). Openers wait meanwhile; file work in `f` holds no global lock.
    pub(super) fn with_exclusive<R>(
        &self,
        name: &ProjectName,
        f: impl FnOnce(&Path) -> StoreResult<R>,
    ) -> StoreResult<R> {
        self.with_exclusive_saving(name, true, |root, _| f(root))
    }

    /// As [`Registry::with_exclusive`]; `f` also gets the last sequence number of the
    /// project if this call closed it.
    pub(super) fn with_exclusive_saving<R>(
        &self,
        name: &ProjectName,
        save_graphs: bool,
        f: impl FnOnce(&Path, Option<u64>) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let mut closed_at = None;
        let mut st = self.state.lock();
        loop {
            while st.busy.contains(name.as_str()) {
                self.closed.wait(&mut st);
            }
            match st.open.pop(name.as_str()) {
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
        let out = f(&self.layout.root(name), closed_at);
        self.end_exclusive(name);
        out
    }

    /// Ends an exclusive section: others may open, close or enter the project again.
    fn end_exclusive(&self, name: &ProjectName) {
        let mut st = self.state.lock();
        st.busy.remove(name.as_str());
        st.exclusive.remove(name.as_str());
        self.closed.notify_all();
    }

    /// Runs `f` with the project's store directory and the project if open, while no
    /// open or close of it can start (requests to it, if open, go on).
    pub(super) fn with_settled<R>(
        &self,
        name: &ProjectName,
        f: impl FnOnce(&Path, Option<&Arc<Project>>) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let mut st = self.state.lock();
        while st.busy.contains(name.as_str()) {
            self.closed.wait(&mut st);
        }
        let open = st.open.peek(name.as_str()).cloned();
        st.busy.insert(name.to_string());
        st.exclusive.insert(name.to_string());
        drop(st);
        let out = f(&self.layout.root(name), open.as_ref());
        self.end_exclusive(name);
        out
    }

    /// The open project `name`, opening or creating it (projects are created on first use,
    /// with their `default_database`). A fenced project is refused, never re-created.
    pub fn project(self: &Arc<Self>, name: &ProjectName) -> StoreResult<Arc<Project>> {
        self.open(name, Some(NewCatalog::DefaultDatabase))
            .map(|(p, _)| p)
    }

    /// The open project `name`, which must already exist (it is opened, not created).
    pub fn existing_project(self: &Arc<Self>, name: &ProjectName) -> StoreResult<Arc<Project>> {
        self.open(name, None).map(|(p, _)| p)
    }

    /// Opens the project; one that does not exist is created with `create`, or refused
    /// without it. Returns it and whether this call created it.
    pub(super) fn open(
        self: &Arc<Self>,
        name: &ProjectName,
        create: Option<NewCatalog>,
    ) -> StoreResult<(Arc<Project>, bool)> {
        let mut st = self.state.lock();
        loop {
            if let Some(p) = st.open.get(name.as_str()) {
                p.touch();
                return Ok((Arc::clone(p), false));
            }
            if !st.busy.contains(name.as_str()) {
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
            quiver.project = name.as_str(),
            quiver.create = create.is_some()
        )
        .in_scope(|| self.open_unlisted(name, create));
        if opened.is_ok() {
            counters::add(&counters::PROJECT_OPENS, 1);
        }
        let mut st = self.state.lock();
        st.busy.remove(name.as_str());
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
    fn open_unlisted(
        &self,
        name: &ProjectName,
        create: Option<NewCatalog>,
    ) -> StoreResult<(Project, bool)> {
        let root = self.layout.root(name);
        if let Some(f) = fence::read(&root)? {
            return Err(fenced(name, f));
        }
        let existed = root.is_dir();
        let new_catalog = match create {
            Some(c) => c,
            // a directory whose store was never created (quotas are written before the
            // first open) belongs to a project provisioned by the admin API
            None if existed => NewCatalog::DefaultDatabase,
            None => return Err(StoreError::ProjectNotFound(name.to_string())),
        };
        self.layout.prepare(name)?;
        let project = Project::open(
            name.as_str(),
            &root,
            &self.shared,
            self.indexer.clone(),
            Arc::clone(&self.gates),
            new_catalog,
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
}

pub(super) fn fenced(name: &str, fence: Fence) -> StoreError {
    StoreError::ProjectFenced {
        name: name.to_string(),
        moved_to: fence.moved_to,
    }
}
