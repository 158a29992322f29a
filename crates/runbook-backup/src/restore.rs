//! Putting restored data in place without ever leaving the destination half-written: data is
//! written beside the destination under a temporary name and renamed into place only after it
//! has been fully written and checked.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{Error, Result};

/// `path` with `suffix` added to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Refuses to replace `dest` or one of its `sidecars` while another process has it open: that
/// process would go on reading and writing the file the restore moved away, and what it writes
/// from then on would be lost with it. Best effort: `/proc` shows the open files of the
/// processes this user may look into (every process, to root).
///
/// # Errors
/// [`Error::Destination`] naming the process.
pub(crate) fn refuse_open(dest: &Path, sidecars: &[&str]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let files: Vec<(u64, u64, PathBuf)> = std::iter::once("")
        .chain(sidecars.iter().copied())
        .map(|suffix| with_suffix(dest, suffix))
        .filter_map(|p| fs::metadata(&p).ok().map(|m| (m.dev(), m.ino(), p)))
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    let me = std::process::id();
    for process in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let fds = fs::read_dir(process.path().join("fd"))
            .into_iter()
            .flatten();
        for fd in fds.flatten() {
            let Ok(m) = fs::metadata(fd.path()) else {
                continue;
            };
            let Some((_, _, path)) = files
                .iter()
                .find(|(dev, ino, _)| (*dev, *ino) == (m.dev(), m.ino()))
            else {
                continue;
            };
            let program = fs::read_to_string(process.path().join("comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_else(|_| "?".into());
            return Err(Error::Destination {
                path: dest.to_path_buf(),
                reason: format!(
                    "{} is open by pid {pid} ({program}): stop it first, or what it writes after \
                     the restore goes to the replaced file and is lost",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Cleans up after restores to `dest` whose process died (`kill -9`, a crash): their staging
/// copies `.NAME.runbook-restore-PID` go, and an old destination they had moved aside
/// (`….aside`, its sidecars `….aside-wal` and so on) is put back when the new data never
/// arrived, else removed. Stagings of live processes are left alone.
fn recover_killed(parent: &Path, name: &str, dest: &Path) -> Result<()> {
    let prefix = format!(".{name}.runbook-restore-");
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    // Each dead run's leftovers: the path, and for an aside the suffix of what it was
    // (empty for the destination itself, `-wal` for its WAL).
    let mut stale: Vec<(PathBuf, Option<String>)> = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let (pid, aside) = match rest.split_once('.') {
            None => (rest, None),
            Some((pid, kind)) => match kind.strip_prefix("aside") {
                Some(suffix) => (pid, Some(suffix.to_string())),
                None => continue,
            },
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        stale.push((entry.path(), aside));
    }
    // The new data never arrived when the destination is missing: then what was moved aside
    // is the user's old data, and all of it goes back before anything is removed.
    let old_gone = fs::symlink_metadata(dest).is_err();
    stale.sort_by_key(|(_, aside)| aside.is_none());
    for (path, aside) in stale {
        let back = aside
            .filter(|_| old_gone)
            .map(|suffix| with_suffix(dest, &suffix))
            .filter(|to| fs::symlink_metadata(to).is_err());
        if let Some(to) = back {
            fs::rename(&path, &to).map_err(Error::io(format!(
                "cannot put {} back from an interrupted restore ({})",
                to.display(),
                path.display()
            )))?;
            log::warn!("put {} back from an interrupted restore", to.display());
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
    /// Suffixes of the files that belong to the destination and go with it (SQLite's `-wal`,
    /// `-shm` and `-journal`).
    sidecars: &'static [&'static str],
    committed: bool,
}

impl Staged {
    /// Refuses an existing destination, or an existing sidecar of it, without `force`.
    pub(crate) fn new(dest: &Path, force: bool, sidecars: &'static [&'static str]) -> Result<Self> {
        if let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            recover_killed(parent, &name.to_string_lossy(), dest)?;
        }
        if !force {
            for suffix in std::iter::once("").chain(sidecars.iter().copied()) {
                let p = with_suffix(dest, suffix);
                if fs::symlink_metadata(&p).is_ok() {
                    return Err(Error::DestinationExists { path: p });
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
            sidecars,
            committed: false,
        })
    }

    /// Moves the staged data onto the destination. An existing destination and its sidecars
    /// are moved aside first and removed only after the new data is in place (put back if
    /// that fails): a SQLite WAL can hold transactions its database does not have yet.
    /// `from` is the path inside the staging directory to move (default: the staged path
    /// itself).
    pub(crate) fn commit(mut self, from: Option<&Path>) -> Result<()> {
        let from = from.map_or_else(|| self.path.clone(), Path::to_path_buf);
        let aside = with_suffix(&self.path, ".aside");
        // What was moved aside: (where it was, where it is).
        let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
        let put_back = |moved: &[(PathBuf, PathBuf)]| {
            for (was, is) in moved {
                let _ = fs::rename(is, was);
            }
        };
        for suffix in std::iter::once("").chain(self.sidecars.iter().copied()) {
            let old = with_suffix(&self.dest, suffix);
            if fs::symlink_metadata(&old).is_err() {
                continue;
            }
            let to = with_suffix(&aside, suffix);
            remove_any(&to);
            if let Err(e) = fs::rename(&old, &to) {
                put_back(&moved);
                return Err(Error::Io {
                    context: format!("cannot move {} aside", old.display()),
                    source: e,
                });
            }
            moved.push((old, to));
        }
        crate::failpoint("restore-before-rename");
        if let Err(e) = fs::rename(&from, &self.dest) {
            put_back(&moved);
            return Err(Error::Io {
                context: format!("cannot move restored data to {}", self.dest.display()),
                source: e,
            });
        }
        self.committed = from == self.path;
        for (_, is) in &moved {
            remove_any(is);
        }
        let parent = self
            .dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Ok(dir) = fs::File::open(parent) {
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
