//! PostgreSQL targets: `pg_dump -Fc -Z0` streamed into the repository; restored with
//! `pg_restore` into a database created from `template0`.

use std::{fs, path::Path, sync::Arc};

use runbook_config::{DbUrl, Postgres};

use super::{BackupCx, Beside, DbCx, DbKind, DbRestoreCx, Kind, on_server, timed, with_note};
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
            reopen: _,
            saved_dir: _,
        } = r;
        let conn = Conn::new(cx.target, &self.0)?;
        let prepared = timed(phases, "prepare", || {
            prepare(&conn, cx.target, into, opts.force)
        })?;
        // A database with content is replaced only once the restore is complete: the dump
        // goes into a database beside it, which then takes its name.
        let dest = prepared.beside.as_ref().map_or(into, |b| b.new.as_str());
        let restored = timed(phases, "restore", || {
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
                conn.restore(dest, opts.keep_owners, Some((&file, opts.jobs)), |_| Ok(()))
            } else {
                conn.restore(dest, opts.keep_owners, None, |stdin| {
                    crate::failpoint("postgres-restore-loading");
                    repo.dump_to(id, inner, stdin)
                })
            }
        })
        .and_then(|()| {
            if opts.analyze {
                timed(phases, "analyze", || conn.psql(dest, "ANALYZE")).map(drop)
            } else {
                Ok(())
            }
        });
        let Some(beside) = prepared.beside else {
            return restored.map(|()| prepared.existed);
        };
        if let Err(e) = restored {
            let _ = conn.psql("postgres", &drop_sql(&beside.new));
            return Err(with_note(e, &format!("database {into} was left as it was")));
        }
        timed(phases, "swap", || beside.swap(&conn, into))?;
        Ok(prepared.existed)
    }
}

/// `DROP DATABASE IF EXISTS` for `name`, closing its sessions.
fn drop_sql(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
}

impl Beside {
    /// Gives `new` the name `into`: renaming a database needs it free of sessions, so the
    /// sessions on `into` are ended first, and again if one connected in between.
    fn swap(&self, conn: &Conn<'_>, into: &str) -> Result<()> {
        let (new, old) = (&self.new, &self.old);
        let end_sessions = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{into}' AND pid <> pg_backend_pid()"
        );
        // One statement string is one transaction: both renames happen, or neither.
        let rename = format!(
            "ALTER DATABASE \"{into}\" RENAME TO \"{old}\"; \
             ALTER DATABASE \"{new}\" RENAME TO \"{into}\""
        );
        let mut tries = 0;
        loop {
            conn.psql("postgres", &end_sessions)?;
            match conn.psql("postgres", &rename) {
                Ok(_) => break,
                // A session ends a moment after it is told to: try again shortly.
                Err(e) if tries < 50 && e.to_string().contains("being accessed by other users") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    let _ = conn.psql("postgres", &drop_sql(new));
                    return Err(with_note(e, &format!("database {into} was left as it was")));
                }
            }
        }
        crate::failpoint("postgres-restore-after-swap");
        // The restore is in place; the old data is what a forced restore replaces. Should it
        // stay, the next forced restore into `into` drops it.
        if let Err(e) = conn.psql("postgres", &drop_sql(old)) {
            log::warn!("restored into {into}, but the old database {old} is still there: {e}");
        }
        Ok(())
    }
}

/// The first column of each row.
pub(super) fn first_column(rows: Vec<Vec<String>>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect()
}

/// What [`prepare`] found and made ready.
struct Prepared {
    /// `into` existed.
    existed: bool,
    /// `into` has content and is replaced once the restore is complete (`force`).
    beside: Option<Beside>,
}

/// Creates `into` when it is missing; restores into it when it is empty; refuses when it has
/// content, or with `force` creates the database beside it that the restore goes into.
fn prepare(conn: &Conn<'_>, target: &str, into: &str, force: bool) -> Result<Prepared> {
    let maintenance = "postgres";
    let exists = conn.psql(
        maintenance,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{into}'"),
    )? != "0";
    let mut beside = None;
    if exists {
        let relations = conn.psql(
            into,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
        )?;
        if relations == "0" {
            return Ok(Prepared {
                existed: true,
                beside: None,
            });
        }
        if !force {
            return Err(Error::DatabaseNotEmpty {
                target: target.to_string(),
                database: into.to_string(),
            });
        }
        // What a killed forced restore into `into` left: a partial restore, or the old data
        // it had already replaced.
        let b = Beside::of(into);
        conn.psql(maintenance, &drop_sql(&b.new))?;
        conn.psql(maintenance, &drop_sql(&b.old))?;
        beside = Some(b);
    }
    let create = beside.as_ref().map_or(into, |b| b.new.as_str());
    conn.psql(
        maintenance,
        &format!("CREATE DATABASE \"{create}\" TEMPLATE template0"),
    )?;
    Ok(Prepared {
        existed: exists,
        beside,
    })
}
