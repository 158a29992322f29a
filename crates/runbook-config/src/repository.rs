//! Where backups are kept: the main repository, the copies targets send snapshots to, and the
//! bucket a bucket target reads (all local directories or S3 locations).

use std::path::PathBuf;

use crate::{Config, ConfigError, Keep, S3Repository};

/// The repository root and how to unlock it.
#[derive(Debug, Clone)]
pub struct RepositoryConfig {
    /// Root directory; each target has its own restic repository below it.
    pub path: PathBuf,
    /// File holding the repository password.
    pub password_file: PathBuf,
    /// S3-compatible storage holding the repositories instead of `path` (`url = "s3:..."`).
    pub s3: Option<S3Repository>,
}

impl RepositoryConfig {
    /// Where `target`'s repository is, for messages and for `restic -r`.
    #[must_use]
    pub fn location_of(&self, target: &str) -> String {
        match &self.s3 {
            Some(s3) => s3.url.restic_url(target),
            None => self.path.join(target).display().to_string(),
        }
    }
}

/// A second repository that targets copy their snapshots to (the 3-2-1 rule).
#[derive(Debug, Clone)]
pub struct CopyRepository {
    /// Its name in `[repositories.NAME]` and in `copy_to`.
    pub name: String,
    /// Where it is; encrypted with the main repository's password.
    pub location: RepositoryConfig,
    /// Retention there; `None` keeps what the target's own `keep` keeps.
    pub keep: Option<Keep>,
}

/// A bucket target: which objects of which bucket.
#[derive(Debug, Clone)]
pub struct BucketSource {
    /// The bucket, its prefix and how to reach it (keys as for an S3 repository).
    pub s3: S3Repository,
    /// Only keys matching one of these globs (empty: all).
    pub include: Vec<String>,
    /// Keys matching these globs are left out.
    pub exclude: Vec<String>,
}

impl Config {
    /// This configuration with the copy repository `name` in place of the main repository
    /// (and its `keep` in place of each target's, when it has one): what reads from a copy
    /// and retention there run against.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when no `[repositories.NAME]` has that name.
    pub fn on_copy(&self, name: &str) -> Result<Self, ConfigError> {
        let copy = self.copies.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.copies.keys().map(String::as_str).collect();
            ConfigError::invalid(
                &self.file,
                format!("repositories.{name}"),
                format!(
                    "no such repository (configured: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        let mut on = self.clone();
        on.repository = copy.location.clone();
        if let Some(keep) = &copy.keep {
            for t in on.targets.values_mut() {
                t.keep = keep.clone();
            }
        }
        Ok(on)
    }
}
