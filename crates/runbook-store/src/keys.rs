//! API keys: `rbk_` + 32 random bytes, shown once, stored only as a SHA-256 hash (the keys are
//! random and long, so a fast hash is the right one; lookup is by hash).

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Row, any::AnyRow};

use crate::{Error, Result, Store, random_id};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every GET.
    Readonly,
    /// Run backups (the seeds' "dispatcher").
    Operator,
    /// Everything, including restores and keys.
    Owner,
}

impl Role {
    /// Parses `owner`, `operator` (or `dispatcher`), `readonly` (or `read-only`).
    ///
    /// # Errors
    /// A message listing the roles.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "owner" => Ok(Self::Owner),
            "operator" | "dispatcher" => Ok(Self::Operator),
            "readonly" | "read-only" | "read_only" => Ok(Self::Readonly),
            _ => Err(format!(
                "unknown role {s:?}: use owner, operator (dispatcher) or readonly"
            )),
        }
    }

    /// The role's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Operator => "operator",
            Self::Readonly => "readonly",
        }
    }
}

/// A stored key (never the secret).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiKey {
    /// Key id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, when revoked.
    pub revoked_at: Option<i64>,
    /// Unix ms, when last used (to the hour).
    pub last_used_at: Option<i64>,
}

/// A freshly created key: the only time the secret exists outside its holder.
#[derive(Debug)]
pub struct NewKey {
    /// The stored record.
    pub key: ApiKey,
    /// The secret, `rbk_…`.
    pub secret: String,
}

/// SHA-256 of a key secret, hex.
#[must_use]
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn key_from(row: &AnyRow) -> Result<ApiKey> {
    let role: String = row.try_get("role")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).map_err(|_| Error::Corrupt {
            what: "api_keys.role",
            value: role,
        })?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Store {
    /// Creates a key with a new random secret.
    ///
    /// # Errors
    /// Database errors.
    pub async fn create_key(&self, name: &str, role: Role, now_ms: i64) -> Result<NewKey> {
        use rand::RngCore;
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        let secret = format!("rbk_{}", hex::encode(b));
        self.insert_key(name, role, &secret, now_ms).await
    }

    /// Stores a key whose secret is given (bootstrap keys from `SECURITY_OWNER_KEYS`).
    /// Idempotent: an existing key with the same secret is returned as is, revoked or not. A
    /// revoked key stays revoked: the environment cannot bring it back.
    ///
    /// # Errors
    /// Database errors.
    pub async fn ensure_key(
        &self,
        name: &str,
        role: Role,
        secret: &str,
        now_ms: i64,
    ) -> Result<ApiKey> {
        let row = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at, last_used_at FROM api_keys WHERE hash = $1",
        )
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await?;
        if let Some(k) = row.as_ref().map(key_from).transpose()? {
            return Ok(k);
        }
        Ok(self.insert_key(name, role, secret, now_ms).await?.key)
    }

    async fn insert_key(
        &self,
        name: &str,
        role: Role,
        secret: &str,
        now_ms: i64,
    ) -> Result<NewKey> {
        let id = random_id()[..12].to_string();
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(role.as_str())
        .bind(hash_secret(secret))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(NewKey {
            key: ApiKey {
                id,
                name: name.to_string(),
                role,
                created_at: now_ms,
                revoked_at: None,
                last_used_at: None,
            },
            secret: secret.to_string(),
        })
    }

    /// The active (not revoked) key whose secret is `secret`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn find_key(&self, secret: &str, now: i64) -> Result<Option<ApiKey>> {
        // A rotated key stays valid until its (future) revocation time.
        let row = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at, last_used_at FROM api_keys
             WHERE hash = $1 AND (revoked_at IS NULL OR revoked_at > $2)",
        )
        .bind(hash_secret(secret))
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(key_from).transpose()
    }

    /// Records that `key` was used at `now`, at most once an hour (one write per key and
    /// hour, not per request).
    ///
    /// # Errors
    /// Database errors.
    pub async fn key_used(&self, key: &ApiKey, now: i64) -> Result<()> {
        if key.last_used_at.is_some_and(|at| now - at < 3_600_000) {
            return Ok(());
        }
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&key.id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// All keys, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key_from).collect()
    }

    /// Rotates key `id`: a successor with the same name and role, and the old key revoked
    /// `overlap_ms` from `now` (both work until then, so clients can switch over).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or revoked id; database errors.
    pub async fn rotate_key(&self, id: &str, overlap_ms: i64, now: i64) -> Result<NewKey> {
        let old = self
            .keys()
            .await?
            .into_iter()
            .find(|k| k.id == id && k.revoked_at.is_none_or(|t| t > now))
            .ok_or_else(|| Error::NotFound {
                what: "active API key",
                id: id.to_string(),
            })?;
        // The successor first: a crash in between leaves two working keys, never none.
        let new = self.create_key(&old.name, old.role, now).await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2")
            .bind(now + overlap_ms.max(0))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(new)
    }

    /// Revokes key `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or already revoked id.
    pub async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<()> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND (revoked_at IS NULL OR revoked_at > $1)")
                .bind(now_ms)
                .bind(id)
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound {
                what: "active API key",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Whether any active owner key exists.
    ///
    /// # Errors
    /// Database errors.
    pub async fn has_owner_key(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_keys WHERE role = 'owner' AND revoked_at IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}
