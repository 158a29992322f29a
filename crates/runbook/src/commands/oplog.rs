//! `runbook oplog [--json]` and `runbook oplog verify`.

use std::process::ExitCode;

use runbook_config::Config;

use crate::{
    cli::{OplogArgs, OplogCommand},
    output,
};

pub fn run(config: &Config, args: &OplogArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let store = super::store(config).await?;
        match args.command {
            Some(OplogCommand::Verify) => match store.verify_oplog().await? {
                Ok(n) => {
                    println!("ops log ok: {n} entries, hash chain intact");
                    Ok(ExitCode::SUCCESS)
                }
                Err(bad) => anyhow::bail!("ops log tampered: {bad}"),
            },
            None => {
                let entries = store.oplog(args.limit).await?;
                if args.json {
                    output::json(&entries)?;
                } else {
                    let rows: Vec<Vec<String>> = entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.seq.to_string(),
                                super::keys::ms(e.ts),
                                e.actor.clone(),
                                e.action.clone(),
                                e.target.clone(),
                                e.outcome.clone(),
                                e.detail.clone(),
                            ]
                        })
                        .collect();
                    output::table(
                        &[
                            "SEQ",
                            "TIME (UTC)",
                            "WHO",
                            "ACTION",
                            "TARGET",
                            "OUTCOME",
                            "DETAIL",
                        ],
                        &rows,
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
