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
    if state.settings.alert_webhook_url.is_some() {
        state
            .store
            .enqueue_notification(&payload.to_string(), now)
            .await?;
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
    let Some(url) = state.settings.alert_webhook_url.clone() else {
        return Ok(0);
    };
    let now = state.clock.now_ms();
    let due = state.store.due_notifications(now, 20).await?;
    let client = http_client::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| runbook_store::Error::Query {
            message: format!("http client: {e}"),
            temporary: false,
        })?;
    let mut delivered = 0;
    for n in due {
        // The receiver checks this against its own clock (replay protection): the wall clock,
        // whatever clock drives runbook's schedules.
        let ts = jiff::Timestamp::now().as_second();
        let mut req = client
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &n.id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(secret) = &state.settings.alert_webhook_secret {
            match sign(secret.expose_secret(), &n.id, ts, &n.payload) {
                Ok(sig) => req = req.header("webhook-signature", sig),
                Err(e) => tracing::error!(error = %e, "cannot sign alert notifications"),
            }
        }
        let result = match req.body(n.payload.clone()).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the receiver answered {}", r.status())),
            Err(e) => Err(format!("cannot reach the receiver: {}", one_line(&e))),
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
                tracing::warn!(notification = %n.id, error = %why, "alert webhook failed; retrying later");
                state
                    .audit(
                        "alerts",
                        "notify.failed",
                        &n.id,
                        "retrying",
                        format!("{why}; next attempt at {next}"),
                    )
                    .await?;
            }
        }
    }
    Ok(delivered)
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
