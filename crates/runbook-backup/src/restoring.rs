//! Restores: a snapshot to a path (SQLite, files) or into a database (PostgreSQL, MariaDB),
//! never over runbook's own files, and damage met on the way recorded for the next backup.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use runbook_config::TargetKind;

use crate::{
    Database, Engine, Error, Result, ScratchDir, Snapshot, destination, mariadb, postgres,
    restore::Staged, sqlite,
};

/// How to restore a database target.
#[derive(Debug, Clone)]
pub struct DbRestore {
    /// Replace a non-empty database (dropped and recreated first).
    pub force: bool,
    /// Keep the dump's object owners (PostgreSQL).
    pub keep_owners: bool,
    /// Parallel restore jobs (PostgreSQL); above 1 the dump is staged in `data_dir` first.
    pub jobs: u32,
    /// Restore onto this server instead of the target's own (a drill server).
    pub server: Option<runbook_config::DbUrl>,
    /// Run `ANALYZE` afterwards (PostgreSQL), so the restored database plans queries well.
    /// Drills, which drop the database minutes later, skip it.
    pub analyze: bool,
}

impl Default for DbRestore {
    fn default() -> Self {
        Self {
            force: false,
            keep_owners: false,
            jobs: 1,
            server: None,
            analyze: true,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: Snapshot,
    /// Where it was written.
    pub to: PathBuf,
    /// Whether an existing destination was replaced.
    pub replaced: bool,
    /// Seconds the restore took.
    pub seconds: f64,
}

impl Engine {
    /// Restores snapshot `wanted` (`latest` or an id prefix) of `target` to `to`.
    ///
    /// The data is written beside `to` and renamed into place only when complete (and, for
    /// SQLite, when it passes `integrity_check`), so a failed restore leaves `to` as it was.
    ///
    /// # Errors
    /// `to` exists and `force` is false; no such snapshot; damaged repository data.
    pub fn restore(
        &self,
        target: &str,
        wanted: &str,
        to: &Path,
        force: bool,
    ) -> Result<RestoreReport> {
        self.noting_damage(target, self.restore_file(target, wanted, to, force))
    }

    fn restore_file(
        &self,
        target: &str,
        wanted: &str,
        to: &Path,
        force: bool,
    ) -> Result<RestoreReport> {
        let started = Instant::now();
        let target = self.config.target(target)?;
        destination::check_not_protected(&self.config, to)?;
        let repo = self.open_repo(&target.name)?;
        let snapshot = repo.find(wanted)?;
        let replaced = fs::symlink_metadata(to).is_ok();
        match &target.kind {
            TargetKind::Sqlite { .. } => {
                // rustic's parallel restore into a staging directory beside `to`, then the
                // one file is checked and renamed into place.
                let sidecars = sqlite::sidecars(to);
                let staged = Staged::new(to, force, &sidecars)?;
                fs::create_dir_all(&staged.path).map_err(Error::io(format!(
                    "cannot create {}",
                    staged.path.display()
                )))?;
                let inner = snapshot.paths.first().cloned().unwrap_or_default();
                let file = staged.path.join(inner.trim_start_matches('/'));
                repo.restore_tree(&snapshot.id, &staged.path)?;
                sqlite::check_file(
                    &target.name,
                    &file,
                    "the restored database",
                    sqlite::Check::Quick,
                )?;
                for side in sqlite::sidecars(&file) {
                    let _ = fs::remove_file(side);
                }
                staged.commit(Some(&file), &sidecars)?;
            }
            TargetKind::Postgres(_) | TargetKind::Mariadb(_) => {
                return Err(Error::Usage {
                    target: target.name.clone(),
                    message: "a database target restores into a database: use --into DBNAME".into(),
                });
            }
            TargetKind::Files { .. } => {
                let staged = Staged::new(to, force, &[])?;
                fs::create_dir_all(&staged.path).map_err(Error::io(format!(
                    "cannot create {}",
                    staged.path.display()
                )))?;
                repo.restore_tree(&snapshot.id, &staged.path)?;
                staged.commit(None, &[])?;
            }
        }
        Ok(RestoreReport {
            snapshot,
            to: to.to_path_buf(),
            replaced,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Resolves a restore destination requested through the API: a relative path lands in the
    /// first `restore_roots` directory, an absolute one must lie inside a root; `..`, symlinks
    /// and runbook's own files are refused.
    ///
    /// # Errors
    /// [`Error::Destination`] naming the rule broken.
    pub fn api_restore_path(&self, requested: &str) -> Result<PathBuf> {
        destination::resolve_api(&self.config, requested)
    }

    /// Restores snapshot `wanted` of a PostgreSQL target into database `into` on the target's
    /// server: created from `template0` when missing; an existing database that holds any
    /// relation is refused unless `force`, which drops and recreates it first. Owners are not
    /// restored unless `keep_owners`. `ANALYZE` runs afterwards.
    ///
    /// # Errors
    /// Not a postgres target, bad database name, refusal, tool failures (stderr redacted).
    pub fn restore_database(
        &self,
        target: &str,
        wanted: &str,
        into: &str,
        opts: &DbRestore,
    ) -> Result<RestoreReport> {
        self.noting_damage(target, self.restore_db(target, wanted, into, opts))
    }

    fn restore_db(
        &self,
        target: &str,
        wanted: &str,
        into: &str,
        opts: &DbRestore,
    ) -> Result<RestoreReport> {
        let DbRestore {
            force,
            keep_owners,
            jobs,
            ref server,
            analyze,
        } = *opts;
        let started = Instant::now();
        let target = self.config.target(target)?;
        postgres::check_db_name(&target.name, into)?;
        // The target's kind with its connection replaced by `server` when one is given
        // (non-database kinds are refused below).
        let kind = Database::new(
            &target.name,
            &target.kind,
            server.as_ref(),
            &self.config.scratch_dir(),
        )
        .map_or_else(|_| target.kind.clone(), |db| db.server_kind());
        let repo = self.open_repo(&target.name)?;
        let snapshot = repo.find(wanted)?;
        let inner = snapshot.paths.first().cloned().unwrap_or_default();
        let id = snapshot.id.clone();
        let replaced = match &kind {
            TargetKind::Postgres(pg) => {
                let conn = postgres::Conn::new(&target.name, pg)?;
                let exists = prepare_pg(&conn, &target.name, into, force)?;
                if jobs > 1 {
                    // pg_restore runs in parallel only from a file: stage the dump in data_dir.
                    let scratch = ScratchDir::new(
                        &self.config.scratch_dir(),
                        &format!("{}-restore", target.name),
                    )?;
                    let file = scratch.join("restore.dump");
                    let mut out = fs::File::create(&file)
                        .map_err(Error::io(format!("cannot create {}", file.display())))?;
                    repo.dump_to(&id, &inner, &mut out)?;
                    out.sync_all()
                        .map_err(Error::io(format!("cannot write {}", file.display())))?;
                    drop(out);
                    conn.restore(into, keep_owners, Some((&file, jobs)), |_| Ok(()))?;
                } else {
                    conn.restore(into, keep_owners, None, |stdin| {
                        repo.dump_to(&id, &inner, stdin)
                    })?;
                }
                if analyze {
                    conn.psql(into, "ANALYZE")?;
                }
                exists
            }
            TargetKind::Mariadb(db) => {
                let conn = mariadb::Conn::new(&target.name, db, &self.config.scratch_dir())?;
                let exists = conn.sql(&format!(
                    "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{into}'"
                ))? != "0";
                if exists {
                    let tables = conn.sql(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{into}'"))?;
                    if tables != "0" && !force {
                        return Err(Error::DatabaseNotEmpty {
                            target: target.name.clone(),
                            database: into.to_string(),
                        });
                    }
                    conn.sql(&format!("DROP DATABASE `{into}`"))?;
                }
                conn.sql(&format!("CREATE DATABASE `{into}` CHARACTER SET utf8mb4"))?;
                conn.restore(into, |stdin| repo.dump_to(&id, &inner, stdin))?;
                exists
            }
            _ => {
                return Err(Error::Usage {
                    target: target.name.clone(),
                    message: "--into is for database targets; use --to PATH".into(),
                });
            }
        };
        Ok(RestoreReport {
            snapshot,
            to: PathBuf::from(format!("database {into}")),
            replaced,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The database server of a PostgreSQL or MariaDB target, or `server` standing in for it.
    ///
    /// # Errors
    /// Unknown target, or a target that is not a database.
    pub fn database(
        &self,
        target: &str,
        server: Option<&runbook_config::DbUrl>,
    ) -> Result<Database> {
        let target = self.config.target(target)?;
        Database::new(
            &target.name,
            &target.kind,
            server,
            &self.config.scratch_dir(),
        )
    }

    /// Checks the files restored from snapshot `id` of `target` under `dir` against the
    /// snapshot itself: every file's chunks are re-hashed and compared with the chunk ids the
    /// snapshot records (the ids are SHA-256 of the original content). Returns the files that
    /// differ or are missing, and how many files were checked.
    ///
    /// # Errors
    /// Unknown target or snapshot, unreadable repository.
    pub fn verify_restored(
        &self,
        target: &str,
        id: &str,
        dir: &Path,
    ) -> Result<(usize, Vec<String>)> {
        let target = self.config.target(target)?;
        self.open_repo(&target.name)?.verify_tree(id, dir)
    }
}

/// Creates `into` or, if it exists with content, refuses (or with `force` drops and recreates
/// it). Returns whether it existed.
fn prepare_pg(conn: &postgres::Conn<'_>, target: &str, into: &str, force: bool) -> Result<bool> {
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
