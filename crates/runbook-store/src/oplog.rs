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
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
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
    /// Begins a transaction that holds the ops log's write lock until it ends: `BEGIN
    /// IMMEDIATE` on SQLite (one writer per database file, across processes), an `EXCLUSIVE`
    /// table lock on PostgreSQL (across instances; readers are not blocked). Appends made in it
    /// see the true head, so concurrent appends are serialized instead of colliding.
    pub(crate) async fn begin_oplog_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.engine() {
            crate::Engine::Sqlite => Ok(self.pool().begin_with("BEGIN IMMEDIATE").await?),
            crate::Engine::Postgres => {
                let mut tx = self.pool().begin().await?;
                sqlx::query("LOCK TABLE oplog IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Appends an entry. Appends are serialized by the ops log's write lock, so none is lost
    /// under concurrent requests or several instances; an error means nothing was appended.
    ///
    /// # Errors
    /// Database errors.
    pub async fn append(&self, e: NewEntry, now_ms: i64) -> Result<Entry> {
        let mut tx = self.begin_oplog_write().await?;
        let entry = append_in(&mut tx, e, now_ms).await?;
        tx.commit().await?;
        self.advance_anchor(&entry);
        Ok(entry)
    }

    /// Moves the anchor to a committed entry. Best effort: the entry is stored either way,
    /// and an anchor that lags behind still vouches for every entry up to its own.
    pub(crate) fn advance_anchor(&self, entry: &Entry) {
        if let Some(anchor) = &self.anchor {
            let _ = anchor.advance(entry.seq, &entry.hash);
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
        let mut hashes = Vec::with_capacity(rows.len());
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
            prev = e.hash.clone();
            hashes.push(e.hash);
            expected_seq += 1;
        }
        let count = expected_seq - 1;
        Ok(match &self.anchor {
            Some(anchor) => check_anchor(anchor, &hashes).map(|()| count),
            None => Ok(count),
        })
    }
}

/// Checks an intact chain (`hashes[i]` is entry `i + 1`) against the anchor.
fn check_anchor(anchor: &crate::Anchor, hashes: &[String]) -> std::result::Result<(), VerifyError> {
    let last = i64::try_from(hashes.len()).unwrap_or(i64::MAX);
    match anchor.read() {
        crate::anchor::Read::Missing if hashes.is_empty() => Ok(()),
        crate::anchor::Read::Missing => Err(VerifyError {
            seq: last,
            reason: format!(
                "the anchor {} is missing, so the newest entries cannot be vouched for (it is written again with the next entry)",
                anchor.path().display()
            ),
        }),
        crate::anchor::Read::Altered => Err(VerifyError {
            seq: last,
            reason: format!(
                "the anchor {} was altered or was written with another repository password",
                anchor.path().display()
            ),
        }),
        crate::anchor::Read::Head { seq, hash } => {
            let at = usize::try_from(seq - 1).ok().and_then(|i| hashes.get(i));
            match at {
                None => Err(VerifyError {
                    seq: last + 1,
                    reason: format!(
                        "missing: entries {}..={seq} were deleted (the anchor names entry {seq}; the log ends at {last})",
                        last + 1
                    ),
                }),
                Some(h) if *h != hash => Err(VerifyError {
                    seq,
                    reason: "does not match the anchor: the log was rewritten from here or earlier"
                        .into(),
                }),
                Some(_) => Ok(()),
            }
        }
    }
}

/// Appends `e` inside `tx`, which must hold the ops log's write lock
/// ([`Store::begin_oplog_write`]).
pub(crate) async fn append_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    e: NewEntry,
    now_ms: i64,
) -> Result<Entry> {
    let head = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oplog ORDER BY seq DESC LIMIT 1"
    )))
    .fetch_optional(&mut **tx)
    .await?;
    let (seq, prev) = match head.as_ref().map(entry_from).transpose()? {
        Some(h) => (h.seq + 1, h.hash),
        None => (1, GENESIS.to_string()),
    };
    let hash = entry_hash(&prev, seq, now_ms, &e);
    sqlx::query(
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
    .execute(&mut **tx)
    .await?;
    Ok(Entry {
        seq,
        ts: now_ms,
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        detail: e.detail,
        prev_hash: prev,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(detail: &str, target: &str) -> NewEntry {
        NewEntry {
            actor: "cli".into(),
            action: "backup.run".into(),
            target: target.into(),
            outcome: "ok".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn entry_hash_covers_every_field_and_their_boundaries() {
        let base = entry_hash(GENESIS, 1, 1000, &e("d", "t"));
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry_hash(GENESIS, 1, 1000, &e("d", "t")), "stable");
        for other in [
            entry_hash("1", 1, 1000, &e("d", "t")),
            entry_hash(GENESIS, 2, 1000, &e("d", "t")),
            entry_hash(GENESIS, 1, 1001, &e("d", "t")),
            entry_hash(GENESIS, 1, 1000, &e("dx", "t")),
            entry_hash(GENESIS, 1, 1000, &e("d", "tx")),
        ] {
            assert_ne!(base, other);
        }
        // Moving a character from one field to the next changes the hash (lengths are hashed).
        assert_ne!(
            entry_hash(GENESIS, 1, 1000, &e("ab", "c")),
            entry_hash(GENESIS, 1, 1000, &e("a", "bc"))
        );
    }
}
