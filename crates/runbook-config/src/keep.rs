//! Retention rules: how many snapshots a target keeps, by count and by age.

use std::time::Duration;

/// A target's retention rule. Empty means "keep everything".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keep {
    /// Keep the newest N snapshots.
    pub last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    pub hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one.
    pub daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks that have one.
    pub weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one.
    pub monthly: Option<u32>,
    /// Keep every snapshot younger than this (measured from the newest snapshot).
    pub within: Option<Duration>,
}

impl Keep {
    /// True when no rule is set, so `forget` removes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Parses durations such as `30d`, `26h`, `15m`, `1w`, `90s`.
///
/// # Errors
/// A message naming the accepted units.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    // A bare number is seconds (as the seeds write `SECURITY_RATE_LIMIT_WINDOW=900`).
    let d = match text.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(text.trim()),
    }
    .map_err(|e| {
        format!("invalid duration {text:?} ({e}); use a number and a unit: 90s, 15m, 26h, 30d, 2w")
    })?;
    if d.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        ));
    }
    Ok(d)
}
