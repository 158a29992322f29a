//! `runbook copy`.

use std::process::ExitCode;

use runbook_backup::Engine;

use crate::{cli::CopyArgs, output};

pub fn run(engine: &Engine, args: &CopyArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = if args.all {
        engine
            .config()
            .targets
            .values()
            .filter(|t| !t.copy_to.is_empty())
            .map(|t| t.name.clone())
            .collect()
    } else {
        super::named_or_all(engine, &args.targets, false)?
    };
    let mut done = Vec::new();
    let mut failed = 0;
    for name in &names {
        let to = match &args.to {
            Some(to) => vec![to.clone()],
            None => engine.config().target(name)?.copy_to.clone(),
        };
        if to.is_empty() {
            anyhow::bail!("target `{name}` has no copy_to; give --to NAME");
        }
        for repo in to {
            match engine.copy(name, &repo, jiff::Timestamp::now()) {
                Ok(report) => {
                    if !super::audit(
                        engine.config(),
                        "copy.run",
                        name,
                        "ok",
                        format!("to {repo}: {} copied", report.copied),
                    ) {
                        failed += 1;
                    }
                    if !args.json {
                        println!(
                            "{name}: {} snapshot(s) copied to {repo}; retention there removed {}",
                            report.copied, report.forgotten
                        );
                    }
                    done.push(serde_json::json!({ "target": name, "copy": report }));
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("runbook: error: {e}");
                    let _ =
                        super::audit(engine.config(), "copy.run", name, "failed", e.to_string());
                }
            }
        }
    }
    if args.json {
        output::json(&done)?;
    }
    Ok(super::exit_code(failed))
}
