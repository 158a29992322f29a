//! `[tasks.NAME]`.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Deserialize;

use super::check_name;
use crate::{
    ConfigError, Schedule, Target, TargetKind, parse_duration,
    tasks::{Task, TaskKind},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    kind: String,
    target: Option<String>,
    command: Option<Vec<String>>,
    schedule: Option<String>,
    timeout: Option<String>,
    vacuum_free_percent: Option<u8>,
}

pub(super) fn tasks(
    file: &Path,
    raw: BTreeMap<String, RawTask>,
    targets: &BTreeMap<String, Target>,
) -> Result<BTreeMap<String, Task>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, t) in raw {
        let key = format!("tasks.{name}");
        let bad = |k: &str, why: String| {
            ConfigError::invalid(
                file,
                if k.is_empty() {
                    key.clone()
                } else {
                    format!("{key}.{k}")
                },
                why,
            )
        };
        check_name(&name).map_err(|e| bad("", e))?;
        let kind = match t.kind.as_str() {
            "sqlite-optimize" => {
                let target = t
                    .target
                    .ok_or_else(|| bad("target", "name the sqlite target to optimize".into()))?;
                match targets.get(&target).map(|x| &x.kind) {
                    Some(TargetKind::Sqlite { .. }) => {}
                    Some(other) => {
                        return Err(bad(
                            "target",
                            format!(
                                "`{target}` is a {} target; sqlite-optimize needs a sqlite one",
                                other.name()
                            ),
                        ));
                    }
                    None => return Err(bad("target", format!("no target named `{target}`"))),
                }
                let vacuum_free_percent = t.vacuum_free_percent.unwrap_or(20);
                if !(1..=100).contains(&vacuum_free_percent) {
                    return Err(bad("vacuum_free_percent", "between 1 and 100".into()));
                }
                if t.command.is_some() {
                    return Err(bad("command", "only command tasks run a command".into()));
                }
                TaskKind::SqliteOptimize {
                    target,
                    vacuum_free_percent,
                }
            }
            "command" => {
                let argv = t.command.unwrap_or_default();
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(bad(
                        "command",
                        "the program and its arguments, e.g. [\"/usr/local/bin/cleanup\", \"--days\", \"30\"]".into(),
                    ));
                }
                if t.target.is_some() || t.vacuum_free_percent.is_some() {
                    return Err(bad(
                        "",
                        "target and vacuum_free_percent are for sqlite-optimize tasks".into(),
                    ));
                }
                TaskKind::Command { argv }
            }
            other => {
                return Err(bad(
                    "kind",
                    format!("unknown task kind {other:?}; use \"sqlite-optimize\" or \"command\""),
                ));
            }
        };
        let schedule = t
            .schedule
            .as_deref()
            .map(|s| Schedule::parse(s).map_err(|e| bad("schedule", e)))
            .transpose()?;
        let timeout = match t.timeout.as_deref() {
            None => Duration::from_secs(3600),
            Some(d) => parse_duration(d).map_err(|e| bad("timeout", e))?,
        };
        out.insert(
            name.clone(),
            Task {
                name,
                kind,
                schedule,
                timeout,
            },
        );
    }
    Ok(out)
}
