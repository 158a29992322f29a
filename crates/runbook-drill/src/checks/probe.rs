//! The questions every database kind answers of the live source and the restored copy.

use std::collections::BTreeMap;

use runbook_backup::Database;

/// Which copy a probe question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Source,
    Restored,
}

pub(super) type Probed<T> = Result<T, String>;

pub(super) trait Probe: Sync {
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

/// Double-quoted identifier (SQLite, PostgreSQL).
pub(super) fn dq(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Backquoted identifier (MariaDB).
pub(super) fn bq(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Single-quoted literal.
pub(super) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The live source database and the restored copy, each on its server.
pub(super) struct Sides {
    pub(super) source: Database,
    pub(super) source_db: String,
    pub(super) restored: Database,
    pub(super) restored_db: String,
}

impl Sides {
    pub(super) fn column(&self, side: Side, sql: &str) -> Probed<Vec<String>> {
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

    pub(super) fn count(&self, side: Side, sql: &str) -> Probed<i64> {
        self.column(side, sql)?
            .first()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no count from {sql}"))
    }

    /// The tables of `tables` holding a row: one `EXISTS` per table (`probe` writes it),
    /// joined with `UNION ALL` in batches of 200 to keep each command line short.
    pub(super) fn non_empty(
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
    pub(super) fn scalar(&self, sql: &str) -> Probed<String> {
        self.column(Side::Restored, sql)?
            .into_iter()
            .next()
            .ok_or_else(|| "the query returned no row".into())
    }
}
