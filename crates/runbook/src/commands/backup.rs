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
                    let phases: Vec<String> = ["copy", "check", "open", "store"]
                        .iter()
                        .filter_map(|p| snap.phases.get(*p).map(|s| format!("{p} {s:.1}s")))
                        .collect();
                    let phases = if phases.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", phases.join(", "))
                    };
                    println!(
                        "{name}: snapshot {}{forever} saved: {} read, {} added, {:.1}s{phases}{removed}{copied}",
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
