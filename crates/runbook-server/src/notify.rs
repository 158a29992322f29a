//! Alerts on runbook's own failures, delivered to `ALERT_WEBHOOK_URL` as Standard Webhooks.
//!
//! A failed backup, drill or restore job fires the alert `<kind>.failed` for its target; the
//! next success resolves it. Each transition (never a repeat of the same state) goes into the
//! ops log and into the notification outbox in the state store, so a receiver that is down
//! loses nothing: delivery is retried with backoff until it succeeds, each failure recorded.
//! Signatures follow Standard Webhooks: headers `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the decoded
//! `whsec_` secret.

mod deliver;

pub(crate) use deliver::send;
pub use deliver::{deliver_due, sign, verify};

use runbook_config::monitor::{Notifier, NotifierTarget, Severity};
use runbook_store::Transition;

use crate::AppState;

/// What an alert is: its rule, how bad, how often to repeat and whom to tell.
#[derive(Debug, Clone)]
pub struct AlertSpec<'a> {
    /// The rule (`backup.failed`, `[alerts.NAME]`).
    pub rule: &'a str,
    /// What it is about.
    pub subject: &'a str,
    /// Routing.
    pub severity: Severity,
    /// Send the firing notice again this often while it fires.
    pub repeat: Option<std::time::Duration>,
    /// Only these notifiers (empty: every notifier that takes the severity).
    pub notify: &'a [String],
}

/// Records that `rule` on `subject` is failing (`message` says why) or healthy as of now, and
/// queues a notification when that changes its state: runbook's own signals, page severity.
///
/// # Errors
/// State-store errors.
pub async fn signal(
    state: &AppState,
    rule: &str,
    subject: &str,
    failing: bool,
    message: &str,
) -> Result<(), runbook_store::Error> {
    let spec = AlertSpec {
        rule,
        subject,
        severity: Severity::Page,
        repeat: None,
        notify: &[],
    };
    raise(state, &spec, failing, message).await
}

/// Whether `rule` is silenced at `now` (by the config or through the API).
async fn silenced(state: &AppState, rule: &str, now: i64) -> Result<bool, runbook_store::Error> {
    if state
        .engine
        .config()
        .monitor
        .silences
        .iter()
        .any(|s| s.covers(rule, now))
    {
        return Ok(true);
    }
    Ok(state
        .store
        .silences(now)
        .await?
        .iter()
        .any(|s| s.starts_at <= now && s.rule.as_deref().is_none_or(|r| r == rule)))
}

/// Moves an alert along pending → firing → resolved: each transition goes into the ops log;
/// a firing notice goes out when it fires (and every `repeat` while it fires), a resolved
/// notice once when it clears (only if a firing notice went out). While silenced nothing is
/// sent, and the alert still resolves.
///
/// # Errors
/// State-store errors.
pub async fn raise(
    state: &AppState,
    spec: &AlertSpec<'_>,
    firing: bool,
    message: &str,
) -> Result<(), runbook_store::Error> {
    let now = state.clock.now_ms();
    let (rule, subject) = (spec.rule, spec.subject);
    let change = state
        .store
        .alert_state(rule, subject, firing, now, spec.severity.as_str(), message)
        .await?;
    let status = match change {
        Some(Transition::Fired) => "firing",
        Some(Transition::Resolved { .. }) => "resolved",
        None if firing => "firing",
        None => return Ok(()),
    };
    if change.is_some() {
        state
            .audit(
                "alerts",
                &format!("alert.{status}"),
                subject,
                rule,
                message.to_string(),
            )
            .await?;
    }
    let silenced = silenced(state, rule, now).await?;
    let alert = state.store.alert(rule, subject).await?;
    let send = !silenced
        && match change {
            Some(Transition::Resolved { notified, .. }) => notified,
            // Firing: the first notice, or a repeat that is due.
            _ => match alert.as_ref().and_then(|a| a.last_sent) {
                None => true,
                Some(sent) => spec.repeat.is_some_and(|r| {
                    now - sent >= i64::try_from(r.as_millis()).unwrap_or(i64::MAX)
                }),
            },
        };
    if !send {
        return Ok(());
    }
    let started = match change {
        Some(Transition::Resolved { since, .. }) => since,
        _ => alert.as_ref().map_or(now, |a| a.fired_at),
    };
    let time = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let payload = serde_json::json!({
        "type": format!("alert.{status}"),
        "timestamp": time(now),
        "data": {
            "rule": rule,
            "subject": subject,
            "severity": spec.severity.as_str(),
            "state": status,
            "started": time(started),
            "fired_seconds": (now - started) / 1000,
            "value": message,
            "message": message,
            "link": state.settings.public_url.as_ref().map(|u| format!("{}/api/alerts", u.trim_end_matches('/'))),
        }
    });
    for n in notifiers(state) {
        let chosen = if spec.notify.is_empty() {
            n.takes(spec.severity)
        } else {
            spec.notify.contains(&n.name)
        };
        if chosen {
            state
                .store
                .enqueue_notification(&n.name, &payload.to_string(), now)
                .await?;
        }
    }
    if status == "firing" {
        state.store.alert_sent(rule, subject, now).await?;
    }
    Ok(())
}

/// The notifiers: `webhook` (`ALERT_WEBHOOK_URL`) and `email` (`SMTP_HOST` with
/// `ALERT_EMAIL_TO`) when set, then each `[notifiers.NAME]`.
#[must_use]
pub fn notifiers(state: &AppState) -> Vec<Notifier> {
    let s = &state.settings;
    let mut all = Vec::new();
    if let Some(url) = &s.alert_webhook_url {
        all.push(Notifier {
            name: "webhook".into(),
            target: NotifierTarget::Webhook {
                url: url.clone(),
                secret_env: None,
            },
            severities: Vec::new(),
        });
    }
    if let Some(smtp) = &s.smtp {
        all.push(Notifier {
            name: "email".into(),
            target: NotifierTarget::Email {
                to: smtp.to.clone(),
            },
            severities: Vec::new(),
        });
    }
    all.extend(state.engine.config().monitor.notifiers.values().cloned());
    all
}

/// Sends a test notice through the notifier `name` now (not through the outbox).
///
/// # Errors
/// No such notifier, or the delivery failed (why, in one line).
pub async fn send_test(state: &AppState, name: &str) -> Result<(), String> {
    let all = notifiers(state);
    let Some(n) = all.iter().find(|n| n.name == name) else {
        let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
        return Err(format!(
            "no notifier named {name:?} (configured: {})",
            if names.is_empty() {
                "none; set ALERT_WEBHOOK_URL or SMTP_HOST, or add [notifiers.NAME]".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let now = state.clock.now_ms();
    let payload = serde_json::json!({
        "type": "alert.test",
        "timestamp": jiff::Timestamp::from_millisecond(now).map(|t| t.to_string()).unwrap_or_default(),
        "data": {
            "rule": "test", "subject": name, "severity": "ticket", "state": "test",
            "started": "", "fired_seconds": 0, "value": "",
            "message": "a test notice from `runbook notify test`; nothing is wrong",
        }
    });
    let n2 = runbook_store::Notification {
        id: format!("msg_test_{now}"),
        payload: payload.to_string(),
        attempts: 0,
        channel: name.to_string(),
    };
    send(state, n, &n2).await
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
