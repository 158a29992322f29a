//! One summary of everything the service watches: the health checks, probes, heartbeats and
//! the alerts firing. `runbook status` prints it; it is the same data the API serves.

use serde::Serialize;

use crate::{AppState, monitor, routes::health};

/// What `runbook status` shows.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `ok`, `warn` or `critical` (critical also when an alert fires).
    pub status: &'static str,
    /// The health checks of `/api/health`.
    pub checks: Vec<Line>,
    /// Each probe's latest state.
    pub probes: Vec<Line>,
    /// Each heartbeat's state.
    pub heartbeats: Vec<Line>,
    /// Alerts firing now.
    pub alerts: Vec<runbook_store::Alert>,
}

/// One named thing and its state, in words.
#[derive(Debug, Serialize)]
pub struct Line {
    /// Its name.
    pub name: String,
    /// `ok`/`warn`/`critical`, `up`/`down`/`pending`, `new`/`up`/`late`/`down`.
    pub status: String,
    /// Why.
    pub message: String,
}

/// Reads the summary at the clock's time.
///
/// # Errors
/// State-store errors.
pub async fn summary(state: &AppState) -> Result<Summary, runbook_store::Error> {
    let now = state.clock.now_ms();
    let checks: Vec<Line> = health::checks(state)
        .await?
        .into_iter()
        .map(|c| Line {
            name: c.name,
            status: c.status.to_string(),
            message: c.message,
        })
        .collect();
    let stored = state.store.probe_statuses().await?;
    let probes: Vec<Line> = state
        .engine
        .config()
        .monitor
        .probes
        .values()
        .map(|p| match stored.iter().find(|s| s.last.probe == p.name) {
            None => Line {
                name: p.name.clone(),
                status: "pending".into(),
                message: "not checked yet".into(),
            },
            Some(s) => Line {
                name: p.name.clone(),
                status: if s.last.ok { "up" } else { "down" }.into(),
                message: s
                    .last
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("passed in {} ms", s.last.duration_ms)),
            },
        })
        .collect();
    let mut heartbeats: Vec<Line> = monitor::heartbeat_states(state, now)
        .await?
        .into_iter()
        .map(|(name, (s, _))| Line {
            name,
            status: s.state.to_string(),
            message: s.reason,
        })
        .collect();
    heartbeats.sort_by(|a, b| a.name.cmp(&b.name));
    let alerts = state.store.firing_alerts().await?;
    let bad = |l: &Line, words: &[&str]| words.contains(&l.status.as_str());
    let status = if !alerts.is_empty()
        || checks.iter().any(|c| bad(c, &["critical"]))
        || probes.iter().chain(&heartbeats).any(|l| bad(l, &["down"]))
    {
        "critical"
    } else if checks.iter().any(|c| bad(c, &["warn"]))
        || heartbeats.iter().any(|l| bad(l, &["late"]))
    {
        "warn"
    } else {
        "ok"
    };
    Ok(Summary {
        status,
        checks,
        probes,
        heartbeats,
        alerts,
    })
}
