//! The seeds' environment variables that change targets: applied in one place, when the
//! configuration is loaded, for every command (so `runbook forget` honours
//! `BACKUP_RETENTION_DAYS` exactly as `serve` does).

use crate::{Config, Schedule};

/// Applies the seeds' variables to targets that set nothing themselves:
/// `BACKUP_ENABLED=0` turns scheduled backups off; `BACKUP_DAILY_ENABLED=1` gives unscheduled
/// targets a daily backup at `BACKUP_DAILY_HOUR_UTC` (default 3); `BACKUP_RETENTION_DAYS=N`
/// gives targets without a `keep` rule `within = Nd`.
///
/// # Errors
/// One line naming the bad variable.
pub fn apply_seed_env(
    config: &mut Config,
    get: impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let on = |name: &str, default: bool| flag(name, get(name), default);
    let enabled = on("BACKUP_ENABLED", true)?;
    let daily = on("BACKUP_DAILY_ENABLED", false)?;
    let hour = match get("BACKUP_DAILY_HOUR_UTC").filter(|v| !v.trim().is_empty()) {
        Some(v) => v
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|h| *h < 24)
            .ok_or_else(|| format!("BACKUP_DAILY_HOUR_UTC={v:?}: expected an hour 0-23"))?,
        None => 3,
    };
    let retention = match get("BACKUP_RETENTION_DAYS").filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| {
                    format!("BACKUP_RETENTION_DAYS={v:?}: expected a positive number of days")
                })?,
        ),
        None => None,
    };
    for t in config.targets.values_mut() {
        if !enabled {
            t.schedule = None;
        } else if t.schedule.is_none() && daily {
            t.schedule = Some(Schedule::parse(&format!("daily at {hour} UTC"))?);
        }
        if let Some(days) = retention
            && t.keep.is_empty()
        {
            t.keep.within = Some(std::time::Duration::from_secs(days * 86_400));
        }
    }
    Ok(())
}

/// The one on/off parser for environment variables: `1/true/yes/on`, `0/false/no/off`, empty
/// or unset for the default.
///
/// # Errors
/// One line naming the variable and the value.
pub(crate) fn flag(name: &str, value: Option<String>, default: bool) -> Result<bool, String> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v)
            if ["1", "true", "yes", "on"]
                .iter()
                .any(|t| v.eq_ignore_ascii_case(t)) =>
        {
            Ok(true)
        }
        Some(v)
            if ["0", "false", "no", "off"]
                .iter()
                .any(|f| v.eq_ignore_ascii_case(f)) =>
        {
            Ok(false)
        }
        Some(v) => Err(format!("{name}={v:?}: expected 1/0, true/false")),
    }
}
