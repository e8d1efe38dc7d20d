//! The fence of a project that does not serve here: a `FENCED` file next to its `db/`.
//! Either the copy left behind by a move (reason `moved`), or the copy a move is bringing
//! in and that serves only once activated (reason `incoming`).
//!
//! It lives on disk, in the project's own directory, because it must outlive restarts:
//! a copy left behind by a move must never serve again, nor be re-created empty by a
//! client's first access, or two servers would each hold half of the project's writes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{StoreError, StoreResult};
use super::fsio::{now_secs, sync_dir, write_durably};

pub const FENCE_FILE: &str = "FENCED";

/// Longest accepted `moved_to` (it is echoed in every refused request's error).
pub const MAX_MOVED_TO: usize = 2048;

/// Why a project is fenced.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum FenceReason {
    /// It moved to another server.
    #[default]
    Moved,
    /// It is being moved here and serves once the fence is lifted.
    Incoming,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Fence {
    #[serde(default)]
    pub reason: FenceReason,
    /// Where the project went (the URL of its new server), when the operator said.
    #[serde(default)]
    pub moved_to: Option<String>,
    /// Unix seconds of the fencing.
    #[serde(default)]
    pub fenced_at: u64,
    /// For an incoming copy: the source's sequence number it holds every write up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sequence: Option<u64>,
}

impl Fence {
    pub fn new(moved_to: Option<String>) -> StoreResult<Fence> {
        if let Some(to) = &moved_to {
            if to.is_empty() || to.len() > MAX_MOVED_TO || to.chars().any(char::is_control) {
                return Err(StoreError::InvalidArgument(format!(
                    "Expected 'movedTo' to be a URL of 1-{MAX_MOVED_TO} characters \
                     without control characters"
                )));
            }
        }
        Ok(Fence {
            reason: FenceReason::Moved,
            moved_to,
            fenced_at: now_secs(),
            source_sequence: None,
        })
    }

    /// The fence of a copy being moved in, holding the source's writes up to `sequence`.
    pub fn incoming(sequence: u64) -> Fence {
        Fence {
            reason: FenceReason::Incoming,
            moved_to: None,
            fenced_at: now_secs(),
            source_sequence: Some(sequence),
        }
    }

    pub fn is_incoming(&self) -> bool {
        self.reason == FenceReason::Incoming
    }
}

fn path(root: &Path) -> PathBuf {
    root.join(FENCE_FILE)
}

/// The fence of the project whose store is `root`, if it is fenced. An unreadable fence
/// file still fences: refusing requests is the safe side of not knowing where it went.
pub fn read(root: &Path) -> StoreResult<Option<Fence>> {
    match std::fs::read(path(root)) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(root = %root.display(), "unreadable fence file, still fenced: {e}");
            Fence {
                reason: FenceReason::Moved,
                moved_to: None,
                fenced_at: 0,
                source_sequence: None,
            }
        }))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes the fence durably (temporary file, fsync, rename, fsync of the directory), so
/// that a crash leaves either no fence or a complete one.
pub fn write(root: &Path, fence: &Fence) -> StoreResult<()> {
    let bytes = serde_json::to_vec(fence).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    write_durably(&path(root), &bytes)
}

/// Removes the fence. Returns whether there was one.
pub fn remove(root: &Path) -> StoreResult<bool> {
    match std::fs::remove_file(path(root)) {
        Ok(()) => {
            sync_dir(root)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_removal() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
        let fence = Fence::new(Some("http://shard-3:7100".into())).expect("fence");
        write(dir.path(), &fence).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(fence));
        assert!(remove(dir.path()).expect("remove"));
        assert!(!remove(dir.path()).expect("remove again"));
        assert_eq!(read(dir.path()).expect("read"), None);
    }

    #[test]
    fn garbage_fence_file_still_fences() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FENCE_FILE), b"{not json").expect("write");
        let fence = read(dir.path()).expect("read").expect("fenced");
        assert_eq!(fence.moved_to, None);
    }

    #[test]
    fn rejects_bad_destinations() {
        assert!(Fence::new(Some(String::new())).is_err());
        assert!(Fence::new(Some("http://a\nb".into())).is_err());
        assert!(Fence::new(Some("x".repeat(MAX_MOVED_TO + 1))).is_err());
        assert!(Fence::new(None).is_ok());
    }
}
