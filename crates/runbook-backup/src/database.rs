//! A live database server a target points at: for drills, which restore into a scratch
//! database, compare it with the source, and drop it again.

use runbook_config::{DbUrl, Mariadb, Postgres, TargetKind};

use crate::{Error, Result, mariadb, postgres};

/// The server of a PostgreSQL or MariaDB target (or the drill server that stands in for it).
#[derive(Debug, Clone)]
pub struct Database {
    target: String,
    server: Server,
    scratch_root: std::path::PathBuf,
}

#[derive(Debug, Clone)]
enum Server {
    Postgres(Postgres),
    Mariadb(Mariadb),
}

/// `db` with its connection replaced by `server` (keeping the tools and the source database
/// name); a password in `server` replaces the target's password file.
fn on_server(url: &DbUrl, password_file: &mut Option<std::path::PathBuf>, server: &DbUrl) -> DbUrl {
    if server.password().is_some() {
        *password_file = None;
    }
    let mut u = server.clone();
    u.database.clone_from(&url.database);
    u
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
        scratch_root: &std::path::Path,
    ) -> Result<Self> {
        let server = match kind {
            TargetKind::Postgres(pg) => {
                let mut pg = pg.clone();
                if let Some(s) = server {
                    pg.url = on_server(&pg.url, &mut pg.password_file, s);
                }
                Server::Postgres(pg)
            }
            TargetKind::Mariadb(db) => {
                let mut db = db.clone();
                if let Some(s) = server {
                    db.url = on_server(&db.url, &mut db.password_file, s);
                }
                Server::Mariadb(db)
            }
            _ => {
                return Err(Error::Usage {
                    target: target.to_string(),
                    message: "not a database target".into(),
                });
            }
        };
        Ok(Self {
            target: target.to_string(),
            server,
            scratch_root: scratch_root.to_path_buf(),
        })
    }

    /// The target's kind with the connection this handle uses.
    pub(crate) fn server_kind(&self) -> TargetKind {
        match &self.server {
            Server::Postgres(pg) => TargetKind::Postgres(pg.clone()),
            Server::Mariadb(db) => TargetKind::Mariadb(db.clone()),
        }
    }

    /// `postgres` or `mariadb`.
    #[must_use]
    pub fn engine(&self) -> &'static str {
        match self.server {
            Server::Postgres(_) => "postgres",
            Server::Mariadb(_) => "mariadb",
        }
    }

    /// The target's own database (the source of its backups).
    #[must_use]
    pub fn source_database(&self) -> &str {
        match &self.server {
            Server::Postgres(pg) => &pg.url.database,
            Server::Mariadb(db) => &db.url.database,
        }
    }

    /// Runs `sql` in `database`; returns the rows, columns split.
    ///
    /// # Errors
    /// Connection or query failure (the message never holds the password).
    pub fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        match &self.server {
            Server::Postgres(pg) => postgres::Conn::new(&self.target, pg)?.rows(database, sql),
            Server::Mariadb(db) => {
                mariadb::Conn::new(&self.target, db, &self.scratch_root)?.rows(database, sql)
            }
        }
    }

    /// Databases on the server whose name starts with `prefix`.
    ///
    /// # Errors
    /// Connection or query failure.
    pub fn databases(&self, prefix: &str) -> Result<Vec<String>> {
        postgres::check_db_name(&self.target, prefix)?;
        let rows = match &self.server {
            Server::Postgres(pg) => postgres::Conn::new(&self.target, pg)?.rows(
                "postgres",
                &format!("SELECT datname FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1"),
            )?,
            Server::Mariadb(db) => mariadb::Conn::new(&self.target, db, &self.scratch_root)?.rows(
                "information_schema",
                &format!("SELECT SCHEMA_NAME FROM SCHEMATA WHERE LEFT(SCHEMA_NAME, {}) = '{prefix}' ORDER BY 1", prefix.len()),
            )?,
        };
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// Drops `database` if it exists (closing its connections on PostgreSQL).
    ///
    /// # Errors
    /// Bad name, connection or query failure.
    pub fn drop_database(&self, database: &str) -> Result<()> {
        postgres::check_db_name(&self.target, database)?;
        match &self.server {
            Server::Postgres(pg) => postgres::Conn::new(&self.target, pg)?
                .psql(
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
                )
                .map(drop),
            Server::Mariadb(db) => mariadb::Conn::new(&self.target, db, &self.scratch_root)?
                .sql(&format!("DROP DATABASE IF EXISTS `{database}`"))
                .map(drop),
        }
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

    fn url(&self) -> &runbook_config::DbUrl {
        match &self.server {
            Server::Postgres(pg) => &pg.url,
            Server::Mariadb(db) => &db.url,
        }
    }

    /// The password: from `password_file` (read as restic reads one), else the URL's.
    fn password(&self) -> Result<Option<String>> {
        let (url, file) = match &self.server {
            Server::Postgres(pg) => (&pg.url, &pg.password_file),
            Server::Mariadb(db) => (&db.url, &db.password_file),
        };
        Ok(match (file, url.password()) {
            (Some(f), _) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| Error::Source {
                        target: self.target.clone(),
                        path: f.clone(),
                        reason: format!("cannot read password_file: {e}"),
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            (None, Some(p)) => Some(p.to_string()),
            (None, None) => None,
        })
    }
}

/// Percent-encodes what a URL's user or password part cannot hold literally.
fn encode(s: &str) -> String {
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
