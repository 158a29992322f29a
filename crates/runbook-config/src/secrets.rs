//! `[secrets.NAME]`: secrets with an age. runbook never reads or keeps a secret's value except
//! to notice that a watched one changed (a salted fingerprint); it tracks when each was last
//! rotated and says when one is due.

use std::{path::PathBuf, time::Duration};

/// One secret to keep fresh.
#[derive(Debug, Clone)]
pub struct Secret {
    /// Its name.
    pub name: String,
    /// Rotate at least this often (default 90 days).
    pub max_age: Duration,
    /// Where runbook can see it change: its value counts as rotated when that changes.
    pub watch: Option<Watch>,
    /// How to rotate it, for whoever does (shown with the warning).
    pub notes: Option<String>,
}

/// Where a secret lives.
#[derive(Debug, Clone)]
pub enum Watch {
    /// An environment variable of `serve`.
    Env(String),
    /// A file (its content).
    File(PathBuf),
}
