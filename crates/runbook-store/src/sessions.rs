//! Dashboard sessions: a random token in an `HttpOnly` cookie, stored only as its SHA-256, tied
//! to the API key that signed in (revoking the key ends its sessions) and carrying the CSRF
//! token the session's forms must echo.

use sqlx::Row;

use crate::{Result, Role, Store, keys::hash_secret, random_id};

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The API key it signed in with.
    pub key_id: String,
    /// That key's name.
    pub key_name: String,
    /// That key's role.
    pub role: Role,
    /// The token every form and POST of this session must carry.
    pub csrf: String,
    /// When it ends unless used (Unix ms).
    pub expires_at: i64,
}

impl Store {
    /// Opens a session for `key_id` lasting `ttl_ms` from `now`; returns the cookie token (the
    /// only copy) and the session.
    ///
    /// # Errors
    /// Database errors.
    pub async fn create_session(&self, key_id: &str, now: i64, ttl_ms: i64) -> Result<String> {
        let token = format!("{}{}", random_id(), random_id());
        sqlx::query(
            "INSERT INTO sessions (hash, key_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_secret(&token))
        .bind(key_id)
        .bind(random_id())
        .bind(now)
        .bind(now + ttl_ms)
        .execute(self.pool())
        .await?;
        Ok(token)
    }

    /// The session of `token` at `now`, extended by `ttl_ms`; `None` when unknown, expired or
    /// its key revoked.
    ///
    /// # Errors
    /// Database errors.
    pub async fn session(&self, token: &str, now: i64, ttl_ms: i64) -> Result<Option<Session>> {
        let hash = hash_secret(token);
        let row = sqlx::query(
            "SELECT s.key_id, k.name, k.role, s.csrf, s.expires_at FROM sessions s
             JOIN api_keys k ON k.id = s.key_id
             WHERE s.hash = $1 AND s.expires_at > $2 AND (k.revoked_at IS NULL OR k.revoked_at > $2)",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let role: String = r.try_get(2)?;
        let session = Session {
            key_id: r.try_get(0)?,
            key_name: r.try_get(1)?,
            role: Role::parse(&role).unwrap_or(Role::Readonly),
            csrf: r.try_get(3)?,
            expires_at: now + ttl_ms,
        };
        sqlx::query("UPDATE sessions SET expires_at = $1 WHERE hash = $2")
            .bind(session.expires_at)
            .bind(&hash)
            .execute(self.pool())
            .await?;
        Ok(Some(session))
    }

    /// Ends the session of `token` (and drops every expired one).
    ///
    /// # Errors
    /// Database errors.
    pub async fn end_session(&self, token: &str, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1 OR expires_at <= $2")
            .bind(hash_secret(token))
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
