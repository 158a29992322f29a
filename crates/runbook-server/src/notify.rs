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
use runbook_store::Transition;
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::AppState;

/// Delivery attempts are spaced 10 s, 20 s, 40 s, … up to one hour apart.
fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 9)).unwrap_or(9);
    (10_000 * 2_i64.pow(exp)).min(3_600_000)
}

/// Records that `rule` on `subject` is failing (`message` says why) or healthy as of now, and
/// queues a notification when that changes its state.
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
    let now = state.clock.now_ms();
    let Some(change) = state.store.alert_state(rule, subject, failing, now).await? else {
        return Ok(());
    };
    let (status, started) = match change {
        Transition::Fired => ("firing", now),
        Transition::Resolved { since } => ("resolved", since),
    };
    let payload = serde_json::json!({
        "type": format!("alert.{status}"),
        "timestamp": jiff::Timestamp::from_millisecond(now).map(|t| t.to_string()).unwrap_or_default(),
        "data": {
            "rule": rule,
            "subject": subject,
            "severity": "page",
            "state": status,
            "started": jiff::Timestamp::from_millisecond(started).map(|t| t.to_string()).unwrap_or_default(),
            "fired_seconds": (now - started) / 1000,
            "message": message,
        }
    });
    state
        .audit(
            "alerts",
            &format!("alert.{status}"),
            subject,
            rule,
            message.to_string(),
        )
        .await?;
    for (channel, configured) in [
        ("webhook", state.settings.alert_webhook_url.is_some()),
        ("email", state.settings.smtp.is_some()),
    ] {
        if configured {
            state
                .store
                .enqueue_notification(channel, &payload.to_string(), now)
                .await?;
        }
    }
    Ok(())
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

/// Sends the notifications that are due; returns how many were delivered.
///
/// # Errors
/// State-store errors (a receiver's failure is recorded, not returned).
pub async fn deliver_due(state: &AppState) -> Result<usize, runbook_store::Error> {
    let s = &state.settings;
    if s.alert_webhook_url.is_none() && s.smtp.is_none() {
        return Ok(0);
    }
    let now = state.clock.now_ms();
    let mut delivered = 0;
    for n in state.store.due_notifications(now, 20).await? {
        let result = match n.channel.as_str() {
            "email" => send_email(state, &n).await,
            _ => send_webhook(state, &n).await,
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

async fn send_webhook(state: &AppState, n: &runbook_store::Notification) -> Result<(), String> {
    let Some(url) = &state.settings.alert_webhook_url else {
        return Err("ALERT_WEBHOOK_URL is no longer set".into());
    };
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
    if let Some(secret) = &state.settings.alert_webhook_secret {
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

async fn send_email(state: &AppState, n: &runbook_store::Notification) -> Result<(), String> {
    use lettre::{
        AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
        message::MultiPart,
        transport::smtp::{
            authentication::Credentials,
            client::{Tls, TlsParameters},
        },
    };
    let Some(smtp) = &state.settings.smtp else {
        return Err("SMTP_HOST is no longer set".into());
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
    for to in &smtp.to {
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

fn one_line(e: &dyn std::error::Error) -> String {
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
