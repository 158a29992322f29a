//! Copies to second repositories (`copy_to`): after each backup, and on demand to resume one
//! that was cut off.

use jiff::Timestamp;

use crate::{
    Engine, Error, Result,
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
        let on = Engine::new(self.config.on_copy(to)?);
        let t = self.config.target(target)?;
        let copied = {
            let _lock = self.lock(t)?;
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
        let forgotten = if on.config.target(target)?.keep.is_empty() {
            0
        } else {
            on.forget(target, now, false)?.remove.len()
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
        target: &str,
        snapshot: &str,
        now: Timestamp,
    ) -> Result<Vec<CopyReport>> {
        let names = self.config.target(target)?.copy_to.clone();
        let mut done = Vec::new();
        for to in names {
            let report = self.copy(target, &to, now).map_err(|e| Error::Copy {
                target: target.to_string(),
                snapshot: snapshot.to_string(),
                repository: to.clone(),
                source: Box::new(e),
            })?;
            done.push(report);
        }
        Ok(done)
    }
}
