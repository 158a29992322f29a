//! `runbook config check`.

use std::process::ExitCode;

use runbook_config::Config;

use crate::output;

pub fn check(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    config.check_sources()?;
    if json {
        let targets: Vec<_> = config
            .targets
            .values()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "kind": t.kind.name(),
                    "schedule": t.schedule.as_ref().map(|s| s.as_str()),
                    "drill": t.drill.as_ref().map(|d| serde_json::json!({
                        "schedule": d.schedule.as_ref().map(|s| s.as_str()),
                        "max_restore_seconds": d.max_restore.map(|m| m.as_secs_f64()),
                        "max_data_age_seconds": d.max_data_age.map(|m| m.as_secs_f64()),
                        "checks": d.checks.len(),
                        "ready_command": d.ready_command.is_some(),
                    })),
                })
            })
            .collect();
        output::json(&serde_json::json!({ "ok": true, "file": config.file, "targets": targets }))?;
    } else {
        let drilled = config
            .targets
            .values()
            .filter(|t| t.drill.is_some())
            .count();
        println!(
            "{}: ok ({} target(s), {drilled} with a restore drill; repository {})",
            config.file.display(),
            config.targets.len(),
            config.repository.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
