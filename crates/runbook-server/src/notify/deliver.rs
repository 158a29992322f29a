//! Delivery of queued notices: Standard Webhooks (headers `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the decoded
//! `whsec_` secret) and email, retried with backoff until they succeed.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use runbook_config::monitor::{Notifier, NotifierTarget};

use secrecy::ExposeSecret;
use sha2::Sha256;

use super::{notifiers, one_line};
use crate::AppState;

/// Delivery attempts are spaced 10 s, 20 s, 40 s, … up to one hour apart.
fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 9)).unwrap_or(9);
    (10_000 * 2_i64.pow(exp)).min(3_600_000)
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

pub(crate) async fn send(
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
        crate::report::html_escape(&subject),
        crate::report::html_escape(&body)
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
