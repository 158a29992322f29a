//! `runbook restore`.

use std::process::ExitCode;

use runbook_backup::Engine;
use runbook_server::ops::{self, RestoreInto};

use crate::{cli::RestoreArgs, output};

pub fn run(engine: &Engine, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let into = match (&args.into, &args.to) {
        (Some(db), _) => RestoreInto::Database(
            db.clone(),
            runbook_backup::DbRestore {
                force: args.force,
                keep_owners: args.keep_owners,
                jobs: args.jobs,
                server: None,
                analyze: true,
            },
        ),
        (None, Some(to)) => RestoreInto::Path(to.clone()),
        (None, None) => anyhow::bail!("give --to PATH or --into DATABASE"),
    };
    let result = ops::restore(engine, &args.target, &args.snapshot, into, args.force);
    let (outcome, detail) = match &result {
        Ok((r, pre)) => (
            "ok",
            format!(
                "snapshot {} to {}{}",
                r.snapshot.id,
                r.to.display(),
                pre.as_ref()
                    .map(|p| format!(" (undo point: pre-restore snapshot {})", p.id))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => ("failed", e.to_string()),
    };
    let recorded = !engine.config().targets.contains_key(&args.target)
        || super::audit(
            engine.config(),
            "restore.run",
            &args.target,
            outcome,
            detail,
        );
    let (report, pre_restore) = result?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["pre_restore_snapshot"] = serde_json::json!(pre_restore);
        output::json(&v)?;
    } else {
        if let Some(pre) = &pre_restore {
            println!(
                "{}: the live data was saved first as snapshot {} (reason pre-restore): restore it to undo",
                args.target,
                pre.short_id()
            );
        }
        println!(
            "{}: restored snapshot {} ({}) to {}{} in {:.1}s",
            args.target,
            report.snapshot.short_id(),
            output::time(report.snapshot.time),
            report.to.display(),
            if report.replaced { " (replaced)" } else { "" },
            report.seconds
        );
    }
    Ok(if recorded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
