//! [`FileStore`]: the placement table as a JSON file in the format of the router's
//! `--placement-file`, for end-to-end tests without Kubernetes. The version is the table's
//! epoch.

use std::path::{Path, PathBuf};

use quiver_placement::PlacementTable;
use rand::Rng;

use super::{validated, PlacementStore, PlacementStoreError, Versioned};

/// Serialises check-and-write of every [`FileStore`] in the process: the version check and
/// the rename must not interleave with another save. Saves are rare, so one lock for all
/// files costs nothing. (Other processes are not excluded: the file store is for tests
/// with one operator.)
static FILE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The placement table as a JSON file, replaced atomically (temporary file, fsync, rename)
/// so a reader never sees half a table. The version is the table's epoch.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// Where the table lives, for logs and errors ([`describe`](PlacementStore::describe)).
    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }

    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        FileStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> PlacementStoreError {
        PlacementStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    async fn read(&self) -> Result<Option<PlacementTable>, PlacementStoreError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => PlacementTable::from_json(&text).map(Some).map_err(|error| {
                PlacementStoreError::Invalid {
                    store: self.describe(),
                    error,
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn load_inner(&self) -> Result<Versioned, PlacementStoreError> {
        match self.read().await? {
            Some(table) => Ok(Versioned {
                version: table.epoch.to_string(),
                table,
            }),
            None => Err(PlacementStoreError::Absent {
                store: self.describe(),
                version: String::new(),
            }),
        }
    }

    async fn save_inner(
        &self,
        table: &PlacementTable,
        expected: &str,
    ) -> Result<String, PlacementStoreError> {
        validated(&self.describe(), table)?;
        let _guard = FILE_LOCK.lock().await;
        let current = self.read().await?;
        let current_version = current
            .as_ref()
            .map(|t| t.epoch.to_string())
            .unwrap_or_default();
        if current_version != expected {
            return Err(PlacementStoreError::Conflict {
                store: self.describe(),
                expected: expected.to_string(),
            });
        }
        if let Some(current) = &current {
            // the epoch is the version: an equal one would make a change invisible
            if table.epoch <= current.epoch {
                return Err(PlacementStoreError::EpochNotAdvanced {
                    store: self.describe(),
                    current: current.epoch,
                    proposed: table.epoch,
                });
            }
        }
        self.write_atomically(table.to_json().as_bytes()).await?;
        Ok(table.epoch.to_string())
    }

    async fn write_atomically(&self, bytes: &[u8]) -> Result<(), PlacementStoreError> {
        use tokio::io::AsyncWriteExt;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "placement.json".into());
        // same directory, so the rename stays on one file system and is atomic
        let suffix: u32 = rand::rng().random();
        let tmp = dir.join(format!(
            ".{file_name}.{}.{suffix:08x}.tmp",
            std::process::id()
        ));
        let result = async {
            let mut f = tokio::fs::File::create(&tmp).await?;
            f.write_all(bytes).await?;
            f.sync_all().await?;
            drop(f);
            tokio::fs::rename(&tmp, &self.path).await
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(self.io(e));
        }
        // make the rename itself durable; failure here leaves a correct file, so only log
        if let Ok(d) = tokio::fs::File::open(&dir).await {
            if let Err(e) = d.sync_all().await {
                tracing::debug!("fsync of {} failed: {e}", dir.display());
            }
        }
        Ok(())
    }
}

boxed_placement_store!(FileStore);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement_store::test_support::table;

    #[tokio::test]
    async fn file_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        match store.load().await {
            Err(PlacementStoreError::Absent { version, .. }) => assert_eq!(version, ""),
            other => panic!("expected Absent, got {other:?}"),
        }
        let t1 = table(1, 2);
        assert_eq!(store.save(&t1, "").await.unwrap(), "1");
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.table, t1);
        assert_eq!(loaded.version, "1");
        // the router's file reader parses what the store writes
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert_eq!(PlacementTable::from_json(&text).unwrap(), t1);

        let mut t2 = table(2, 3);
        t2.overrides.insert("acme".into(), 2);
        assert_eq!(store.save(&t2, "1").await.unwrap(), "2");
        assert_eq!(store.load().await.unwrap().table, t2);
        // no temporary file left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("placement.json")]);
    }

    #[tokio::test]
    async fn file_store_conflicts_and_epoch_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        store.save(&table(5, 2), "").await.unwrap();
        // a first save when a table exists, and a save against an old version
        for stale in ["", "4"] {
            let e = store.save(&table(6, 2), stale).await.unwrap_err();
            assert!(
                matches!(e, PlacementStoreError::Conflict { .. }),
                "{stale}: {e:?}"
            );
        }
        let e = store.save(&table(5, 3), "5").await.unwrap_err();
        assert!(matches!(
            e,
            PlacementStoreError::EpochNotAdvanced {
                current: 5,
                proposed: 5,
                ..
            }
        ));
        // an invalid table is never written
        let mut bad = table(6, 2);
        bad.overrides.insert("p".into(), 9);
        let e = store.save(&bad, "5").await.unwrap_err();
        assert!(matches!(e, PlacementStoreError::Invalid { .. }), "{e:?}");
        assert_eq!(store.load().await.unwrap().table, table(5, 2));
    }

    #[tokio::test]
    async fn file_store_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("placement.json");
        std::fs::write(&path, "{ nope").unwrap();
        let e = FileStore::new(&path).load().await.unwrap_err();
        assert!(matches!(e, PlacementStoreError::Invalid { .. }), "{e:?}");
    }
}
