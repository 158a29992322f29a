//! Scratch space inside `data_dir`, removed whatever happens: on success, on error, on panic
//! (by `Drop`), and after a `kill -9` by the next run on the same target.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A private scratch directory `<dir>/<target>.<pid>`, deleted with its content when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates the directory after removing leftovers of earlier runs of `target`. The caller
    /// must hold the target lock, so no live run owns those leftovers.
    pub(crate) fn new(dir: &Path, target: &str) -> Result<Self> {
        remove_leftovers(dir, target);
        let path = dir.join(format!("{target}.{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(Error::io(format!(
            "cannot create scratch directory {}",
            path.display()
        )))?;
        Ok(Self { path })
    }

    /// A path inside the scratch directory.
    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes `<dir>/<target>.*` left by runs that were killed. Returns how many were removed.
pub(crate) fn remove_leftovers(dir: &Path, target: &str) -> usize {
    let prefix = format!("{target}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let p = entry.path();
            let ok = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed += usize::from(ok.is_ok());
        }
    }
    removed
}
