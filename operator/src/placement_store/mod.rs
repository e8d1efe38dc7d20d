//! Where the operator reads and publishes the placement table.
//!
//! Every writer (the shard controller, the mover) follows one protocol: load the table with
//! its version, change it, save it *against that version*. A save whose version is no
//! longer current fails with [`PlacementStoreError::Conflict`] instead of overwriting a
//! change it never saw; [`update`] wraps that loop (reload, reapply, retry).
//!
//! - [`ConfigMapStore`]: the ConfigMap the routers watch (key
//!   [`CONFIGMAP_KEY`](quiver_placement::protocol::CONFIGMAP_KEY)); the version is the
//!   object's `resourceVersion`, so the API server itself refuses stale writes.
//! - [`FileStore`]: a JSON file in the format of the router's `--placement-file`, for
//!   end-to-end tests without Kubernetes; the version is the table's epoch.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::BoxFuture;
use quiver_placement::{PlacementError, PlacementTable};
use rand::Rng;

/// Implements the object-safe [`PlacementStore`] for a store type by boxing the futures
/// of its inherent `load_inner` and `save_inner`; `describe` is its inherent `name`.
macro_rules! boxed_placement_store {
    ($store:ty) => {
        impl $crate::placement_store::PlacementStore for $store {
            fn load(
                &self,
            ) -> futures_util::future::BoxFuture<
                '_,
                Result<
                    $crate::placement_store::Versioned,
                    $crate::placement_store::PlacementStoreError,
                >,
            > {
                Box::pin(self.load_inner())
            }

            fn save<'a>(
                &'a self,
                table: &'a quiver_placement::PlacementTable,
                expected_version: &'a str,
            ) -> futures_util::future::BoxFuture<
                'a,
                Result<String, $crate::placement_store::PlacementStoreError>,
            > {
                Box::pin(self.save_inner(table, expected_version))
            }

            fn describe(&self) -> String {
                self.name()
            }
        }
    };
}

mod configmap;
mod file;

pub use configmap::ConfigMapStore;
pub use file::FileStore;

/// How many times [`update`] reloads and reapplies its change after losing a race.
pub const UPDATE_ATTEMPTS: u32 = 8;

/// A table and the version it was read at (pass it back to [`PlacementStore::save`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub table: PlacementTable,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementStoreError {
    /// Someone else published a table since `expected` was read: reload and retry.
    #[error("the placement table in {store} changed since version {expected:?} was read")]
    Conflict { store: String, expected: String },
    /// Nothing published yet. `version` is what a first save must pass: `""` when the
    /// object is absent, the ConfigMap's resourceVersion when it exists without the key.
    #[error("no placement table has been published in {store} yet")]
    Absent { store: String, version: String },
    /// The stored table does not parse or validate (a hand edit gone wrong), or the one to
    /// be saved would not: routers refuse such a table, so it is never published.
    #[error("invalid placement table in {store}: {error}")]
    Invalid {
        store: String,
        #[source]
        error: PlacementError,
    },
    /// A save must raise the epoch, or readers could not tell the new table from the old.
    #[error("placement epoch {proposed} does not advance past {current} in {store}")]
    EpochNotAdvanced {
        store: String,
        current: u64,
        proposed: u64,
    },
    #[error("gave up updating the placement table after {attempts} conflicting writes")]
    TooManyConflicts { attempts: u32 },
    #[error("Kubernetes API error on {store}: {source}")]
    Kube {
        store: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A place the placement table is published. Object safe, so the controllers take a
/// `&dyn PlacementStore` and tests swap the ConfigMap for a file.
pub trait PlacementStore: Send + Sync {
    /// The current table and its version; [`PlacementStoreError::Absent`] when none has been
    /// published.
    fn load(&self) -> BoxFuture<'_, Result<Versioned, PlacementStoreError>>;

    /// Publishes `table` if the stored version is still `expected_version` (`""`: nothing
    /// is stored yet), and returns the new version. The table is validated first.
    fn save<'a>(
        &'a self,
        table: &'a PlacementTable,
        expected_version: &'a str,
    ) -> BoxFuture<'a, Result<String, PlacementStoreError>>;

    /// Where the table lives, for logs and errors.
    fn describe(&self) -> String;
}

/// Loads the table, lets `change` modify it and, when it reports a change, saves it with the
/// epoch raised by one. A conflicting save reloads and calls `change` again on the fresh
/// table (so `change` must decide from the table it is given, not from what it saw
/// before), at most [`UPDATE_ATTEMPTS`] times. Returns the table now in force.
pub async fn update<E, F>(store: &dyn PlacementStore, mut change: F) -> Result<Versioned, E>
where
    F: FnMut(&mut PlacementTable) -> Result<bool, E>,
    E: From<PlacementStoreError>,
{
    for attempt in 1..=UPDATE_ATTEMPTS {
        let Versioned { mut table, version } = store.load().await?;
        if !change(&mut table)? {
            return Ok(Versioned { table, version });
        }
        table.epoch = table.epoch.saturating_add(1);
        match store.save(&table, &version).await {
            Ok(version) => return Ok(Versioned { table, version }),
            Err(PlacementStoreError::Conflict { .. }) => {
                tracing::debug!(
                    attempt,
                    "placement table in {} changed under us; retrying",
                    store.describe()
                );
                conflict_backoff(attempt).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PlacementStoreError::TooManyConflicts {
        attempts: UPDATE_ATTEMPTS,
    }
    .into())
}

/// The table in force, publishing `initial` first if none has been (the operator's first
/// start). Another writer's table wins a race: it is returned instead.
pub async fn load_or_init(
    store: &dyn PlacementStore,
    initial: &PlacementTable,
) -> Result<Versioned, PlacementStoreError> {
    for attempt in 1..=UPDATE_ATTEMPTS {
        match store.load().await {
            Ok(v) => return Ok(v),
            Err(PlacementStoreError::Absent { version, .. }) => {
                match store.save(initial, &version).await {
                    Ok(version) => {
                        return Ok(Versioned {
                            table: initial.clone(),
                            version,
                        })
                    }
                    Err(PlacementStoreError::Conflict { .. }) => conflict_backoff(attempt).await,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(PlacementStoreError::TooManyConflicts {
        attempts: UPDATE_ATTEMPTS,
    })
}

/// A short jittered pause between conflicting attempts, so that two writers racing for
/// the same table do not collide again in lockstep.
async fn conflict_backoff(attempt: u32) {
    let cap_ms = 10u64 << attempt.min(5);
    // the generator is not Send: draw before awaiting
    let ms = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Refuses a table that routers would refuse.
fn validated(store: &str, table: &PlacementTable) -> Result<(), PlacementStoreError> {
    table
        .validate()
        .map_err(|error| PlacementStoreError::Invalid {
            store: store.to_string(),
            error,
        })
}

/// A valid table of `n` shards at `epoch`, for the stores' tests.
#[cfg(test)]
mod test_support {
    use quiver_placement::PlacementTable;

    pub(super) fn table(epoch: u64, n: usize) -> PlacementTable {
        PlacementTable::from_urls(
            epoch,
            (0..n).map(|i| format!("http://shard-{i}:7100")).collect(),
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::table;
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error(transparent)]
        Store(#[from] PlacementStoreError),
        #[error("refused")]
        Refused,
    }

    #[tokio::test]
    async fn update_bumps_the_epoch_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        store.save(&table(3, 2), "").await.unwrap();
        let v = update::<TestError, _>(&store, |_| Ok(false)).await.unwrap();
        assert_eq!((v.table.epoch, v.version.as_str()), (3, "3"));
        let v = update::<TestError, _>(&store, |t| {
            t.overrides.insert("acme".into(), 1);
            Ok(true)
        })
        .await
        .unwrap();
        assert_eq!((v.table.epoch, v.version.as_str()), (4, "4"));
        assert_eq!(store.load().await.unwrap().table.overrides["acme"], 1);
        let e = update::<TestError, _>(&store, |_| Err(TestError::Refused))
            .await
            .unwrap_err();
        assert!(matches!(e, TestError::Refused));
        // nothing published: update has no table to start from
        let empty = FileStore::new(dir.path().join("other.json"));
        let e = update::<TestError, _>(&empty, |_| Ok(true))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            TestError::Store(PlacementStoreError::Absent { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_in_one_process_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(FileStore::new(dir.path().join("placement.json")));
        store.save(&table(1, 4), "").await.unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    update::<PlacementStoreError, _>(store.as_ref(), |t| {
                        t.overrides.insert(format!("p{i}"), i);
                        Ok(true)
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let v = store.load().await.unwrap();
        assert_eq!(v.table.overrides.len(), 4);
        assert_eq!(v.table.epoch, 5);
    }

    #[tokio::test]
    async fn load_or_init_publishes_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        let v = load_or_init(&store, &table(1, 2)).await.unwrap();
        assert_eq!(v.table, table(1, 2));
        // a table in force wins over the initial one
        let v = load_or_init(&store, &table(1, 5)).await.unwrap();
        assert_eq!(v.table.shard_count, 2);
    }
}
