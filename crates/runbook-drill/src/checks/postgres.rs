//! PostgreSQL: the probe that answers the shared database questions of the live database and
//! the restored scratch database.

use std::collections::BTreeMap;

use jiff::Timestamp;
use runbook_backup::ScratchDir;
use runbook_config::Postgres;

use super::probe::{Probe, Probed, Side, Sides, dq, lit};
use crate::{
    CheckResult, Place,
    kinds::{self, DrillCx, DrillKind, RestoreFailure},
};

pub(super) struct PgProbe {
    pub(super) sides: Sides,
    pub(super) schemas: Vec<String>,
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

/// PostgreSQL targets in drills: restored into a scratch database on the drill server.
pub(crate) struct Drill<'a> {
    pub pg: &'a Postgres,
}

impl DrillKind for Drill<'_> {
    fn restore(
        &self,
        cx: &DrillCx<'_>,
        _scratch: &ScratchDir,
        now: Timestamp,
    ) -> Result<Place, RestoreFailure> {
        kinds::restore_database(cx, now)
    }

    fn check(&self, cx: &DrillCx<'_>, place: &Place, out: &mut Vec<CheckResult>) {
        let Some(sides) = super::sides(cx, place, out) else {
            return;
        };
        let excludes = runbook_config::glob_set(&self.pg.exclude_tables);
        let probe = PgProbe {
            sides,
            schemas: self.pg.schemas.clone(),
        };
        let excluded = |t: &str| {
            let bare = t.split_once('.').map_or(t, |(_, n)| n);
            excludes.is_match(t) || excludes.is_match(bare)
        };
        super::database_checks(&probe, cx.settings, &excluded, out);
    }
}
