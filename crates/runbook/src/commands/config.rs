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
                })
            })
            .collect();
        output::json(&serde_json::json!({ "ok": true, "file": config.file, "targets": targets }))?;
    } else {
        println!(
            "{}: ok ({} target(s); repository {})",
            config.file.display(),
            config.targets.len(),
            config.repository.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
