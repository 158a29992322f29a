//! One committed state of a live SQLite database, read page by page.
//!
//! A database in WAL mode is read in place: its pages stream from one read transaction
//! (`sqlite_dbpage`) while a second read transaction at the same commit runs the integrity
//! check, so there is no scratch copy and writers go on undisturbed. Any other database is
//! first copied in one step of SQLite's online backup API (in rollback-journal mode a reader
//! holds writers off: for the copy only, not for the whole upload), and the copy is read and
//! checked instead. Both keep every page at its position, which is what lets fixed-size
//! chunks deduplicate day to day; `VACUUM INTO` would rebuild the file and move pages.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crossbeam_channel::{Receiver, Sender, bounded};
use rusqlite::{Connection, OpenFlags, backup::Backup};

use crate::{Error, Result};

/// How long to wait for a writer that holds the database exclusively (rollback-journal mode).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for the write lock that pins a WAL database's two read transactions to
/// one commit; a writer holding it longer (a long import) gets a copy made instead.
const GATE_TIMEOUT: Duration = Duration::from_secs(2);

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

    /// The database at one commit, read in place: [`Reading::Pinned`] when it is in WAL mode
    /// and this build of SQLite reads raw pages; otherwise it needs a copy, and the source
    /// comes back as [`Reading::Copy`] (so does a file we may not open for writing: see below).
    pub(crate) fn pin(self, target: &str, path: &Path) -> Result<Reading> {
        let source = |e: rusqlite::Error| Error::Source {
            target: target.to_string(),
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(source)?;
        if !mode.eq_ignore_ascii_case("wal") || self.conn.prepare(PAGES).is_err() {
            return Ok(Reading::Copy(self));
        }
        // Both read transactions must begin at the same commit: a third connection takes the
        // write lock for that moment (writers wait a few milliseconds; nothing is written).
        // Without write access to the file, or while a writer keeps the lock, copy instead
        // (the copy needs no write lock).
        let Ok(gate) = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) else {
            return Ok(Reading::Copy(self));
        };
        gate.busy_timeout(GATE_TIMEOUT).map_err(source)?;
        if gate.execute_batch("BEGIN IMMEDIATE").is_err() {
            return Ok(Reading::Copy(self));
        }
        let check = open_source(target, path)?;
        let begin = |c: &Connection| {
            c.execute_batch("BEGIN")?;
            c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
        };
        begin(&self.conn).map_err(source)?;
        begin(&check).map_err(source)?;
        gate.execute_batch("ROLLBACK").map_err(source)?;
        drop(gate);
        let pages: u64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(source)?;
        Ok(Reading::Pinned(Pinned {
            size: pages * u64::from(self.page_size),
            page_size: self.page_size,
            pages: self.conn,
            check,
        }))
    }
}

/// Every page of the database in order, as its read transaction sees them (the WAL's newer
/// pages included).
const PAGES: &str = "SELECT data FROM sqlite_dbpage ORDER BY pgno";

/// How a backup reads a database: in place, or from a copy.
pub(crate) enum Reading {
    Pinned(Pinned),
    Copy(Source),
}

/// Two read transactions of a live database at the same commit.
pub(crate) struct Pinned {
    /// The database's size at that commit.
    pub size: u64,
    page_size: u32,
    pages: Connection,
    check: Connection,
}

impl Pinned {
    /// Starts `PRAGMA integrity_check` on one transaction and the reading of the pages on the
    /// other; the pages read as one file.
    pub(crate) fn start(self, target: &str) -> (PageStream, Checker) {
        let checker = Checker::start(target, self.check, "the database");
        // Two chunks in flight: the next is read while the upload takes the last. Read chunks
        // come back through `spare` to be filled again.
        let (tx, rx) = bounded(2);
        let (spare, spare_rx) = bounded::<Vec<u8>>(3);
        let (conn, page_size) = (self.pages, self.page_size as usize);
        let empty = move || {
            spare_rx.try_recv().map_or_else(
                |_| Vec::with_capacity(STREAM_CHUNK),
                |mut v| {
                    v.clear();
                    v
                },
            )
        };
        std::thread::spawn(move || {
            let sent = (|| -> std::result::Result<(), String> {
                let mut stmt = conn.prepare(PAGES).map_err(|e| e.to_string())?;
                let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
                let mut chunk = empty();
                while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                    let page = row
                        .get_ref(0)
                        .and_then(|v| Ok(v.as_blob()?))
                        .map_err(|e| e.to_string())?;
                    if page.len() != page_size {
                        return Err(format!(
                            "a page of {} bytes in a database of {page_size}-byte pages",
                            page.len()
                        ));
                    }
                    chunk.extend_from_slice(page);
                    if chunk.len() >= STREAM_CHUNK {
                        let full = std::mem::replace(&mut chunk, empty());
                        if tx.send(Ok(Some(full))).is_err() {
                            // The upload stopped: nobody reads on.
                            return Ok(());
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.send(Ok(Some(chunk)));
                }
                let _ = tx.send(Ok(None));
                Ok(())
            })();
            if let Err(e) = sent {
                let _ = tx.send(Err(e));
            }
        });
        (
            PageStream {
                rx,
                spare,
                chunk: Vec::new(),
                at: 0,
                done: false,
            },
            checker,
        )
    }
}

/// The bytes the page reader hands over at once.
const STREAM_CHUNK: usize = 1 << 20;

/// The pages of a [`Pinned`] database as one file. It ends only where the page reader says
/// it has read every page: a reader that fails or stops is an error, never a short file.
pub(crate) struct PageStream {
    rx: Receiver<std::result::Result<Option<Vec<u8>>, String>>,
    /// Where read chunks go back to the page reader.
    spare: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    /// The reader has said it read every page.
    done: bool,
}

impl std::io::Read for PageStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(Some(chunk))) => {
                    let read = std::mem::replace(&mut self.chunk, chunk);
                    if read.capacity() > 0 {
                        let _ = self.spare.try_send(read);
                    }
                    self.at = 0;
                }
                Ok(Ok(None)) => self.done = true,
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Err(std::io::Error::other("the page reader stopped")),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
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

/// `PRAGMA integrity_check` of what a backup uploads, on a thread of its own, so it runs
/// beside the upload. Dropped before its verdict was asked for (the backup failed or stopped),
/// it interrupts the check instead of letting it run on.
pub(crate) struct Checker {
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    stop: Option<rusqlite::InterruptHandle>,
}

impl Checker {
    /// Checks the backup copy at `copy`.
    pub(crate) fn spawn(target: &str, copy: &Path) -> Result<Self> {
        let what = "the backup copy";
        Ok(Self::start(target, open_check(target, copy, what)?, what))
    }

    fn start(target: &str, conn: Connection, what: &'static str) -> Self {
        let target = target.to_string();
        let stop = conn.get_interrupt_handle();
        let thread = std::thread::spawn(move || integrity_check(&target, &conn, what, Check::Full));
        Self {
            thread: Some(thread),
            stop: Some(stop),
        }
    }

    /// Waits for the check's verdict.
    pub(crate) fn wait(mut self) -> Result<()> {
        self.stop = None;
        let panicked = || {
            Err(Error::Io {
                context: "the integrity check stopped".into(),
                source: std::io::Error::other("its thread panicked"),
            })
        };
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| panicked()),
            None => panicked(),
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.interrupt();
        }
    }
}

/// The backup copy as the backup reads it. At its end the reader waits for the copy's
/// integrity check: a failed check unwinds with `StreamFailed`, which aborts the backup before
/// its snapshot is written (the check's error is left in `failed`).
pub(crate) struct CheckedRead {
    pub(crate) file: Box<dyn std::io::Read + Send>,
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
    integrity_check(target, &open_check(target, path, what)?, what, check)
}

/// Opens the database file at `path`, `what`, to check it.
fn open_check(target: &str, path: &Path, what: &'static str) -> Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
        Error::Integrity {
            target: target.to_string(),
            what,
            detail: e.to_string(),
        }
    })
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

/// The suffixes of the files SQLite keeps beside a database: its WAL, the WAL's index and
/// the rollback journal.
pub(crate) const SIDECARS: &[&str] = &["-wal", "-shm", "-journal"];

/// The `-wal`, `-shm` and `-journal` files SQLite keeps beside `db`.
pub(crate) fn sidecars(db: &Path) -> Vec<PathBuf> {
    SIDECARS
        .iter()
        .map(|s| crate::restore::with_suffix(db, s))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A WAL-mode database with `rows` rows in `t`, and its writer connection, still open
    /// and never checkpointing: the rows live in the WAL, not in the main file.
    fn wal_db(path: &Path, rows: i64) -> Connection {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE INDEX t_v ON t (v);",
        )
        .expect("schema");
        add_rows(&conn, rows);
        conn
    }

    fn add_rows(conn: &Connection, rows: i64) {
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO t (v) SELECT printf('value %08d %s', i, randomblob(50)) FROM n",
            [rows],
        )
        .expect("rows");
    }

    fn pinned(path: &Path) -> Pinned {
        match Source::open("db", path).expect("source").pin("db", path) {
            Ok(Reading::Pinned(p)) => p,
            Ok(Reading::Copy(_)) => panic!("a WAL database must be read in place"),
            Err(e) => panic!("{e}"),
        }
    }

    /// The quick check of a restored file finds a page of the table zeroed (and passes
    /// before).
    #[test]
    fn the_quick_check_finds_a_zeroed_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("restored.db");
        let root: u64 = {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
                .expect("schema");
            add_rows(&conn, 5000);
            conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
                [],
                |r| r.get(0),
            )
            .expect("rootpage")
        };
        check_file("db", &path, "the restored database", Check::Quick).expect("intact");
        runbook_testkit::zero_sqlite_page(&path, root);
        let err = check_file("db", &path, "the restored database", Check::Quick)
            .expect_err("a zeroed table root fails the check");
        assert!(
            matches!(err, Error::Integrity { .. }),
            "an integrity error: {err}"
        );
    }

    /// The pages read in place are the database at the commit where it was pinned: the
    /// WAL's rows included, a commit made while it is read left out (and not held off), and
    /// the check passes.
    #[test]
    fn a_wal_database_is_read_in_place_at_one_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.db");
        let writer = wal_db(&path, 5000);
        let pinned = pinned(&path);
        assert_eq!(pinned.page_size, 4096);
        let size = pinned.size;
        // A writer commits while the database is pinned (it would wait, then fail, if the
        // pin held writers off).
        writer.busy_timeout(Duration::ZERO).expect("timeout");
        add_rows(&writer, 1000);
        let (mut pages, checker) = pinned.start("db");
        let mut bytes = Vec::new();
        pages.read_to_end(&mut bytes).expect("pages");
        checker.wait().expect("check");
        assert_eq!(bytes.len() as u64, size);
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, &bytes).expect("write");
        let conn = Connection::open(&copy).expect("open copy");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 5000, "the rows of the pinned commit, in the WAL only");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok");
        let live: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(live, 6000);
    }

    /// A WAL database whose write lock a writer keeps (a long import) is copied rather than
    /// waited for: the copy needs no write lock.
    #[test]
    fn a_wal_database_locked_by_a_long_write_is_copied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.db");
        let writer = wal_db(&path, 10);
        writer.execute_batch("BEGIN IMMEDIATE").expect("lock");
        add_rows(&writer, 10);
        let source = Source::open("db", &path).expect("source");
        assert!(matches!(
            source.pin("db", &path).expect("pin"),
            Reading::Copy(_)
        ));
        writer.execute_batch("COMMIT").expect("commit");
        assert!(matches!(
            Source::open("db", &path)
                .expect("source")
                .pin("db", &path)
                .expect("pin"),
            Reading::Pinned(_)
        ));
    }

    /// A database in rollback-journal mode is copied: reading it in place would hold its
    /// writers off for the whole upload.
    #[test]
    fn a_rollback_journal_database_is_copied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (v); INSERT INTO t VALUES (1);")
            .expect("fill");
        let source = Source::open("db", &path).expect("source");
        assert!(matches!(
            source.pin("db", &path).expect("pin"),
            Reading::Copy(_)
        ));
    }

    /// The check of a pinned database runs on its second transaction and reports what it
    /// finds: an index page overwritten fails it, though every page still reads.
    #[test]
    fn a_pinned_database_failing_its_check_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.db");
        let root: u64 = {
            let conn = wal_db(&path, 20_000);
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .expect("checkpoint");
            conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 't_v'",
                [],
                |r| r.get(0),
            )
            .expect("root")
        };
        runbook_testkit::zero_sqlite_page(&path, root);
        let (mut pages, checker) = pinned(&path).start("db");
        let mut bytes = Vec::new();
        pages.read_to_end(&mut bytes).expect("every page reads");
        let err = checker.wait().expect_err("the check must fail");
        assert!(
            matches!(err, Error::Integrity { .. }),
            "an integrity failure: {err}"
        );
    }
}
