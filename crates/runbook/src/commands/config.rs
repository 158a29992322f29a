//! `runbook config check`.

use std::process::ExitCode;

use runbook_config::Config;

use crate::output;

/// Every problem found, one line each: sources, the password and, unless `offline`, whether
/// each database target's server answers and its database exists.
fn problems(config: &Config, offline: bool) -> Vec<String> {
    let mut out: Vec<String> = config
        .source_problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    if offline {
        return out;
    }
    let engine = runbook_backup::Engine::new(config.clone());
    for target in config.targets.values() {
        let Ok(db) = engine.database(&target.name, None) else {
            continue;
        };
        if let Err(e) = db.query(db.source_database(), "SELECT 1") {
            out.push(format!(
                "{e} (is the server up and the database created? `--offline` skips this check)"
            ));
        }
    }
    out
}

pub fn check(config: &Config, json: bool, offline: bool) -> anyhow::Result<ExitCode> {
    let problems = problems(config, offline);
    if !problems.is_empty() {
        if json {
            output::json(
                &serde_json::json!({ "ok": false, "file": config.file, "problems": problems }),
            )?;
        }
        for p in &problems {
            eprintln!("runbook: {p}");
        }
        anyhow::bail!(
            "{}: {} problem(s) found",
            config.file.display(),
            problems.len()
        );
    }
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
            config.repository.s3.as_ref().map_or_else(
                || config.repository.path.display().to_string(),
                |s3| s3.url.to_string()
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}
