//! Retention and repair: forgetting snapshots, pruning unreferenced data, and rebuilding the
//! index and snapshots after data was lost.

use std::str::FromStr;

use jiff::{Span, Timestamp, tz::TimeZone};
use runbook_config::Keep;
use rustic_core::{
    KeepOptions, PruneOptions, RepairIndexOptions, RepairSnapshotsOptions, StringList,
};

use super::{ForgetPlan, Repo, guard, rerr};
use crate::{Error, Result};

impl Repo {
    /// Applies `keep` as of `now`: removes the snapshots it does not keep, unless `dry_run`.
    /// The data they alone referred to stays until the caller prunes ([`Repo::prune`]).
    ///
    /// Snapshots dated after `now` are kept and left out of the rule. A clock that was ahead
    /// and then set right dates them so; in the rule they would take its places (the last, the
    /// day, the week), and each new backup, older by its date, would go as soon as it was made.
    pub(crate) fn forget(&self, keep: &Keep, now: Timestamp, dry_run: bool) -> Result<ForgetPlan> {
        let (ahead, snaps): (Vec<_>, Vec<_>) = self
            .raw_snapshots()?
            .into_iter()
            .partition(|s| s.time.timestamp() > now);
        let mut plan = ForgetPlan::default();
        if let Some(newest) = ahead.last() {
            log::warn!(
                "{}: {} snapshot(s) dated after now (the newest {}): kept, outside the keep \
                 rule, until then; was the clock ahead?",
                self.target,
                ahead.len(),
                newest.time.timestamp()
            );
        }
        let ahead: Vec<_> = ahead
            .iter()
            .map(|s| (self.describe(s), vec!["dated after now".to_string()]))
            .collect();
        if keep.is_empty() || snaps.is_empty() {
            plan.keep = snaps
                .iter()
                .map(|s| (self.describe(s), vec!["no keep rule".into()]))
                .chain(ahead)
                .collect();
            return Ok(plan);
        }
        let to_i32 = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let mut opts = KeepOptions::default()
            .keep_last(to_i32(keep.last))
            .keep_hourly(to_i32(keep.hourly))
            .keep_daily(to_i32(keep.daily))
            .keep_weekly(to_i32(keep.weekly))
            .keep_monthly(to_i32(keep.monthly))
            .keep_tags(vec![StringList::from_str(super::KEEP_FOREVER).map_err(
                |e| Error::Repository {
                    target: self.target.clone(),
                    action: "forget",
                    message: e.to_string(),
                },
            )?]);
        if let Some(within) = keep.within {
            let secs = i64::try_from(within.as_secs()).unwrap_or(i64::MAX);
            let span = if secs % 86_400 == 0 {
                Span::new().days(secs / 86_400)
            } else {
                Span::new().seconds(secs)
            };
            opts = opts.keep_within(Some(span));
        }
        let decided = opts
            .apply(snaps, &now.to_zoned(TimeZone::UTC))
            .map_err(self.err("forget"))?;
        let mut remove_ids = Vec::new();
        for d in decided {
            let s = self.describe(&d.snapshot);
            if d.keep {
                plan.keep.push((s, d.reasons));
            } else {
                remove_ids.push(d.snapshot.id);
                plan.remove.push(s);
            }
        }
        plan.keep.extend(ahead);
        if !dry_run && !remove_ids.is_empty() {
            self.inner
                .delete_snapshots(&remove_ids)
                .map_err(self.err("forget"))?;
        }
        Ok(plan)
    }

    /// Rebuilds the index against the packs that exist: packs that are gone (deleted, or
    /// moved to quarantine) leave the index, so their data counts as not stored and the next
    /// backup stores it again; packs the index lacks are read and added. Writes only when
    /// something changed.
    pub(crate) fn heal_index(&self) -> Result<()> {
        self.inner
            .repair_index(&RepairIndexOptions::default(), false)
            .map_err(self.err("repair index"))
    }

    /// restic's documented recovery after data was lost (`repair snapshots --forget`): every
    /// snapshot that refers to data no longer in the index is rewritten without it (a file
    /// that lost content keeps its name with `.repaired` appended and is tagged `repaired`),
    /// and one whose root is unreadable is removed, so `check` is clean again and what can
    /// be restored is restorable. Snapshots that lost nothing are left as they are.
    pub(crate) fn repair_snapshots(self) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "repair snapshots", move || {
            let err = rerr(&self.target, "repair snapshots");
            let indexed = self
                .inner
                .to_indexed()
                .map_err(rerr(&self.target, "read index"))?;
            let snaps = indexed
                .get_all_snapshots()
                .map_err(rerr(&self.target, "list snapshots"))?;
            let tags = StringList::from_str("runbook,repaired").map_err(|e| Error::Repository {
                target: self.target.clone(),
                action: "repair snapshots",
                message: e.to_string(),
            })?;
            let opts = RepairSnapshotsOptions::default().tag(vec![tags]);
            indexed.repair_snapshots(&opts, snaps, false).map_err(err)
        })
    }

    /// Removes data no snapshot references. On a local repository callers hold the target
    /// lock, so no backup is writing and packs go at once. On shared storage (S3) another host
    /// may be backing up into the same repository, which this host's lock does not see: packs
    /// are only marked there and deleted by a prune at least 23 hours later (rustic's two-phase
    /// prune), so a backup in flight never loses data it refers to.
    pub(crate) fn prune(&self) -> Result<()> {
        let opts = PruneOptions::default().instant_delete(!self.shared);
        let plan = self.inner.prune_plan(&opts).map_err(self.err("prune"))?;
        self.inner.prune(&opts, plan).map_err(self.err("prune"))
    }
}
