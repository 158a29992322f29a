//! Scratch space inside `data_dir`, removed whatever happens: on success, on error, on panic
//! (by `Drop`), and after a `kill -9` by the next run on the same target.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A private scratch directory `<dir>/<name>.<pid>`, deleted with its content when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates the directory after removing leftovers of earlier, dead runs of `name`.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        remove_leftovers(dir, name);
        let path = dir.join(format!("{name}.{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(Error::io(format!(
            "cannot create scratch directory {}",
            path.display()
        )))?;
        Ok(Self { path })
    }

    /// A path inside the scratch directory.
    #[must_use]
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// The directory itself.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes `<dir>/<name>.<pid>` left by runs whose process is gone (killed, crashed). A
/// directory of a live process — another runbook working on the same name, or this process
/// — is left alone. Returns what was removed.
pub fn remove_leftovers(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!("{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if alive {
            continue;
        }
        let p = entry.path();
        let ok = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if ok.is_ok() {
            removed.push(p);
        }
    }
    removed
}
