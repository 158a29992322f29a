//! `runbook secrets list [--json]` and `runbook secrets rotated NAME`.

use std::process::ExitCode;

use runbook_config::Config;

use crate::{cli::SecretsCommand, output};

pub fn run(config: Config, command: SecretsCommand) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let state = super::status::state(config).await?;
        match command {
            SecretsCommand::Rotated { name } => {
                runbook_server::secrets::mark_rotated(&state, &name, "cli")
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!("recorded: {name} rotated now");
                Ok(ExitCode::SUCCESS)
            }
            SecretsCommand::List { json } => {
                let all = runbook_server::secrets::refresh(&state).await?;
                if json {
                    output::json(&all)?;
                } else {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|s| {
                            vec![
                                s.name.clone(),
                                s.status.to_string(),
                                super::keys::ms(s.rotated_at),
                                super::keys::ms(s.due_at),
                                s.watching.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    output::table(
                        &["SECRET", "STATUS", "ROTATED (UTC)", "DUE (UTC)", "WATCHING"],
                        &rows,
                    );
                }
                Ok(if all.iter().any(|s| s.status == "overdue") {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    })
}
