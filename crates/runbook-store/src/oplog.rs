//! The operations log: append-only and hash-chained. Each entry's hash covers its fields and
//! the previous entry's hash, so editing, deleting or reordering entries breaks the chain at
//! the first entry touched, which [`Store::verify_oplog`] names.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Row, any::AnyRow};

use crate::{Result, Store};

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A stored entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix ms.
    pub ts: i64,
    /// Who: `cli`, `schedule`, `worker`, `key:<id>:<name>`.
    pub actor: String,
    /// What: `backup.run`, `restore.run`, `key.create`, `job.finished`, …
    pub action: String,
    /// The target or object acted on.
    pub target: String,
    /// `ok`, `failed`, `accepted`, `denied`, …
    pub outcome: String,
    /// Free text or JSON details (never secrets).
    pub detail: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Outcome.
    pub outcome: String,
    /// Details.
    pub detail: String,
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ops log entry {seq}: {reason}")]
pub struct VerifyError {
    /// The first bad entry (or the position where one is missing).
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

fn entry_hash(prev: &str, seq: i64, ts: i64, e: &NewEntry) -> String {
    let mut h = Sha256::new();
    for part in [
        prev,
        &seq.to_string(),
        &ts.to_string(),
        &e.actor,
        &e.action,
        &e.target,
        &e.outcome,
        &e.detail,
    ] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

fn entry_from(row: &AnyRow) -> Result<Entry> {
    Ok(Entry {
        seq: row.try_get("seq")?,
        ts: row.try_get("ts")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

const COLUMNS: &str = "seq, ts, actor, action, target, outcome, detail, prev_hash, hash";

impl Store {
    /// Appends an entry. Concurrent writers (several instances on PostgreSQL) race on the
    /// primary key; the loser retries on the new head.
    ///
    /// # Errors
    /// Database errors.
    pub async fn append(&self, e: NewEntry, now_ms: i64) -> Result<Entry> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let head = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM oplog ORDER BY seq DESC LIMIT 1"
            )))
            .fetch_optional(self.pool())
            .await?;
            let (seq, prev) = match head.as_ref().map(entry_from).transpose()? {
                Some(h) => (h.seq + 1, h.hash),
                None => (1, GENESIS.to_string()),
            };
            let hash = entry_hash(&prev, seq, now_ms, &e);
            let inserted = sqlx::query(
                "INSERT INTO oplog (seq, ts, actor, action, target, outcome, detail, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(seq)
            .bind(now_ms)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.outcome)
            .bind(&e.detail)
            .bind(&prev)
            .bind(&hash)
            .execute(self.pool())
            .await;
            match inserted {
                Ok(_) => {
                    return Ok(Entry {
                        seq,
                        ts: now_ms,
                        actor: e.actor,
                        action: e.action,
                        target: e.target,
                        outcome: e.outcome,
                        detail: e.detail,
                        prev_hash: prev,
                        hash,
                    });
                }
                Err(err) if attempt < 10 && is_unique_violation(&err) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The newest `limit` entries, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn oplog(&self, limit: i64) -> Result<Vec<Entry>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM oplog ORDER BY seq DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry_from).collect()
    }

    /// Walks the chain from the first entry. `Ok(n)` is the number of entries verified.
    ///
    /// # Errors
    /// The outer error is a database failure; the inner [`VerifyError`] names the first bad
    /// entry.
    pub async fn verify_oplog(&self) -> Result<std::result::Result<i64, VerifyError>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM oplog ORDER BY seq"
        )))
        .fetch_all(self.pool())
        .await?;
        let mut prev = GENESIS.to_string();
        let mut expected_seq = 1;
        for row in &rows {
            let e = entry_from(row)?;
            if e.seq != expected_seq {
                return Ok(Err(VerifyError {
                    seq: expected_seq,
                    reason: format!("missing (next entry found is {})", e.seq),
                }));
            }
            if e.prev_hash != prev {
                return Ok(Err(VerifyError {
                    seq: e.seq,
                    reason: "does not follow the previous entry (deleted or reordered entries)"
                        .into(),
                }));
            }
            let fields = NewEntry {
                actor: e.actor.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                outcome: e.outcome.clone(),
                detail: e.detail.clone(),
            };
            if entry_hash(&prev, e.seq, e.ts, &fields) != e.hash {
                return Ok(Err(VerifyError {
                    seq: e.seq,
                    reason: "content does not match its hash (edited)".into(),
                }));
            }
            prev = e.hash;
            expected_seq += 1;
        }
        Ok(Ok(expected_seq - 1))
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() || db.message().to_lowercase().contains("unique")
        }
        _ => false,
    }
}
