//! A short-lived cache of each shard's project listing.
//!
//! The reconciler refreshes every project's status periodically. Asking each project's
//! info would open it on its shard (and opening evicts others from the shard's bounded set
//! of open stores); the listing opens none and reports figures and quotas for all of them,
//! so one listing per shard per `ttl` serves every project on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::admin::{AdminClient, AdminError, ProjectInfo};

type Projects = Arc<HashMap<String, ProjectInfo>>;

struct Entry {
    fetched: Instant,
    projects: Projects,
}

pub(crate) struct ListingCache {
    ttl: Duration,
    /// By shard base URL: ordinals keep their URL, but the URL is what was listed.
    entries: Mutex<HashMap<String, Entry>>,
}

impl ListingCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        ListingCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, base: &str) -> Option<Projects> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(base)
            .filter(|e| !self.ttl.is_zero() && e.fetched.elapsed() < self.ttl)
            .map(|e| Arc::clone(&e.projects))
    }

    /// The shard's projects by name, listed at most `ttl` ago.
    pub(crate) async fn projects(&self, admin: &AdminClient) -> Result<Projects, AdminError> {
        if let Some(projects) = self.fresh(admin.base()) {
            return Ok(projects);
        }
        // Listed without holding the lock: concurrent reconciles of the same shard may list
        // it twice when the entry expires, which is cheaper than queueing them all behind
        // one slow shard.
        let listed = admin.list_projects().await?;
        let projects: Projects = Arc::new(
            listed
                .into_iter()
                .map(|info| (info.name.clone(), info))
                .collect(),
        );
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                admin.base().to_string(),
                Entry {
                    fetched: Instant::now(),
                    projects: Arc::clone(&projects),
                },
            );
        Ok(projects)
    }

    /// Records what a call on the shard returned, so the next reconcile within `ttl`
    /// does not act on the listing from before it.
    pub(crate) fn remember(&self, base: &str, info: &ProjectInfo) {
        self.edit(base, |projects| {
            projects.insert(info.name.clone(), info.clone());
        });
    }

    pub(crate) fn forget(&self, base: &str, project: &str) {
        self.edit(base, |projects| {
            projects.remove(project);
        });
    }

    fn edit(&self, base: &str, f: impl FnOnce(&mut HashMap<String, ProjectInfo>)) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(base) {
            f(Arc::make_mut(&mut entry.projects));
        }
    }
}
