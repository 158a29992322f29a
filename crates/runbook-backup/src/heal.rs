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
