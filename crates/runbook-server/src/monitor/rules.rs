//! Whether an alert rule's condition holds for a probe's or a heartbeat's recent record.

use runbook_config::monitor::When;

use super::{Track, heartbeat, probe};

/// Whether a probe rule's condition holds, and why in words.
pub(super) fn probe_rule(when: &When, t: &Track, now: i64) -> (bool, String) {
    let why = t
        .last
        .as_ref()
        .and_then(|r| r.error.clone())
        .unwrap_or_else(|| "passing".into());
    match when {
        When::Failing { for_, .. } => match t.failing_since {
            Some(since) if now - since >= probe::ms(*for_) => (
                true,
                format!("failing for {} s: {why}", (now - since) / 1000),
            ),
            _ => (false, why),
        },
        When::Failures {
            more_than, within, ..
        } => {
            let n = t
                .recent
                .iter()
                .filter(|(at, ok)| !ok && *at > now - probe::ms(*within))
                .count();
            (
                n > *more_than as usize,
                format!(
                    "{n} failed checks in the last {}: {why}",
                    humantime::format_duration(*within)
                ),
            )
        }
        When::InARow { times, .. } => {
            let n = *times as usize;
            let firing = t.recent.len() >= n && t.recent.iter().rev().take(n).all(|(_, ok)| !ok);
            (firing, format!("the last {n} checks failed: {why}"))
        }
    }
}

/// Whether a heartbeat rule's condition holds, and why in words.
pub(super) fn heartbeat_rule(
    when: &When,
    status: &heartbeat::Status,
    runs: &[runbook_store::HeartbeatRun],
    now: i64,
) -> (bool, String) {
    match when {
        When::Failing { for_, .. } => {
            let firing = status
                .down_since
                .is_some_and(|s| status.state == "down" && now - s >= probe::ms(*for_));
            (firing, format!("{}: {}", status.state, status.reason))
        }
        When::Failures {
            more_than, within, ..
        } => {
            let n = runs
                .iter()
                .filter(|r| !r.ok && r.at > now - probe::ms(*within))
                .count();
            (n > *more_than as usize, format!("{n} failed runs"))
        }
        When::InARow { times, .. } => {
            let n = *times as usize;
            let firing = runs.len() >= n && runs.iter().take(n).all(|r| !r.ok);
            let last = runs
                .first()
                .and_then(|r| r.note.clone())
                .unwrap_or_default();
            (
                firing,
                format!("the last {n} runs failed {last}")
                    .trim_end()
                    .to_string(),
            )
        }
    }
}
