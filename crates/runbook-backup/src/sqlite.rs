//! Consistent copies of a live SQLite database.
//!
//! The copy is one step of SQLite's online backup API: a single read transaction for the whole
//! copy, so in WAL mode writers go on undisturbed and the copy is exactly one committed state
//! (a paged backup would restart whenever another process commits). The backup API keeps every
//! page at its position, which is what lets fixed-size chunks deduplicate day to day; `VACUUM
//! INTO` would rebuild the file and move pages.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, backup::Backup};

use crate::{Error, Result};

/// How long to wait for a writer that holds the database exclusively (rollback-journal mode).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A live database opened read-only and checked to be SQLite.
pub(crate) struct Source {
    conn: Connection,
    /// The database page size: the repository's chunk size.
    pub page_size: u32,
}

impl Source {
    /// Opens `path` read-only and makes sure it is a SQLite database.
    pub(crate) fn open(target: &str, path: &Path) -> Result<Self> {
        let conn = open_source(target, path)?;
        let page_size = conn
            .query_row("PRAGMA page_size", [], |r| r.get::<_, u32>(0))
            .map_err(|e| not_sqlite(target, path, &e))?;
        Ok(Self { conn, page_size })
    }
}

fn open_source(target: &str, path: &Path) -> Result<Connection> {
    let source = |reason: String| Error::Source {
        target: target.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    // Opening a FIFO blocks until a writer appears, forever, holding the target lock: refuse
    // anything that is not a regular file before opening it (symlinks to files are fine).
    let meta = std::fs::metadata(path).map_err(|e| source(e.to_string()))?;
    if !meta.is_file() {
        return Err(source(format!(
            "not a regular file ({}); a sqlite target is the database file itself",
            crate::file_type_name(&meta)
        )));
    }
    std::fs::File::open(path).map_err(|e| source(e.to_string()))?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_sqlite(target, path, &e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| not_sqlite(target, path, &e))?;
    // Reading the schema is what fails on a file that is not a database.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| not_sqlite(target, path, &e))?;
    Ok(conn)
}

fn not_sqlite(target: &str, path: &Path, e: &rusqlite::Error) -> Error {
    Error::NotSqlite {
        target: target.to_string(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Copies the database at `src` into the new file `dest` in one read transaction. The copy
/// is not checked yet: [`Checker`] runs `PRAGMA integrity_check` on it.
/// Returns the seconds the copy took.
pub(crate) fn consistent_copy(
    target: &str,
    source: Source,
    src: &Path,
    dest: &Path,
) -> Result<f64> {
    let started = std::time::Instant::now();
    let source = source.conn;
    let mut copy = Connection::open(dest).map_err(|e| Error::Io {
        context: format!("cannot create scratch copy {}", dest.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    // The scratch copy needs no durability of its own (the repository syncs what it stores):
    // no journal and no fsync while it is written.
    copy.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        .map_err(|e| Error::Io {
            context: format!("cannot prepare scratch copy {}", dest.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
    {
        let backup = Backup::new(&source, &mut copy).map_err(|e| Error::Source {
            target: target.to_string(),
            path: src.to_path_buf(),
            reason: format!("backup API: {e}"),
        })?;
        // -1: all pages in one step, under one read transaction.
        backup.step(-1).map_err(|e| Error::Source {
            target: target.to_string(),
            path: src.to_path_buf(),
            reason: format!("backup API: {e}"),
        })?;
    }
    drop(source);
    Ok(started.elapsed().as_secs_f64())
}

/// `PRAGMA integrity_check` of a backup copy on a thread of its own, so it runs beside the
/// upload of the same file.
pub(crate) struct Checker(std::thread::JoinHandle<Result<()>>);

impl Checker {
    pub(crate) fn spawn(target: &str, copy: &Path) -> Self {
        let (target, copy) = (target.to_string(), copy.to_path_buf());
        Self(std::thread::spawn(move || {
            check_file(&target, &copy, "the backup copy", Check::Full)
        }))
    }

    /// Waits for the check's verdict.
    pub(crate) fn wait(self) -> Result<()> {
        self.0.join().unwrap_or_else(|_| {
            Err(Error::Io {
                context: "the integrity check stopped".into(),
                source: std::io::Error::other("its thread panicked"),
            })
        })
    }
}

/// The backup copy as the archiver reads it. At its end the reader waits for the copy's
/// integrity check: a failed check unwinds with `StreamFailed`, which aborts the backup before
/// its snapshot is written (the check's error is left in `failed`).
pub(crate) struct CheckedRead {
    pub(crate) file: std::fs::File,
    pub(crate) checker: Option<Checker>,
    /// What the check found, when it failed.
    pub(crate) failed: std::sync::Arc<std::sync::Mutex<Option<Error>>>,
    /// Seconds the reader waited for the check at the end.
    pub(crate) waited: std::sync::Arc<std::sync::Mutex<f64>>,
}

impl std::io::Read for CheckedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(checker) = self.checker.take()
        {
            let started = std::time::Instant::now();
            let verdict = checker.wait();
            *self
                .waited
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                started.elapsed().as_secs_f64();
            if let Err(e) = verdict {
                let why = e.to_string();
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                std::panic::resume_unwind(Box::new(crate::dump::StreamFailed(why)));
            }
        }
        Ok(n)
    }
}

/// How thoroughly to check a database file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// `PRAGMA integrity_check`: structure, and every index against its table.
    Full,
    /// `PRAGMA quick_check`: structure only, in linear time. Enough for a restored file: its
    /// bytes are authenticated by the repository against a copy that passed `Full`.
    Quick,
}

/// Checks the database file at `path`.
pub(crate) fn check_file(
    target: &str,
    path: &Path,
    what: &'static str,
    check: Check,
) -> Result<()> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
            Error::Integrity {
                target: target.to_string(),
                what,
                detail: e.to_string(),
            }
        })?;
    integrity_check(target, &conn, what, check)
}

fn integrity_check(
    target: &str,
    conn: &Connection,
    what: &'static str,
    check: Check,
) -> Result<()> {
    let fail = |detail: String| Error::Integrity {
        target: target.to_string(),
        what,
        detail,
    };
    let mut stmt = conn
        .prepare(match check {
            Check::Full => "PRAGMA integrity_check(5)",
            Check::Quick => "PRAGMA quick_check(5)",
        })
        .map_err(|e| fail(e.to_string()))?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(Iterator::collect)
        .map_err(|e| fail(e.to_string()))?;
    if lines == ["ok"] {
        Ok(())
    } else {
        // SQLite's findings carry line breaks of their own; the error stays one line.
        let found: Vec<&str> = lines
            .iter()
            .flat_map(|l| l.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        Err(fail(found.join("; ")))
    }
}

/// The `-wal`, `-shm` and `-journal` files SQLite keeps beside `db`.
pub(crate) fn sidecars(db: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| {
            let mut p = db.as_os_str().to_owned();
            p.push(s);
            PathBuf::from(p)
        })
        .collect()
}
