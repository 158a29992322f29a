//! `runbook backup`.

use std::process::ExitCode;

use runbook_backup::Engine;
use runbook_server::ops::{self, Backed};

use crate::{cli::BackupArgs, output};

pub fn run(engine: &Engine, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let names = super::named_or_all(engine, &args.targets, args.all)?;
    let mut done = Vec::new();
    let mut failed = 0;
    for name in &names {
        let req = runbook_backup::BackupRequest {
            reason: args.reason.clone(),
            time: None,
            keep_forever: args.keep_forever,
        };
        match ops::backup(engine, name, &req, jiff::Timestamp::now()) {
            Ok(Backed {
                snapshot: snap,
                forgotten,
                copies,
            }) => {
                if !super::audit(
                    engine.config(),
                    "backup.run",
                    name,
                    "ok",
                    format!("snapshot {}", snap.id),
                ) {
                    failed += 1;
                }
                if !args.json {
                    let removed = match forgotten {
                        0 => String::new(),
                        n => format!("; retention removed {n} older snapshot(s)"),
                    };
                    let copied: String = copies
                        .iter()
                        .map(|c| format!("; copied to {} ({} new)", c.repository, c.copied))
                        .collect();
                    let forever = if snap.keep_forever {
                        " (kept forever)"
                    } else {
                        ""
                    };
                    println!(
                        "{name}: snapshot {}{forever} saved: {} read, {} added, {:.1}s{removed}{copied}",
                        snap.short_id(),
                        output::size(snap.source_bytes),
                        output::size(snap.added_bytes),
                        snap.duration_seconds
                    );
                }
                done.push(snap);
            }
            Err(e) => {
                failed += 1;
                eprintln!("runbook: error: {e}");
                // Already failing: a second line about the log would only repeat that.
                let _ = super::audit(engine.config(), "backup.run", name, "failed", e.to_string());
            }
        }
    }
    if args.json {
        output::json(&done)?;
    }
    Ok(super::exit_code(failed))
}
