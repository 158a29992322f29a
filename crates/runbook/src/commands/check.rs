//! `runbook check`.

use std::process::ExitCode;

use runbook_backup::{Engine, Error};

use crate::{cli::CheckArgs, output};

pub fn run(engine: &Engine, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut results = serde_json::Map::new();
    let mut failed = 0;
    for name in super::selected(engine, args.target.as_ref())? {
        let result = engine.check(&name, args.read_data);
        let value = match &result {
            Ok(report) => serde_json::json!({ "ok": true, "warnings": report.warnings }),
            Err(Error::NoRepository { .. }) if args.target.is_none() => {
                serde_json::json!({ "ok": true, "skipped": "no backups yet" })
            }
            Err(e) => serde_json::json!({ "ok": false, "error": e.to_string() }),
        };
        match result {
            Ok(report) if !args.json => {
                println!("{name}: ok ({} warning(s))", report.warnings.len());
                for w in &report.warnings {
                    println!("  warning: {w}");
                }
            }
            Err(Error::NoRepository { .. }) if args.target.is_none() => {
                if !args.json {
                    println!("{name}: no backups yet, skipped");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("runbook: error: {e}");
            }
            Ok(_) => {}
        }
        results.insert(name, value);
    }
    if args.json {
        output::json(&results)?;
    }
    Ok(super::exit_code(failed))
}
