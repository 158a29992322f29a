//! PostgreSQL targets: `pg_dump -Fc -Z0` streamed straight into the repository, and restores
//! with `pg_restore` into a named database.
//!
//! The password travels only in the child's environment (`PGPASSWORD`), never on a command
//! line; tool output is redacted before it reaches an error message. A dump that exits
//! nonzero or is empty aborts the backup before any snapshot is written (see [`DumpReader`]).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use runbook_config::Postgres;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    Error, Result,
    dump::{DumpReader, SpawnError, feed_child},
};

/// What a tool needs to reach the database.
pub(crate) struct Conn<'a> {
    pub target: &'a str,
    pub pg: &'a Postgres,
    pub password: Option<SecretString>,
}

impl Conn<'_> {
    pub(crate) fn new<'a>(target: &'a str, pg: &'a Postgres) -> Result<Conn<'a>> {
        let password = crate::database::read_password(
            target,
            &pg.url,
            pg.password_file.as_deref(),
            Some("PGPASSWORD"),
        )?;
        Ok(Conn {
            target,
            pg,
            password,
        })
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.pg
            .pg_bin_dir
            .as_ref()
            .map_or_else(|| PathBuf::from(name), |d| d.join(name))
    }

    /// A command for `tool` with the connection in its environment, never in its arguments.
    pub(crate) fn command(&self, tool: &str, database: &str) -> Command {
        let mut cmd = Command::new(self.tool(tool));
        let url = &self.pg.url;
        cmd.env("PGHOST", &url.host)
            .env("PGDATABASE", database)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGPASSWORD");
        if let Some(port) = url.port {
            cmd.env("PGPORT", port.to_string());
        }
        if !url.user.is_empty() {
            cmd.env("PGUSER", &url.user);
        }
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p.expose_secret());
        }
        // Over loopback, TLS protects nothing (the bytes never leave the kernel, and libpq's
        // default `prefer` does not authenticate the server anyway), yet the server and the
        // tool each run a cipher over every byte of a dump. `allow` connects without it, and
        // with it when the server insists (a `hostssl` line). The user's PGSSLMODE, or a
        // service file that may set one, wins.
        if crate::database::is_loopback(&url.host)
            && ["PGSSLMODE", "PGSERVICE", "PGREQUIRESSL"]
                .iter()
                .all(|v| std::env::var_os(v).is_none())
        {
            cmd.env("PGSSLMODE", "allow");
        }
        cmd
    }

    /// Removes the password from tool output.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.trim().replace('\n', "; ");
        if let Some(p) = &self.password
            && !p.expose_secret().is_empty()
        {
            out = out.replace(p.expose_secret(), "***");
        }
        out
    }

    fn missing(&self, tool: &str, e: &std::io::Error) -> Error {
        Error::Source {
            target: self.target.to_string(),
            path: self.tool(tool),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{tool} not found: install the PostgreSQL client (Debian: apt-get install postgresql-client) or set pg_bin_dir"
                )
            } else {
                e.to_string()
            },
        }
    }

    fn fail(&self, what: &str, detail: &str) -> Error {
        self.failed(format!("{what}: {}", self.redact(detail)))
    }

    /// The server's error, `reason` already redacted.
    fn failed(&self, reason: String) -> Error {
        Error::Database {
            target: self.target.to_string(),
            server: self.pg.url.without_password(),
            reason,
        }
    }

    /// Runs `sql` with `psql` against `database`: unaligned, tuples only, tab-separated.
    fn run(&self, database: &str, sql: &str) -> Result<String> {
        let out = self
            .command("psql", database)
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| self.missing("psql", &e))?;
        if !out.status.success() {
            return Err(self.fail("psql failed", &String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs one SQL statement with `psql` against `database`; returns its output, trimmed.
    pub(crate) fn psql(&self, database: &str, sql: &str) -> Result<String> {
        Ok(self.run(database, sql)?.trim().to_string())
    }

    /// Runs one query with `psql` against `database`; returns its rows, columns split.
    pub(crate) fn rows(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        Ok(split_rows(&self.run(database, sql)?))
    }

    /// Why a dump that failed before its first byte failed: a server newer than the local
    /// `pg_dump` (which refuses it) is named with what to install; otherwise `why`, what the
    /// tool said.
    fn failed_start(&self, why: String) -> Error {
        self.version_mismatch()
            .unwrap_or_else(|| self.failed(self.redact(&why)))
    }

    /// A server newer than the local `pg_dump`, as the error that says what to install; `None`
    /// when the versions match or cannot be read (the dump's own error then stands).
    fn version_mismatch(&self) -> Option<Error> {
        let out = self
            .command("pg_dump", &self.pg.url.database)
            .arg("--version")
            .output()
            .ok()?;
        let client: u32 = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .find_map(|w| w.split('.').next().and_then(|m| m.parse().ok()))?;
        let server = self
            .psql(&self.pg.url.database, "SHOW server_version_num")
            .ok()?
            .parse::<u32>()
            .ok()?
            / 10_000;
        (server > client).then(|| self.fail(
            "version mismatch",
            &format!("server is PostgreSQL {server} but pg_dump is {client}; install postgresql-client-{server} or set pg_bin_dir to its bin directory"),
        ))
    }

    /// Starts `pg_dump` in custom format without compression, writing to a pipe, and waits
    /// for its first bytes: it writes none until it has connected and read the catalog, so a
    /// dump that cannot start fails here, before the caller writes anything.
    ///
    /// `pg_dump` refuses a server newer than itself; the versions are compared only then, for
    /// an error that says what to install, which keeps two more tool starts (each through
    /// Debian's Perl wrapper) off every backup that works.
    pub(crate) fn start_dump(&self) -> Result<(DumpReader, crate::dump::FailureSlot)> {
        let mut cmd = self.command("pg_dump", &self.pg.url.database);
        // `--blobs` (not `--large-objects`, which needs pg_dump 16): large objects are included.
        cmd.args([
            "--format=custom",
            "--compress=0",
            "--no-password",
            "--blobs",
        ]);
        for s in &self.pg.schemas {
            cmd.arg(format!("--schema={s}"));
        }
        for t in &self.pg.exclude_tables {
            cmd.arg(format!("--exclude-table={t}"));
        }
        let redact = self
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_string());
        let (mut reader, failure) =
            DumpReader::spawn("pg_dump", &mut cmd, redact).map_err(|e| match e {
                SpawnError::Spawn(e) => self.missing("pg_dump", &e),
                SpawnError::NoStdout => self.fail("pg_dump", "no stdout"),
            })?;
        reader.started().map_err(|why| self.failed_start(why))?;
        Ok((reader, failure))
    }

    /// Runs `pg_restore` into `database`, feeding it the dump through `feed`.
    /// With `staged` (a dump file) and `jobs > 1`, restores in parallel from the file;
    /// otherwise streams the dump through stdin in one transaction.
    pub(crate) fn restore(
        &self,
        database: &str,
        keep_owners: bool,
        parallel: Option<(&Path, u32)>,
        feed: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let mut cmd = self.command("pg_restore", database);
        cmd.args(["--no-password", "--exit-on-error"]);
        match parallel {
            Some((file, jobs)) => {
                cmd.arg(format!("--jobs={jobs}")).arg(file);
            }
            None => {
                cmd.arg("--single-transaction");
            }
        }
        cmd.args(["--dbname", database]);
        if !keep_owners {
            cmd.args(["--no-owner", "--no-privileges"]);
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.missing("pg_restore", &e))?;
        let (fed, status, err_text) =
            feed_child(child, feed).map_err(|e| self.fail("pg_restore", &e.to_string()))?;
        fed?;
        if !status.success() {
            return Err(self.fail("pg_restore failed", &err_text));
        }
        Ok(())
    }
}

/// Tab-separated lines into rows of columns (empty lines dropped).
pub(crate) fn split_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Database names runbook creates or drops are plain identifiers (no quoting games).
pub(crate) fn check_db_name(target: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::DatabaseName {
            target: target.to_string(),
            name: name.to_string(),
            reason: "use letters, digits and '_' (at most 63, not starting with a digit)",
        })
    }
}
