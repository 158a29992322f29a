//! Configuration errors: each names the file, the key (or line) and the reason, on one line.

use std::path::{Path, PathBuf};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source} (run `runbook init` to create one)", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key, wrong type or duplicate key.
    #[error("{}:{line}{section}: {message}", file.display())]
    Syntax {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// ` in [table]` when the line is inside a table.
        section: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// A value that parsed but is not valid.
    #[error("{}: {key}: {reason}", file.display())]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// Dotted key, such as `targets.app-db.keep.within`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A target's source does not exist.
    #[error("{}: target `{target}`: source {} does not exist", file.display(), path.display())]
    MissingSource {
        /// The config file.
        file: PathBuf,
        /// The target.
        target: String,
        /// The missing path.
        path: PathBuf,
    },
    /// No repository password could be found.
    #[error(
        "repository password unavailable: {} ({reason}); set RUNBOOK_REPOSITORY_PASSWORD or restore that file",
        file.display()
    )]
    Password {
        /// The password file.
        file: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// No target of that name.
    #[error("unknown target `{name}` (configured: {known})")]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// Configured names, comma-separated.
        known: String,
    },
}

impl ConfigError {
    /// Turns a TOML error into a one-line message with the line number and enclosing table.
    pub(crate) fn syntax(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let offset = err.span().map_or(0, |s| s.start);
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let through_line = text[offset.min(text.len())..]
            .split_once('\n')
            .map_or(text, |(_, rest)| &text[..text.len() - rest.len()]);
        let section = through_line
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|h| format!(" in {h}"))
            .unwrap_or_default();
        let message = err
            .message()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Self::Syntax {
            file: file.to_path_buf(),
            line,
            section,
            message,
        }
    }

    pub(crate) fn invalid(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}
