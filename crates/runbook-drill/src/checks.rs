//! The checks run on a restored copy: built-in ones by kind, and the configured `sql` and
//! `row_counts` checks.
//!
//! Database kinds share one procedure over a [`Probe`], which answers the same questions of the
//! live source and of the restored copy: which tables exist, which hold rows, how many objects
//! of each kind there are, how many rows a table has, what a query returns.

use std::collections::{BTreeMap, BTreeSet};

use runbook_backup::{Database, Engine, Snapshot};
use runbook_config::{Drill, DrillCheck, Target, TargetKind};

use crate::{CheckResult, Place, Report};

/// Which copy a probe question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Restored,
}

type Probed<T> = Result<T, String>;

trait Probe: Sync {
    /// User tables, as `schema.table` (or `table` where there are no schemas).
    fn tables(&self, side: Side) -> Probed<Vec<String>>;
    /// The tables of `tables` that hold at least one row.
    fn non_empty(&self, side: Side, tables: &[String]) -> Probed<Vec<String>>;
    /// Counts of views, functions, sequences, … (tables are counted from `tables`).
    fn objects(&self, side: Side) -> Probed<BTreeMap<&'static str, i64>>;
    /// Exact row count of `table`.
    fn rows(&self, side: Side, table: &str) -> Probed<i64>;
    /// The first column of the first row of `sql`, run on the restored copy.
    fn scalar(&self, sql: &str) -> Probed<String>;
}

/// Runs the built-in and configured checks for `place`, appending to `report.checks`.
pub(crate) fn run(
    engine: &Engine,
    target: &Target,
    settings: &Drill,
    snapshot: &Snapshot,
    place: &Place,
    database: Option<&Database>,
    report: &mut Report,
) {
    let out = &mut report.checks;
    match (&target.kind, place) {
        (TargetKind::Sqlite { path }, Place::File(file)) => {
            let probe = SqliteProbe {
                source: path.clone(),
                restored: file.clone(),
            };
            sqlite_integrity(&probe, out);
            database_checks(&probe, settings, &|_| false, out);
        }
        (TargetKind::Postgres(pg), Place::Database(db)) => {
            let (Some(server), Some(source)) = (database, live_source(engine, target, out)) else {
                return;
            };
            let excludes = globs(&pg.exclude_tables);
            let probe = PgProbe {
                sides: Sides {
                    source_db: source.source_database().to_string(),
                    source,
                    restored: server.clone(),
                    restored_db: db.clone(),
                },
                schemas: pg.schemas.clone(),
            };
            let excluded = |t: &str| {
                let bare = t.split_once('.').map_or(t, |(_, n)| n);
                excludes.is_match(t) || excludes.is_match(bare)
            };
            database_checks(&probe, settings, &excluded, out);
        }
        (TargetKind::Mariadb(_), Place::Database(db)) => {
            let (Some(server), Some(source)) = (database, live_source(engine, target, out)) else {
                return;
            };
            let probe = MariaProbe {
                sides: Sides {
                    source_db: source.source_database().to_string(),
                    source,
                    restored: server.clone(),
                    restored_db: db.clone(),
                },
            };
            database_checks(&probe, settings, &|_| false, out);
        }
        (TargetKind::Files { .. }, Place::Dir(dir)) => {
            files_checks(engine, &target.name, snapshot, dir, out);
        }
        _ => out.push(CheckResult::new(
            "restore",
            "a restored copy of the target's kind",
            "internal error: restored to the wrong kind of place",
            false,
        )),
    }
}

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

fn globs(patterns: &[String]) -> globset::GlobSet {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        if let Ok(g) = globset::Glob::new(p) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| globset::GlobSet::empty())
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

/// SQLite's own checks on the restored file.
fn sqlite_integrity(probe: &SqliteProbe, out: &mut Vec<CheckResult>) {
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

/// Double-quoted identifier (SQLite, PostgreSQL).
fn dq(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Backquoted identifier (MariaDB).
fn bq(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Single-quoted literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

struct SqliteProbe {
    source: std::path::PathBuf,
    restored: std::path::PathBuf,
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

/// The live source database and the restored copy, each on its server.
struct Sides {
    source: Database,
    source_db: String,
    restored: Database,
    restored_db: String,
}

impl Sides {
    fn column(&self, side: Side, sql: &str) -> Probed<Vec<String>> {
        let (db, name) = match side {
            Side::Source => (&self.source, &self.source_db),
            Side::Restored => (&self.restored, &self.restored_db),
        };
        db.query(name, sql)
            .map(|rows| {
                rows.into_iter()
                    .filter_map(|r| r.into_iter().next())
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn count(&self, side: Side, sql: &str) -> Probed<i64> {
        self.column(side, sql)?
            .first()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no count from {sql}"))
    }

    /// The tables of `tables` holding a row: one `EXISTS` per table (`probe` writes it),
    /// joined with `UNION ALL` in batches of 200 to keep each command line short.
    fn non_empty(
        &self,
        side: Side,
        tables: &[String],
        probe: impl Fn(&str) -> String,
    ) -> Probed<Vec<String>> {
        let mut found = Vec::new();
        for chunk in tables.chunks(200) {
            let sql = chunk
                .iter()
                .map(|t| probe(t))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            found.extend(self.column(side, &sql)?);
        }
        Ok(found)
    }

    /// The first value `sql` returns on the restored copy.
    fn scalar(&self, sql: &str) -> Probed<String> {
        self.column(Side::Restored, sql)?
            .into_iter()
            .next()
            .ok_or_else(|| "the query returned no row".into())
    }
}

struct PgProbe {
    sides: Sides,
    schemas: Vec<String>,
}

const PG_USER_NS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

impl PgProbe {
    fn schema_filter(&self) -> String {
        if self.schemas.is_empty() {
            String::new()
        } else {
            let list = self
                .schemas
                .iter()
                .map(|s| lit(s))
                .collect::<Vec<_>>()
                .join(", ");
            format!(" AND n.nspname IN ({list})")
        }
    }
}

fn split_qualified(t: &str) -> (&str, &str) {
    t.split_once('.').unwrap_or(("public", t))
}

impl Probe for PgProbe {
    fn tables(&self, side: Side) -> Probed<Vec<String>> {
        self.sides.column(
            side,
            &format!(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {PG_USER_NS}{} ORDER BY 1",
                self.schema_filter()
            ),
        )
    }

    fn non_empty(&self, side: Side, tables: &[String]) -> Probed<Vec<String>> {
        self.sides.non_empty(side, tables, |t| {
            let (s, n) = split_qualified(t);
            format!(
                "SELECT {} WHERE EXISTS (SELECT 1 FROM {}.{})",
                lit(t),
                dq(s),
                dq(n)
            )
        })
    }

    fn objects(&self, side: Side) -> Probed<BTreeMap<&'static str, i64>> {
        let f = self.schema_filter();
        let mut m = BTreeMap::new();
        m.insert("views", self.sides.count(side, &format!("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {PG_USER_NS}{f}"))?);
        m.insert("sequences", self.sides.count(side, &format!("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND {PG_USER_NS}{f}"))?);
        m.insert("functions", self.sides.count(side, &format!("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {PG_USER_NS}{f}"))?);
        Ok(m)
    }

    fn rows(&self, side: Side, table: &str) -> Probed<i64> {
        let (s, n) = split_qualified(table);
        self.sides
            .count(side, &format!("SELECT count(*) FROM {}.{}", dq(s), dq(n)))
    }

    fn scalar(&self, sql: &str) -> Probed<String> {
        self.sides.scalar(sql)
    }
}

struct MariaProbe {
    sides: Sides,
}

impl Probe for MariaProbe {
    fn tables(&self, side: Side) -> Probed<Vec<String>> {
        self.sides.column(
            side,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
        )
    }

    fn non_empty(&self, side: Side, tables: &[String]) -> Probed<Vec<String>> {
        self.sides.non_empty(side, tables, |t| {
            format!(
                "SELECT {} FROM DUAL WHERE EXISTS (SELECT 1 FROM {})",
                lit(t),
                bq(t)
            )
        })
    }

    fn objects(&self, side: Side) -> Probed<BTreeMap<&'static str, i64>> {
        let mut m = BTreeMap::new();
        m.insert("views", self.sides.count(side, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'VIEW'")?);
        m.insert("sequences", self.sides.count(side, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE'")?);
        m.insert("routines", self.sides.count(side, "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()")?);
        m.insert("triggers", self.sides.count(side, "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")?);
        Ok(m)
    }

    fn rows(&self, side: Side, table: &str) -> Probed<i64> {
        self.sides
            .count(side, &format!("SELECT COUNT(*) FROM {}", bq(table)))
    }

    fn scalar(&self, sql: &str) -> Probed<String> {
        self.sides.scalar(sql)
    }
}

/// Files: every file re-hashed against the snapshot's chunk ids; every `*.json` parses.
fn files_checks(
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
