//! `runbook restore`.

use std::process::ExitCode;

use runbook_backup::Engine;

use crate::{cli::RestoreArgs, output};

pub fn run(engine: &Engine, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let report = engine.restore(&args.target, &args.snapshot, &args.to, args.force)?;
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
    Ok(ExitCode::SUCCESS)
}
