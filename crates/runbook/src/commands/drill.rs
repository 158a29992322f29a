//! `runbook drill` and `runbook report drills`.

use std::{io::IsTerminal, process::ExitCode};

use anyhow::Context;
use runbook_backup::Engine;
use runbook_config::Config;
use runbook_drill::{Outcome, Request};

use crate::{cli::DrillArgs, output};

pub fn run(engine: &Engine, args: &DrillArgs) -> anyhow::Result<ExitCode> {
    let names = super::named_or_all(engine, &args.targets, args.all)?;
    let rt = super::runtime()?;
    let store = rt.block_on(super::store(engine.config()))?;
    let chatty = !args.json && std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    let mut not_passed = 0;
    for name in &names {
        let req = Request {
            snapshot: args.snapshot.clone(),
            now: jiff::Timestamp::now(),
            backup_first: args.backup_first,
        };
        let report = runbook_drill::run(engine, name, &req, &mut |step| {
            if chatty {
                eprintln!("{name}: {step}…");
            }
        });
        for left in &report.leftovers_removed {
            eprintln!(
                "runbook: warning: {name}: removed scratch left by an interrupted drill: {left}"
            );
        }
        // A drill that is not on record (state store and ops log) did not happen as far as
        // anyone can prove later: that fails the command, whatever the drill found.
        let recorded = rt.block_on(runbook_drill::record(&store, &report, "cli"));
        if let Err(e) = &recorded {
            eprintln!(
                "runbook: error: {name}: the drill ran ({}) but could not be recorded: {e}",
                report.outcome.as_str()
            );
        }
        if report.outcome != Outcome::Passed || recorded.is_err() {
            not_passed += 1;
        }
        if args.json {
            reports.push(report);
            continue;
        }
        if report.outcome == Outcome::Passed {
            println!("{name}: {}", report.summary());
            for c in &report.checks {
                println!("  ok    {:<18} {}", c.name, c.actual);
            }
        } else {
            // The failure on stderr in one line; the checks on stdout for the record.
            eprintln!("runbook: error: {name}: {}", report.summary());
            for c in &report.checks {
                let mark = if c.ok { "ok" } else { "FAIL" };
                println!(
                    "  {mark:<5} {:<18} {}{}",
                    c.name,
                    c.actual,
                    if c.ok {
                        String::new()
                    } else {
                        format!(" (expected {})", c.expected)
                    }
                );
            }
        }
    }
    if args.json {
        output::json(&reports)?;
    }
    Ok(super::exit_code(not_passed))
}

pub fn report(
    config: &Config,
    since: &str,
    target: Option<&str>,
    format: &str,
) -> anyhow::Result<ExitCode> {
    let window = runbook_drill::parse_since(since).map_err(anyhow::Error::msg)?;
    if let Some(t) = target {
        config.target(t)?;
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let drills = super::runtime()?.block_on(async {
        let store = super::store(config).await?;
        store
            .drills(target, now.saturating_sub(window_ms), 10_000)
            .await
            .context("state store")
    })?;
    if format == "json" {
        output::json(&drills)?;
    } else {
        print!("{}", runbook_drill::markdown(&drills, since));
    }
    Ok(ExitCode::SUCCESS)
}
