//! The checks run on a restored copy: built-in ones by kind, and the configured `sql` and
//! `row_counts` checks.
//!
//! Database kinds share one procedure over a [`Probe`], which answers the same questions of the
//! live source and of the restored copy: which tables exist, which hold rows, how many objects
//! of each kind there are, how many rows a table has, what a query returns.

use std::collections::{BTreeMap, BTreeSet};

use runbook_backup::{Database, Engine};
use runbook_config::{Drill, DrillCheck, Target};

use crate::{CheckResult, Place, kinds::DrillCx};

pub(crate) mod bucket;
pub(crate) mod files;
pub(crate) mod mariadb;
pub(crate) mod postgres;
mod probe;
pub(crate) mod sqlite;

use probe::{Probe, Side, Sides};

/// The target's own server, to compare the copy with; a failure is a failed `tables` check.
fn live_source(engine: &Engine, target: &Target, out: &mut Vec<CheckResult>) -> Option<Database> {
    match engine.database(&target.name, None) {
        Ok(s) => Some(s),
        Err(e) => {
            out.push(CheckResult::new(
                "tables",
                "the live source is readable",
                e.to_string(),
                false,
            ));
            None
        }
    }
}

/// The drill server and the live source of a database kind's drill restored into `place`, to
/// build its probe; `None` (with the failed check recorded) when either is missing.
fn sides(cx: &DrillCx<'_>, place: &Place, out: &mut Vec<CheckResult>) -> Option<Sides> {
    let Place::Database(restored_db) = place else {
        crate::kinds::wrong_place(out);
        return None;
    };
    let server = cx.database?;
    let source = live_source(cx.engine, cx.target, out)?;
    Some(Sides {
        source_db: source.source_database().to_string(),
        source,
        restored: server.clone(),
        restored_db: restored_db.to_string(),
    })
}

fn list(names: &[String], max: usize) -> String {
    let mut s = names
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > max {
        s.push_str(&format!(" and {} more", names.len() - max));
    }
    s
}

fn counts_text(c: &BTreeMap<&'static str, i64>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True for the answers of `select <condition>` on every engine we speak to.
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "t" | "true" | "1" | "yes" | "on"
    )
}

/// The shared procedure for SQLite, PostgreSQL and MariaDB.
fn database_checks(
    probe: &dyn Probe,
    settings: &Drill,
    excluded: &dyn Fn(&str) -> bool,
    out: &mut Vec<CheckResult>,
) {
    let source = probe
        .tables(Side::Source)
        .map(|t| t.into_iter().filter(|t| !excluded(t)).collect::<Vec<_>>());
    let restored = probe.tables(Side::Restored);
    let (source, restored) = match (source, restored) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) => {
            out.push(CheckResult::new(
                "tables",
                "the live source is readable",
                e,
                false,
            ));
            return;
        }
        (_, Err(e)) => {
            out.push(CheckResult::new(
                "tables",
                "the restored copy is readable",
                e,
                false,
            ));
            return;
        }
    };
    // Every table of the source exists in the restore.
    let have: BTreeSet<&String> = restored.iter().collect();
    let missing: Vec<String> = source
        .iter()
        .filter(|t| !have.contains(t))
        .cloned()
        .collect();
    out.push(CheckResult::new(
        "tables",
        format!("the source's {} tables", source.len()),
        if missing.is_empty() {
            format!("all {} present", source.len())
        } else {
            format!("missing {}: {}", missing.len(), list(&missing, 5))
        },
        missing.is_empty(),
    ));
    // An empty restore of a source with data is the classic silent failure.
    match (
        probe.non_empty(Side::Source, &source),
        probe.non_empty(Side::Restored, &restored),
    ) {
        (Ok(src), Ok(rest)) => {
            let ok = src.is_empty() || !rest.is_empty();
            out.push(CheckResult::new(
                "not_empty",
                if src.is_empty() {
                    "anything (the source holds no rows)".to_string()
                } else {
                    format!("rows (the source has rows in {} tables)", src.len())
                },
                if rest.is_empty() {
                    "no rows in any table".to_string()
                } else {
                    format!("rows in {} tables", rest.len())
                },
                ok,
            ));
        }
        (Err(e), _) | (_, Err(e)) => out.push(CheckResult::new(
            "not_empty",
            "row presence readable",
            e,
            false,
        )),
    }
    // Object counts.
    match (probe.objects(Side::Source), probe.objects(Side::Restored)) {
        (Ok(mut src), Ok(mut rest)) => {
            #[allow(clippy::cast_possible_wrap)]
            {
                src.insert("tables", source.len() as i64);
                rest.insert("tables", restored.len() as i64);
            }
            out.push(CheckResult::new(
                "object_counts",
                counts_text(&src),
                counts_text(&rest),
                src == rest,
            ));
        }
        (Err(e), _) | (_, Err(e)) => out.push(CheckResult::new(
            "object_counts",
            "object counts readable",
            e,
            false,
        )),
    }
    for check in &settings.checks {
        match check {
            DrillCheck::Sql(sql) => {
                let name = format!("sql: {}", sql.trim());
                match probe.scalar(sql) {
                    Ok(v) => out.push(CheckResult::new(name, "true", v.clone(), truthy(&v))),
                    Err(e) => {
                        out.push(CheckResult::new(name, "true", format!("error: {e}"), false))
                    }
                }
            }
            DrillCheck::RowCounts { tolerance_percent } => {
                out.push(row_counts(probe, &source, &have, *tolerance_percent));
            }
        }
    }
}

fn row_counts(
    probe: &dyn Probe,
    source: &[String],
    have: &BTreeSet<&String>,
    tolerance: f64,
) -> CheckResult {
    let name = "row_counts";
    let expected = format!("each table within {tolerance}% of the source");
    let tables: Vec<&String> = source.iter().filter(|t| have.contains(t)).collect();
    // Source and restored copy are counted at the same time: on a large database each side
    // is a full scan of every table.
    let count_all = |side: Side| -> Result<Vec<i64>, String> {
        tables.iter().map(|t| probe.rows(side, t)).collect()
    };
    let (src, rest) = std::thread::scope(|s| {
        let src = s.spawn(|| count_all(Side::Source));
        let rest = count_all(Side::Restored);
        (
            src.join()
                .unwrap_or_else(|_| Err("counting panicked".into())),
            rest,
        )
    });
    let (src, rest) = match (src, rest) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => {
            return CheckResult::new(name, expected, format!("error: {e}"), false);
        }
    };
    let total = tables.len();
    let mut off = Vec::new();
    for ((t, s), r) in tables.iter().zip(src).zip(rest) {
        #[allow(clippy::cast_precision_loss)]
        let allowed = s as f64 * tolerance / 100.0;
        #[allow(clippy::cast_precision_loss)]
        if ((s - r).abs() as f64) > allowed {
            off.push(format!("{t} {r} vs {s}"));
        }
    }
    let ok = off.is_empty();
    let actual = if ok {
        format!("{total} tables within tolerance")
    } else {
        format!("restored vs source: {}", list(&off, 5))
    };
    CheckResult::new(name, expected, actual, ok)
}
