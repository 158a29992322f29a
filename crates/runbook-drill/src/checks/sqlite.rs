//! SQLite: `integrity_check` and `foreign_key_check` on the restored file, and the probe that
//! answers the shared database questions of the live file and the copy.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use jiff::Timestamp;
use runbook_backup::ScratchDir;

use super::list;
use super::probe::{Probe, Probed, Side, dq, lit};
use crate::{
    CheckResult, Place,
    kinds::{self, DrillCx, DrillKind, RestoreFailure},
};

/// SQLite's own checks on the restored file.
pub(super) fn sqlite_integrity(probe: &SqliteProbe, out: &mut Vec<CheckResult>) {
    let rows = |sql: &str| probe.column(Side::Restored, sql);
    match rows("PRAGMA integrity_check") {
        Ok(r) => {
            let ok = r == ["ok"];
            out.push(CheckResult::new("integrity_check", "ok", list(&r, 3), ok));
        }
        Err(e) => {
            out.push(CheckResult::new("integrity_check", "ok", e, false));
            return;
        }
    }
    match rows("PRAGMA foreign_key_check") {
        Ok(r) => out.push(CheckResult::new(
            "foreign_key_check",
            "no violations",
            if r.is_empty() {
                "no violations".to_string()
            } else {
                format!(
                    "{} violations, in tables {}",
                    r.len(),
                    list(
                        &Vec::from_iter(r.iter().cloned().collect::<BTreeSet<_>>()),
                        5
                    )
                )
            },
            r.is_empty(),
        )),
        Err(e) => out.push(CheckResult::new(
            "foreign_key_check",
            "no violations",
            e,
            false,
        )),
    }
}

fn value_text(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

pub(super) struct SqliteProbe {
    pub(super) source: std::path::PathBuf,
    pub(super) restored: std::path::PathBuf,
}

impl SqliteProbe {
    fn open(&self, side: Side) -> Probed<rusqlite::Connection> {
        let path = match side {
            Side::Source => &self.source,
            Side::Restored => &self.restored,
        };
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn column(&self, side: Side, sql: &str) -> Probed<Vec<String>> {
        let conn = self.open(side)?;
        let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
            .map_err(|e| e.to_string())?;
        rows.map(|r| r.map(|v| value_text(&v)).map_err(|e| e.to_string()))
            .collect()
    }
}

impl Probe for SqliteProbe {
    fn tables(&self, side: Side) -> Probed<Vec<String>> {
        self.column(
            side,
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
    }

    fn non_empty(&self, side: Side, tables: &[String]) -> Probed<Vec<String>> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let sql = tables
            .iter()
            .map(|t| format!("SELECT {} WHERE EXISTS (SELECT 1 FROM {})", lit(t), dq(t)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        self.column(side, &sql)
    }

    fn objects(&self, side: Side) -> Probed<BTreeMap<&'static str, i64>> {
        let mut m = BTreeMap::new();
        for (key, ty) in [
            ("views", "view"),
            ("indexes", "index"),
            ("triggers", "trigger"),
        ] {
            let n = self.column(
                side,
                &format!("SELECT count(*) FROM sqlite_schema WHERE type = '{ty}' AND name NOT LIKE 'sqlite_%'"),
            )?;
            m.insert(key, n.first().and_then(|v| v.parse().ok()).unwrap_or(0));
        }
        Ok(m)
    }

    fn rows(&self, side: Side, table: &str) -> Probed<i64> {
        let v = self.column(side, &format!("SELECT count(*) FROM {}", dq(table)))?;
        v.first()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| "no count".to_string())
    }

    fn scalar(&self, sql: &str) -> Probed<String> {
        let v = self.column(Side::Restored, sql)?;
        v.into_iter()
            .next()
            .ok_or_else(|| "the query returned no row".into())
    }
}

/// SQLite targets in drills: the file restored into scratch under its own name.
pub(crate) struct Drill<'a> {
    pub path: &'a Path,
}

impl DrillKind for Drill<'_> {
    fn restore(
        &self,
        cx: &DrillCx<'_>,
        scratch: &ScratchDir,
        _now: Timestamp,
    ) -> Result<Place, RestoreFailure> {
        let file = scratch.join(self.path.file_name().unwrap_or(self.path.as_os_str()));
        kinds::restore_path(cx, file, Place::File)
    }

    fn check(&self, cx: &DrillCx<'_>, place: &Place, out: &mut Vec<CheckResult>) {
        let Place::File(file) = place else {
            return kinds::wrong_place(out);
        };
        let probe = SqliteProbe {
            source: self.path.to_path_buf(),
            restored: file.clone(),
        };
        sqlite_integrity(&probe, out);
        super::database_checks(&probe, cx.settings, &|_| false, out);
    }
}
