//! Putting restored data in place without ever leaving the destination half-written: data is
//! written beside the destination under a temporary name and renamed into place only after it
//! has been fully written and checked.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{Error, Result};

/// Cleans up after restores to `dest` whose process died (`kill -9`, a crash): their staging
/// copies `.NAME.runbook-restore-PID` go, and an old destination they had moved aside
/// (`….aside`) is put back when the new data never arrived, else removed. Stagings of live
/// processes are left alone.
fn recover_killed(parent: &Path, name: &str, dest: &Path) -> Result<()> {
    let prefix = format!(".{name}.runbook-restore-");
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    let mut stale: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.strip_suffix(".aside").unwrap_or(rest);
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        stale.push(entry.path());
    }
    // Asides first: an aside is the user's old data, put back before anything is removed.
    stale.sort_by_key(|p| !p.to_string_lossy().ends_with(".aside"));
    for path in stale {
        if path.to_string_lossy().ends_with(".aside") && fs::symlink_metadata(dest).is_err() {
            fs::rename(&path, dest).map_err(Error::io(format!(
                "cannot put {} back from an interrupted restore ({})",
                dest.display(),
                path.display()
            )))?;
            log::warn!("put {} back from an interrupted restore", dest.display());
        } else {
            remove_any(&path);
            log::warn!("removed {} left by an interrupted restore", path.display());
        }
    }
    Ok(())
}

/// A path beside `dest` that is removed on drop unless it was committed.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) path: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// Refuses an existing destination without `force`; `extra` are further paths that count
    /// as the destination (SQLite's `-wal`/`-shm`).
    pub(crate) fn new(dest: &Path, force: bool, extra: &[PathBuf]) -> Result<Self> {
        if let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            recover_killed(parent, &name.to_string_lossy(), dest)?;
        }
        if !force {
            for p in std::iter::once(dest).chain(extra.iter().map(PathBuf::as_path)) {
                if fs::symlink_metadata(p).is_ok() {
                    return Err(Error::DestinationExists {
                        path: p.to_path_buf(),
                    });
                }
            }
        }
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Io {
                context: format!("invalid restore destination {}", dest.display()),
                source: std::io::Error::other("it has no file name"),
            })?
            .to_string_lossy()
            .into_owned();
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent)
            .map_err(Error::io(format!("cannot create {}", parent.display())))?;
        let path = parent.join(format!(".{name}.runbook-restore-{}", std::process::id()));
        remove_any(&path);
        Ok(Self {
            path,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// Moves the staged data onto the destination. An existing destination is moved aside
    /// first and removed only after the new data is in place (put back if that fails).
    /// `from` is the path inside the staging directory to move (default: the staged path
    /// itself); `remove_first` are stale files to delete once the old data is out of the way.
    pub(crate) fn commit(mut self, from: Option<&Path>, remove_first: &[PathBuf]) -> Result<()> {
        let from = from.map_or_else(|| self.path.clone(), Path::to_path_buf);
        let mut aside = self.path.clone().into_os_string();
        aside.push(".aside");
        let aside = PathBuf::from(aside);
        let had_old = fs::symlink_metadata(&self.dest).is_ok();
        if had_old {
            remove_any(&aside);
            fs::rename(&self.dest, &aside).map_err(Error::io(format!(
                "cannot move {} aside",
                self.dest.display()
            )))?;
        }
        for p in remove_first {
            let _ = fs::remove_file(p);
        }
        if let Err(e) = fs::rename(&from, &self.dest) {
            if had_old {
                let _ = fs::rename(&aside, &self.dest);
            }
            return Err(Error::Io {
                context: format!("cannot move restored data to {}", self.dest.display()),
                source: e,
            });
        }
        self.committed = from == self.path;
        if had_old {
            remove_any(&aside);
        }
        if let Some(dir) = self.dest.parent().and_then(|p| fs::File::open(p).ok()) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            remove_any(&self.path);
        }
    }
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}
