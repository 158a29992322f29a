//! Secrets with ages (`[secrets.NAME]`): when each was last rotated — recorded by
//! `runbook secrets rotated NAME`, or noticed when a watched variable or file changes — and when
//! it is due. Never the value: a watched value is kept only as a salted SHA-256 fingerprint.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::AppState;

const DAY_MS: i64 = 86_400_000;
/// A secret is `due` this long before its `max_age` runs out.
const DUE_BEFORE_MS: i64 = 14 * DAY_MS;

/// One secret's age, as `/api/secrets` and the health checks show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretState {
    /// Its name.
    pub name: String,
    /// `ok`, `due` (within 14 days) or `overdue`.
    pub status: &'static str,
    /// When it was last rotated (Unix ms).
    pub rotated_at: i64,
    /// When it must be rotated by (Unix ms).
    pub due_at: i64,
    /// Its `max_age` in days.
    pub max_age_days: u64,
    /// What runbook watches to notice a rotation (`env NAME`, `file PATH`), if anything.
    pub watching: Option<String>,
    /// How to rotate it.
    pub notes: Option<String>,
}

fn fingerprint(salt: &str, value: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(value);
    hex::encode(h.finalize())
}

fn new_salt() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Every configured secret's age at the clock's time; a watched value that changed since the
/// last look counts as rotated now (and goes into the ops log).
///
/// # Errors
/// State-store errors.
pub async fn refresh(state: &AppState) -> Result<Vec<SecretState>, runbook_store::Error> {
    use runbook_config::secrets::Watch;
    let now = state.clock.now_ms();
    let mut out = Vec::new();
    for s in state.engine.config().secrets.values() {
        let (value, watching, changed_at) = match &s.watch {
            None => (None, None, None),
            Some(Watch::Env(var)) => (
                std::env::var(var).ok().map(String::into_bytes),
                Some(format!("env {var}")),
                None,
            ),
            Some(Watch::File(path)) => {
                let meta = std::fs::metadata(path).ok();
                let mtime = meta
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .and_then(|d| i64::try_from(d.as_millis()).ok());
                (
                    std::fs::read(path).ok(),
                    Some(format!("file {}", path.display())),
                    mtime,
                )
            }
        };
        let row = state.store.secret(&s.name).await?;
        let salt = row.as_ref().map_or_else(new_salt, |r| r.salt.clone());
        let fp = value.as_deref().map(|v| fingerprint(&salt, v));
        let rotated_at = match &row {
            None => {
                // First sight: a file counts from when it was written, anything else from now.
                let at = changed_at.unwrap_or(now).min(now);
                state
                    .store
                    .secret_rotated(&s.name, at, fp.as_deref(), &salt)
                    .await?;
                at
            }
            Some(r) if fp.is_some() && r.fingerprint.is_some() && r.fingerprint != fp => {
                state
                    .store
                    .secret_rotated(&s.name, now, fp.as_deref(), &salt)
                    .await?;
                state
                    .audit(
                        "watch",
                        "secret.rotated",
                        &s.name,
                        "ok",
                        watching.clone().unwrap_or_default(),
                    )
                    .await?;
                now
            }
            Some(r) => {
                if r.fingerprint.is_none() && fp.is_some() {
                    state
                        .store
                        .secret_rotated(&s.name, r.rotated_at, fp.as_deref(), &salt)
                        .await?;
                }
                r.rotated_at
            }
        };
        let due_at =
            rotated_at.saturating_add(i64::try_from(s.max_age.as_millis()).unwrap_or(i64::MAX));
        let status = if now > due_at {
            "overdue"
        } else if now > due_at - DUE_BEFORE_MS {
            "due"
        } else {
            "ok"
        };
        out.push(SecretState {
            name: s.name.clone(),
            status,
            rotated_at,
            due_at,
            max_age_days: s.max_age.as_secs() / 86_400,
            watching,
            notes: s.notes.clone(),
        });
    }
    Ok(out)
}

/// Records that `name` was rotated now, by `actor` (`runbook secrets rotated NAME`).
///
/// # Errors
/// No such secret, or the state store's error.
pub async fn mark_rotated(state: &AppState, name: &str, actor: &str) -> Result<(), String> {
    if !state.engine.config().secrets.contains_key(name) {
        let known: Vec<&str> = state
            .engine
            .config()
            .secrets
            .keys()
            .map(String::as_str)
            .collect();
        return Err(format!(
            "no secret named {name:?} (configured: {})",
            if known.is_empty() {
                "none; add [secrets.NAME]".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    let now = state.clock.now_ms();
    // Take the current fingerprint too, so the watch does not count this rotation twice.
    let _ = refresh(state).await.map_err(|e| e.to_string())?;
    let row = state.store.secret(name).await.map_err(|e| e.to_string())?;
    let salt = row.as_ref().map_or_else(new_salt, |r| r.salt.clone());
    state
        .store
        .secret_rotated(name, now, None, &salt)
        .await
        .map_err(|e| e.to_string())?;
    state
        .audit(
            actor,
            "secret.rotated",
            name,
            "ok",
            "recorded by hand".into(),
        )
        .await
        .map_err(|e| e.to_string())
}
