//! When each configured secret was last rotated, and the salted fingerprint of its watched
//! value (never the value).

use sqlx::Row;

use crate::{Result, Store};

/// What the store knows of one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Its name.
    pub name: String,
    /// When it was last rotated (Unix ms).
    pub rotated_at: i64,
    /// The salted SHA-256 of the watched value, when watched.
    pub fingerprint: Option<String>,
    /// The salt.
    pub salt: String,
}

impl Store {
    /// The secret `name`, if it was ever seen.
    ///
    /// # Errors
    /// Database errors.
    pub async fn secret(&self, name: &str) -> Result<Option<SecretRow>> {
        let row =
            sqlx::query("SELECT name, rotated_at, fingerprint, salt FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(SecretRow {
                name: r.try_get(0)?,
                rotated_at: r.try_get(1)?,
                fingerprint: r.try_get(2)?,
                salt: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Records that `name` was rotated at `at` (with the new fingerprint, when watched).
    ///
    /// # Errors
    /// Database errors.
    pub async fn secret_rotated(
        &self,
        name: &str,
        at: i64,
        fingerprint: Option<&str>,
        salt: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO secrets (name, rotated_at, fingerprint, salt) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET rotated_at = excluded.rotated_at,
               fingerprint = COALESCE(excluded.fingerprint, secrets.fingerprint), salt = excluded.salt",
        )
        .bind(name)
        .bind(at)
        .bind(fingerprint)
        .bind(salt)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
