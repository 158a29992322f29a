//! Moving damaged packs out of a repository, local or remote (see `heal.rs` for when).

use std::{fs, path::Path};

use rustic_core::{FileType, WriteBackend};
use sha2::{Digest, Sha256};

use super::Repo;
use crate::{Error, Result};

impl Repo {
    /// Moves each pack whose content no longer hashes to its name into the local directory
    /// `quarantine` (copied there, then removed from the repository). Returns the packs moved.
    pub(crate) fn quarantine_damaged(&self, quarantine: &Path) -> Result<Vec<String>> {
        quarantine_packs(self.backend.as_ref(), quarantine).map_err(|message| Error::Repository {
            target: self.target.clone(),
            action: "heal",
            message,
        })
    }
}

fn quarantine_packs(
    backend: &dyn WriteBackend,
    quarantine: &Path,
) -> std::result::Result<Vec<String>, String> {
    let mut moved = Vec::new();
    let packs = backend
        .list(FileType::Pack)
        .map_err(|e| format!("cannot list packs: {}", super::errors::one_line(&e)))?;
    for id in packs {
        let name = id.to_hex().to_string();
        let intact = backend
            .read_full(FileType::Pack, &id)
            .is_ok_and(|bytes| hex::encode(Sha256::digest(&bytes)) == name);
        if intact {
            continue;
        }
        fs::create_dir_all(quarantine)
            .map_err(|e| format!("cannot create {}: {e}", quarantine.display()))?;
        let to = quarantine.join(&name);
        // Whatever can still be read is kept for salvage; an unreadable pack leaves an empty
        // file that names it.
        let bytes = backend.read_full(FileType::Pack, &id).unwrap_or_default();
        fs::write(&to, &bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        backend.remove(FileType::Pack, &id, false).map_err(|e| {
            format!(
                "cannot remove damaged pack {name}: {}",
                super::errors::one_line(&e)
            )
        })?;
        moved.push(name);
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
        let good = b"good pack";
        let good_name = hex::encode(Sha256::digest(good));
        let bad_name = format!("{}{}", &good_name[..8], "0".repeat(56));
        let sub = repo.join(format!("data/{}", &good_name[..2]));
        fs::create_dir_all(&sub).expect("mkdir");
        fs::write(sub.join(&good_name), good).expect("write");
        fs::write(sub.join(&bad_name), b"flipped").expect("write");
        let backend = rustic_backend::LocalBackend::new(
            repo.to_str().expect("utf-8 temp path"),
            std::iter::empty(),
        )
        .expect("backend");
        let q = dir.path().join("quarantine");
        let moved = quarantine_packs(&backend, &q).expect("moved");
        assert_eq!(moved, vec![bad_name.clone()]);
        assert!(sub.join(&good_name).exists() && !sub.join(&bad_name).exists());
        assert_eq!(fs::read(q.join(&bad_name)).expect("kept"), b"flipped");
    }
}
