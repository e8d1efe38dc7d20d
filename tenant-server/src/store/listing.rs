//! What a server reports of its projects without serving them: the listing of both data
//! APIs, each project's state and figures for the admin API (closed projects report the
//! figures saved at their last close, so that listing thousands never opens them), and
//! the server's own figures for the metrics endpoint and the operator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::error::{StoreError, StoreResult};
use super::fence::{self, Fence};
use super::fsio::dir_size;
use super::layout::STATS_FILE;
use super::names::ProjectName;
use super::project::{Project, ProjectStats};
use super::registry::Registry;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProjectListing {
    pub name: ProjectName,
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
    pub name: ProjectName,
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

/// Figures of the server that cost no filesystem access, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFigures {
    pub open_projects: u64,
    pub max_open_projects: u64,
    /// Projects being opened or closed right now.
    pub busy_projects: u64,
    pub loaded_memory_bytes: u64,
    /// Records of loaded collections written but not yet in their graph.
    pub unindexed_records: u64,
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
    /// Records of loaded collections written but not yet in their graph.
    pub unindexed_records: u64,
    /// Size of everything under the workspace directory.
    pub disk_bytes: u64,
}

impl Registry {
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
        for (name, root) in self.layout.projects()? {
            let p = open.get(name.as_str());
            out.push(self.info_of(name, root, p)?);
        }
        Ok(out)
    }

    /// One project's state and figures; `None` if it does not exist. Not created, but
    /// opened when it is closed without saved figures, so that they are exact.
    pub fn project_info(self: &Arc<Self>, name: &ProjectName) -> StoreResult<Option<ProjectInfo>> {
        let root = self.layout.root(name);
        if !root.is_dir() {
            return Ok(None);
        }
        let open = self.open_once_settled(name);
        let info = self.info_of(name.clone(), root, open.as_ref())?;
        if info.stats_source != StatsSource::Directory {
            return Ok(Some(info));
        }
        match self.existing_project(name) {
            Ok(p) => {
                let root = p.root.clone();
                self.info_of(name.clone(), root, Some(&p)).map(Some)
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
    fn open_once_settled(&self, name: &ProjectName) -> Option<Arc<Project>> {
        let mut st = self.state.lock();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while st.busy.contains(name.as_str()) && std::time::Instant::now() < deadline {
            self.closed.wait_for(&mut st, Duration::from_millis(50));
        }
        st.open.peek(name.as_str()).cloned()
    }

    fn info_of(
        &self,
        name: ProjectName,
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
        Ok(self.layout.projects()?.len())
    }

    /// Figures for the metrics endpoint: no filesystem walk.
    pub fn live_figures(&self) -> LiveFigures {
        let st = self.state.lock();
        LiveFigures {
            open_projects: st.open.len() as u64,
            max_open_projects: self.config.max_open_projects as u64,
            busy_projects: st.busy.len() as u64,
            loaded_memory_bytes: st.open.iter().map(|(_, p)| p.memory_bytes() as u64).sum(),
            unindexed_records: st.open.iter().map(|(_, p)| p.unindexed_records()).sum(),
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
        let dirs = self.layout.projects()?;
        let mut fenced_projects = 0;
        for (_, root) in &dirs {
            if fence::read(root)?.is_some_and(|f| !f.is_incoming()) {
                fenced_projects += 1;
            }
        }
        let (open_projects, loaded_memory_bytes, unindexed_records) = {
            let st = self.state.lock();
            let memory: usize = st.open.iter().map(|(_, p)| p.memory_bytes()).sum();
            let unindexed: u64 = st.open.iter().map(|(_, p)| p.unindexed_records()).sum();
            (st.open.len(), memory, unindexed)
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
            unindexed_records,
            disk_bytes: dir_size(self.layout.workspace()),
        })
    }
}

fn read_saved_stats(root: &Path) -> Option<ProjectStats> {
    let bytes = std::fs::read(root.join(STATS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
