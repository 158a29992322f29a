//! What every handler, the worker and the scheduler share.

use std::sync::Arc;

use runbook_backup::Engine;
use runbook_store::{NewEntry, Store};

use runbook_config::Settings;

use crate::{SharedClock, metrics::Metrics, ratelimit::RateLimiter};

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
    pub(crate) monitor: Arc<crate::monitor::MonitorState>,
    /// Heartbeat ping keys → heartbeat names.
    heartbeat_keys: Arc<std::collections::HashMap<String, String>>,
    /// This process among the instances sharing the state store.
    pub instance: Arc<crate::cluster::Instance>,
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

    /// When `target`'s list was loaded.
    fn loaded_at(&self, target: &str) -> Option<i64> {
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(target)
            .map(|(at, _)| *at)
    }

    pub(crate) fn put(&self, target: &str, now_ms: i64, list: Vec<runbook_backup::Snapshot>) {
        let mut lists = self
            .lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lists.insert(target.to_string(), (now_ms, list));
    }

    fn invalidate_all(&self) {
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
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
            let key = store
                .ensure_key(
                    &format!("SECURITY_OWNER_KEYS[{i}]"),
                    runbook_store::Role::Owner,
                    secret,
                    now,
                )
                .await?;
            if key.revoked_at.is_some() {
                tracing::warn!(
                    key_id = %key.id,
                    "SECURITY_OWNER_KEYS[{i}] was revoked and stays revoked; remove it from the environment"
                );
            }
        }
        let mut limiter = RateLimiter::new(settings.rate_limit_max, settings.rate_limit_window);
        if let Some(url) = &settings.redis_url {
            limiter = limiter.shared(url, &settings.redis_prefix);
        }
        let mut heartbeat_keys = std::collections::HashMap::new();
        for name in engine.config().monitor.heartbeats.keys() {
            let row = store.heartbeat(name, now).await?;
            heartbeat_keys.insert(row.ping_key, name.clone());
        }
        Ok(Self {
            instance: Arc::new(crate::cluster::Instance::new(now)),
            monitor: Arc::default(),
            heartbeat_keys: Arc::new(heartbeat_keys),
            engine: Arc::new(engine),
            store,
            settings: Arc::new(settings),
            clock,
            metrics: Arc::new(Metrics::default()),
            limiter: Arc::new(limiter),
            snapshots: Arc::new(SnapshotCache::default()),
        })
    }

    /// Drops the cached snapshot lists: the next read goes to the repositories (a backup made
    /// by another process shows up at once instead of within the cache's 10 s).
    pub fn forget_cached_snapshots(&self) {
        self.snapshots.invalidate_all();
    }

    /// A target's snapshots, oldest first, from the cache (refreshed in the background when
    /// stale, loaded from the repository when absent: one load at a time).
    ///
    /// # Errors
    /// The repository cannot be read.
    pub(crate) async fn snapshot_list(
        &self,
        name: &str,
    ) -> Result<Vec<runbook_backup::Snapshot>, crate::error::AppError> {
        let now = self.clock.now_ms();
        // Several instances: a job another instance finished since the list was loaded (it
        // may have changed the repository) makes the list stale at once, not after the TTL.
        if self.store.engine() == runbook_store::Engine::Postgres
            && let Some(at) = self.snapshots.loaded_at(name)
            && self
                .store
                .last_job_finished(name)
                .await
                .ok()
                .flatten()
                .is_some_and(|f| f >= at)
        {
            self.snapshots.invalidate(name);
        }
        match self.snapshots.get(name, now) {
            Some((list, true)) => Ok(list),
            Some((list, false)) => {
                let state = self.clone();
                let name = name.to_string();
                tokio::spawn(async move {
                    if let Ok(_one) = state.snapshots.refill.try_lock() {
                        let _ = state.load_snapshots(&name).await;
                    }
                });
                Ok(list)
            }
            None => {
                let _one = self.snapshots.refill.lock().await;
                match self.snapshots.get(name, now) {
                    Some((list, _)) => Ok(list),
                    None => self.load_snapshots(name).await,
                }
            }
        }
    }

    /// Reads a target's snapshot list from its repository and caches it.
    async fn load_snapshots(
        &self,
        name: &str,
    ) -> Result<Vec<runbook_backup::Snapshot>, crate::error::AppError> {
        let engine = self.engine.clone();
        let target = name.to_string();
        let list = tokio::task::spawn_blocking(move || engine.snapshots(&target))
            .await
            .map_err(crate::error::AppError::internal)?
            .map_err(crate::error::AppError::internal)?;
        self.snapshots.put(name, self.clock.now_ms(), list.clone());
        Ok(list)
    }

    /// How far after now a snapshot may be dated and still count as made now: the clocks of
    /// several instances differ by a little.
    pub(crate) const AHEAD_SLACK_MS: i64 = 10 * 60_000;

    /// When `target` was last backed up, in Unix ms: the newest snapshot in its repository
    /// or the newest successful backup job, whichever is later, so backups made by the CLI
    /// or another process count too. Snapshots dated after now, by more than
    /// [`Self::AHEAD_SLACK_MS`] (a clock that was ahead), do not count: they would show the
    /// target backed up, and no backup late or failed, until that date.
    ///
    /// # Errors
    /// The state store or the repository cannot be read.
    pub(crate) async fn last_backup_ms(
        &self,
        target: &str,
    ) -> Result<Option<i64>, crate::error::AppError> {
        let job = self
            .store
            .last_finished(
                target,
                runbook_store::JobKind::Backup,
                runbook_store::JobState::Succeeded,
            )
            .await?
            .and_then(|j| j.finished_at);
        let now = self.clock.now_ms();
        let snap = self
            .snapshot_list(target)
            .await?
            .iter()
            .rev()
            .map(|s| s.time.as_millisecond())
            .find(|&t| t <= now + Self::AHEAD_SLACK_MS);
        Ok(job.max(snap))
    }

    /// The heartbeat whose ping key is `key`.
    pub(crate) fn heartbeat_by_key(
        &self,
        key: &str,
    ) -> Option<&runbook_config::monitor::Heartbeat> {
        let name = self.heartbeat_keys.get(key)?;
        self.engine.config().monitor.heartbeats.get(name)
    }

    /// Appends to the ops log.
    ///
    /// # Errors
    /// The state store's; callers fail the mutation rather than let it go unaudited.
    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: String,
    ) -> Result<(), runbook_store::Error> {
        let entry = NewEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            detail,
        };
        self.store
            .append(entry, self.clock.now_ms())
            .await
            .map(drop)
            .inspect_err(|e| tracing::error!(error = %e, action, "cannot append to the ops log"))
    }
}
