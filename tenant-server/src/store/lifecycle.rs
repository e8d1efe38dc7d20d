//! What the admin API and the data APIs do to whole projects, beyond opening them:
//! provisioning (with quotas in force from the first open), deleting, and the steps of a
//! move between servers: pausing writes ([`gate`](super::gate)), fencing the copy that
//! moved away and activating the one that arrived ([`fence`](super::fence)).

use std::sync::Arc;
use std::time::Duration;

use super::error::{StoreError, StoreResult};
use super::fence::{self, Fence};
use super::names::ProjectName;
use super::project::{NewCatalog, Project};
use super::quota::{self, Quotas};
use super::registry::{fenced, Registry};

/// Longest a pause waits for the writes in progress before it gives up.
pub const PAUSE_DRAIN: Duration = Duration::from_secs(10);

/// A paused project's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseOutcome {
    /// RocksDB's latest sequence number: every acknowledged write is at or below it.
    pub sequence: u64,
    /// Writes in progress that the pause waited for.
    pub drained_writes: usize,
}

impl Registry {
    /// Creates the project if it does not exist, with its `default_database`. Returns it
    /// open, and whether it was created.
    pub fn provision(self: &Arc<Self>, name: &ProjectName) -> StoreResult<(Arc<Project>, bool)> {
        self.open(name, Some(NewCatalog::DefaultDatabase))
    }

    /// Creates the project if it does not exist, without any database (what Chroma's
    /// `create_tenant` makes). An existing project is opened as it is. Returns it open,
    /// and whether it was created.
    pub fn provision_empty(
        self: &Arc<Self>,
        name: &ProjectName,
    ) -> StoreResult<(Arc<Project>, bool)> {
        self.open(name, Some(NewCatalog::Empty))
    }

    /// Deletes a project and its directory, as a client's write: refused while the project
    /// is paused or fenced. Returns false if it did not exist.
    pub fn delete_project(self: &Arc<Self>, name: &ProjectName) -> StoreResult<bool> {
        if let Some(f) = fence::read(&self.layout.root(name))? {
            return Err(fenced(name, f));
        }
        let _permit = self.gates.enter(name)?;
        self.remove_project(name, true)
    }

    /// Deletes a project and its directory whatever its state (the operator removes the
    /// fenced copies that moves leave behind), and forgets its pause, so that the name
    /// starts afresh. Returns false if it did not exist.
    pub fn purge_project(self: &Arc<Self>, name: &ProjectName) -> StoreResult<bool> {
        let existed = self.remove_project(name, false)?;
        let _ = self.gates.resume(name);
        Ok(existed)
    }

    /// Removes the project's directory; with `unless_fenced`, a project fenced meanwhile
    /// (a client's delete racing a move's fence) is refused instead: its data is the
    /// only record of where the project went.
    fn remove_project(&self, name: &ProjectName, unless_fenced: bool) -> StoreResult<bool> {
        self.with_exclusive(name, |root| {
            if !root.is_dir() {
                return Ok(false);
            }
            if unless_fenced {
                if let Some(f) = fence::read(root)? {
                    return Err(fenced(name, f));
                }
            }
            std::fs::remove_dir_all(self.layout.project_dir(name))?;
            Ok(true)
        })
    }

    /// Refuses new writes of the project, waits for those in progress, and returns the
    /// store's latest sequence number, which no write can pass until [`Registry::resume`].
    ///
    /// The pause lifts itself after `hold` unless renewed (paused again) or resumed; if
    /// the writes in progress take longer than [`PAUSE_DRAIN`] the pause is undone.
    pub fn pause(
        self: &Arc<Self>,
        name: &ProjectName,
        hold: Duration,
    ) -> StoreResult<PauseOutcome> {
        let root = self.layout.root(name);
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
    pub fn resume(&self, name: &ProjectName) -> StoreResult<bool> {
        let was_paused = self.gates.resume(name);
        if !was_paused && !self.layout.root(name).is_dir() {
            return Err(StoreError::ProjectNotFound(name.to_string()));
        }
        Ok(was_paused)
    }

    pub fn is_paused(&self, name: &ProjectName) -> bool {
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
        name: &ProjectName,
        moved_to: Option<String>,
    ) -> StoreResult<(Fence, Option<u64>)> {
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
    pub fn unfence(self: &Arc<Self>, name: &ProjectName) -> StoreResult<bool> {
        let was_incoming = self.with_exclusive(name, |root| {
            if !root.is_dir() {
                return Err(StoreError::ProjectNotFound(name.to_string()));
            }
            let incoming = fence::read(root)?.is_some_and(|f| f.is_incoming());
            Ok(fence::remove(root)?.then_some(incoming))
        })?;
        if was_incoming == Some(true) {
            let me = Arc::clone(self);
            let project = name.clone();
            let warm = std::thread::Builder::new()
                .name("quiver-warm".into())
                .spawn(move || {
                    if let Err(e) = me
                        .existing_project(&project)
                        .and_then(|p| p.load_all_collections())
                    {
                        tracing::warn!(project = %project, "cannot preload an activated project: {e}");
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
        name: &ProjectName,
        quotas: Option<Quotas>,
    ) -> StoreResult<(Arc<Project>, bool)> {
        let Some(q) = quotas else {
            return self.provision(name);
        };
        let fresh = !self.layout.root(name).is_dir()
            && self.with_exclusive(name, |root| {
                if root.is_dir() {
                    return Ok(false);
                }
                if let Some(f) = fence::read(root)? {
                    return Err(fenced(name, f));
                }
                self.layout.prepare(name)?;
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
    pub fn set_quotas(&self, name: &ProjectName, quotas: Quotas) -> StoreResult<()> {
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
    pub fn quotas_of(&self, name: &ProjectName) -> StoreResult<Quotas> {
        quota::read(&self.layout.root(name))
    }
}
