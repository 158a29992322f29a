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
                                    |t| {
                                        if t > now {
                                            format!("active until {}", ms(t))
                                        } else {
                                            format!("revoked {}", ms(t))
                                        }
                                    },
                                ),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "NAME", "ROLE", "CREATED (UTC)", "STATE"], &rows);
                }
            }
            KeysCommand::Rotate { id, overlap, json } => {
                let overlap = if overlap.trim() == "0" {
                    std::time::Duration::ZERO
                } else {
                    runbook_config::parse_duration(&overlap)
                        .map_err(|e| anyhow::anyhow!("--overlap: {e}"))?
                };
                let overlap_ms = i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX);
                let new = store.rotate_key(&id, overlap_ms, now).await?;
                let until = ms(now + overlap_ms);
                append(
                    &store,
                    "key.rotate",
                    &id,
                    format!("successor {}; the old key works until {until}", new.key.id),
                    now,
                )
                .await?;
                if json {
                    output::json(&serde_json::json!({ "key": new.key, "secret": new.secret, "old_key_until": now + overlap_ms }))?;
                } else {
                    println!("{}", new.secret);
                    eprintln!(
                        "key {id} rotated: successor {} ({}); the old key works until {until} UTC; this is the only time the secret is shown",
                        new.key.id,
                        new.key.role.as_str()
                    );
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
