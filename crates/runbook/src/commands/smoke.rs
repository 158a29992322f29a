//! `runbook smoke --base-url URL [--suite NAME] [--junit FILE] [--json]`: the release's smoke
//! checks, once; exit 1 on any failure; the run goes into the ops log.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use runbook_config::Config;

use crate::{cli::SmokeArgs, output};

pub fn run(config: &Config, args: &SmokeArgs) -> anyhow::Result<ExitCode> {
    if !(args.base_url.starts_with("http://") || args.base_url.starts_with("https://")) {
        anyhow::bail!(
            "--base-url {:?}: expected an http:// or https:// URL",
            args.base_url
        );
    }
    let timeout = Duration::from_secs(args.timeout);
    let suite = match &args.suite {
        Some(name) => Some(config.smoke.get(name).with_context(|| {
            let known: Vec<&str> = config.smoke.keys().map(String::as_str).collect();
            format!(
                "no suite named {name:?} (configured: {})",
                if known.is_empty() {
                    "none; add [smoke.NAME]".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?),
        None if config.smoke.len() == 1 => config.smoke.values().next(),
        None => None,
    };
    super::runtime()?.block_on(async {
        let report = match suite {
            Some(s) => runbook_server::smoke::run_suite(&args.base_url, s, timeout).await,
            None => runbook_server::smoke::run_standard(&args.base_url, timeout).await,
        };
        if let Some(path) = &args.junit {
            std::fs::write(path, report.junit())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if args.json {
            output::json(&report)?;
        } else {
            let rows: Vec<Vec<String>> = report
                .cases
                .iter()
                .map(|c| {
                    vec![
                        if c.ok {
                            "pass"
                        } else if c.skipped {
                            "skip"
                        } else {
                            "FAIL"
                        }
                        .to_string(),
                        c.name.clone(),
                        c.status.map(|s| s.to_string()).unwrap_or_default(),
                        format!("{:.0} ms", c.millis),
                        c.message.clone(),
                    ]
                })
                .collect();
            output::table(&["RESULT", "CHECK", "STATUS", "TIME", "WHY"], &rows);
        }
        let passed = report.passed();
        let store = super::store(config).await?;
        let failed = report.cases.iter().filter(|c| !c.ok && !c.skipped).count();
        store
            .append(
                runbook_store::NewEntry {
                    actor: "cli".into(),
                    action: "smoke.run".into(),
                    target: report.suite.clone(),
                    outcome: if passed { "passed" } else { "failed" }.into(),
                    detail: format!(
                        "{}: {} checks, {failed} failed",
                        report.base_url,
                        report.cases.len()
                    ),
                },
                jiff::Timestamp::now().as_millisecond(),
            )
            .await
            .context("cannot record the run in the ops log")?;
        if !passed && !args.json {
            eprintln!("runbook: smoke checks failed against {}", report.base_url);
        }
        Ok(if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
