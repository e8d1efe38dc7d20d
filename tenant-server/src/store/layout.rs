//! Where projects live in the workspace: `<workspace>/<project dir>/<knowledge-graph
//! subdir>/`, the directory name of a project, and the files a project directory holds
//! besides its store. Nothing here opens a project.

use std::path::{Path, PathBuf};

use super::error::StoreResult;
use super::names::ProjectName;

/// Where a shortened directory keeps its project's full name.
pub const NAME_FILE: &str = "project-name";
/// Longest project name used as a directory name as is (file systems allow 255 bytes).
const MAX_DIR_NAME: usize = 200;
/// Where a project's figures were written at its last close (next to its `db/`).
pub const STATS_FILE: &str = "stats.json";

/// The directory of a project under the workspace: the name itself, or for names too long
/// for a file system, a prefix and a hash of the name (`~` never occurs in valid names, so
/// the two forms cannot collide).
pub fn project_dir_name(name: &str) -> String {
    if name.len() <= MAX_DIR_NAME {
        return name.to_string();
    }
    // FNV-1a: stable across builds and platforms, which std's hasher is not
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}~{hash:016x}", &name[..100])
}

/// The workspace directory and the layout of the projects in it.
#[derive(Debug, Clone)]
pub struct Layout {
    workspace: PathBuf,
    subdir: String,
}

impl Layout {
    pub fn new(workspace: &Path, knowledge_graph_subdir: &str) -> Layout {
        Layout {
            workspace: workspace.to_path_buf(),
            subdir: knowledge_graph_subdir.to_string(),
        }
    }

    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// `<workspace>/<project dir>`: everything of the project, removed with it.
    pub fn project_dir(&self, name: &ProjectName) -> PathBuf {
        self.workspace.join(project_dir_name(name))
    }

    /// `<workspace>/<project dir>/<subdir>`: the project's store (`db/`, `index/`, …).
    pub fn root(&self, name: &ProjectName) -> PathBuf {
        self.project_dir(name).join(&self.subdir)
    }

    /// Creates the project's directory, recording its full name when the directory name
    /// had to be shortened.
    pub fn prepare(&self, name: &ProjectName) -> StoreResult<()> {
        std::fs::create_dir_all(self.root(name))?;
        if project_dir_name(name) != name.as_str() {
            let file = self.project_dir(name).join(NAME_FILE);
            if !file.exists() {
                std::fs::write(file, name.as_str())?;
            }
        }
        Ok(())
    }

    /// (name, store root) of every project directory in the workspace, in name order.
    /// Entries that are no project (the staging area, stray files, invalid names) are
    /// passed over.
    pub fn projects(&self) -> StoreResult<Vec<(ProjectName, PathBuf)>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.workspace) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for e in entries.flatten() {
            let Ok(dir_name) = e.file_name().into_string() else {
                continue;
            };
            let name = if dir_name.contains('~') {
                match std::fs::read_to_string(e.path().join(NAME_FILE)) {
                    Ok(n) if project_dir_name(&n) == dir_name => n,
                    _ => continue,
                }
            } else {
                dir_name
            };
            let Ok(name) = ProjectName::new(name) else {
                continue;
            };
            let root = self.root(&name);
            if root.is_dir() {
                out.push((name, root));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
