//! File helpers the whole store shares: durable replacement of small files, fsync of
//! directories and trees, recursive copy and size, and the wall-clock seconds that the
//! files record. They sit below every other store module, so that the fence, quota and
//! stats files, moves and projects all use one copy of each and depend on none of each
//! other for it.

use std::io::Write;
use std::path::Path;

use super::error::{StoreError, StoreResult};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Replaces `file` with `bytes` so that a crash leaves the old content or the new, whole:
/// temporary file, fsync, rename, fsync of the directory.
pub fn write_durably(file: &Path, bytes: &[u8]) -> StoreResult<()> {
    let dir = file
        .parent()
        .ok_or_else(|| StoreError::InvalidArgument("file without a directory".into()))?;
    let mut tmp_name = file.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)?;
    sync_dir(dir)
}

/// Fsyncs a directory, so that the entries created, renamed or removed in it persist.
pub fn sync_dir(dir: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Fsyncs every file and directory under `dir`.
pub fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Copies the files and directories under `from` into `to` (created if missing).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Total size of the files under `path`; unreadable entries count as nothing.
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// JSON of a value that always serialises (plain data; empty if it somehow does not).
pub fn json_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_write_replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("F");
        write_durably(&file, b"one").expect("write");
        write_durably(&file, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&file).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("F")]);
    }

    #[test]
    fn copy_and_size_of_a_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let from = dir.path().join("a");
        std::fs::create_dir_all(from.join("b/c")).expect("mkdir");
        std::fs::write(from.join("x"), [0u8; 10]).expect("x");
        std::fs::write(from.join("b/c/y"), [0u8; 5]).expect("y");
        let to = dir.path().join("copy");
        copy_dir(&from, &to).expect("copy");
        assert_eq!(dir_size(&to), 15);
        assert_eq!(std::fs::read(to.join("b/c/y")).expect("y").len(), 5);
        sync_tree(&to).expect("sync");
    }
}
