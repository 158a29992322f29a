//! `runbook keys create|list|revoke`.

use std::process::ExitCode;

use runbook_config::Config;
use runbook_store::Role;

use crate::{cli::KeysCommand, output};

pub fn run(config: &Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let now = jiff::Timestamp::now().as_millisecond();
    super::runtime()?.block_on(async {
        let store = super::store(config).await?;
        match command {
            KeysCommand::Create { role, name, json } => {
                let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
                let new = store.create_key(&name, role, now).await?;
                append(
                    &store,
                    "key.create",
                    &new.key.id,
                    format!("{} ({})", name, role.as_str()),
                    now,
                )
                .await?;
                if json {
                    output::json(&serde_json::json!({ "key": new.key, "secret": new.secret }))?;
                } else {
                    println!("{}", new.secret);
                    eprintln!(
                        "created {} key {} ({name}); this is the only time the secret is shown",
                        role.as_str(),
                        new.key.id
                    );
                }
            }
            KeysCommand::List { json } => {
                let keys = store.keys().await?;
                if json {
                    output::json(&keys)?;
                } else {
                    let rows: Vec<Vec<String>> = keys
                        .iter()
                        .map(|k| {
                            vec![
                                k.id.clone(),
                                k.name.clone(),
                                k.role.as_str().to_string(),
                                ms(k.created_at),
                                k.revoked_at.map_or_else(
                                    || "active".into(),
                                    |t| format!("revoked {}", ms(t)),
                                ),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "NAME", "ROLE", "CREATED (UTC)", "STATE"], &rows);
                }
            }
            KeysCommand::Revoke { id } => {
                store.revoke_key(&id, now).await?;
                append(&store, "key.revoke", &id, String::new(), now).await?;
                println!("revoked key {id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn append(
    store: &runbook_store::Store,
    action: &str,
    target: &str,
    detail: String,
    now: i64,
) -> anyhow::Result<()> {
    let entry = runbook_store::NewEntry {
        actor: "cli".into(),
        action: action.into(),
        target: target.into(),
        outcome: "ok".into(),
        detail,
    };
    store.append(entry, now).await?;
    Ok(())
}

pub fn ms(t: i64) -> String {
    jiff::Timestamp::from_millisecond(t).map_or_else(|_| t.to_string(), output::time)
}
