//! `runbook status` and `runbook notify test NAME`: the service's state store read by the CLI,
//! with the settings `serve` reads from the environment.

use std::{process::ExitCode, sync::Arc};

use runbook_backup::Engine;
use runbook_config::Config;
use runbook_server::{AppState, Settings, SystemClock};

use crate::{cli::StatusArgs, output};

pub(super) async fn state(config: Config) -> anyhow::Result<AppState> {
    let settings = Settings::from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
    let store = super::store(&config).await?;
    Ok(AppState::new(Engine::new(config), store, settings, Arc::new(SystemClock)).await?)
}

pub fn run(config: Config, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let state = state(config).await?;
        let s = runbook_server::status::summary(&state).await?;
        if args.json {
            output::json(&s)?;
        } else {
            println!("status: {}", s.status);
            for (title, lines) in [
                ("CHECK", &s.checks),
                ("PROBE", &s.probes),
                ("HEARTBEAT", &s.heartbeats),
            ] {
                if lines.is_empty() {
                    continue;
                }
                println!();
                let rows: Vec<Vec<String>> = lines
                    .iter()
                    .map(|l| vec![l.name.clone(), l.status.clone(), l.message.clone()])
                    .collect();
                output::table(&[title, "STATUS", "WHY"], &rows);
            }
            println!();
            if s.alerts.is_empty() {
                println!("no alerts firing");
            } else {
                let rows: Vec<Vec<String>> = s
                    .alerts
                    .iter()
                    .map(|a| {
                        vec![
                            a.rule.clone(),
                            a.subject.clone(),
                            a.severity.clone(),
                            super::keys::ms(a.fired_at),
                            a.message.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &["ALERT", "SUBJECT", "SEVERITY", "SINCE (UTC)", "WHY"],
                    &rows,
                );
            }
        }
        Ok(if s.status == "critical" {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

pub fn notify_test(config: Config, name: &str) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let state = state(config).await?;
        runbook_server::notify::send_test(&state, name)
            .await
            .map_err(|e| anyhow::anyhow!("notifier {name}: {e}"))?;
        println!("sent a test notice through {name}");
        Ok(ExitCode::SUCCESS)
    })
}

pub fn report(config: Config, format: &str) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let state = state(config).await?;
        let md = runbook_server::report::markdown(&state).await?;
        if format == "html" {
            print!("{}", runbook_server::report::to_html(&md));
        } else {
            print!("{md}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
