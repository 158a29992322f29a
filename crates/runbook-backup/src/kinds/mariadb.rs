//! MariaDB/MySQL targets: `mariadb-dump --single-transaction` streamed into the repository;
//! restored with the `mariadb` client into a database created for it.

use std::{path::Path, sync::Arc};

use runbook_config::{DbUrl, Mariadb};

use super::{BackupCx, DbCx, DbKind, DbRestoreCx, Kind, on_server, postgres::first_column, timed};
use crate::{Error, Result, Snapshot, mariadb::Conn, repository::Chunking};

#[derive(Debug, Clone)]
pub(crate) struct Maria(pub Mariadb);

impl Kind for Maria {
    fn backup(&self, cx: BackupCx<'_>) -> Result<Snapshot> {
        let conn = Conn::new(&cx.target.name, &self.0, &cx.scratch_root())?;
        let (repo, (reader, failure)) = cx.repo_beside(Chunking::Content, || conn.start_dump())?;
        let path = format!("/mariadb/{}.sql", self.0.url.database);
        cx.stream(repo, reader, Path::new(&path), &failure)
    }

    fn database(&self, server: Option<&DbUrl>) -> Option<Arc<dyn DbKind>> {
        let mut db = self.0.clone();
        if let Some(s) = server {
            db.url = on_server(&db.url, &mut db.password_file, s);
        }
        Some(Arc::new(Maria(db)))
    }
}

impl DbKind for Maria {
    fn engine(&self) -> &'static str {
        "mariadb"
    }

    fn url(&self) -> &DbUrl {
        &self.0.url
    }

    fn password_file(&self) -> Option<&Path> {
        self.0.password_file.as_deref()
    }

    fn rows(&self, cx: &DbCx<'_>, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        Conn::new(cx.target, &self.0, cx.scratch_root)?.rows(database, sql)
    }

    fn databases(&self, cx: &DbCx<'_>, prefix: &str) -> Result<Vec<String>> {
        self.rows(
            cx,
            "information_schema",
            &format!(
                "SELECT SCHEMA_NAME FROM SCHEMATA WHERE LEFT(SCHEMA_NAME, {}) = '{prefix}' ORDER BY 1",
                prefix.len()
            ),
        )
        .map(first_column)
    }

    fn drop_database(&self, cx: &DbCx<'_>, database: &str) -> Result<()> {
        Conn::new(cx.target, &self.0, cx.scratch_root)?
            .sql(&format!("DROP DATABASE IF EXISTS `{database}`"))
            .map(drop)
    }

    fn restore_into(&self, cx: &DbCx<'_>, r: DbRestoreCx<'_>) -> Result<bool> {
        let conn = Conn::new(cx.target, &self.0, cx.scratch_root)?;
        let into = r.into;
        let exists = timed(r.phases, "prepare", || {
            let exists = conn.sql(&format!(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{into}'"
            ))? != "0";
            if exists {
                let tables = conn.sql(&format!(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{into}'"
                ))?;
                if tables != "0" && !r.opts.force {
                    return Err(Error::DatabaseNotEmpty {
                        target: cx.target.to_string(),
                        database: into.to_string(),
                    });
                }
                conn.sql(&format!("DROP DATABASE `{into}`"))?;
            }
            conn.sql(&format!("CREATE DATABASE `{into}` CHARACTER SET utf8mb4"))?;
            Ok(exists)
        })?;
        timed(r.phases, "restore", || {
            conn.restore(into, |stdin| r.repo.dump_to(r.id, r.inner, stdin))
        })?;
        Ok(exists)
    }
}
