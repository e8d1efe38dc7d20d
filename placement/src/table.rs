//! The placement table: which shard serves which project.
//!
//! JSON, the same everywhere (ConfigMap key `placement.json`, placement file, admin output):
//!
//! ```json
//! {
//!   "epoch": 7,
//!   "shardCount": 3,
//!   "shards": ["http://quiver-tenant-0.quiver-tenant:7100", "http://…-1…", "http://…-2…", "http://…-3…"],
//!   "overrides": {"acme": 3},
//!   "moving": {"acme": {"from": 1, "to": 3, "phase": "copying"}}
//! }
//! ```
//!
//! `shardCount` is the N of the hash; `shards` lists every ordinal's URL and may be longer
//! than N while the operator fills a new ordinal or drains one (projects reach ordinals ≥ N
//! only through `overrides`). `epoch` grows with every published change, so a reader can
//! tell a newer table from an older one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::home_ordinal;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("placement table is not valid JSON: {0}")]
    Json(String),
    #[error("shardCount must be at least 1")]
    NoShards,
    #[error("shardCount is {count} but only {urls} shard URLs are listed")]
    TooFewUrls { count: u32, urls: usize },
    #[error("shard {ordinal} has an invalid URL {url:?}: {reason}")]
    BadUrl {
        ordinal: usize,
        url: String,
        reason: String,
    },
    #[error(
        "{what} for project {project:?} names ordinal {ordinal}, but only {urls} shards are listed"
    )]
    OrdinalOutOfRange {
        what: &'static str,
        project: String,
        ordinal: u32,
        urls: usize,
    },
}

/// Where a move of one project stands. Recorded in the published table so that an
/// interrupted move can be resumed or rolled back by whoever picks it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum MovePhase {
    /// A snapshot is being copied to the destination while the source keeps serving.
    #[default]
    Copying,
    /// Writes are paused at the source; the changes since the snapshot are being shipped.
    CatchingUp,
    /// The source is fenced and the destination's copy is being activated: from here a
    /// roll back removes the destination's copy even if it already serves (nothing routes
    /// to it before the switch).
    Activating,
    /// Placement points at the destination; the source copy is fenced and awaits removal.
    Switched,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub from: u32,
    pub to: u32,
    #[serde(default)]
    pub phase: MovePhase,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementTable {
    #[serde(default)]
    pub epoch: u64,
    pub shard_count: u32,
    pub shards: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moving: BTreeMap<String, Move>,
}

/// A routing decision: the ordinal and the base URL (no trailing slash) of its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub ordinal: u32,
    pub url: &'a str,
}

impl PlacementTable {
    /// A table with one ordinal per URL and nothing overridden (the static source).
    pub fn from_urls(epoch: u64, shards: Vec<String>) -> Result<Self, PlacementError> {
        let table = PlacementTable {
            epoch,
            shard_count: u32::try_from(shards.len()).unwrap_or(u32::MAX),
            shards,
            overrides: BTreeMap::new(),
            moving: BTreeMap::new(),
        };
        table.normalized()
    }

    /// Parses and validates a table; URLs lose any trailing slash.
    pub fn from_json(text: &str) -> Result<Self, PlacementError> {
        let table: PlacementTable =
            serde_json::from_str(text).map_err(|e| PlacementError::Json(e.to_string()))?;
        table.normalized()
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    fn normalized(mut self) -> Result<Self, PlacementError> {
        for url in &mut self.shards {
            let trimmed = url.trim().trim_end_matches('/').to_string();
            *url = trimmed;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks everything a reader relies on, so that a table that passes can route every
    /// project without failing.
    pub fn validate(&self) -> Result<(), PlacementError> {
        if self.shard_count == 0 {
            return Err(PlacementError::NoShards);
        }
        if (self.shard_count as usize) > self.shards.len() {
            return Err(PlacementError::TooFewUrls {
                count: self.shard_count,
                urls: self.shards.len(),
            });
        }
        for (ordinal, raw) in self.shards.iter().enumerate() {
            let bad = |reason: String| PlacementError::BadUrl {
                ordinal,
                url: raw.clone(),
                reason,
            };
            let parsed = url::Url::parse(raw).map_err(|e| bad(e.to_string()))?;
            // Shards sit on the cluster network behind the router; TLS ends at the router's
            // ingress, so a shard URL is plain HTTP.
            if parsed.scheme() != "http" {
                return Err(bad("scheme must be http".into()));
            }
            if parsed.host_str().is_none() {
                return Err(bad("no host".into()));
            }
            if parsed.path() != "/" && !parsed.path().is_empty() {
                return Err(bad("a shard URL has no path".into()));
            }
        }
        let urls = self.shards.len();
        let in_range = |what: &'static str, project: &str, ordinal: u32| {
            if (ordinal as usize) < urls {
                Ok(())
            } else {
                Err(PlacementError::OrdinalOutOfRange {
                    what,
                    project: project.to_string(),
                    ordinal,
                    urls,
                })
            }
        };
        for (project, &ordinal) in &self.overrides {
            in_range("override", project, ordinal)?;
        }
        for (project, mv) in &self.moving {
            in_range("move source", project, mv.from)?;
            in_range("move destination", project, mv.to)?;
        }
        Ok(())
    }

    /// The ordinal serving `project`: its override, else its jump-hash home.
    pub fn ordinal_of(&self, project: &str) -> u32 {
        match self.overrides.get(project) {
            Some(&ordinal) => ordinal,
            None => home_ordinal(project, self.shard_count),
        }
    }

    /// The shard serving `project`. Never fails on a validated table.
    pub fn route(&self, project: &str) -> Route<'_> {
        let ordinal = self.ordinal_of(project);
        let url = self
            .shards
            .get(ordinal as usize)
            .map(String::as_str)
            .unwrap_or_default();
        Route { ordinal, url }
    }

    pub fn is_moving(&self, project: &str) -> bool {
        self.moving.contains_key(project)
    }

    /// Every ordinal with its URL, for calls that concern every shard.
    pub fn all_shards(&self) -> impl Iterator<Item = (u32, &str)> {
        self.shards
            .iter()
            .enumerate()
            .map(|(i, url)| (i as u32, url.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://shard-{i}:7100/")).collect()
    }

    #[test]
    fn json_round_trip_and_normalisation() {
        let text = r#"{"epoch":3,"shardCount":2,"shards":["http://a:1/","http://b:2"],
            "overrides":{"p":2},"moving":{"p":{"from":0,"to":2,"phase":"catchingUp"}},
            "futureField":true}"#;
        let err = PlacementTable::from_json(text).unwrap_err();
        assert!(matches!(
            err,
            PlacementError::OrdinalOutOfRange { ordinal: 2, .. }
        ));

        let text = text.replace(r#""http://b:2"]"#, r#""http://b:2","http://c:3"]"#);
        let t = PlacementTable::from_json(&text).unwrap();
        assert_eq!(t.shards[0], "http://a:1");
        assert_eq!(
            t.route("p"),
            Route {
                ordinal: 2,
                url: "http://c:3"
            }
        );
        assert_eq!(t.moving["p"].phase, MovePhase::CatchingUp);
        assert_eq!(PlacementTable::from_json(&t.to_json()).unwrap(), t);
    }

    #[test]
    fn rejects_tables_that_cannot_route() {
        assert_eq!(
            PlacementTable::from_urls(0, vec![]).unwrap_err(),
            PlacementError::NoShards
        );
        let t = r#"{"shardCount":3,"shards":["http://a:1","http://b:1"]}"#;
        assert!(matches!(
            PlacementTable::from_json(t).unwrap_err(),
            PlacementError::TooFewUrls { count: 3, urls: 2 }
        ));
        for bad in ["ftp://a", "https://a", "not a url", "http://a:1/prefix"] {
            let e = PlacementTable::from_urls(0, vec![bad.into()]).unwrap_err();
            assert!(matches!(e, PlacementError::BadUrl { .. }), "{bad}: {e:?}");
        }
        assert!(matches!(
            PlacementTable::from_json("{").unwrap_err(),
            PlacementError::Json(_)
        ));
    }

    #[test]
    fn override_wins_over_hash_and_others_follow_hash() {
        let mut t = PlacementTable::from_urls(1, urls(4)).unwrap();
        let home = t.ordinal_of("acme");
        let other = (home + 1) % 4;
        t.overrides.insert("acme".into(), other);
        assert_eq!(t.route("acme").ordinal, other);
        assert_eq!(t.route("acme").url, format!("http://shard-{other}:7100"));
        assert_eq!(t.ordinal_of("zeta"), home_ordinal("zeta", 4));
    }
}
