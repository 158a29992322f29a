//! Backup schedules: a five-field cron expression, or the seeds' "daily at HH UTC".

use std::fmt;

use croner::{Cron, parser::CronParser};

/// When a target is backed up. All times are UTC.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    /// Parses `0 3 * * *`, `daily at 03 UTC`, `daily at 03:30 UTC`, `hourly`, `daily`,
    /// `weekly`, `monthly`, `quarterly`.
    ///
    /// # Errors
    /// A message saying what forms are accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let expr = match t.to_ascii_lowercase().as_str() {
            "hourly" => "0 * * * *".to_string(),
            "daily" => "0 0 * * *".to_string(),
            "weekly" => "0 0 * * 1".to_string(),
            "monthly" => "0 0 1 * *".to_string(),
            "quarterly" => "0 0 1 1,4,7,10 *".to_string(),
            lower if lower.starts_with("daily at ") => daily_at(lower)?,
            _ => t.to_string(),
        };
        if expr.split_whitespace().count() != 5 {
            return Err(format!(
                "invalid schedule {text:?}: expected a 5-field cron expression (\"0 3 * * *\") or \"daily at HH UTC\""
            ));
        }
        let cron = CronParser::new()
            .parse(&expr)
            .map_err(|e| format!("invalid cron expression {text:?}: {e}"))?;
        Ok(Self {
            text: t.to_string(),
            cron,
        })
    }

    /// The schedule as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The cron pattern it runs on.
    #[must_use]
    pub fn cron(&self) -> &Cron {
        &self.cron
    }
}

fn daily_at(lower: &str) -> Result<String, String> {
    let rest = lower.trim_start_matches("daily at ").trim();
    let rest = rest.strip_suffix("utc").map_or(rest, str::trim);
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let hour: u8 = h.trim().parse().map_err(|_| bad_daily(lower))?;
    let minute: u8 = m.trim().parse().map_err(|_| bad_daily(lower))?;
    if hour > 23 || minute > 59 {
        return Err(bad_daily(lower));
    }
    Ok(format!("{minute} {hour} * * *"))
}

fn bad_daily(text: &str) -> String {
    format!(
        "invalid schedule {text:?}: expected \"daily at HH UTC\" or \"daily at HH:MM UTC\" with HH 00-23"
    )
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}
