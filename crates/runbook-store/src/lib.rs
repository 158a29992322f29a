//! The state store: jobs, restore drills, API keys, schedule state and the hash-chained ops log.
//!
//! One schema for SQLite (the embedded default, a file in `data_dir`) and PostgreSQL (to scale
//! out), chosen from the URL. Queries use only what both engines share (`$n` parameters,
//! `RETURNING`, `BIGINT`/`TEXT`), and migrations are plain SQL run in order.
//! Times are Unix milliseconds supplied by the caller, so callers can drive a test clock.

mod alerts;
mod anchor;
mod cluster;
mod drills;
mod error;
mod heartbeats;
mod jobs;
mod keys;
mod migrate;
mod monitor;
mod oplog;
mod probes;
mod secrets;
mod sessions;

use sqlx::{AnyPool, any::AnyPoolOptions};

pub use alerts::{Alert, Notification, Transition};
pub use anchor::Anchor;
pub use cluster::InstanceRow;
pub use drills::{DrillRecord, NewDrill};
pub use error::{Error, Result};
pub use heartbeats::{HeartbeatEvent, HeartbeatRow, HeartbeatRun};
pub use jobs::{Job, JobKind, JobState, NewJob};
pub use keys::{ApiKey, NewKey, Role};
pub use monitor::SilenceRow;
pub use oplog::{Entry, NewEntry, VerifyError};
pub use probes::{ProbeResult, ProbeStatus, Rollup};
pub use secrets::SecretRow;
pub use sessions::Session;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A connection pool to the state store, migrated to the current schema.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    anchor: Option<Anchor>,
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`) and applies pending migrations.
    ///
    /// # Errors
    /// Unsupported URL, connection failure, or a failed migration.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(Error::Url(redact(url)));
        };
        let url = if engine == Engine::Sqlite && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let max = if engine == Engine::Sqlite { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await
            .map_err(|e| Error::Connect {
                url: redact(&url),
                reason: e.to_string(),
            })?;
        if engine == Engine::Sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA busy_timeout=10000")
                .execute(&pool)
                .await?;
        }
        let store = Self {
            pool,
            engine,
            anchor: None,
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Keeps the ops log's head anchored in `anchor` (outside the database): every append
    /// moves it forward and [`Store::verify_oplog`] checks the log against it.
    #[must_use]
    pub fn with_anchor(mut self, anchor: Anchor) -> Self {
        self.anchor = Some(anchor);
        self
    }

    /// The engine in use.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// A trivial query, for readiness checks.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`: URLs appear in errors, passwords
/// never do.
#[must_use]
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// 16 random bytes as hex: ids for jobs and keys.
/// `bytes` random bytes as hex (ids, instance names).
#[must_use]
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub(crate) fn random_id() -> String {
    random_token(16)
}
