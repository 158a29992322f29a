//! A data pack filled in a file of its own in a local repository, as restic fills its packs,
//! instead of in memory: a backup then holds the last MiB of the pack it fills rather than the
//! whole pack, and not a second one while the previous pack is synced to disk.
//!
//! The file is named like rustic's own half-written files (`data/xx/<random id>-tmp-`):
//! restic and rustic skip such names when they list packs, and the next run on the target
//! removes any that a killed backup left ([`crate::Engine`]'s recovery).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::pages::Hash;

/// A pack file being written: removed when dropped unless it became a pack.
pub(super) struct Spill {
    /// The repository's directory.
    repo: PathBuf,
    file: fs::File,
    /// The file, until [`Spill::commit`] names it after its content.
    path: Option<PathBuf>,
    hasher: Sha256,
    written: u64,
}

impl Spill {
    /// A new, empty file among the packs of the repository at `repo`.
    pub(super) fn create(repo: &Path) -> std::result::Result<Self, String> {
        let mut name = [0_u8; 32];
        rand::rng().fill_bytes(&mut name);
        let name = hex::encode(name);
        let dir = repo.join("data").join(&name[..2]);
        let path = dir.join(format!("{name}-tmp-"));
        let file = fs::create_dir_all(&dir)
            .and_then(|()| {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
            })
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self {
            repo: repo.to_path_buf(),
            file,
            path: Some(path),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    /// Appends `bytes`.
    pub(super) fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|e| format!("cannot write a pack: {e}"))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// The bytes written so far.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// The pack's id: the hash of every byte written.
    pub(super) fn id(&mut self) -> Hash {
        std::mem::take(&mut self.hasher).finalize().into()
    }

    /// Syncs the file and renames it to the pack `id`, where restic and rustic find it.
    pub(super) fn commit(mut self, id: &Hash) -> std::result::Result<(), String> {
        let to = pack_path(&self.repo, id);
        self.file
            .sync_all()
            .map_err(|e| format!("cannot write a pack: {e}"))?;
        let from = self.path.as_deref().unwrap_or(Path::new(""));
        to.parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::rename(from, &to))
            .map_err(|e| format!("cannot store pack {}: {e}", to.display()))?;
        self.path = None;
        Ok(())
    }
}

/// Where pack `id` lies in the local repository at `repo`: restic's layout,
/// `data/<first two hex digits>/<id>`.
pub(super) fn pack_path(repo: &Path, id: &Hash) -> PathBuf {
    let hex = hex::encode(id);
    repo.join("data").join(&hex[..2]).join(&hex)
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
        }
    }
}
