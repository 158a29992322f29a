//! The `runbook.toml` model: parsed, layered with environment overrides, and validated into
//! types that can only hold valid values.
//!
//! Loading is two steps: [`Config::load`] reads and validates the file (syntax, unknown keys,
//! durations, schedules, names); [`Config::check_sources`] additionally checks the machine (source
//! paths exist, a repository password is available). Restoring must work when the source is gone,
//! so only `config check` and `backup` ask for the second step.

mod dburl;
mod drill;
mod env;
mod error;
mod keep;
pub mod monitor;
pub mod promql;
mod raw;
mod repository;
mod s3;
mod schedule;
pub mod secrets;
mod settings;
pub mod smoke;
pub mod tasks;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use secrecy::SecretString;

pub use dburl::DbUrl;
pub use drill::{Drill, DrillCheck, DrillSnapshot, Sample, parse_percent};
pub use env::apply_seed_env;
pub use error::ConfigError;
pub use keep::{Keep, parse_duration};
pub use repository::{BucketSource, CopyRepository, RepositoryConfig};
pub use s3::{S3Credentials, S3Repository, S3Url};
pub use schedule::Schedule;
pub use settings::{MIN_OWNER_KEY_CHARS, Settings, Smtp};

/// The example configuration written by `runbook init`, embedded in the binary.
pub const EXAMPLE_CONFIG: &str = include_str!("../runbook.example.toml");

/// Environment variable holding the path of the configuration file.
pub const ENV_CONFIG: &str = "RUNBOOK_CONFIG";
/// Environment variable holding the repository password (takes precedence over the file).
pub const ENV_PASSWORD: &str = "RUNBOOK_REPOSITORY_PASSWORD";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from.
    pub file: PathBuf,
    /// Directory for runbook's own state, scratch files and (by default) the repository.
    pub data_dir: PathBuf,
    /// Where backups are stored.
    pub repository: RepositoryConfig,
    /// Second repositories (`[repositories.NAME]`) that targets copy to.
    pub copies: BTreeMap<String, CopyRepository>,
    /// State store URL (`[state] url`, `RUNBOOK_STATE_URL`; default `sqlite://<data_dir>/state.db`).
    pub state_url: String,
    /// What is backed up, by name.
    pub targets: BTreeMap<String, Target>,
    /// Directories that restores requested through the API may write into
    /// (`restore_roots`, default `<data_dir>/restores`).
    pub restore_roots: Vec<PathBuf>,
    /// Probes, heartbeats, alert rules, silences and notifiers.
    pub monitor: monitor::Monitor,
    /// `[secrets.NAME]`: secrets whose age runbook tracks.
    pub secrets: BTreeMap<String, secrets::Secret>,
    /// `[smoke.NAME]` suites for `runbook smoke`.
    pub smoke: BTreeMap<String, smoke::SmokeSuite>,
    /// `[tasks.NAME]`: scheduled maintenance.
    pub tasks: BTreeMap<String, tasks::Task>,
}

/// One backup target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target's name (also the name of its repository directory).
    pub name: String,
    /// What kind of data it is and where it lives.
    pub kind: TargetKind,
    /// When `serve` backs it up.
    pub schedule: Option<Schedule>,
    /// Retention rule applied by `forget`.
    pub keep: Keep,
    /// Restore drills (`[targets.X.drill]`); `None` when the table is absent.
    pub drill: Option<Drill>,
    /// Repositories (`[repositories.NAME]`) each new snapshot is copied to after the backup.
    pub copy_to: Vec<String>,
}

/// The kinds of data runbook backs up.
#[derive(Debug, Clone)]
pub enum TargetKind {
    /// A SQLite database file, copied consistently through SQLite's backup API.
    Sqlite {
        /// The live database file.
        path: PathBuf,
    },
    /// A PostgreSQL database, dumped with `pg_dump -Fc -Z0` straight into the repository.
    Postgres(Postgres),
    /// A MariaDB or MySQL database, dumped with `mariadb-dump --single-transaction`.
    Mariadb(Mariadb),
    /// The objects of an S3-compatible bucket (under a prefix).
    Bucket(BucketSource),
    /// Plain files and directories.
    Files {
        /// Files and directories to back up.
        paths: Vec<PathBuf>,
        /// Glob patterns of paths to leave out.
        exclude: Vec<String>,
    },
}

/// A PostgreSQL target.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// Where the database is (the password, if the URL had one, is held apart).
    pub url: DbUrl,
    /// File holding the password (else the URL's, else `PGPASSWORD`).
    pub password_file: Option<PathBuf>,
    /// Tables left out of the dump (`pg_dump -T`).
    pub exclude_tables: Vec<String>,
    /// Only these schemas (`pg_dump -n`); empty is all.
    pub schemas: Vec<String>,
    /// Directory of `pg_dump`/`pg_restore`/`psql`; default: `PATH`.
    pub pg_bin_dir: Option<PathBuf>,
}

/// A MariaDB/MySQL target.
#[derive(Debug, Clone)]
pub struct Mariadb {
    /// Where the database is (`mysql://user@host:port/db`; a password in it is held apart).
    pub url: DbUrl,
    /// File holding the password (else the URL's, else `MYSQL_PWD`).
    pub password_file: Option<PathBuf>,
}

impl TargetKind {
    /// The kind's name as written in the config.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::Mariadb(_) => "mariadb",
            Self::Bucket(_) => "bucket",
            Self::Files { .. } => "files",
        }
    }

    /// The server connection of a database kind (PostgreSQL, MariaDB); `None` for others.
    #[must_use]
    pub fn database_url(&self) -> Option<&DbUrl> {
        match self {
            Self::Postgres(pg) => Some(&pg.url),
            Self::Mariadb(db) => Some(&db.url),
            Self::Sqlite { .. } | Self::Files { .. } | Self::Bucket(_) => None,
        }
    }

    /// The one live file a restore may replace in place (after a pre-restore snapshot):
    /// a SQLite database; `None` for kinds restored only elsewhere.
    #[must_use]
    pub fn live_file(&self) -> Option<&Path> {
        match self {
            Self::Sqlite { path } => Some(path),
            _ => None,
        }
    }

    /// The source paths this target reads.
    #[must_use]
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Self::Sqlite { path } => vec![path.as_path()],
            Self::Postgres(_) | Self::Mariadb(_) | Self::Bucket(_) => Vec::new(),
            Self::Files { paths, .. } => paths.iter().map(PathBuf::as_path).collect(),
        }
    }
}

impl Config {
    /// Reads and validates the configuration file at `file`.
    ///
    /// Relative paths in the file are resolved against the file's directory.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the key and the reason.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(&text, file)
    }

    /// Parses and validates configuration text; `file` is used for messages and relative paths.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the key and the reason.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::syntax(file, text, &e))?;
        let base = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        raw.validate(file, base)
    }

    /// Checks what the file alone cannot tell: every source path exists and a repository
    /// password is available.
    ///
    /// # Errors
    /// The first problem found, naming the target and the path.
    pub fn check_sources(&self) -> Result<(), ConfigError> {
        match self.source_problems().into_iter().next() {
            Some(first) => Err(first),
            None => Ok(()),
        }
    }

    /// Every problem [`Config::check_sources`] looks for, not only the first.
    #[must_use]
    pub fn source_problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        for target in self.targets.values() {
            for path in target.kind.paths() {
                if !path.exists() {
                    problems.push(ConfigError::MissingSource {
                        file: self.file.clone(),
                        target: target.name.clone(),
                        path: path.to_path_buf(),
                    });
                }
            }
            if let TargetKind::Bucket(b) = &target.kind
                && let Err(reason) = b.s3.credentials()
            {
                problems.push(ConfigError::invalid(
                    &self.file,
                    format!("targets.{}.url", target.name),
                    reason,
                ));
            }
        }
        if let Err(e) = self.password() {
            problems.push(e);
        }
        if let Some(Err(reason)) = self.repository.s3.as_ref().map(S3Repository::credentials) {
            problems.push(ConfigError::invalid(&self.file, "repository.url", reason));
        }
        problems
    }

    /// The repository password: `RUNBOOK_REPOSITORY_PASSWORD` if set, else the password file.
    ///
    /// # Errors
    /// When neither is available, or the file is empty.
    pub fn password(&self) -> Result<SecretString, ConfigError> {
        if let Ok(p) = std::env::var(ENV_PASSWORD)
            && !p.is_empty()
        {
            return Ok(SecretString::from(p));
        }
        let file = &self.repository.password_file;
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Password {
            file: file.clone(),
            reason: source.to_string(),
        })?;
        // Exactly as restic reads `--password-file` (Go's strings.TrimSpace), so stock restic
        // opens the repositories with the same file.
        let pw = text.trim();
        if pw.is_empty() {
            return Err(ConfigError::Password {
                file: file.clone(),
                reason: "the file is empty".into(),
            });
        }
        Ok(SecretString::from(pw.to_string()))
    }

    /// The target called `name`.
    ///
    /// # Errors
    /// [`ConfigError::UnknownTarget`] listing the configured names.
    pub fn target(&self, name: &str) -> Result<&Target, ConfigError> {
        self.targets
            .get(name)
            .ok_or_else(|| ConfigError::UnknownTarget {
                name: name.to_string(),
                known: self.targets.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// The directory of the configuration file (a drill's `ready_command` runs there).
    #[must_use]
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// runbook's own files, which no restore may replace or write into: the repository, its
    /// password file, the state database (SQLite), the locks and the ops-log anchor. (Scratch
    /// space is where drills restore to, so it is not among them.)
    #[must_use]
    pub fn protected_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![
            self.repository.path.clone(),
            self.repository.password_file.clone(),
            self.data_dir.join("locks"),
            self.data_dir.join("oplog.anchor"),
            self.data_dir.join("quarantine"),
        ];
        paths.extend(self.copies.values().map(|c| c.location.path.clone()));
        if let Some(db) = self
            .state_url
            .strip_prefix("sqlite://")
            .or_else(|| self.state_url.strip_prefix("sqlite:"))
        {
            let db = db.split('?').next().unwrap_or(db);
            for suffix in ["", "-wal", "-shm", "-journal"] {
                paths.push(PathBuf::from(format!("{db}{suffix}")));
            }
        }
        paths
    }

    /// Where a restore keeps what it replaces while it cannot be kept beside it (a MariaDB
    /// database's content, dumped before the database is emptied), one directory per target.
    #[must_use]
    pub fn saved_dir(&self) -> PathBuf {
        self.data_dir.join("saved")
    }

    /// Where scratch files live (always inside `data_dir`).
    #[must_use]
    pub fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("scratch")
    }
}

/// The glob set of `patterns` (each already validated when the config was read; one that does
/// not parse matches nothing).
#[must_use]
pub fn glob_set(patterns: &[String]) -> globset::GlobSet {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        if let Ok(g) = globset::Glob::new(p) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| globset::GlobSet::empty())
}

#[cfg(test)]
mod tests;
