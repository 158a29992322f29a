//! What every handler, the worker and the scheduler share.

use std::sync::Arc;

use runbook_backup::Engine;
use runbook_store::{NewEntry, Store};

use crate::{SharedClock, metrics::Metrics, ratelimit::RateLimiter, settings::Settings};

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// Backup engine for the configured targets.
    pub engine: Arc<Engine>,
    /// State store.
    pub store: Store,
    /// Server settings.
    pub settings: Arc<Settings>,
    /// Time source.
    pub clock: SharedClock,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) snapshots: Arc<SnapshotCache>,
}

/// Snapshot lists per target. Opening a repository derives its key (scrypt, by design slow),
/// so lists are kept until a job of this process changes the target, or for `TTL_MS` at most
/// (backups run by another process show up after that).
#[derive(Debug, Default)]
pub(crate) struct SnapshotCache {
    lists:
        std::sync::Mutex<std::collections::HashMap<String, (i64, Vec<runbook_backup::Snapshot>)>>,
    /// One refill at a time: when an entry expires under load, one request reloads it and the
    /// others wait for its result instead of all opening the repository at once.
    pub(crate) refill: tokio::sync::Mutex<()>,
}

impl SnapshotCache {
    const TTL_MS: i64 = 10_000;

    /// The cached list and whether it is still fresh.
    pub(crate) fn get(
        &self,
        target: &str,
        now_ms: i64,
    ) -> Option<(Vec<runbook_backup::Snapshot>, bool)> {
        let lists = self
            .lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lists
            .get(target)
            .map(|(at, l)| (l.clone(), now_ms - at < Self::TTL_MS && *at <= now_ms))
    }

    pub(crate) fn put(&self, target: &str, now_ms: i64, list: Vec<runbook_backup::Snapshot>) {
        let mut lists = self
            .lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lists.insert(target.to_string(), (now_ms, list));
    }

    pub(crate) fn invalidate(&self, target: &str) {
        let mut lists = self
            .lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lists.remove(target);
    }
}

impl AppState {
    /// Assembles the state and bootstraps `SECURITY_OWNER_KEYS` into the key table.
    ///
    /// # Errors
    /// State store errors.
    pub async fn new(
        engine: Engine,
        store: Store,
        settings: Settings,
        clock: SharedClock,
    ) -> Result<Self, runbook_store::Error> {
        let now = clock.now_ms();
        for (i, secret) in settings.owner_keys.iter().enumerate() {
            store
                .ensure_key(
                    &format!("SECURITY_OWNER_KEYS[{i}]"),
                    runbook_store::Role::Owner,
                    secret,
                    now,
                )
                .await?;
        }
        let limiter = RateLimiter::new(settings.rate_limit_max, settings.rate_limit_window);
        Ok(Self {
            engine: Arc::new(engine),
            store,
            settings: Arc::new(settings),
            clock,
            metrics: Arc::new(Metrics::default()),
            limiter: Arc::new(limiter),
            snapshots: Arc::new(SnapshotCache::default()),
        })
    }

    /// Appends to the ops log; a failure to log is itself logged, never fatal to the caller.
    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: String,
    ) {
        let entry = NewEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            detail,
        };
        if let Err(e) = self.store.append(entry, self.clock.now_ms()).await {
            tracing::error!(error = %e, action, "cannot append to the ops log");
        }
    }
}
