//! Restored files re-hashed against the snapshot's chunk ids, through rustic_core (`untree`
//! restores a tree, `unpack` one file).

use std::path::Path;

use rustic_core::{IndexedFullStatus, LsOptions, Repository, repofile::SnapshotFile};

use super::{Repo, guard, rerr};
use crate::Result;

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
