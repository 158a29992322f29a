//! `runbook restore`.

use std::process::ExitCode;

use runbook_backup::Engine;

use crate::{cli::RestoreArgs, output};

pub fn run(engine: &Engine, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let result = match (&args.into, &args.to) {
        (Some(db), _) => engine.restore_database(
            &args.target,
            &args.snapshot,
            db,
            &runbook_backup::DbRestore {
                force: args.force,
                keep_owners: args.keep_owners,
                jobs: args.jobs,
                server: None,
                analyze: true,
            },
        ),
        (None, Some(to)) => engine.restore(&args.target, &args.snapshot, to, args.force),
        (None, None) => anyhow::bail!("give --to PATH or --into DATABASE"),
    };
    let (outcome, detail) = match &result {
        Ok(r) => (
            "ok",
            format!("snapshot {} to {}", r.snapshot.id, r.to.display()),
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
    let report = result?;
    if args.json {
        output::json(&report)?;
    } else {
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
