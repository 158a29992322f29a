//! Alerts on runbook's own failures, delivered to `ALERT_WEBHOOK_URL` as Standard Webhooks.
//!
//! A failed backup, drill or restore job fires the alert `<kind>.failed` for its target; the
//! next success resolves it. Each transition (never a repeat of the same state) goes into the
//! ops log and into the notification outbox in the state store, so a receiver that is down
//! loses nothing: delivery is retried with backoff until it succeeds, each failure recorded.
//! Signatures follow Standard Webhooks: headers `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the decoded
//! `whsec_` secret.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use runbook_config::monitor::{Notifier, NotifierTarget, Severity};
use runbook_store::Transition;
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::AppState;

/// Delivery attempts are spaced 10 s, 20 s, 40 s, … up to one hour apart.
fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 9)).unwrap_or(9);
    (10_000 * 2_i64.pow(exp)).min(3_600_000)
}

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

/// The `webhook-signature` value for `body` sent as `id` at `ts` (Unix seconds).
///
/// # Errors
/// A secret that is not `whsec_<base64>`.
pub fn sign(secret: &str, id: &str, ts: i64, body: &str) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .map_err(|_| "ALERT_WEBHOOK_SECRET: not whsec_<base64>".to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Whether `sigs` (the `webhook-signature` header: space-separated `v1,<base64>` values)
/// holds a valid signature of `body` sent as `id` at `ts`, compared in constant time.
#[must_use]
pub fn verify(secret: &secrecy::SecretString, id: &str, ts: i64, body: &str, sigs: &str) -> bool {
    let Ok(key) = STANDARD.decode(secret.expose_secret().trim_start_matches("whsec_")) else {
        return false;
    };
    sigs.split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b| STANDARD.decode(b).ok())
        .any(|given| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
                return false;
            };
            mac.update(format!("{id}.{ts}.{body}").as_bytes());
            mac.verify_slice(&given).is_ok()
        })
}

/// Sends the notifications that are due; returns how many were delivered.
///
/// # Errors
/// State-store errors (a receiver's failure is recorded, not returned).
pub async fn deliver_due(state: &AppState) -> Result<usize, runbook_store::Error> {
    let now = state.clock.now_ms();
    let mut delivered = 0;
    let all = notifiers(state);
    for n in state.store.due_notifications(now, 20).await? {
        let result = match all.iter().find(|x| x.name == n.channel) {
            Some(notifier) => send(state, notifier, &n).await,
            None => Err(format!(
                "the notifier {:?} is no longer configured",
                n.channel
            )),
        };
        match result {
            Ok(()) => {
                state
                    .store
                    .notification_attempt(&n.id, now, None, now)
                    .await?;
                delivered += 1;
            }
            Err(why) => {
                let next = now + backoff_ms(n.attempts);
                state
                    .store
                    .notification_attempt(&n.id, now, Some(&why), next)
                    .await?;
                tracing::warn!(notification = %n.id, channel = %n.channel, error = %why, "alert notification failed; retrying later");
                state
                    .audit(
                        "alerts",
                        "notify.failed",
                        &n.id,
                        "retrying",
                        format!("{}: {why}; next attempt at {next}", n.channel),
                    )
                    .await?;
            }
        }
    }
    Ok(delivered)
}

async fn send(
    state: &AppState,
    notifier: &Notifier,
    n: &runbook_store::Notification,
) -> Result<(), String> {
    match &notifier.target {
        NotifierTarget::Webhook { url, secret_env } => {
            let secret = match secret_env {
                // The default notifier: ALERT_WEBHOOK_SECRET, read with the other settings.
                None if notifier.name == "webhook" => state.settings.alert_webhook_secret.clone(),
                None => None,
                Some(var) => Some(secrecy::SecretString::from(std::env::var(var).map_err(
                    |_| {
                        format!(
                            "{var} (the secret of notifier {}) is not set",
                            notifier.name
                        )
                    },
                )?)),
            };
            send_webhook(url, secret.as_ref(), n).await
        }
        NotifierTarget::Email { to } => send_email(state, to, n).await,
    }
}

async fn send_webhook(
    url: &str,
    secret: Option<&secrecy::SecretString>,
    n: &runbook_store::Notification,
) -> Result<(), String> {
    let client = http_client::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    // The receiver checks this against its own clock (replay protection): the wall clock,
    // whatever clock drives runbook's schedules.
    let ts = jiff::Timestamp::now().as_second();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &n.id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(secret) = secret {
        req = req.header(
            "webhook-signature",
            sign(secret.expose_secret(), &n.id, ts, &n.payload)?,
        );
    }
    match req.body(n.payload.clone()).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the receiver answered {}", r.status())),
        Err(e) => Err(format!("cannot reach the receiver: {}", one_line(&e))),
    }
}

/// The subject and plain-text body of a notice.
fn email_text(payload: &serde_json::Value) -> (String, String) {
    let d = &payload["data"];
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    let state = text("state");
    let subject = format!(
        "[runbook] {} {}: {}",
        state.to_uppercase(),
        text("rule"),
        text("subject")
    );
    let body = format!(
        "{subject}\n\nrule: {}\ntarget: {}\nseverity: {}\nsince: {}\nfor: {} s\n\n{}\n",
        text("rule"),
        text("subject"),
        text("severity"),
        text("started"),
        d["fired_seconds"].as_i64().unwrap_or(0),
        text("message"),
    );
    (subject, body)
}

async fn send_email(
    state: &AppState,
    to: &[String],
    n: &runbook_store::Notification,
) -> Result<(), String> {
    use lettre::{
        AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
        message::MultiPart,
        transport::smtp::{
            authentication::Credentials,
            client::{Tls, TlsParameters},
        },
    };
    let Some(smtp) = &state.settings.smtp else {
        return Err("SMTP_HOST is not set".into());
    };
    let payload: serde_json::Value = serde_json::from_str(&n.payload).map_err(|e| e.to_string())?;
    let (subject, body) = email_text(&payload);
    let html = format!(
        "<html><body><h2>{}</h2><pre>{}</pre></body></html>",
        html_escape(&subject),
        html_escape(&body)
    );
    let mut msg = Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("SMTP_FROM: {e}"))?)
        .subject(subject)
        .message_id(Some(format!("<{}@runbook>", n.id)));
    for to in to {
        msg = msg.to(to
            .parse()
            .map_err(|e| format!("ALERT_EMAIL_TO {to}: {e}"))?);
    }
    let msg = msg
        .multipart(MultiPart::alternative_plain_html(body, html))
        .map_err(|e| e.to_string())?;
    let tls = TlsParameters::new(smtp.host.clone()).map_err(|e| e.to_string())?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(20)))
        .tls(match smtp.port {
            465 => Tls::Wrapper(tls),
            587 => Tls::Required(tls),
            _ => Tls::Opportunistic(tls),
        });
    if let (Some(user), Some(pass)) = (&smtp.user, &smtp.pass) {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            pass.expose_secret().to_string(),
        ));
    }
    transport
        .build()
        .send(msg)
        .await
        .map(drop)
        .map_err(|e| format!("SMTP {}:{}: {}", smtp.host, smtp.port, one_line(&e)))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        )
        .expect("signs");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff_ms(0), 10_000);
        assert_eq!(backoff_ms(3), 80_000);
        assert_eq!(backoff_ms(50), 3_600_000);
    }
}
