//! Built-in signals, no configuration needed: what `/api/health` finds wrong becomes an alert
//! (`backup.stale`, `drill.overdue`, `verify.failed`, `jobs.failing`, `repository.unreachable`,
//! `disk.low`, `auth.misconfigured`, `secret.due`, `secret.overdue`, `restore.interrupted`) and resolves when the check passes again. Failed backup
//! and drill jobs raise `backup.failed` and `drill.failed` from the worker.

use std::collections::HashSet;

use crate::{AppState, notify, routes::health};

/// The rules this module raises and resolves.
const RULES: [&str; 10] = [
    "secret.due",
    "secret.overdue",
    "backup.stale",
    "drill.overdue",
    "verify.failed",
    "jobs.failing",
    "repository.unreachable",
    "disk.low",
    "auth.misconfigured",
    "restore.interrupted",
];

/// Raises an alert for each failing health check and resolves the built-in alerts whose
/// check passes now.
///
/// # Errors
/// State-store errors.
pub(crate) async fn evaluate(state: &AppState) -> Result<(), runbook_store::Error> {
    let mut now_firing = HashSet::new();
    for c in health::checks(state).await? {
        let Some((rule, subject)) = c.signal else {
            continue;
        };
        if c.status == "ok" {
            continue;
        }
        notify::signal(state, rule, &subject, true, &c.message).await?;
        now_firing.insert((rule.to_string(), subject));
    }
    for a in state.store.firing_alerts().await? {
        if RULES.contains(&a.rule.as_str())
            && !now_firing.contains(&(a.rule.clone(), a.subject.clone()))
        {
            notify::signal(state, &a.rule, &a.subject, false, "the check passes again").await?;
        }
    }
    Ok(())
}
