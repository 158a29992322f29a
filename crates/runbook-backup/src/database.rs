//! A live database server a target points at: for drills, which restore into a scratch
//! database, compare it with the source, and drop it again.

use std::{path::Path, sync::Arc};

use runbook_config::{DbUrl, TargetKind};

use crate::{
    Error, Result,
    kinds::{self, DbCx, DbKind},
    postgres,
};

/// The server of a PostgreSQL or MariaDB target (or the drill server that stands in for it).
#[derive(Debug, Clone)]
pub struct Database {
    target: String,
    pub(crate) server: Arc<dyn DbKind>,
    scratch_root: std::path::PathBuf,
}

impl Database {
    /// The server `kind` lives on, or `server` instead when given.
    ///
    /// # Errors
    /// [`Error::Usage`] for a target that is not a database.
    pub(crate) fn new(
        target: &str,
        kind: &TargetKind,
        server: Option<&DbUrl>,
        scratch_root: &Path,
    ) -> Result<Self> {
        let server = kinds::of(kind)
            .database(server)
            .ok_or_else(|| Error::Usage {
                target: target.to_string(),
                message: "not a database target".into(),
            })?;
        Ok(Self {
            target: target.to_string(),
            server,
            scratch_root: scratch_root.to_path_buf(),
        })
    }

    pub(crate) fn cx(&self) -> DbCx<'_> {
        DbCx {
            target: &self.target,
            scratch_root: &self.scratch_root,
        }
    }

    /// `postgres` or `mariadb`.
    #[must_use]
    pub fn engine(&self) -> &'static str {
        self.server.engine()
    }

    /// The target's own database (the source of its backups).
    #[must_use]
    pub fn source_database(&self) -> &str {
        &self.server.url().database
    }

    /// Runs `sql` in `database`; returns the rows, columns split.
    ///
    /// # Errors
    /// Connection or query failure (the message never holds the password).
    pub fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        self.server.rows(&self.cx(), database, sql)
    }

    /// Databases on the server whose name starts with `prefix`.
    ///
    /// # Errors
    /// Connection or query failure.
    pub fn databases(&self, prefix: &str) -> Result<Vec<String>> {
        postgres::check_db_name(&self.target, prefix)?;
        self.server.databases(&self.cx(), prefix)
    }

    /// Drops `database` if it exists (closing its connections on PostgreSQL).
    ///
    /// # Errors
    /// Bad name, connection or query failure.
    pub fn drop_database(&self, database: &str) -> Result<()> {
        postgres::check_db_name(&self.target, database)?;
        self.server.drop_database(&self.cx(), database)
    }

    /// A connection URL for `database`, password included: for a child process's
    /// environment only, never for a message or a command line.
    ///
    /// # Errors
    /// An unreadable password file.
    pub fn connection_url(&self, database: &str) -> Result<String> {
        let url = self.url();
        let password = self.password()?;
        let scheme = if url.scheme == "postgres" {
            "postgresql"
        } else {
            "mysql"
        };
        let auth = match (url.user.as_str(), password) {
            ("", _) => String::new(),
            (u, None) => format!("{}@", encode(u)),
            (u, Some(p)) => format!("{}:{}@", encode(u), encode(&p)),
        };
        let port = url.port.map(|p| format!(":{p}")).unwrap_or_default();
        Ok(format!("{scheme}://{auth}{}{port}/{database}", url.host))
    }

    /// The variables the server's own clients and most applications read to connect to
    /// `database`: `DATABASE_URL`, plus `PGHOST`/`PGPORT`/`PGUSER`/`PGPASSWORD`/`PGDATABASE`
    /// for PostgreSQL or `MYSQL_HOST`/`MYSQL_TCP_PORT`/`MYSQL_USER`/`MYSQL_PWD`/
    /// `MYSQL_PASSWORD`/`MYSQL_DATABASE` for MariaDB. The password is in them: give them only
    /// to a child process's environment.
    ///
    /// # Errors
    /// When the `password_file` cannot be read.
    pub fn client_env(&self, database: &str) -> Result<Vec<(&'static str, String)>> {
        let url = self.url();
        let password = self.password()?;
        let mut env = vec![("DATABASE_URL", self.connection_url(database)?)];
        let port = url.port.map(|p| p.to_string());
        let names: [&'static str; 5] = if url.scheme == "postgres" {
            ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"]
        } else {
            [
                "MYSQL_HOST",
                "MYSQL_TCP_PORT",
                "MYSQL_USER",
                "MYSQL_DATABASE",
                "MYSQL_PWD",
            ]
        };
        env.push((names[0], url.host.clone()));
        if let Some(port) = port {
            env.push((names[1], port));
        }
        if !url.user.is_empty() {
            env.push((names[2], url.user.clone()));
        }
        env.push((names[3], database.to_string()));
        if let Some(p) = password {
            if url.scheme != "postgres" {
                env.push(("MYSQL_PASSWORD", p.clone()));
            }
            env.push((names[4], p));
        }
        Ok(env)
    }

    fn url(&self) -> &DbUrl {
        self.server.url()
    }

    /// The password: from `password_file` (read as restic reads one), else the URL's.
    fn password(&self) -> Result<Option<String>> {
        read_password(
            &self.target,
            self.server.url(),
            self.server.password_file(),
            None,
        )
        .map(|p| p.map(|p| secrecy::ExposeSecret::expose_secret(&p).to_string()))
    }
}

/// A database password: from `file` (its line end trimmed, as the clients read one), else
/// the URL's, else the environment variable `env` when given.
///
/// # Errors
/// [`Error::Source`] when `file` cannot be read.
pub(crate) fn read_password(
    target: &str,
    url: &DbUrl,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<secrecy::SecretString>> {
    Ok(match (file, url.password()) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f).map_err(|e| Error::Source {
                target: target.to_string(),
                path: f.to_path_buf(),
                reason: format!("cannot read password_file: {e}"),
            })?;
            Some(text.trim_end_matches(['\n', '\r']).to_string().into())
        }
        (None, Some(p)) => Some(p.to_string().into()),
        (None, None) => env.and_then(|v| std::env::var(v).ok()).map(Into::into),
    })
}

/// Percent-encodes what a URL's user or password part cannot hold literally (the result is
/// also safe as one file name).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `host` (a name, an address or a socket directory) is this machine's loopback.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_hosts_are_told_from_others() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.8.9.1",
            "::1",
            "[::1]",
            "/run/postgresql",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "db.internal",
            "10.0.0.5",
            "192.168.1.2",
            "::ffff:10.0.0.1",
            "localhost.example",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
