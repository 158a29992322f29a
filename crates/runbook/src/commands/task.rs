//! `runbook task list|run`.

use std::process::ExitCode;

use runbook_backup::Engine;
use runbook_config::tasks::TaskKind;

use crate::{cli::TaskCommand, output};

pub fn run(engine: &Engine, command: TaskCommand) -> anyhow::Result<ExitCode> {
    match command {
        TaskCommand::List { json } => list(engine, json),
        TaskCommand::Run { name, json } => run_one(engine, &name, json),
    }
}

fn list(engine: &Engine, json: bool) -> anyhow::Result<ExitCode> {
    let tasks = &engine.config().tasks;
    if json {
        let v: Vec<_> = tasks
            .values()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "kind": t.kind.name(),
                    "schedule": t.schedule.as_ref().map(runbook_config::Schedule::as_str),
                    "timeout_seconds": t.timeout.as_secs(),
                })
            })
            .collect();
        output::json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    if tasks.is_empty() {
        println!("no tasks configured ([tasks.NAME] in the config)");
    }
    for t in tasks.values() {
        let what = match &t.kind {
            TaskKind::SqliteOptimize {
                target,
                vacuum_free_percent,
            } => {
                format!("sqlite-optimize {target} (VACUUM above {vacuum_free_percent}% free pages)")
            }
            TaskKind::Command { argv } => format!("command {}", argv.join(" ")),
        };
        let when = t
            .schedule
            .as_ref()
            .map_or("on demand", runbook_config::Schedule::as_str);
        println!("{:<20} {what}; {when}", t.name);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_one(engine: &Engine, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let task = engine.config().tasks.get(name).ok_or_else(|| {
        let known: Vec<&str> = engine.config().tasks.keys().map(String::as_str).collect();
        anyhow::anyhow!(
            "no task named `{name}` (configured: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    })?;
    let result = runbook_server::tasks::run(engine, task);
    let (outcome, detail) = match &result {
        Ok(r) => ("ok", format!("{} in {:.1}s", r.kind, r.seconds)),
        Err(e) => ("failed", e.to_string()),
    };
    let recorded = super::audit(engine.config(), "task.run", name, outcome, detail);
    let run = result?;
    if json {
        output::json(&run)?;
    } else if let Some(o) = &run.optimize {
        println!(
            "{name}: backed up first (snapshot {}), ANALYZE and PRAGMA optimize done; {} of {} pages free: {}; {} -> {} in {:.1}s",
            o.backup.short_id(),
            o.free_pages,
            o.pages,
            if o.vacuumed {
                "vacuumed"
            } else {
                "no VACUUM needed"
            },
            output::size(o.bytes_before),
            output::size(o.bytes_after),
            run.seconds
        );
    } else {
        println!("{name}: exited 0 in {:.1}s", run.seconds);
    }
    Ok(if recorded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
