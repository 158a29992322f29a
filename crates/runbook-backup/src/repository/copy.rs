//! Copies of snapshots to a second repository (the 3-2-1 rule), through rustic's `copy`.

use super::{Repo, errors::guard, rerr};
use crate::Result;

impl Repo {
    /// Copies every snapshot of this repository that `dest` does not hold yet, oldest first,
    /// one at a time: a copy cut off part-way leaves whole snapshots behind it (a snapshot
    /// file is written only after its data and index), and the next run copies the rest.
    /// Returns how many were copied.
    pub(crate) fn copy_missing_to(self, dest: Repo) -> Result<usize> {
        let target = self.target.clone();
        guard(&target, "copy", move || {
            let source = self
                .inner
                .to_indexed()
                .map_err(rerr(&self.target, "read index"))?;
            let mut snaps = source
                .get_all_snapshots()
                .map_err(rerr(&self.target, "list snapshots"))?;
            snaps.sort_by(|a, b| a.time.cmp(&b.time));
            let dest = dest
                .inner
                .to_indexed_ids()
                .map_err(rerr(&self.target, "read the copy's index"))?;
            let missing: Vec<_> = dest
                .relevant_copy_snapshots(|_| true, &snaps)
                .map_err(rerr(&self.target, "compare with the copy"))?
                .into_iter()
                .filter(|c| c.relevant)
                .map(|c| c.sn)
                .collect();
            for (i, sn) in missing.iter().enumerate() {
                if i > 0 {
                    crate::failpoint("copy-between-snapshots");
                }
                source
                    .copy(&dest, std::iter::once(sn))
                    .map_err(rerr(&self.target, "copy"))?;
            }
            Ok(missing.len())
        })
    }
}
