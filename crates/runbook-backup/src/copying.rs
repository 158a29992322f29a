//! Copies to second repositories (`copy_to`): after each backup, and on demand to resume one
//! that was cut off.

use jiff::Timestamp;

use runbook_config::Target;

use crate::{
    Engine, Error, Result, TargetLock,
    repository::{Chunking, Repo},
};

/// What a copy did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    /// The copy repository.
    pub repository: String,
    /// Snapshots copied (those the copy lacked).
    pub copied: usize,
    /// Snapshots retention removed there afterwards.
    pub forgotten: usize,
}

impl Engine {
    /// Copies the snapshots of `target` that the copy repository `to` lacks, then applies the
    /// copy's retention (its own `keep`, else the target's) there as of `now`.
    ///
    /// # Errors
    /// Unknown target or repository, busy target, storage failures. Snapshots copied before
    /// a failure stay; the next copy sends only the rest.
    pub fn copy(&self, target: &str, to: &str, now: Timestamp) -> Result<CopyReport> {
        let t = self.config.target(target)?;
        let mut lock = self.lock(t)?;
        self.copy_locked(t, &mut lock, to, now)
    }

    /// [`Engine::copy`] under a lock the caller holds (one lock file covers the target in
    /// every repository).
    fn copy_locked(
        &self,
        t: &Target,
        lock: &mut TargetLock,
        to: &str,
        now: Timestamp,
    ) -> Result<CopyReport> {
        let on = Engine::new(self.config.on_copy(to)?);
        let copied = {
            let source = self.open_repo(&t.name)?;
            let dest = Repo::open(
                &on.config.repository,
                &t.name,
                &self.password()?,
                Some(Chunking::Content),
            )?;
            source.copy_missing_to(dest)?
        };
        // Retention there also prunes what a copy cut off part-way had sent without an index.
        let on_t = on.config.target(&t.name)?;
        let forgotten = if on_t.keep.is_empty() {
            0
        } else {
            on.forget_locked(on_t, lock, now, false)?.remove.len()
        };
        Ok(CopyReport {
            repository: to.to_string(),
            copied,
            forgotten,
        })
    }

    /// The engine that reads and writes the copy repository `name` in place of the main one:
    /// snapshots, restores, checks and drills of the copy.
    ///
    /// # Errors
    /// No `[repositories.NAME]` of that name.
    pub fn on_copy(&self, name: &str) -> Result<Engine> {
        Ok(Engine::new(self.config.on_copy(name)?))
    }

    /// Copies `target`'s new snapshots to each of its `copy_to` repositories.
    pub(crate) fn copy_after_backup(
        &self,
        t: &Target,
        lock: &mut TargetLock,
        snapshot: &str,
        now: Timestamp,
    ) -> Result<Vec<CopyReport>> {
        let mut done = Vec::new();
        for to in &t.copy_to {
            let report = self
                .copy_locked(t, lock, to, now)
                .map_err(|e| Error::Copy {
                    target: t.name.clone(),
                    snapshot: snapshot.to_string(),
                    repository: to.clone(),
                    source: Box::new(e),
                })?;
            done.push(report);
        }
        Ok(done)
    }
}
