//! Silences made through the API, the inbound event ids seen lately (replay protection), and
//! the database probe.

use sqlx::Row;

use crate::{Result, Store, random_id};

/// A silence made through the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SilenceRow {
    /// Its id.
    pub id: String,
    /// Only this rule (`None`: all).
    pub rule: Option<String>,
    /// From (Unix ms).
    pub starts_at: i64,
    /// Until (Unix ms).
    pub ends_at: i64,
    /// Why.
    pub comment: String,
    /// The API key that made it.
    pub created_by: String,
}

impl Store {
    /// Adds a silence.
    ///
    /// # Errors
    /// Database errors.
    pub async fn add_silence(
        &self,
        rule: Option<&str>,
        starts_at: i64,
        ends_at: i64,
        comment: &str,
        created_by: &str,
        now: i64,
    ) -> Result<SilenceRow> {
        let id = format!("sil_{}", &random_id()[..12]);
        sqlx::query(
            "INSERT INTO silences (id, rule, starts_at, ends_at, comment, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(rule)
        .bind(starts_at)
        .bind(ends_at)
        .bind(comment)
        .bind(created_by)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(SilenceRow {
            id,
            rule: rule.map(str::to_string),
            starts_at,
            ends_at,
            comment: comment.to_string(),
            created_by: created_by.to_string(),
        })
    }

    /// Silences that have not ended by `now`, soonest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn silences(&self, now: i64) -> Result<Vec<SilenceRow>> {
        sqlx::query(
            "SELECT id, rule, starts_at, ends_at, comment, created_by FROM silences
             WHERE ends_at > $1 ORDER BY starts_at, id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| {
            Ok(SilenceRow {
                id: r.try_get(0)?,
                rule: r.try_get(1)?,
                starts_at: r.try_get(2)?,
                ends_at: r.try_get(3)?,
                comment: r.try_get(4)?,
                created_by: r.try_get(5)?,
            })
        })
        .collect()
    }

    /// Remembers an inbound event id; false when it was seen within the window already (a
    /// replay). Ids older than `forget_before` are dropped.
    ///
    /// # Errors
    /// Database errors.
    pub async fn first_sight(&self, id: &str, now: i64, forget_before: i64) -> Result<bool> {
        sqlx::query("DELETE FROM seen_events WHERE at < $1")
            .bind(forget_before)
            .execute(self.pool())
            .await?;
        let added = sqlx::query(
            "INSERT INTO seen_events (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    /// Runs `SELECT 1` on the database at `url` (a probe): Ok when it answers.
    ///
    /// # Errors
    /// The connection or query failure.
    pub async fn ping_database(url: &str) -> Result<()> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}
