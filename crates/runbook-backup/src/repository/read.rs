//! Reading whole trees back through rustic_core: a tree restored, and restored files re-hashed
//! against the snapshot's chunk ids (one file is read by `unpack`).

use std::path::Path;

use rustic_core::{
    IndexedFullStatus, LocalDestination, LsOptions, Repository, RestoreOptions,
    repofile::SnapshotFile,
};

use super::{Repo, guard, rerr};
use crate::{Error, Result};

impl Repo {
    /// The snapshot `id` and the repository with its full index loaded, for reading data.
    fn indexed(self, id: &str) -> Result<(Repository<IndexedFullStatus>, SnapshotFile, String)> {
        let snap = self.find_raw(id)?;
        let target = self.target;
        let indexed = self
            .inner
            .to_indexed()
            .map_err(rerr(&target, "read index"))?;
        Ok((indexed, snap, target))
    }

    /// Restores the whole tree of snapshot `id` into the (new, empty) directory `dest`.
    pub(crate) fn restore_tree(self, id: &str, dest: &Path) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "restore", move || {
            self.restore_tree_inner(id, dest)
        })
    }

    fn restore_tree_inner(self, id: &str, dest: &Path) -> Result<()> {
        let (indexed, snap, target) = self.indexed(id)?;
        let err = || rerr(&target, "restore");
        let node = indexed
            .node_from_snapshot_and_path(&snap, "")
            .map_err(err())?;
        let ls = LsOptions::default().recursive(true);
        let dest_str = dest.to_str().ok_or_else(|| Error::Repository {
            target: target.clone(),
            action: "restore",
            message: format!("path {} is not valid UTF-8", dest.display()),
        })?;
        let local = LocalDestination::new(dest_str, true, !node.is_dir()).map_err(err())?;
        let opts = RestoreOptions::default();
        let plan = indexed
            .prepare_restore(&opts, indexed.ls(&node, &ls).map_err(err())?, &local, false)
            .map_err(err())?;
        indexed
            .restore(plan, &opts, indexed.ls(&node, &ls).map_err(err())?, &local)
            .map_err(err())
    }

    /// Re-hashes the files restored from snapshot `id` under `dest` chunk by chunk against the
    /// chunk ids the snapshot records. Returns (files checked, problems).
    pub(crate) fn verify_tree(self, id: &str, dest: &Path) -> Result<(usize, Vec<String>)> {
        let target = self.target.clone();
        guard(&target, "verify", move || self.verify_tree_inner(id, dest))
    }

    fn verify_tree_inner(self, id: &str, dest: &Path) -> Result<(usize, Vec<String>)> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let (indexed, snap, target) = self.indexed(id)?;
        let err = || rerr(&target, "verify");
        let node = indexed
            .node_from_snapshot_and_path(&snap, "")
            .map_err(err())?;
        let ls = LsOptions::default().recursive(true);
        let mut checked = 0;
        let mut problems = Vec::new();
        let mut buf = Vec::new();
        for item in indexed.ls(&node, &ls).map_err(err())? {
            let (path, node) = item.map_err(err())?;
            if !node.is_file() {
                continue;
            }
            checked += 1;
            let file = dest.join(&path);
            let shown = format!("/{}", path.display());
            let mut f = match std::fs::File::open(&file) {
                Ok(f) => std::io::BufReader::with_capacity(1 << 20, f),
                Err(e) => {
                    problems.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let mut differs = false;
            for blob in node.content.iter().flatten() {
                let entry = indexed.get_index_entry(blob).map_err(err())?;
                buf.resize(entry.data_length() as usize, 0);
                if f.read_exact(&mut buf).is_err()
                    || hex::encode(Sha256::digest(&buf)) != *blob.to_hex()
                {
                    differs = true;
                    break;
                }
            }
            // Same chunks, but more bytes after them: also not the file the snapshot holds.
            if differs || f.read(&mut [0u8; 1]).is_ok_and(|n| n > 0) {
                problems.push(format!("{shown}: content differs from the snapshot"));
            }
        }
        Ok((checked, problems))
    }
}
