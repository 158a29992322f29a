//! Damage found by any read heals at the next write.
//!
//! A read that finds damage (`check`, a restore, a drill) never writes to the repository: it
//! records what it found in `data_dir/locks/<target>.damaged`. The next backup, before it
//! writes, re-hashes every pack and moves each damaged one into `data_dir/quarantine/<target>/`
//! (kept, never deleted, for whoever wants to salvage it), rebuilds the index without the packs
//! that are gone, so the data they held is stored again and the new snapshot restores, and
//! rewrites older snapshots without what was lost (restic's `repair snapshots`). A pack is
//! damaged when its content no longer hashes to its name, so a healthy pack is never moved.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

fn marker(data_dir: &Path, target: &str) -> PathBuf {
    data_dir.join("locks").join(format!("{target}.damaged"))
}

/// Records damage to heal at the next write, with the lines that reported it.
pub(crate) fn record(data_dir: &Path, target: &str, found: &[String]) {
    let path = marker(data_dir, target);
    let _ = fs::create_dir_all(data_dir.join("locks"));
    let written = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{}\n", found.join("\n")).as_bytes()));
    if let Err(e) = written {
        log::warn!("cannot record repository damage in {}: {e}", path.display());
    }
}

/// Whether damage is recorded for `target` (the marker also keeps the lines that reported it,
/// for whoever looks).
pub(crate) fn is_recorded(data_dir: &Path, target: &str) -> bool {
    marker(data_dir, target).exists()
}

/// Forgets the recorded damage once it is healed.
pub(crate) fn clear(data_dir: &Path, target: &str) {
    let _ = fs::remove_file(marker(data_dir, target));
}

/// Moves the packs of `repo` whose content does not hash to their name into `quarantine`.
/// Returns the packs moved.
///
/// # Errors
/// When a damaged pack cannot be moved.
pub(crate) fn quarantine(repo: &Path, quarantine: &Path) -> Result<Vec<String>> {
    let mut moved = Vec::new();
    let data = repo.join("data");
    let Ok(dirs) = fs::read_dir(&data) else {
        return Ok(moved);
    };
    for dir in dirs.flatten() {
        let Ok(files) = fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let path = file.path();
            let intact = fs::read(&path)
                .map(|bytes| hex::encode(Sha256::digest(&bytes)) == name)
                .unwrap_or(false);
            if intact {
                continue;
            }
            fs::create_dir_all(quarantine)
                .map_err(Error::io(format!("cannot create {}", quarantine.display())))?;
            let to = quarantine.join(&name);
            fs::rename(&path, &to).or_else(|_| {
                fs::copy(&path, &to)
                    .and_then(|_| fs::remove_file(&path))
                    .map_err(Error::io(format!(
                        "cannot move damaged pack {} to {}",
                        path.display(),
                        to.display()
                    )))
            })?;
            moved.push(name);
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_packs_that_no_longer_match_their_name_are_moved() {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path().join("repo");
        fs::create_dir_all(repo.join("data/ab")).expect("mkdir");
        let good = b"good pack";
        let good_name = hex::encode(Sha256::digest(good));
        let bad_name = format!("{}{}", &good_name[..8], "0".repeat(56));
        fs::create_dir_all(repo.join(format!("data/{}", &good_name[..2]))).expect("mkdir");
        let good_path = repo.join(format!("data/{}/{good_name}", &good_name[..2]));
        let bad_path = repo.join(format!("data/{}/{bad_name}", &good_name[..2]));
        fs::write(&good_path, good).expect("write");
        fs::write(&bad_path, b"flipped").expect("write");
        let q = dir.path().join("quarantine");
        let moved = quarantine(&repo, &q).expect("moved");
        assert_eq!(moved, vec![bad_name.clone()]);
        assert!(good_path.exists() && !bad_path.exists());
        assert!(q.join(&bad_name).exists(), "kept, not deleted");
    }
}
