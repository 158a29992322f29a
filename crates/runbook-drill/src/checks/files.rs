//! Files targets: every restored file re-hashed against the snapshot, every `*.json` parsed.

use jiff::Timestamp;
use runbook_backup::{Engine, ScratchDir, Snapshot};

use super::list;
use crate::{
    CheckResult, Place,
    kinds::{self, DrillCx, DrillKind, RestoreFailure},
};

/// Files: every file re-hashed against the snapshot's chunk ids; every `*.json` parses.
pub(crate) fn files_checks(
    engine: &Engine,
    target: &str,
    snapshot: &Snapshot,
    dir: &std::path::Path,
    out: &mut Vec<CheckResult>,
) {
    match engine.verify_restored(target, &snapshot.id, dir) {
        Ok((n, problems)) => out.push(CheckResult::new(
            "checksums",
            "every file matches the snapshot",
            if problems.is_empty() {
                format!("{n} files match")
            } else {
                format!(
                    "{} of {n} files differ: {}",
                    problems.len(),
                    list(&problems, 3)
                )
            },
            problems.is_empty(),
        )),
        Err(e) => out.push(CheckResult::new(
            "checksums",
            "every file matches the snapshot",
            e.to_string(),
            false,
        )),
    }
    let mut bad = Vec::new();
    let mut n = 0;
    walk(dir, &mut |p| {
        if p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            n += 1;
            let parsed = std::fs::File::open(p)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    serde_json::from_reader::<_, serde::de::IgnoredAny>(std::io::BufReader::new(f))
                        .map(drop)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = parsed {
                let shown = p
                    .strip_prefix(dir)
                    .map_or_else(|_| p.display().to_string(), |r| format!("/{}", r.display()));
                bad.push(format!("{shown}: {e}"));
            }
        }
    });
    out.push(CheckResult::new(
        "json",
        "every *.json file parses",
        if bad.is_empty() {
            format!("{n} JSON files parse")
        } else {
            format!("{} of {n} do not parse: {}", bad.len(), list(&bad, 3))
        },
        bad.is_empty(),
    ));
}

fn walk(dir: &std::path::Path, f: &mut dyn FnMut(&std::path::Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, f),
            Ok(t) if t.is_file() => f(&p),
            _ => {}
        }
    }
}

/// Files targets in drills: the tree restored into a scratch directory.
pub(crate) struct Drill;

impl DrillKind for Drill {
    fn restore(
        &self,
        cx: &DrillCx<'_>,
        scratch: &ScratchDir,
        _now: Timestamp,
    ) -> Result<Place, RestoreFailure> {
        kinds::restore_path(cx, scratch.join("tree"), Place::Dir)
    }

    fn check(&self, cx: &DrillCx<'_>, place: &Place, out: &mut Vec<CheckResult>) {
        match place {
            Place::Dir(dir) => files_checks(cx.engine, &cx.target.name, cx.snapshot, dir, out),
            _ => kinds::wrong_place(out),
        }
    }
}
