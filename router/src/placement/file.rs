//! Placement from a JSON file, reloaded on change.
//!
//! The file is watched through its directory (a ConfigMap mounted as a volume is updated
//! by swapping a symlink, which a watch on the file itself would miss) and re-read on a
//! timer as well, in case a notification is lost. A file that is missing, half-written or
//! invalid leaves the last good table in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use quiver_placement::PlacementTable;
use tokio::sync::mpsc;

use super::Placement;

/// Reads and validates the file once.
pub fn load(path: &Path) -> Result<PlacementTable, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PlacementTable::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn reload(placement: &Placement, path: &Path) {
    match load(path) {
        Ok(table) => {
            placement.install(table);
        }
        Err(e) => placement.report_error(&e),
    }
}

/// Loads the file now, then keeps the table in step with it until the process ends.
/// The returned watcher must be kept alive.
pub fn watch(
    placement: Arc<Placement>,
    path: PathBuf,
    poll: Duration,
) -> notify::Result<RecommendedWatcher> {
    reload(&placement, &path);
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(());
        }
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() { return; }
                    // writers often truncate then write: let a burst of events settle
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = tick.tick() => {}
            }
            let p = Arc::clone(&placement);
            let file = path.clone();
            let _ = tokio::task::spawn_blocking(move || reload(&p, &file)).await;
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn table_json(epoch: u64, urls: &[&str]) -> String {
        PlacementTable::from_urls(epoch, urls.iter().map(|u| u.to_string()).collect())
            .unwrap()
            .to_json()
    }

    async fn wait_for_epoch(p: &Placement, epoch: u64) {
        for _ in 0..200 {
            if p.current().map(|t| t.epoch) == Some(epoch) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("epoch {epoch} never installed; have {:?}", p.current());
    }

    #[tokio::test]
    async fn follows_rewrites_and_renames_and_survives_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("placement.json");
        std::fs::write(&path, table_json(1, &["http://a:1"])).unwrap();
        let p = Placement::new("file", Arc::new(Metrics::new()));
        // a long poll interval: changes must arrive through notifications
        let _w = watch(Arc::clone(&p), path.clone(), Duration::from_secs(600)).unwrap();
        assert_eq!(p.current().unwrap().epoch, 1);
        assert!(p.ready().is_ok());

        std::fs::write(&path, table_json(2, &["http://a:1", "http://b:1"])).unwrap();
        wait_for_epoch(&p, 2).await;

        // atomic replace by rename, as editors and kubelet do
        let tmp = dir.path().join(".placement.json.tmp");
        std::fs::write(&tmp, table_json(3, &["http://c:1"])).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        wait_for_epoch(&p, 3).await;

        // garbage keeps the last good table and marks the source unhealthy
        std::fs::write(&path, "{\"shardCount\": 2, \"shards\": [").unwrap();
        for _ in 0..200 {
            if p.ready().is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(p.ready().is_err());
        assert_eq!(p.current().unwrap().epoch, 3);

        std::fs::write(&path, table_json(4, &["http://d:1"])).unwrap();
        wait_for_epoch(&p, 4).await;
        assert!(p.ready().is_ok());
    }

    #[tokio::test]
    async fn missing_file_means_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let p = Placement::new("file", Arc::new(Metrics::new()));
        let _w = watch(
            Arc::clone(&p),
            dir.path().join("absent.json"),
            Duration::from_millis(50),
        )
        .unwrap();
        assert!(p.current().is_none());
        assert!(p.ready().is_err());
    }
}
