//! Bucket targets in drills: the tree restored into scratch and re-hashed against the
//! snapshot, then a random sample of its objects compared with the live bucket (each must
//! still exist, with the same content).

use jiff::Timestamp;
use runbook_backup::ScratchDir;

use super::files::files_checks;
use crate::{
    CheckResult, Place,
    kinds::{self, DrillCx, DrillKind, RestoreFailure},
};

pub(crate) struct Drill;

impl DrillKind for Drill {
    fn restore(
        &self,
        cx: &DrillCx<'_>,
        scratch: &ScratchDir,
        now: Timestamp,
    ) -> Result<Place, RestoreFailure> {
        // The same tree a files target restores.
        super::files::Drill.restore(cx, scratch, now)
    }

    fn check(&self, cx: &DrillCx<'_>, place: &Place, out: &mut Vec<CheckResult>) {
        let Place::Dir(dir) = place else {
            return kinds::wrong_place(out);
        };
        files_checks(cx.engine, &cx.target.name, cx.snapshot, dir, out);
        let root = cx.snapshot.paths.first().cloned().unwrap_or_default();
        let restored = dir.join(root.trim_start_matches('/'));
        let sample = cx.settings.sample;
        let expected = match sample {
            runbook_config::Sample::Count(n) => {
                format!("{n} sampled objects match the live bucket")
            }
            runbook_config::Sample::Percent(p) => {
                format!("{p}% of the objects match the live bucket")
            }
        };
        out.push(
            match cx.engine.bucket_sample(&cx.target.name, &restored, sample) {
                Ok((n, problems)) if problems.is_empty() => {
                    CheckResult::new("live_objects", expected, format!("{n} objects match"), true)
                }
                Ok((n, problems)) => CheckResult::new(
                    "live_objects",
                    expected,
                    format!(
                        "{} of {n} differ: {}",
                        problems.len(),
                        super::list(&problems, 3)
                    ),
                    false,
                ),
                Err(e) => CheckResult::new("live_objects", expected, e.to_string(), false),
            },
        );
    }
}
