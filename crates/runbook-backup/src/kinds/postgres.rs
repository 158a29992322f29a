//! PostgreSQL targets: `pg_dump -Fc -Z0` streamed into the repository; restored with
//! `pg_restore` into a database created from `template0`.

use std::{fs, path::Path, sync::Arc};

use runbook_config::{DbUrl, Postgres};

use super::{BackupCx, DbCx, DbKind, DbRestoreCx, Kind, on_server, timed};
use crate::{Error, Result, ScratchDir, Snapshot, postgres::Conn, repository::Chunking};

#[derive(Debug, Clone)]
pub(crate) struct Pg(pub Postgres);

impl Kind for Pg {
    fn backup(&self, cx: BackupCx<'_>) -> Result<Snapshot> {
        let conn = Conn::new(&cx.target.name, &self.0)?;
        let (repo, (reader, failure)) = cx.repo_beside(Chunking::Content, || conn.start_dump())?;
        let path = format!("/postgres/{}.dump", self.0.url.database);
        cx.stream(repo, reader, Path::new(&path), &failure)
    }

    fn database(&self, server: Option<&DbUrl>) -> Option<Arc<dyn DbKind>> {
        let mut pg = self.0.clone();
        if let Some(s) = server {
            pg.url = on_server(&pg.url, &mut pg.password_file, s);
        }
        Some(Arc::new(Pg(pg)))
    }
}

impl DbKind for Pg {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn url(&self) -> &DbUrl {
        &self.0.url
    }

    fn password_file(&self) -> Option<&Path> {
        self.0.password_file.as_deref()
    }

    fn rows(&self, cx: &DbCx<'_>, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        Conn::new(cx.target, &self.0)?.rows(database, sql)
    }

    fn databases(&self, cx: &DbCx<'_>, prefix: &str) -> Result<Vec<String>> {
        self.rows(
            cx,
            "postgres",
            &format!(
                "SELECT datname FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1"
            ),
        )
        .map(first_column)
    }

    fn drop_database(&self, cx: &DbCx<'_>, database: &str) -> Result<()> {
        Conn::new(cx.target, &self.0)?
            .psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
            )
            .map(drop)
    }

    fn restore_into(&self, cx: &DbCx<'_>, r: DbRestoreCx<'_>) -> Result<bool> {
        let DbRestoreCx {
            repo,
            id,
            inner,
            into,
            opts,
            phases,
        } = r;
        let conn = Conn::new(cx.target, &self.0)?;
        let exists = timed(phases, "prepare", || {
            prepare(&conn, cx.target, into, opts.force)
        })?;
        timed(phases, "restore", || {
            if opts.jobs > 1 {
                // pg_restore runs in parallel only from a file: stage the dump in data_dir.
                let scratch = ScratchDir::new(cx.scratch_root, &format!("{}-restore", cx.target))?;
                let file = scratch.join("restore.dump");
                let mut out = fs::File::create(&file)
                    .map_err(Error::io(format!("cannot create {}", file.display())))?;
                repo.dump_to(id, inner, &mut out)?;
                out.sync_all()
                    .map_err(Error::io(format!("cannot write {}", file.display())))?;
                drop(out);
                conn.restore(into, opts.keep_owners, Some((&file, opts.jobs)), |_| Ok(()))
            } else {
                conn.restore(into, opts.keep_owners, None, |stdin| {
                    repo.dump_to(id, inner, stdin)
                })
            }
        })?;
        if opts.analyze {
            timed(phases, "analyze", || conn.psql(into, "ANALYZE"))?;
        }
        Ok(exists)
    }
}

/// The first column of each row.
pub(super) fn first_column(rows: Vec<Vec<String>>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect()
}

/// Creates `into` or, if it exists with content, refuses (or with `force` drops and recreates
/// it). Returns whether it existed.
fn prepare(conn: &Conn<'_>, target: &str, into: &str, force: bool) -> Result<bool> {
    let maintenance = "postgres";
    let exists = conn.psql(
        maintenance,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{into}'"),
    )? != "0";
    if exists {
        let relations = conn.psql(
            into,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
        )?;
        if relations == "0" {
            return Ok(true);
        }
        if !force {
            return Err(Error::DatabaseNotEmpty {
                target: target.to_string(),
                database: into.to_string(),
            });
        }
        conn.psql(
            maintenance,
            &format!("DROP DATABASE \"{into}\" WITH (FORCE)"),
        )?;
    }
    conn.psql(
        maintenance,
        &format!("CREATE DATABASE \"{into}\" TEMPLATE template0"),
    )?;
    Ok(exists)
}
