//! MariaDB/MySQL: the probe that answers the shared database questions of the live database
//! and the restored scratch database.

use std::collections::BTreeMap;

use jiff::Timestamp;
use runbook_backup::ScratchDir;

use super::probe::{Probe, Probed, Side, Sides, bq, lit};
use crate::{
    CheckResult, Place,
    kinds::{self, DrillCx, DrillKind, RestoreFailure},
};

pub(super) struct MariaProbe {
    pub(super) sides: Sides,
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

/// MariaDB targets in drills: restored into a scratch database on the drill server.
pub(crate) struct Drill;

impl DrillKind for Drill {
    fn restore(
        &self,
        cx: &DrillCx<'_>,
        _scratch: &ScratchDir,
        now: Timestamp,
    ) -> Result<Place, RestoreFailure> {
        kinds::restore_database(cx, now)
    }

    fn check(&self, cx: &DrillCx<'_>, place: &Place, out: &mut Vec<CheckResult>) {
        if let Some(sides) = super::sides(cx, place, out) {
            super::database_checks(&MariaProbe { sides }, cx.settings, &|_| false, out);
        }
    }
}
