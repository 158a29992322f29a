//! Backup errors. Every message is one line that names the target and the cause.
//!
//! Rules: errors from the repository library are flattened to one line at the boundary
//! (`repository.rs`) and never carry the password; [`Error::is_temporary`] tells a job runner
//! whether trying again may help.

use std::path::PathBuf;

/// Why a backup, restore, forget or check did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable (unknown target, no password, ...).
    #[error(transparent)]
    Config(#[from] runbook_config::ConfigError),
    /// The repository rejected the password.
    #[error("target `{target}`: wrong repository password for {repo}")]
    WrongPassword {
        /// The target.
        target: String,
        /// Its repository (a directory or an `s3:` URL).
        repo: String,
    },
    /// The target has no repository yet.
    #[error(
        "target `{target}`: no backups yet (repository {repo} does not exist); run `runbook backup {target}` first"
    )]
    NoRepository {
        /// The target.
        target: String,
        /// Where its repository would be (a directory or an `s3:` URL).
        repo: String,
    },
    /// The source could not be read.
    #[error("target `{target}`: cannot read source {}: {reason}", path.display())]
    Source {
        /// The target.
        target: String,
        /// The path that failed.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A database server or its client tool failed (dump, restore, a query).
    #[error("target `{target}`: {server}: {reason}")]
    Database {
        /// The target.
        target: String,
        /// The server, password removed.
        server: String,
        /// What failed and why (tool output, password replaced by `***`).
        reason: String,
    },
    /// A database name runbook will not use.
    #[error("target `{target}`: database name {name:?} refused: {reason}")]
    DatabaseName {
        /// The target.
        target: String,
        /// The name given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The source file is not a SQLite database.
    #[error("target `{target}`: {} is not a SQLite database ({reason})", path.display())]
    NotSqlite {
        /// The target.
        target: String,
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// A SQLite copy failed `PRAGMA integrity_check`.
    #[error("target `{target}`: integrity check failed on {what}: {detail}")]
    Integrity {
        /// The target.
        target: String,
        /// Which copy: the backup copy or the restored file.
        what: &'static str,
        /// First lines of SQLite's report.
        detail: String,
    },
    /// The repository library failed.
    #[error("target `{target}`: {action} failed: {message}")]
    Repository {
        /// The target.
        target: String,
        /// What was being done.
        action: &'static str,
        /// One-line cause.
        message: String,
    },
    /// The backup was saved, but applying the retention rule afterwards failed.
    #[error("target `{target}`: backup {snapshot} saved, but applying retention failed: {source}")]
    Retention {
        /// The target.
        target: String,
        /// The snapshot that was saved.
        snapshot: String,
        /// Why retention failed.
        source: Box<Error>,
    },
    /// The backup was saved, but copying it to a `copy_to` repository failed.
    #[error(
        "target `{target}`: backup {snapshot} saved, but the copy to `{repository}` failed (run `runbook copy {target}` to resume): {source}"
    )]
    Copy {
        /// The target.
        target: String,
        /// The snapshot that was saved.
        snapshot: String,
        /// The copy repository.
        repository: String,
        /// Why the copy failed.
        source: Box<Error>,
    },
    /// `check` found damage.
    #[error("target `{target}`: check found {count} error(s), first: {first}")]
    CheckFailed {
        /// The target.
        target: String,
        /// Number of errors.
        count: usize,
        /// The first error.
        first: String,
    },
    /// No snapshot matches.
    #[error("target `{target}`: no snapshot {wanted}")]
    NoSnapshot {
        /// The target.
        target: String,
        /// What was asked for.
        wanted: String,
    },
    /// The restore destination exists and `--force` was not given.
    #[error("{} already exists; pass --force to replace it (the current content is kept until the restore has succeeded)", path.display())]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// A restore destination that is not allowed.
    #[error("restore destination {}: refused: {reason}", path.display())]
    Destination {
        /// The destination as given.
        path: PathBuf,
        /// Which rule it breaks.
        reason: String,
    },
    /// The restore database has content and `--force` was not given.
    #[error(
        "target `{target}`: database {database} is not empty; pass --force to replace it (its content is kept until the restore has succeeded)"
    )]
    DatabaseNotEmpty {
        /// The target.
        target: String,
        /// The database.
        database: String,
    },
    /// An operation that does not apply to this kind of target.
    #[error("target `{target}`: {message}")]
    Usage {
        /// The target.
        target: String,
        /// What to do instead.
        message: String,
    },
    /// Another runbook process holds the target.
    #[error("target `{target}`: busy, another runbook process is working on it ({holder})")]
    Busy {
        /// The target.
        target: String,
        /// What the lock file says about the holder.
        holder: String,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, including the path.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// True when retrying later may succeed (busy target, I/O trouble); false for bad input,
    /// wrong passwords and damaged data.
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Busy { .. } | Self::Io { .. } => true,
            // A database server that is down or restarting may be back in a minute.
            Self::Database { reason, .. } => {
                let r = reason.to_ascii_lowercase();
                [
                    "connection refused",
                    "could not connect",
                    "can't connect",
                    "timeout",
                    "timed out",
                    "the database system is starting up",
                    "shutting down",
                ]
                .iter()
                .any(|m| r.contains(m))
            }
            Self::Retention { source, .. } | Self::Copy { source, .. } => source.is_temporary(),
            _ => false,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
