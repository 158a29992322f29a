//! `runbook forget`.

use std::process::ExitCode;

use jiff::Timestamp;
use runbook_backup::Engine;

use crate::{cli::ForgetArgs, output};

pub fn run(engine: &Engine, args: &ForgetArgs) -> anyhow::Result<ExitCode> {
    let mut plans = serde_json::Map::new();
    let mut failed = 0;
    for name in super::selected(engine, args.target.as_ref())? {
        match engine.forget(&name, Timestamp::now(), args.dry_run) {
            Ok(plan) => {
                if !args.dry_run {
                    let ids: Vec<&str> = plan.remove.iter().map(|s| s.short_id()).collect();
                    if !super::audit(
                        engine.config(),
                        "forget.run",
                        &name,
                        "ok",
                        format!("removed {}", ids.join(" ")),
                    ) {
                        failed += 1;
                    }
                }
                if !args.json {
                    let verb = if args.dry_run {
                        "would remove"
                    } else {
                        "removed"
                    };
                    println!(
                        "{name}: keeping {}, {verb} {}",
                        plan.keep.len(),
                        plan.remove.len()
                    );
                    for s in &plan.remove {
                        println!("  {verb} {} {}", s.short_id(), output::time(s.time));
                    }
                }
                plans.insert(name, serde_json::to_value(&plan)?);
            }
            Err(e) => {
                failed += 1;
                eprintln!("runbook: error: {e}");
            }
        }
    }
    if args.json {
        output::json(&plans)?;
    }
    Ok(super::exit_code(failed))
}
