//! MariaDB/MySQL targets: `mariadb-dump --single-transaction` streamed into the repository;
//! restored with the `mariadb` client into a database created for it.

use std::{path::Path, sync::Arc};

use runbook_config::{DbUrl, Mariadb};

use super::{
    BackupCx, Beside, DbCx, DbKind, DbRestoreCx, Kind, on_server, postgres::first_column, timed,
    with_note,
};
use crate::{
    Error, Result, Snapshot,
    mariadb::Conn,
    repository::{Chunking, Repo},
};

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
        let (exists, beside) = timed(r.phases, "prepare", || {
            prepare(&conn, cx.target, into, r.opts.force)
        })?;
        let load = |repo: Repo, dest: &str| {
            conn.restore(dest, |stdin| {
                crate::failpoint("mariadb-restore-loading");
                repo.dump_to(r.id, r.inner, stdin)
            })
        };
        let Some(beside) = beside else {
            timed(r.phases, "restore", || load(r.repo, into))?;
            return Ok(exists);
        };
        let left = format!("database {into} was left as it was");
        if let Err(e) = timed(r.phases, "restore", || load(r.repo, &beside.new)) {
            let _ = conn.sql(&drop_sql(&beside.new));
            return Err(with_note(e, &left));
        }
        let swappable = only_tables(&conn, into)
            .and_then(|old| Ok(old && only_tables(&conn, &beside.new)?))
            .inspect_err(|_| {
                let _ = conn.sql(&drop_sql(&beside.new));
            })?;
        if swappable {
            timed(r.phases, "swap", || swap(&conn, into, &beside))
                .map_err(|e| with_note(e, &left))?;
            return Ok(exists);
        }
        // Views, triggers, routines or events (in the database or in the dump) cannot move
        // between databases: the dump, now known to load, is loaded into the database itself.
        timed(r.phases, "reload", || {
            reload(&conn, into, &beside, r.saved_dir, || {
                if crate::failpoint_or_error("mariadb-restore-reloading") {
                    return Err(conn.failed("injected fault".into()));
                }
                load((r.reopen)()?, into)
            })
        })?;
        Ok(exists)
    }
}

/// Replaces `into` with what `load` loads into it, for a database that cannot be swapped by
/// table: `into` is dumped into a file in `saved_dir` first (a warning names it), then
/// emptied and loaded. When the load fails, `into` is emptied again and the saved dump loaded
/// back; the file is removed once either load is complete. A restore killed in between leaves
/// the file, so what `into` held is never lost.
fn reload(
    conn: &Conn<'_>,
    into: &str,
    beside: &Beside,
    saved_dir: &Path,
    load: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let saved = crate::restoring::saved_dump_path(saved_dir, into);
    let dumped = conn.dump_into(into, &saved);
    let _ = conn.sql(&drop_sql(&beside.new));
    // Locked until this returns: while it is, the file is this restore's, not one left behind.
    let _in_use =
        dumped.map_err(|e| with_note(e, &format!("database {into} was left as it was")))?;
    log::warn!(
        "restore into {into}: what it held is saved in {} until the dump is loaded into it \
         (views, triggers, routines or events cannot be swapped in by table)",
        saved.display()
    );
    let Err(e) = recreate(conn, into).and_then(|()| load()) else {
        remove_saved(&saved);
        return Ok(());
    };
    let put_back = recreate(conn, into).and_then(|()| {
        conn.restore(into, |stdin| {
            let mut file = std::fs::File::open(&saved)
                .map_err(Error::io(format!("cannot read {}", saved.display())))?;
            std::io::copy(&mut file, stdin)
                .map(drop)
                .map_err(Error::io(format!("cannot load {}", saved.display())))
        })
    });
    match put_back {
        Ok(()) => {
            remove_saved(&saved);
            Err(with_note(
                e,
                &format!("database {into} was put back as it was"),
            ))
        }
        Err(back) => Err(with_note(
            e,
            &format!(
                "putting {into} back failed too ({back}); what it held is saved in {}",
                saved.display()
            ),
        )),
    }
}

/// Removes a saved dump that is no longer needed; one that stays is only a warning.
fn remove_saved(saved: &Path) {
    if let Err(e) = std::fs::remove_file(saved) {
        log::warn!("cannot remove {}: {e}", saved.display());
    }
}

/// `DROP DATABASE IF EXISTS` for `name`.
fn drop_sql(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS `{name}`")
}

/// Drops `into` and creates it again, empty.
fn recreate(conn: &Conn<'_>, into: &str) -> Result<()> {
    conn.sql(&format!("DROP DATABASE `{into}`"))?;
    conn.sql(&format!("CREATE DATABASE `{into}` CHARACTER SET utf8mb4"))
        .map(drop)
}

/// Whether database `db` holds only tables (and sequences): no views, triggers, routines or
/// events, which `RENAME TABLE` cannot carry to another database.
fn only_tables(conn: &Conn<'_>, db: &str) -> Result<bool> {
    let others = conn.sql(&format!(
        "SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}') \
         + (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}') \
         + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}') \
         + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}')"
    ))?;
    Ok(others == "0")
}

/// Creates `into` when it is missing; loads into it when it holds nothing; refuses when it
/// holds tables, views, routines or events, or with `force` creates the database beside it
/// that the dump goes into first. Returns whether `into` existed, and the database beside it.
fn prepare(
    conn: &Conn<'_>,
    target: &str,
    into: &str,
    force: bool,
) -> Result<(bool, Option<Beside>)> {
    let exists = conn.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{into}'"
    ))? != "0";
    if !exists {
        conn.sql(&format!("CREATE DATABASE `{into}` CHARACTER SET utf8mb4"))?;
        return Ok((false, None));
    }
    // Tables and views; a trigger belongs to a table. Routines and events are code a user
    // wrote: a database holding only those is not empty either.
    let objects = conn.sql(&format!(
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{into}') \
         + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{into}') \
         + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{into}')"
    ))?;
    if objects == "0" {
        // Nothing in it: start from nothing, in the character set the dump expects.
        recreate(conn, into)?;
        return Ok((true, None));
    }
    if !force {
        return Err(Error::DatabaseNotEmpty {
            target: target.to_string(),
            database: into.to_string(),
        });
    }
    let beside = Beside::of(into);
    conn.sql(&drop_sql(&beside.new))?;
    conn.sql(&drop_sql(&beside.old))?;
    conn.sql(&format!(
        "CREATE DATABASE `{}` CHARACTER SET utf8mb4",
        beside.new
    ))?;
    Ok((true, Some(beside)))
}

/// Moves the tables of `into` to `beside.old` and those of `beside.new` into `into` with one
/// `RENAME TABLE`, which MariaDB carries out whole or not at all (foreign keys follow their
/// tables), then drops both databases beside.
fn swap(conn: &Conn<'_>, into: &str, beside: &Beside) -> Result<()> {
    let (new, old) = (&beside.new, &beside.old);
    let tables = |db: &str| -> Result<Vec<String>> {
        Ok(first_column(conn.rows(
            "information_schema",
            &format!("SELECT TABLE_NAME FROM TABLES WHERE TABLE_SCHEMA = '{db}' ORDER BY 1"),
        )?))
    };
    let quoted = |name: &str| format!("`{}`", name.replace('`', "``"));
    let moved = || -> Result<String> {
        let mut moves: Vec<String> = Vec::new();
        for t in tables(into)? {
            moves.push(format!("`{into}`.{q} TO `{old}`.{q}", q = quoted(&t)));
        }
        for t in tables(new)? {
            moves.push(format!("`{new}`.{q} TO `{into}`.{q}", q = quoted(&t)));
        }
        conn.sql(&format!(
            "CREATE DATABASE `{old}` CHARACTER SET utf8mb4; \
             SET SESSION lock_wait_timeout = 60; \
             RENAME TABLE {}",
            moves.join(", ")
        ))
    };
    // Whatever failed, `into` kept its tables: what was made beside it goes.
    moved().inspect_err(|_| {
        let _ = conn.sql(&drop_sql(new));
        let _ = conn.sql(&drop_sql(old));
    })?;
    crate::failpoint("mariadb-restore-after-swap");
    for db in [old, new] {
        if let Err(e) = conn.sql(&drop_sql(db)) {
            log::warn!("restored into {into}, but {db} is still there: {e}");
        }
    }
    Ok(())
}
