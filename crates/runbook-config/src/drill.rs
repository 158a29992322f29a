//! Restore drills: how often a target's backups are proven by restoring them into scratch and
//! checking the result, and what "proven" means for it.

use std::time::Duration;

use crate::{DbUrl, Schedule};

/// A target's `[targets.X.drill]` table.
#[derive(Debug, Clone)]
pub struct Drill {
    /// When `serve` runs the drill (cron, `weekly`, `monthly`, `quarterly`).
    pub schedule: Option<Schedule>,
    /// Which snapshot a drill restores.
    pub snapshot: DrillSnapshot,
    /// Recovery time objective: a slower restore fails the drill.
    pub max_restore: Option<Duration>,
    /// Recovery point objective: a snapshot older than this at drill time fails the drill.
    pub max_data_age: Option<Duration>,
    /// A shell command run against the restored copy; it must exit 0 within `ready_timeout`.
    pub ready_command: Option<String>,
    /// How long `ready_command` may run (default 5 minutes).
    pub ready_timeout: Duration,
    /// Database server to restore into (default: the target's own server).
    pub server: Option<DbUrl>,
    /// Checks run in addition to the built-in ones.
    pub checks: Vec<DrillCheck>,
    /// Bucket targets: how many objects to compare with the live bucket.
    pub sample: Sample,
}

/// How many objects a bucket drill compares with the live bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// This many (or all, when there are fewer).
    Count(usize),
    /// This percentage of the objects (at least one).
    Percent(f64),
}

impl Sample {
    /// How many of `total` objects to sample.
    #[must_use]
    pub fn of(self, total: usize) -> usize {
        match self {
            Self::Count(n) => n.min(total),
            Self::Percent(p) => {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let n = (total as f64 * p / 100.0).ceil() as usize;
                n.clamp(usize::from(total > 0), total)
            }
        }
    }
}

impl Default for Drill {
    fn default() -> Self {
        Self {
            schedule: None,
            snapshot: DrillSnapshot::Latest,
            max_restore: None,
            max_data_age: None,
            ready_command: None,
            ready_timeout: Duration::from_secs(300),
            server: None,
            checks: Vec::new(),
            sample: Sample::Count(50),
        }
    }
}

/// Which snapshot a drill restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillSnapshot {
    /// The newest.
    Latest,
    /// A random one no older than this (proves older backups, not only the last one).
    RandomWithin(Duration),
}

impl DrillSnapshot {
    /// Parses `latest` or `random-within:30d`.
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t == "latest" {
            return Ok(Self::Latest);
        }
        if let Some(d) = t.strip_prefix("random-within:") {
            return crate::keep::parse_duration(d).map(Self::RandomWithin);
        }
        Err(format!(
            "invalid snapshot {text:?}: use \"latest\" or \"random-within:30d\""
        ))
    }
}

/// An optional drill check.
#[derive(Debug, Clone, PartialEq)]
pub enum DrillCheck {
    /// A query run on the restored database that must return true.
    Sql(String),
    /// Each table's row count in the restore is within `tolerance_percent` of the live source's.
    RowCounts {
        /// Allowed difference, in percent of the source's count.
        tolerance_percent: f64,
    },
}

/// Parses a tolerance such as `1%` or `0.5%`.
///
/// # Errors
/// A message naming the accepted form.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let bad = || format!("invalid tolerance {text:?}: use a percentage such as \"1%\"");
    let n: f64 = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(bad)?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if !(0.0..=100.0).contains(&n) {
        return Err(bad());
    }
    Ok(n)
}
