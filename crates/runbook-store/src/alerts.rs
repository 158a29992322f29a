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
    },
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
    /// when its state changed (a second failure of a firing alert changes nothing).
    ///
    /// # Errors
    /// Database errors.
    pub async fn alert_state(
        &self,
        rule: &str,
        subject: &str,
        firing: bool,
        now: i64,
    ) -> Result<Option<Transition>> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query("SELECT state, since FROM alerts WHERE rule = $1 AND subject = $2")
            .bind(rule)
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await?;
        let was = row
            .map(|r| -> Result<(String, i64)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
            .transpose()?;
        let was_firing = was.as_ref().is_some_and(|(s, _)| s == "firing");
        let change = match (was_firing, firing) {
            (false, true) => Some(Transition::Fired),
            (true, false) => Some(Transition::Resolved {
                since: was.map_or(now, |(_, since)| since),
            }),
            _ => None,
        };
        if change.is_some() {
            let state = if firing { "firing" } else { "resolved" };
            sqlx::query("DELETE FROM alerts WHERE rule = $1 AND subject = $2")
                .bind(rule)
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO alerts (rule, subject, state, since) VALUES ($1, $2, $3, $4)")
                .bind(rule)
                .bind(subject)
                .bind(state)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(change)
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
