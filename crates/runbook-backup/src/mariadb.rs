//! MariaDB/MySQL targets: `mariadb-dump --single-transaction` (or `mysqldump`) streamed into the
//! repository; restores into a named database with the `mariadb` (or `mysql`) client.
//!
//! The password goes into a 0600 defaults file in runbook's scratch directory, named with
//! `--defaults-extra-file`: never on a command line, never in a message.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use runbook_config::Mariadb;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    Error, Result,
    dump::{DumpReader, SpawnError, feed_child},
    scratch::ScratchDir,
};

/// A connection: the tools found, and a defaults file holding the password if there is one.
pub(crate) struct Conn<'a> {
    target: &'a str,
    db: &'a Mariadb,
    password: Option<SecretString>,
    defaults: Option<PathBuf>,
    _scratch: ScratchDir,
}

fn find(tools: &[&str]) -> Option<String> {
    tools.iter().find_map(|t| {
        Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(std::process::ExitStatus::success)
            .map(|_| (*t).to_string())
    })
}

impl<'a> Conn<'a> {
    pub(crate) fn new(target: &'a str, db: &'a Mariadb, scratch_root: &Path) -> Result<Self> {
        let password = crate::database::read_password(
            target,
            &db.url,
            db.password_file.as_deref(),
            Some("MYSQL_PWD"),
        )?;
        let scratch = ScratchDir::new(scratch_root, &format!("{target}-client"))?;
        let defaults = match &password {
            Some(p) => {
                let path = scratch.join("client.cnf");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(Error::io(format!("cannot write {}", path.display())))?;
                let escaped = p.expose_secret().replace('\\', "\\\\").replace('"', "\\\"");
                writeln!(f, "[client]\npassword=\"{escaped}\"")
                    .map_err(Error::io(format!("cannot write {}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        Ok(Self {
            target,
            db,
            password,
            defaults,
            _scratch: scratch,
        })
    }

    fn command(&self, tools: &[&str], database: Option<&str>) -> Result<Command> {
        let tool = find(tools).ok_or_else(|| Error::Source {
            target: self.target.to_string(),
            path: PathBuf::from(tools[0]),
            reason: format!(
                "{} not found: install the MariaDB client (Debian: apt-get install mariadb-client)",
                tools.join(" or ")
            ),
        })?;
        let mut cmd = Command::new(tool);
        // The defaults file must be the first option.
        if let Some(d) = &self.defaults {
            cmd.arg(format!("--defaults-extra-file={}", d.display()));
        }
        let url = &self.db.url;
        cmd.arg(format!("--host={}", url.host))
            .env_remove("MYSQL_PWD");
        if let Some(port) = url.port {
            cmd.arg(format!("--port={port}"));
        }
        if !url.user.is_empty() {
            cmd.arg(format!("--user={}", url.user));
        }
        if let Some(db) = database {
            cmd.arg(db);
        }
        Ok(cmd)
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.trim().replace('\n', "; ");
        if let Some(p) = self
            .password
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .filter(|p| !p.is_empty())
        {
            out = out.replace(p, "***");
        }
        out
    }

    fn fail(&self, what: &str, detail: &str) -> Error {
        self.failed(format!("{what}: {}", self.redact(detail)))
    }

    /// The server's error, `reason` already redacted.
    pub(crate) fn failed(&self, reason: String) -> Error {
        Error::Database {
            target: self.target.to_string(),
            server: self.db.url.without_password(),
            reason,
        }
    }

    /// Runs `sql` with the client, in `database` if given; tab-separated, no headers.
    fn run(&self, database: Option<&str>, sql: &str) -> Result<String> {
        let mut cmd = self.command(&["mariadb", "mysql"], database)?;
        let out = cmd
            .args(["--batch", "--skip-column-names", "-e", sql])
            .output()
            .map_err(|e| self.fail("client", &e.to_string()))?;
        if !out.status.success() {
            return Err(self.fail("mariadb failed", &String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs one SQL statement; returns its output, trimmed.
    pub(crate) fn sql(&self, sql: &str) -> Result<String> {
        Ok(self.run(None, sql)?.trim().to_string())
    }

    /// Runs one query in `database`; returns its rows, columns split.
    pub(crate) fn rows(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        Ok(crate::postgres::split_rows(&self.run(Some(database), sql)?))
    }

    /// Starts the dump, writing to a pipe, and waits for its first bytes: it writes none until
    /// it has connected, and the database is opened first, so a dump that cannot start fails
    /// here, before the caller writes anything.
    pub(crate) fn start_dump(&self) -> Result<(DumpReader, crate::dump::FailureSlot)> {
        // mariadb-dump writes its header once connected, before it opens the database: one
        // that does not exist would fail the dump only after its first bytes, with the
        // repository of a first backup already written. The client opens it first (beside
        // the repository's key derivation, so in no time of its own).
        self.run(Some(&self.db.url.database), "SELECT 1")
            .map_err(|e| match e {
                Error::Database { reason, .. } => {
                    self.failed(format!("{reason} (no snapshot was written)"))
                }
                e => e,
            })?;
        let mut cmd = self.dump_command(&self.db.url.database)?;
        let redact = self
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_string());
        let (mut reader, failure) =
            DumpReader::spawn("mariadb-dump", &mut cmd, redact).map_err(|e| match e {
                SpawnError::Spawn(e) => self.fail("mariadb-dump", &e.to_string()),
                SpawnError::NoStdout => self.fail("mariadb-dump", "no stdout"),
            })?;
        reader
            .started()
            .map_err(|why| self.failed(self.redact(&why)))?;
        Ok((reader, failure))
    }

    /// `mariadb-dump` of `database` as a backup takes it: one transaction, with its routines,
    /// events and triggers.
    fn dump_command(&self, database: &str) -> Result<Command> {
        let mut cmd = self.command(&["mariadb-dump", "mysqldump"], None)?;
        cmd.args([
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            // Without --databases: no CREATE DATABASE/USE lines, so the dump loads into any
            // database the restore names.
            database,
        ]);
        Ok(cmd)
    }

    /// Dumps `database` into the new file `to` (owner-only), synced to disk with its
    /// directory before this returns. Returns the file, under an exclusive advisory lock for
    /// as long as the caller holds it open: a dump in use, not one left behind.
    ///
    /// The dump is written beside `to` ([`crate::restoring::partial_path`]) and given its name
    /// only once it is whole and synced: a file named `to` is always a whole dump, and one
    /// that a killed restore left half written is never taken for what the database held.
    pub(crate) fn dump_into(&self, database: &str, to: &Path) -> Result<std::fs::File> {
        let partial = crate::restoring::partial_path(to);
        let io = |what: &str, path: &Path| Error::io(format!("cannot {what} {}", path.display()));
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(io("create the directory of", to))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io("create", &partial))?;
        // Held while the file is in use (see `Engine::saved_dumps`); the kernel drops it with
        // the last process holding the file open. The file keeps it when it is renamed.
        let written = file.lock().map_err(io("lock", &partial)).and_then(|()| {
            let out = self
                .dump_command(database)?
                .stdout(file.try_clone().map_err(io("write", &partial))?)
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| self.fail("mariadb-dump", &e.to_string()))?;
            if !out.status.success() {
                return Err(self.fail("mariadb-dump failed", &String::from_utf8_lossy(&out.stderr)));
            }
            crate::failpoint("mariadb-restore-saved");
            file.sync_all().map_err(io("sync", &partial))?;
            std::fs::rename(&partial, to).map_err(io("name", to))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        // A whole dump that may not be on disk by its name: the database was not touched.
        crate::rotate::sync_dir(to).inspect_err(|_| {
            let _ = std::fs::remove_file(to);
        })?;
        Ok(file)
    }

    /// Runs the client against `database` with the dump fed through `feed`.
    pub(crate) fn restore(
        &self,
        database: &str,
        feed: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let mut cmd = self.command(&["mariadb", "mysql"], Some(database))?;
        let child = cmd
            .arg("--default-character-set=utf8mb4")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.fail("mariadb", &e.to_string()))?;
        let (fed, status, err_text) =
            feed_child(child, feed).map_err(|e| self.fail("mariadb", &e.to_string()))?;
        fed?;
        if !status.success() {
            return Err(self.fail("restore failed", &err_text));
        }
        Ok(())
    }
}
