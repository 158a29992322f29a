//! Checking repositories and healing the damage that reads find (see `heal.rs`).

use runbook_config::Target;

use crate::{
    CheckReport, Engine, Error, Result, TargetLock, heal,
    repository::{self, Repo},
};

impl Engine {
    /// Before a backup writes: damaged packs recorded by earlier reads go to quarantine, and
    /// packs that are gone leave the index, so the new snapshot never reuses data that cannot
    /// be read back (see `heal.rs`).
    pub(crate) fn heal(&self, target: &Target, repo: &Repo) -> Result<()> {
        let data_dir = &self.config.data_dir;
        let damaged = heal::is_recorded(data_dir, &target.name);
        if damaged {
            // Which pack is damaged is not always in the message that found it: every pack
            // whose content no longer hashes to its name goes (a healthy one never does).
            let quarantine = data_dir.join("quarantine").join(&target.name);
            let moved = repo.quarantine_damaged(&quarantine)?;
            for pack in moved {
                log::warn!(
                    "target `{}`: damaged pack {pack} moved to {}; its data is stored again by this backup",
                    target.name,
                    quarantine.display()
                );
            }
        }
        repo.heal_index()?;
        if damaged {
            // Snapshots that referred to the lost data are rewritten without it.
            self.open_repo(&target.name)?.repair_snapshots()?;
        }
        heal::clear(data_dir, &target.name);
        Ok(())
    }

    /// Records damage a read ran into, for the next backup to heal.
    pub(crate) fn noting_damage<T>(&self, target: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.to_string().contains(repository::DAMAGED)
        {
            heal::record(&self.config.data_dir, target, &[e.to_string()]);
        }
        result
    }

    /// Checks `target`'s repository; `read_data_percent` also reads that share of the data.
    ///
    /// # Errors
    /// [`Error::CheckFailed`] when damage is found, and the usual open errors.
    pub fn check(&self, target: &str, read_data_percent: Option<f64>) -> Result<CheckReport> {
        let read = read_data_percent.map(|p| {
            if p >= 100.0 {
                "all".to_string()
            } else {
                format!("{p}%")
            }
        });
        self.check_reading(target, read.as_deref())
    }

    /// Checks `target`'s repository and reads back slice `n` of `of` of its packs (by pack
    /// id, so `of` runs with `n` = 1..=`of` read every pack once): the rolling verification
    /// `serve` runs daily.
    ///
    /// # Errors
    /// [`Error::CheckFailed`] when damage is found (recorded for the next backup to heal),
    /// and the usual open errors.
    pub fn verify_slice(&self, target: &str, n: u32, of: u32) -> Result<CheckReport> {
        self.check_reading(target, Some(&format!("{n}/{of}")))
    }

    fn check_reading(&self, target: &str, read: Option<&str>) -> Result<CheckReport> {
        let target = self.config.target(target)?;
        // Checking never writes: what a killed run left is cleaned up by the next write, so
        // the lock is taken without recovery (a read-only repository can be checked).
        let _lock = TargetLock::acquire(&self.config.data_dir, &target.name)?;
        let repo = self.open_repo(&target.name)?;
        let report = match repo.check(read) {
            Ok(report) => report,
            // A check that reads data and breaks down on the way (rustic panics on some
            // unreadable trees) found damage as surely as one that lists it.
            Err(e @ Error::Repository { .. }) if read.is_some() => {
                heal::record(&self.config.data_dir, &target.name, &[e.to_string()]);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(first) = report.errors.first() {
            heal::record(&self.config.data_dir, &target.name, &report.errors);
            return Err(Error::CheckFailed {
                target: target.name.clone(),
                count: report.errors.len(),
                first: first.clone(),
            });
        }
        Ok(report)
    }
}
