//! One process at a time per target: an advisory file lock in `data_dir/locks`.
//!
//! The kernel drops the lock when its holder dies, so a `kill -9` never leaves a stale lock.
//! A marker file records that a write was in progress; the next holder that finds it knows the
//! previous run died mid-way and repairs the repository before writing.
//!
//! The kernel's lock belongs to the open file, and a child process that another thread of this
//! process starts holds a copy of every open file until it executes its program: a lock this
//! process has just released can still be held for that moment. So this process keeps its own
//! list of the locks it holds, and a lock that the kernel calls taken while the lock file names
//! this process, and the list does not, is taken again once that copy is gone.

use std::{
    collections::BTreeSet,
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{Error, Result};

/// The lock files this process holds (or is taking).
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// How long a lock released by this process may stay held by a starting child's copy of it.
const LINGER: Duration = Duration::from_secs(2);

/// Exclusive hold on one target. Released on drop.
#[derive(Debug)]
pub struct TargetLock {
    /// The locked file; `None` until the lock is taken (a failed take drops it so).
    file: Option<File>,
    path: PathBuf,
    marker: PathBuf,
    /// True when the previous holder died while writing.
    pub interrupted: bool,
}

impl TargetLock {
    /// Takes the lock for `target`, failing with [`Error::Busy`] if it is held: at once when
    /// another process or this one holds it, after at most [`LINGER`] when only a child's copy
    /// of a lock this process released holds it still.
    ///
    /// # Errors
    /// [`Error::Busy`] when held; [`Error::Io`] when the lock file cannot be created.
    pub fn acquire(data_dir: &Path, target: &str) -> Result<Self> {
        let (mut file, path) = lock_file(data_dir, &format!("{target}.lock"))?;
        if !HELD
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.clone())
        {
            return Err(Error::Busy {
                target: target.to_string(),
                holder: read_holder(&mut file),
            });
        }
        // From here on `lock` releases the entry in `HELD` if taking the lock fails.
        let mut lock = Self {
            file: None,
            marker: data_dir.join("locks").join(format!("{target}.writing")),
            path,
            interrupted: false,
        };
        let me = format!("pid {}", std::process::id());
        let until = Instant::now() + LINGER;
        while file.try_lock().is_err() {
            // Released by this process (it is not in `HELD`) but still held: a child's copy.
            let holder = read_holder(&mut file);
            if holder != me || Instant::now() >= until {
                return Err(Error::Busy {
                    target: target.to_string(),
                    holder,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // `read_holder` may have moved the file's position: write from the start.
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{me}"))
            .map_err(Error::io(format!(
                "cannot write lock {}",
                lock.path.display()
            )))?;
        lock.interrupted = lock.marker.exists();
        lock.file = Some(file);
        Ok(lock)
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

impl Drop for TargetLock {
    fn drop(&mut self) {
        // Out of `HELD` first: a thread that comes in before the file is closed waits for it
        // as for a child's copy, instead of being told that this process holds the lock.
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.path);
        drop(self.file.take());
    }
}

/// A restore's shared hold on a target's repository data, in `data_dir/locks/<target>.readers`.
///
/// Restores do not take the target lock (a backup may run beside them), but a prune deletes
/// and repacks packs at once on a local repository, and a restore that loaded the index before
/// would then find the packs it planned to read gone and fail half-way. A prune takes this
/// lock exclusively, and is put off while any restore holds it ([`prune_hold`]); a restore
/// that starts during a prune waits for it. Released on drop; the kernel drops it when its
/// holder dies.
#[derive(Debug)]
pub(crate) struct ReadHold {
    _file: Option<File>,
}

impl ReadHold {
    /// Takes the shared hold, waiting for a prune in progress to end. Where the lock file
    /// cannot be made (a `data_dir` this user cannot write, as when restoring on another
    /// machine with the password in the environment), the restore goes on without it, with a
    /// warning: it can read, only not hold off a prune.
    ///
    /// # Errors
    /// [`Error::Io`] when the lock file exists but cannot be locked.
    pub(crate) fn acquire(data_dir: &Path, target: &str) -> Result<Self> {
        let (file, path) = match readers_file(data_dir, target) {
            Ok(opened) => opened,
            Err(e) => {
                log::warn!("{e}: restoring without holding off a prune of target `{target}`");
                return Ok(Self { _file: None });
            }
        };
        if file.try_lock_shared().is_err() {
            log::info!("target `{target}`: waiting for its prune to end before reading");
            file.lock_shared()
                .map_err(Error::io(format!("cannot lock {}", path.display())))?;
        }
        Ok(Self { _file: Some(file) })
    }
}

/// The exclusive hold a prune takes on `target`'s data, or `None` while a restore reads it
/// ([`ReadHold`]); the hold ends when the file is dropped.
///
/// # Errors
/// [`Error::Io`] when the lock file cannot be created or locked.
pub(crate) fn prune_hold(data_dir: &Path, target: &str) -> Result<Option<File>> {
    let (file, path) = readers_file(data_dir, target)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Io {
            context: format!("cannot lock {}", path.display()),
            source: e,
        }),
    }
}

/// Where a prune that a restore put off is recorded, for the next forget to do it.
pub(crate) fn prune_pending(data_dir: &Path, target: &str) -> PathBuf {
    data_dir.join("locks").join(format!("{target}.prune"))
}

fn readers_file(data_dir: &Path, target: &str) -> Result<(File, PathBuf)> {
    lock_file(data_dir, &format!("{target}.readers"))
}

/// Opens (creating it and `data_dir/locks` when missing) the lock file `name` there.
fn lock_file(data_dir: &Path, name: &str) -> Result<(File, PathBuf)> {
    let dir = data_dir.join("locks");
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io(format!("cannot open lock {}", path.display())))?;
    Ok((file, path))
}

/// What the holder wrote into the lock file (`pid N`). The holder writes it just after taking
/// the lock, so a reader that comes in between finds it empty: look again briefly.
fn read_holder(file: &mut File) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(r: Result<TargetLock>) -> String {
        match r {
            Err(Error::Busy { holder, .. }) => holder,
            other => panic!("expected busy, got {other:?}"),
        }
    }

    #[test]
    fn readers_hold_off_a_prune_and_one_without_a_lock_file_still_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reading = ReadHold::acquire(dir.path(), "t").expect("read");
        let also = ReadHold::acquire(dir.path(), "t").expect("a second reader");
        assert!(prune_hold(dir.path(), "t").expect("try").is_none());
        assert!(
            prune_hold(dir.path(), "u").expect("try").is_some(),
            "another target"
        );
        drop(reading);
        assert!(
            prune_hold(dir.path(), "t").expect("try").is_none(),
            "one still reads"
        );
        drop(also);
        let pruning = prune_hold(dir.path(), "t").expect("try");
        assert!(pruning.is_some(), "no reader left");
        drop(pruning);
        // A data_dir where no lock file can be made (here a file): the restore goes on.
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").expect("write");
        let hold = ReadHold::acquire(&not_a_dir, "t").expect("reads without the lock");
        assert!(hold._file.is_none());
    }

    #[test]
    fn a_second_hold_in_this_process_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = TargetLock::acquire(dir.path(), "t").expect("first");
        let holder = busy(TargetLock::acquire(dir.path(), "t"));
        assert_eq!(holder, format!("pid {}", std::process::id()));
        // Another target is not held.
        drop(TargetLock::acquire(dir.path(), "u").expect("other target"));
        drop(first);
        drop(TargetLock::acquire(dir.path(), "t").expect("after the first"));
    }

    /// Takes and releases the lock of target `t`, returning a second handle on the open file
    /// that held it: what a child process started while the lock was held keeps until it
    /// executes its program.
    fn released_with_a_copy(data_dir: &Path) -> File {
        let first = TargetLock::acquire(data_dir, "t").expect("first");
        let copy = first
            .file
            .as_ref()
            .expect("a held lock has its file")
            .try_clone()
            .expect("copy");
        drop(first);
        copy
    }

    #[test]
    fn a_lock_released_here_but_held_by_a_copy_is_taken_once_the_copy_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = released_with_a_copy(dir.path());
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(copy);
        });
        let started = Instant::now();
        let again = TargetLock::acquire(dir.path(), "t").expect("taken once the copy is gone");
        assert!(started.elapsed() >= Duration::from_millis(150));
        closer.join().expect("closer");
        drop(again);
    }

    #[test]
    fn a_copy_that_stays_is_reported_busy_after_a_while() {
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = released_with_a_copy(dir.path());
        let started = Instant::now();
        let holder = busy(TargetLock::acquire(dir.path(), "t"));
        assert!(started.elapsed() >= LINGER);
        assert_eq!(holder, format!("pid {}", std::process::id()));
        drop(copy);
        drop(TargetLock::acquire(dir.path(), "t").expect("once the copy is gone"));
    }

    /// Real children, started by other threads while this one takes and drops the lock over
    /// and over (as `serve`'s workers do while its monitor and dumps start processes). Without
    /// the wait for a child's copy, most of these takes failed as busy (2,810 of 3,000).
    #[test]
    fn children_started_beside_never_make_a_released_lock_busy() {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let stop = Arc::new(AtomicBool::new(false));
        let spawners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut started = 0_u32;
                    while !stop.load(Ordering::Relaxed) {
                        std::process::Command::new("true").status().expect("true");
                        started += 1;
                    }
                    started
                })
            })
            .collect();
        let refused: Vec<String> = (0..500)
            .filter_map(|_| TargetLock::acquire(dir.path(), "t").err())
            .map(|e| e.to_string())
            .collect();
        stop.store(true, Ordering::Relaxed);
        let started: u32 = spawners
            .into_iter()
            .map(|s| s.join().expect("spawner"))
            .sum();
        assert!(started > 0, "no child was started beside the locks");
        assert!(
            refused.is_empty(),
            "{} refused: {:?}",
            refused.len(),
            refused.first()
        );
    }
}
