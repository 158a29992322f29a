//! One process at a time per target: an advisory file lock in `data_dir/locks`.
//!
//! The kernel drops the lock when its holder dies, so a `kill -9` never leaves a stale lock.
//! A marker file records that a write was in progress; the next holder that finds it knows the
//! previous run died mid-way and repairs the repository before writing.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use crate::{Error, Result};

/// Exclusive hold on one target. Released on drop.
#[derive(Debug)]
pub struct TargetLock {
    _file: File,
    marker: PathBuf,
    /// True when the previous holder died while writing.
    pub interrupted: bool,
}

impl TargetLock {
    /// Takes the lock for `target`, failing at once with [`Error::Busy`] if it is held.
    ///
    /// # Errors
    /// [`Error::Busy`] when held; [`Error::Io`] when the lock file cannot be created.
    pub fn acquire(data_dir: &Path, target: &str) -> Result<Self> {
        let dir = data_dir.join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        let path = dir.join(format!("{target}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io(format!("cannot open lock {}", path.display())))?;
        if file.try_lock().is_err() {
            return Err(Error::Busy {
                target: target.to_string(),
                holder: read_holder(&mut file),
            });
        }
        file.set_len(0)
            .and_then(|()| write!(file, "pid {}", std::process::id()))
            .map_err(Error::io(format!("cannot write lock {}", path.display())))?;
        let marker = dir.join(format!("{target}.writing"));
        Ok(Self {
            _file: file,
            interrupted: marker.exists(),
            marker,
        })
    }

    /// Marks the start of a write to the repository.
    ///
    /// # Errors
    /// When the marker cannot be written.
    pub fn begin_write(&self) -> Result<()> {
        File::create(&self.marker)
            .map(drop)
            .map_err(Error::io(format!("cannot write {}", self.marker.display())))
    }

    /// Marks the end of a write (successful or cleanly failed).
    pub fn end_write(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
        self.interrupted = false;
    }
}

/// What the holder wrote into the lock file (`pid N`). The holder writes it just after taking
/// the lock, so a reader that comes in between finds it empty: look again briefly.
fn read_holder(file: &mut File) -> String {
    use std::io::Seek;
    for _ in 0..20 {
        let mut holder = String::new();
        let _ = file.rewind();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        if !holder.is_empty() {
            return holder.to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    "pid unknown".into()
}
