//! A scratch workspace with a config, and a way to run the real `runbook` binary in it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts failure with one error line containing every needle in `needles`, after
    /// warning lines (`runbook: warning: …`) that contain, each in one, every needle in `warned`.
    pub fn fails_after_warnings(self, needles: &[&str], warned: &[&str]) -> Self {
        let (warnings, errors): (Vec<&str>, Vec<&str>) = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .partition(|l| l.starts_with("runbook: warning: "));
        for w in warned {
            assert!(
                warnings.iter().any(|l| l.contains(w)),
                "no warning with {w:?} in {:?}",
                self.stderr
            );
        }
        let only_error = Run {
            code: self.code,
            stdout: self.stdout.clone(),
            stderr: errors.join("\n"),
        };
        only_error.fails_with(needles);
        self
    }

    /// Asserts failure with exactly one error line on stderr that contains every needle.
    pub fn fails_with(self, needles: &[&str]) -> Self {
        assert_ne!(self.code, 0, "expected failure\nstdout: {}", self.stdout);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one error line, got: {:?}",
            self.stderr
        );
        for n in needles {
            assert!(self.stderr.contains(n), "{n:?} not in {:?}", self.stderr);
        }
        self
    }
}

impl Workspace {
    /// A workspace whose `runbook.toml` is `config` (paths relative to the workspace) and whose
    /// repository password file holds [`PASSWORD`].
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("runbook.toml"), config).expect("write config");
        std::fs::create_dir_all(dir.path().join("runbook-data")).expect("data dir");
        std::fs::write(
            dir.path().join("runbook-data/repo.key"),
            format!("{PASSWORD}\n"),
        )
        .expect("key");
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
        cmd.current_dir(self.dir.path())
            .args(args)
            .env_remove("RUNBOOK_CONFIG")
            .env_remove("RUNBOOK_REPOSITORY_PASSWORD")
            // runbook sets glibc's tunables for itself unless they are set (main.rs).
            .env_remove("GLIBC_TUNABLES");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        output(self.command(args).output().expect("run runbook"))
    }

    /// The workspace path without its leading `/`: where a restore puts the workspace's files
    /// below the destination (snapshots record absolute source paths).
    pub fn root_rel(&self) -> String {
        let root = self.dir.path().to_str().expect("utf8 temp path");
        root.trim_start_matches('/').to_string()
    }

    pub fn repo(&self, target: &str) -> PathBuf {
        self.path(&format!("runbook-data/repo/{target}"))
    }

    /// Runs Debian's `restic` against a target's repository.
    pub fn restic(&self, target: &str, args: &[&str]) -> Run {
        let out = Command::new("restic")
            .arg("-r")
            .arg(self.repo(target))
            .arg("--password-file")
            .arg(self.path("runbook-data/repo.key"))
            .arg("--no-cache")
            .args(args)
            .output()
            .expect("restic is installed (the README test command installs it)");
        output(out)
    }

    /// Stock restic restores `target`'s newest snapshot into a fresh directory, returned.
    pub fn restic_restore_latest(&self, target: &str) -> PathBuf {
        let out = self.path(&format!("restic-{target}-latest"));
        let _ = std::fs::remove_dir_all(&out);
        self.restic(
            target,
            &["restore", "latest", "--target", out.to_str().expect("utf8")],
        )
        .ok();
        out
    }

    pub fn snapshot_ids(&self, target: &str) -> Vec<String> {
        let run = self.run(&["snapshots", target, "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        v.as_array()
            .expect("array")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    }
}

pub fn output(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A SQLite database at `path` with `rows` rows in `items` (WAL mode).
pub fn make_db(path: &Path, rows: usize) {
    let mut conn = rusqlite::Connection::open(path).expect("open db");
    conn.pragma_update(None, "journal_mode", "wal")
        .expect("wal");
    let tx = conn.transaction().expect("tx");
    tx.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
        .expect("schema");
    for i in 0..rows {
        tx.execute(
            "INSERT INTO items (body) VALUES (?1)",
            [format!("item {i} {}", "x".repeat(i % 300))],
        )
        .expect("insert");
    }
    tx.commit().expect("commit");
}

pub fn count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

pub fn sqlite_config(db: &str) -> String {
    format!("[targets.db]\nkind = \"sqlite\"\npath = \"{db}\"\nkeep = {{ last = 2 }}\n")
}

pub fn files_config() -> &'static str {
    "[targets.files]\nkind = \"files\"\npaths = [\"src\"]\nexclude = [\"*.tmp\"]\n"
}

/// Deterministic pseudo-random bytes (incompressible, no repeats), for data that must not
/// deduplicate or compress away.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
