//! `runbook snapshots`.

use std::process::ExitCode;

use runbook_backup::Engine;

use crate::{cli::SnapshotsArgs, output};

pub fn run(engine: &Engine, args: &SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    for name in super::selected(engine, args.target.as_ref())? {
        all.extend(engine.snapshots(&name)?);
    }
    all.sort_by_key(|s| s.time);
    if args.json {
        output::json(&all)?;
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no snapshots yet; run `runbook backup --all`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                s.short_id().to_string(),
                output::time(s.time),
                s.target.clone(),
                s.kind.clone(),
                output::size(s.source_bytes),
                output::size(s.added_bytes),
                s.reason.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "TIME (UTC)",
            "TARGET",
            "KIND",
            "SIZE",
            "ADDED",
            "REASON",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
