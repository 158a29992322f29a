//! Alert state (firing or resolved, per rule and subject) and the notification outbox.

use sqlx::Row;

use crate::{Result, Store, random_id};

/// A change of an alert's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It was not firing and now is.
    Fired,
    /// It was firing since this time (Unix ms) and now is not.
    Resolved {
        /// When it started firing.
        since: i64,
        /// Whether a firing notice had been sent (a resolved notice follows only then).
        notified: bool,
    },
}

/// One alert: firing now, or resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Alert {
    /// The rule (`backup.failed`, or an `[alerts.NAME]`).
    pub rule: String,
    /// What it is about (a target, a probe, a heartbeat).
    pub subject: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// When it started firing (Unix ms).
    pub fired_at: i64,
    /// When it resolved (Unix ms), if it has.
    pub resolved_at: Option<i64>,
    /// When its firing notice was last sent.
    pub last_sent: Option<i64>,
    /// `page` or `ticket`.
    pub severity: String,
    /// Why, in words.
    pub message: String,
}

/// A notification waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its id (also the `webhook-id`, so a receiver can drop a duplicate).
    pub id: String,
    /// The JSON body.
    pub payload: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The notifier: `webhook` or `email`.
    pub channel: String,
}

impl Store {
    /// Sets the alert `rule` on `subject` to firing or not as of `now`; returns the transition
    /// when its state changed (a second failure of a firing alert changes nothing but the
    /// message).
    ///
    /// # Errors
    /// Database errors.
    pub async fn alert_state(
        &self,
        rule: &str,
        subject: &str,
        firing: bool,
        now: i64,
        severity: &str,
        message: &str,
    ) -> Result<Option<Transition>> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "SELECT state, since, fired_at, last_sent FROM alerts WHERE rule = $1 AND subject = $2",
        )
        .bind(rule)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?;
        let was = row
            .map(|r| -> Result<(String, i64, Option<i64>, Option<i64>)> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
            })
            .transpose()?;
        let was_firing = was.as_ref().is_some_and(|(s, ..)| s == "firing");
        let change = match (was_firing, firing) {
            (false, true) => Some(Transition::Fired),
            (true, false) => Some(Transition::Resolved {
                since: was
                    .as_ref()
                    .map_or(now, |(_, since, fired, _)| fired.unwrap_or(*since)),
                notified: was.as_ref().is_some_and(|w| w.3.is_some()),
            }),
            _ => None,
        };
        match &change {
            Some(t) => {
                let (state, fired_at, sent) = match t {
                    Transition::Fired => ("firing", now, None),
                    Transition::Resolved { since, .. } => {
                        ("resolved", *since, was.as_ref().and_then(|w| w.3))
                    }
                };
                sqlx::query("DELETE FROM alerts WHERE rule = $1 AND subject = $2")
                    .bind(rule)
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO alerts (rule, subject, state, since, fired_at, last_sent, severity, message)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(rule)
                .bind(subject)
                .bind(state)
                .bind(now)
                .bind(fired_at)
                .bind(sent)
                .bind(severity)
                .bind(message)
                .execute(&mut *tx)
                .await?;
            }
            None if firing => {
                sqlx::query("UPDATE alerts SET message = $1 WHERE rule = $2 AND subject = $3")
                    .bind(message)
                    .bind(rule)
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        tx.commit().await?;
        Ok(change)
    }

    /// Records that the firing notice of `rule` on `subject` was sent at `now`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn alert_sent(&self, rule: &str, subject: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE alerts SET last_sent = $1 WHERE rule = $2 AND subject = $3")
            .bind(now)
            .bind(rule)
            .bind(subject)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// One alert, if it has ever fired.
    ///
    /// # Errors
    /// Database errors.
    pub async fn alert(&self, rule: &str, subject: &str) -> Result<Option<Alert>> {
        Ok(self
            .alert_rows(Some((rule, subject)))
            .await?
            .into_iter()
            .next())
    }

    /// Every alert firing now, then those resolved, newest first (at most `limit` resolved).
    ///
    /// # Errors
    /// Database errors.
    pub async fn alerts(&self, limit: usize) -> Result<Vec<Alert>> {
        let mut rows = self.alert_rows(None).await?;
        rows.sort_by_key(|a| {
            (
                a.state != "firing",
                std::cmp::Reverse(a.resolved_at.unwrap_or(a.fired_at)),
            )
        });
        let firing = rows.iter().filter(|a| a.state == "firing").count();
        rows.truncate(firing + limit);
        Ok(rows)
    }

    /// The alerts firing now.
    ///
    /// # Errors
    /// Database errors.
    pub async fn firing_alerts(&self) -> Result<Vec<Alert>> {
        Ok(self
            .alerts(0)
            .await?
            .into_iter()
            .filter(|a| a.state == "firing")
            .collect())
    }

    async fn alert_rows(&self, key: Option<(&str, &str)>) -> Result<Vec<Alert>> {
        const ALL: &str = "SELECT rule, subject, state, since, fired_at, last_sent, severity, message FROM alerts";
        const ONE: &str = "SELECT rule, subject, state, since, fired_at, last_sent, severity, message FROM alerts WHERE rule = $1 AND subject = $2";
        let q = match key {
            Some((rule, subject)) => sqlx::query(ONE).bind(rule).bind(subject),
            None => sqlx::query(ALL),
        };
        q.fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|r| {
                let state: String = r.try_get(2)?;
                let since: i64 = r.try_get(3)?;
                let fired_at: Option<i64> = r.try_get(4)?;
                Ok(Alert {
                    rule: r.try_get(0)?,
                    subject: r.try_get(1)?,
                    fired_at: fired_at.unwrap_or(since),
                    resolved_at: (state == "resolved").then_some(since),
                    state,
                    last_sent: r.try_get(5)?,
                    severity: r.try_get(6)?,
                    message: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Puts a notification for `channel` in the outbox, due now.
    ///
    /// # Errors
    /// Database errors.
    pub async fn enqueue_notification(
        &self,
        channel: &str,
        payload: &str,
        now: i64,
    ) -> Result<String> {
        let id = format!("msg_{}", random_id());
        sqlx::query(
            "INSERT INTO notifications (id, created_at, payload, attempts, next_at, channel) VALUES ($1, $2, $3, 0, $4, $5)",
        )
        .bind(&id)
        .bind(now)
        .bind(payload)
        .bind(now)
        .bind(channel)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Undelivered notifications due at `now`, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn due_notifications(&self, now: i64, limit: i64) -> Result<Vec<Notification>> {
        let rows = sqlx::query(
            "SELECT id, payload, attempts, channel FROM notifications
             WHERE delivered_at IS NULL AND next_at <= $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Notification {
                    id: r.try_get(0)?,
                    payload: r.try_get(1)?,
                    attempts: r.try_get(2)?,
                    channel: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Records a delivery (`error` None) or a failed attempt, to be tried again at `next_at`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn notification_attempt(
        &self,
        id: &str,
        now: i64,
        error: Option<&str>,
        next_at: i64,
    ) -> Result<()> {
        let query = match error {
            None => sqlx::query(
                "UPDATE notifications SET attempts = attempts + 1, delivered_at = $1, last_error = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(id),
            Some(e) => sqlx::query(
                "UPDATE notifications SET attempts = attempts + 1, last_error = $1, next_at = $2 WHERE id = $3",
            )
            .bind(e)
            .bind(next_at)
            .bind(id),
        };
        query.execute(self.pool()).await?;
        Ok(())
    }
}
