//! `[targets.X.drill]` as written, validated into [`Drill`].

use std::path::Path;

use serde::Deserialize;

use super::db_url;
use crate::{ConfigError, Drill, DrillCheck, DrillSnapshot, Schedule, TargetKind, keep};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrill {
    schedule: Option<String>,
    snapshot: Option<String>,
    max_restore: Option<String>,
    max_data_age: Option<String>,
    ready_command: Option<String>,
    ready_timeout: Option<String>,
    server: Option<String>,
    #[serde(default)]
    checks: Vec<RawCheck>,
    sample: Option<RawSample>,
}

/// `sample = 50` or `sample = "1%"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSample {
    Count(u32),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    sql: Option<String>,
    row_counts: Option<RawRowCounts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRowCounts {
    tolerance: Option<String>,
}

impl RawDrill {
    pub(super) fn validate(
        self,
        file: &Path,
        key: &str,
        kind: &TargetKind,
    ) -> Result<Drill, ConfigError> {
        let invalid = |field: &str, reason: String| {
            ConfigError::invalid(file, format!("{key}.{field}"), reason)
        };
        let duration = |field: &str, v: Option<String>| {
            v.as_deref()
                .map(keep::parse_duration)
                .transpose()
                .map_err(|r| invalid(field, r))
        };
        let schedule = self
            .schedule
            .map(|s| Schedule::parse(&s))
            .transpose()
            .map_err(|r| invalid("schedule", r))?;
        let snapshot = self
            .snapshot
            .as_deref()
            .map(DrillSnapshot::parse)
            .transpose()
            .map_err(|r| invalid("snapshot", r))?
            .unwrap_or(DrillSnapshot::Latest);
        let database = kind.database_url().is_some();
        let server = match self.server {
            None => None,
            Some(_) if !database => {
                return Err(invalid(
                    "server",
                    "only database targets restore onto a server".into(),
                ));
            }
            Some(url) => {
                let scheme = match kind.database_url() {
                    Some(u) if u.scheme == "postgres" => "postgres",
                    _ => "mysql",
                };
                Some(db_url(file, key, &url, scheme).map_err(|_| {
                    invalid(
                        "server",
                        format!("expected {scheme}://USER@HOST:PORT/DB (a password is held apart)"),
                    )
                })?)
            }
        };
        let mut checks = Vec::new();
        for (i, c) in self.checks.into_iter().enumerate() {
            let field = format!("checks[{i}]");
            let check = match (c.sql, c.row_counts) {
                (Some(sql), None) if !sql.trim().is_empty() => DrillCheck::Sql(sql),
                (None, Some(rc)) => DrillCheck::RowCounts {
                    tolerance_percent: rc
                        .tolerance
                        .as_deref()
                        .map(crate::parse_percent)
                        .transpose()
                        .map_err(|r| invalid(&format!("{field}.row_counts.tolerance"), r))?
                        .unwrap_or(0.0),
                },
                _ => {
                    return Err(invalid(
                        &field,
                        "give exactly one of sql = \"...\" or row_counts = { tolerance = \"1%\" }"
                            .into(),
                    ));
                }
            };
            if matches!(kind, TargetKind::Files { .. } | TargetKind::Bucket(_)) {
                return Err(invalid(
                    &field,
                    "sql and row_counts checks need a database target (sqlite, postgres, mariadb)"
                        .into(),
                ));
            }
            checks.push(check);
        }
        let sample = match self.sample {
            None => crate::Sample::Count(50),
            Some(_) if !matches!(kind, TargetKind::Bucket(_)) => {
                return Err(invalid(
                    "sample",
                    "only bucket targets sample objects".into(),
                ));
            }
            Some(RawSample::Count(0)) => {
                return Err(invalid("sample", "sample at least one object".into()));
            }
            Some(RawSample::Count(n)) => crate::Sample::Count(n as usize),
            Some(RawSample::Text(t)) => crate::Sample::Percent(
                crate::parse_percent(&t)
                    .ok()
                    .filter(|p| *p > 0.0)
                    .ok_or_else(|| {
                        invalid(
                            "sample",
                            format!("{t:?}: give a count (50) or a percentage (\"1%\")"),
                        )
                    })?,
            ),
        };
        Ok(Drill {
            sample,
            schedule,
            snapshot,
            max_restore: duration("max_restore", self.max_restore)?,
            max_data_age: duration("max_data_age", self.max_data_age)?,
            ready_command: self.ready_command.filter(|c| !c.trim().is_empty()),
            ready_timeout: duration("ready_timeout", self.ready_timeout)?
                .unwrap_or(std::time::Duration::from_secs(300)),
            server,
            checks,
        })
    }
}
