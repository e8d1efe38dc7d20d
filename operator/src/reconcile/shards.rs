//! Where projects live: the shard directory the reconciler asks, backed by the placement
//! table the operator's run loop keeps current.

use std::sync::{Arc, RwLock};

use quiver_placement::PlacementTable;

use crate::admin::{AdminClient, AdminError};

/// The placement table as the run loop publishes it; `None` until the first one is loaded.
pub type SharedPlacement = Arc<RwLock<Option<PlacementTable>>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("no placement table loaded yet")]
    NoPlacement,
    #[error("the placement table names no shard {0}")]
    UnknownShard(u32),
    #[error("shard {ordinal} has an unusable URL: {source}")]
    BadShard {
        ordinal: u32,
        #[source]
        source: AdminError,
    },
}

/// One shard and its admin API.
#[derive(Debug, Clone)]
pub struct Shard {
    pub ordinal: u32,
    pub admin: AdminClient,
}

/// A project's current home, and the move the placement table records for it, if any.
#[derive(Debug, Clone)]
pub struct Home {
    pub shard: Shard,
    /// `(from, to)` ordinals of a move in flight.
    pub moving: Option<(u32, u32)>,
}

/// How the reconciler finds shards; a trait so that tests and other placement sources can
/// stand in for the table.
pub trait ShardDirectory: Send + Sync + 'static {
    /// The shard a project lives on now.
    fn home(&self, project: &str) -> Result<Home, DirectoryError>;
    /// The shard with this ordinal.
    fn shard(&self, ordinal: u32) -> Result<Shard, DirectoryError>;
    /// Every shard, in ordinal order.
    fn all(&self) -> Result<Vec<Shard>, DirectoryError>;
}

/// [`ShardDirectory`] over a [`SharedPlacement`].
#[derive(Clone)]
pub struct PlacementDirectory {
    table: SharedPlacement,
    token: Option<String>,
    http: reqwest::Client,
}

impl PlacementDirectory {
    /// `token` is the shards' admin token (`QUIVER_ADMIN_TOKEN`).
    pub fn new(table: SharedPlacement, token: Option<String>, http: reqwest::Client) -> Self {
        PlacementDirectory { table, token, http }
    }

    /// The table every later call sees.
    pub fn set(&self, table: PlacementTable) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Some(table);
    }

    fn with_table<T>(
        &self,
        f: impl FnOnce(&PlacementTable) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        // A writer that panicked left a whole table or none (it assigns one value), so a
        // poisoned lock still holds a usable table.
        let guard = self.table.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(table) => f(table),
            None => Err(DirectoryError::NoPlacement),
        }
    }

    fn client(&self, ordinal: u32, url: &str) -> Result<Shard, DirectoryError> {
        let admin = AdminClient::new(url, self.token.clone(), self.http.clone())
            .map_err(|source| DirectoryError::BadShard { ordinal, source })?;
        Ok(Shard { ordinal, admin })
    }
}

impl ShardDirectory for PlacementDirectory {
    fn home(&self, project: &str) -> Result<Home, DirectoryError> {
        let (ordinal, url, moving) = self.with_table(|t| {
            let route = t.route(project);
            let moving = t.moving.get(project).map(|m| (m.from, m.to));
            Ok((route.ordinal, route.url.to_string(), moving))
        })?;
        Ok(Home {
            shard: self.client(ordinal, &url)?,
            moving,
        })
    }

    fn shard(&self, ordinal: u32) -> Result<Shard, DirectoryError> {
        let url = self.with_table(|t| {
            t.shards
                .get(ordinal as usize)
                .cloned()
                .ok_or(DirectoryError::UnknownShard(ordinal))
        })?;
        self.client(ordinal, &url)
    }

    fn all(&self) -> Result<Vec<Shard>, DirectoryError> {
        let urls: Vec<(u32, String)> = self.with_table(|t| {
            Ok(t.all_shards()
                .map(|(ordinal, url)| (ordinal, url.to_string()))
                .collect())
        })?;
        urls.into_iter()
            .map(|(ordinal, url)| self.client(ordinal, &url))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_placement::{Move, MovePhase};

    fn directory() -> PlacementDirectory {
        PlacementDirectory::new(Arc::default(), Some("t".into()), reqwest::Client::new())
    }

    #[test]
    fn nothing_before_the_first_table() {
        let d = directory();
        assert_eq!(d.home("acme").unwrap_err(), DirectoryError::NoPlacement);
        assert_eq!(d.all().unwrap_err(), DirectoryError::NoPlacement);
    }

    #[test]
    fn routes_overrides_and_moves_from_the_table() {
        let d = directory();
        let mut t =
            PlacementTable::from_urls(1, vec!["http://s0:7100".into(), "http://s1:7100".into()])
                .unwrap();
        t.overrides.insert("acme".into(), 1);
        t.moving.insert(
            "acme".into(),
            Move {
                from: 0,
                to: 1,
                phase: MovePhase::Switched,
            },
        );
        d.set(t.clone());
        let home = d.home("acme").unwrap();
        assert_eq!(home.shard.ordinal, 1);
        assert_eq!(home.shard.admin.base(), "http://s1:7100");
        assert_eq!(home.moving, Some((0, 1)));

        let other = d.home("other").unwrap();
        assert_eq!(other.shard.ordinal, t.ordinal_of("other"));
        assert_eq!(other.moving, None);

        assert_eq!(d.shard(0).unwrap().admin.base(), "http://s0:7100");
        assert_eq!(d.shard(2).unwrap_err(), DirectoryError::UnknownShard(2));
        let all: Vec<u32> = d.all().unwrap().iter().map(|s| s.ordinal).collect();
        assert_eq!(all, [0, 1]);
    }
}
