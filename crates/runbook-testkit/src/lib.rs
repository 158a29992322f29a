//! Test helpers shared by the test suites: the PostgreSQL (127.0.0.1:5432, user `postgres`)
//! and MariaDB (127.0.0.1:3306, `root`) servers of the machine through their command-line
//! clients, and uniquely named databases that drop themselves.
//!
//! Every helper panics with the client's message on failure: they are for tests only.

use std::process::Command;

/// Runs `cmd` (a database client loading or listing a restored file) and panics with its
/// stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run the client");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `sql` in PostgreSQL database `db` with `psql`; returns its unaligned output.
pub fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-t", "-A"])
        .args(["-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
        .output()
        .expect("psql (the README's test command installs postgresql-client)");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `sql` with the `mariadb` client, in database `db` (`""`: none); returns its
/// tab-separated output without column names.
pub fn mariadb(db: &str, sql: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-uroot",
            "--batch",
            "--skip-column-names",
        ])
        .args(["--default-character-set=utf8mb4", "-e", sql])
        .args((!db.is_empty()).then_some(db))
        .output()
        .expect("mariadb (the README's test command installs mariadb-client)");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The full path of `tool` on `PATH` (for stand-in scripts that call the real one).
#[must_use]
pub fn which(tool: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A process a test started, killed (by its pid, through kill(2)) and reaped when the test
/// ends, however it ends.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `rbt_<tag>_<pid>`: a database name no other test process uses.
#[must_use]
pub fn unique_name(tag: &str) -> String {
    format!("rbt_{tag}_{}", std::process::id())
}

/// A PostgreSQL database dropped when this value is.
#[derive(Debug)]
pub struct PgDb(pub String);

impl PgDb {
    /// A new, empty database `rbt_<tag>_<pid>` (an older one of that name is dropped first).
    #[must_use]
    pub fn create(tag: &str) -> Self {
        let db = Self::absent(tag);
        psql("postgres", &format!("CREATE DATABASE {}", db.0));
        db
    }

    /// The name `rbt_<tag>_<pid>`, made sure not to exist (for restores that create it).
    #[must_use]
    pub fn absent(tag: &str) -> Self {
        let name = unique_name(tag);
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        Self(name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-q",
                "-d",
                "postgres",
                "-c",
            ])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
            .output();
    }
}

/// A MariaDB database dropped when this value is.
#[derive(Debug)]
pub struct MyDb(pub String);

impl MyDb {
    /// A new, empty utf8mb4 database `rbt_<tag>_<pid>`.
    #[must_use]
    pub fn create(tag: &str) -> Self {
        let db = Self::absent(tag);
        mariadb(
            "",
            &format!("CREATE DATABASE `{}` CHARACTER SET utf8mb4", db.0),
        );
        db
    }

    /// The name `rbt_<tag>_<pid>`, made sure not to exist.
    #[must_use]
    pub fn absent(tag: &str) -> Self {
        let name = unique_name(tag);
        mariadb("", &format!("DROP DATABASE IF EXISTS `{name}`"));
        Self(name)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-uroot", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS `{}`", self.0))
            .output();
    }
}

/// Zeroes page `pgno` (1-based, 4 KiB pages) of the SQLite database file at `path`: a
/// corruption that `PRAGMA quick_check` must find.
pub fn zero_sqlite_page(path: &std::path::Path, pgno: u64) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open the database file")
        .write_all_at(&[0_u8; 4096], (pgno - 1) * 4096)
        .expect("zero the page");
}
