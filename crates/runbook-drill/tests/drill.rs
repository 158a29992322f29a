//! Drills against real SQLite files, a real repository, and the PostgreSQL and MariaDB servers
//! on this machine. Each failure a drill must catch has a test showing it is caught, with the
//! right check named.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use jiff::{SignedDuration, Timestamp};
use runbook_backup::{BackupRequest, Engine};
use runbook_config::Config;
use runbook_drill::{Outcome, Report, Request};
use runbook_testkit::{MyDb, PgDb, mariadb, psql, which};

struct Ws {
    dir: tempfile::TempDir,
}

impl Ws {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("repo.key"), "drill-test-password\n").expect("key");
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// An engine for `targets` (TOML of the `[targets.*]` tables).
    fn engine(&self, targets: &str) -> Engine {
        let text =
            format!("data_dir = \"data\"\n[repository]\npassword_file = \"repo.key\"\n{targets}");
        let file = self.path("runbook.toml");
        fs::write(&file, &text).expect("config");
        Engine::new(Config::load(&file).expect("valid config"))
    }
}

fn backup(engine: &Engine, target: &str) {
    engine
        .backup(target, &BackupRequest::default())
        .expect("backup");
}

fn drill(engine: &Engine, target: &str) -> Report {
    drill_at(engine, target, Timestamp::now())
}

fn drill_at(engine: &Engine, target: &str, now: Timestamp) -> Report {
    let r = runbook_drill::run(
        engine,
        target,
        &Request {
            snapshot: None,
            now,
            backup_first: false,
        },
        &mut |_| {},
    );
    assert_no_scratch(engine);
    r
}

fn assert_no_scratch(engine: &Engine) {
    let root = runbook_drill::scratch_root(engine);
    let left: Vec<_> = fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "drill scratch left behind: {left:?}");
}

fn check<'a>(r: &'a Report, name: &str) -> &'a runbook_drill::CheckResult {
    r.checks
        .iter()
        .find(|c| c.name.starts_with(name))
        .unwrap_or_else(|| panic!("no check {name} in {:#?}", r.checks))
}

/// The drill failed, and the check named `name` (and only checks in `also`) failed.
fn assert_fails_on(r: &Report, name: &str) {
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.summary());
    assert!(
        r.failed_checks().iter().any(|c| c.starts_with(name)),
        "expected {name} to fail: {:#?}",
        r.checks
    );
}

fn passes(r: &Report) {
    assert_eq!(
        r.outcome,
        Outcome::Passed,
        "{}\n{:#?}",
        r.summary(),
        r.checks
    );
}

fn sqlite(path: &Path, sql: &str) {
    let c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch(sql).expect("sql");
}

const SHOP: &str = "PRAGMA foreign_keys = ON;
    CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), total REAL);
    CREATE VIEW big AS SELECT * FROM orders WHERE total > 10;
    CREATE INDEX orders_user ON orders(user_id);
    INSERT INTO users (name) VALUES ('ada'), ('grace'), ('linus');
    INSERT INTO orders (user_id, total) VALUES (1, 5), (2, 50), (3, 12.5);";

fn sqlite_target(ws: &Ws, drill: &str) -> Engine {
    ws.engine(&format!(
        "[targets.app]\nkind = \"sqlite\"\npath = \"app.db\"\n[targets.app.drill]\n{drill}"
    ))
}

#[test]
fn sqlite_drill_passes_with_every_check_and_records_rto_and_data_age() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(
        &ws,
        r#"max_restore = "10m"
max_data_age = "1h"
ready_command = "test -s \"$RUNBOOK_DRILL_PATH\" && echo ready"
[[targets.app.drill.checks]]
sql = "select count(*) = 3 from users"
[[targets.app.drill.checks]]
row_counts = { tolerance = "0%" }
"#,
    );
    backup(&engine, "app");
    let r = drill(&engine, "app");
    passes(&r);
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    for n in [
        "max_data_age",
        "restore",
        "max_restore",
        "integrity_check",
        "foreign_key_check",
        "tables",
        "not_empty",
        "object_counts",
        "sql: select count(*) = 3 from users",
        "row_counts",
        "ready_command",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(r.restore_seconds.is_some_and(|s| s > 0.0));
    assert!(r.data_age_seconds.is_some_and(|s| s < 3600.0));
    assert_eq!(
        check(&r, "object_counts").actual,
        "indexes=1 tables=2 triggers=0 views=1"
    );
    // The live source is untouched.
    let c = rusqlite::Connection::open(ws.path("app.db")).expect("open");
    let n: i64 = c
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 3);
}

#[test]
fn snapshot_of_an_empty_database_fails_not_empty() {
    let ws = Ws::new();
    sqlite(
        &ws.path("app.db"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
    );
    let engine = sqlite_target(&ws, "");
    backup(&engine, "app");
    // The data arrives after the backup: the snapshot holds an empty but valid database.
    sqlite(
        &ws.path("app.db"),
        "INSERT INTO users (name) VALUES ('ada');",
    );
    let r = drill(&engine, "app");
    assert_fails_on(&r, "not_empty");
    assert_eq!(check(&r, "not_empty").actual, "no rows in any table");
    assert!(check(&r, "integrity_check").ok, "the file itself is valid");
}

#[test]
fn missing_table_and_foreign_key_violations_fail_their_checks() {
    let ws = Ws::new();
    sqlite(
        &ws.path("app.db"),
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE users (id INTEGER PRIMARY KEY);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));
         INSERT INTO orders (user_id) VALUES (42);",
    );
    let engine = sqlite_target(&ws, "");
    backup(&engine, "app");
    sqlite(&ws.path("app.db"), "CREATE TABLE invoices (id INTEGER);");
    let r = drill(&engine, "app");
    assert_fails_on(&r, "foreign_key_check");
    assert_fails_on(&r, "tables");
    assert_eq!(check(&r, "tables").actual, "missing 1: invoices");
}

#[test]
fn sql_assertion_that_returns_false_fails_the_drill() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(
        &ws,
        "[[targets.app.drill.checks]]\nsql = \"select count(*) > 100 from users\"\n[[targets.app.drill.checks]]\nsql = \"select nope from users\"\n",
    );
    backup(&engine, "app");
    let r = drill(&engine, "app");
    assert_fails_on(&r, "sql: select count(*) > 100 from users");
    assert_eq!(check(&r, "sql: select count(*) > 100").actual, "0");
    let broken = check(&r, "sql: select nope");
    assert!(
        !broken.ok && broken.actual.contains("no such column"),
        "{broken:?}"
    );
}

#[test]
fn row_counts_outside_the_tolerance_fail() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(
        &ws,
        "[[targets.app.drill.checks]]\nrow_counts = { tolerance = \"10%\" }\n",
    );
    backup(&engine, "app");
    sqlite(&ws.path("app.db"), "INSERT INTO users (name) VALUES ('x');");
    let r = drill(&engine, "app");
    assert_fails_on(&r, "row_counts");
    assert_eq!(
        check(&r, "row_counts").actual,
        "restored vs source: users 3 vs 4"
    );
}

#[test]
fn restore_slower_than_max_restore_fails() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    // No restore takes under a millisecond: the objective is missed every time.
    let engine = sqlite_target(&ws, "max_restore = \"1ms\"\n");
    backup(&engine, "app");
    let r = drill(&engine, "app");
    assert_fails_on(&r, "max_restore");
    assert_eq!(r.failed_checks(), ["max_restore"]);
    assert!(check(&r, "restore").ok);
}

#[test]
fn snapshot_older_than_max_data_age_fails() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(&ws, "max_data_age = \"26h\"\n");
    let taken = Timestamp::now() - SignedDuration::from_hours(72);
    engine
        .backup(
            "app",
            &BackupRequest {
                reason: "schedule".into(),
                time: Some(taken),
                keep_forever: false,
            },
        )
        .expect("backup");
    let r = drill_at(&engine, "app", taken + SignedDuration::from_hours(27));
    assert_fails_on(&r, "max_data_age");
    assert_eq!(check(&r, "max_data_age").actual, "1d03h");
    assert_eq!(r.failed_checks(), ["max_data_age"]);
    // The same snapshot drilled within the objective passes.
    passes(&drill_at(
        &engine,
        "app",
        taken + SignedDuration::from_hours(25),
    ));
}

#[test]
fn ready_command_that_exits_1_or_hangs_fails() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(
        &ws,
        "ready_command = \"echo migrations pending >&2; exit 1\"\n",
    );
    backup(&engine, "app");
    let r = drill(&engine, "app");
    assert_fails_on(&r, "ready_command");
    let c = check(&r, "ready_command");
    assert!(c.actual.starts_with("exit 1 after"), "{c:?}");
    assert!(c.actual.ends_with(": migrations pending"), "{c:?}");

    // A command that hangs, with a child of its own: the whole group is killed, nothing else.
    let pidfile = ws.path("bg.pid");
    let engine = sqlite_target(
        &ws,
        &format!(
            "ready_command = \"sleep 30 & echo $! > {}; wait\"\nready_timeout = \"500ms\"\n",
            pidfile.display()
        ),
    );
    let bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("bystander");
    let r = drill(&engine, "app");
    assert_fails_on(&r, "ready_command");
    assert!(
        check(&r, "ready_command").actual.contains("killed"),
        "{:?}",
        r.checks
    );
    let bg = fs::read_to_string(&pidfile).expect("the command started its child");
    let bg_alive = |pid: &str| {
        fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|stat| !stat.contains(") Z "))
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!bg_alive(&bg), "the command's own child was killed too");
    let mut bystander = bystander;
    assert!(
        bystander.try_wait().expect("wait").is_none(),
        "a process outside the command's group is untouched"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
fn no_snapshot_fails_and_an_unknown_target_is_an_error() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(&ws, "");
    let r = drill(&engine, "app");
    assert_fails_on(&r, "snapshot");
    let r = drill(&engine, "nope");
    assert_eq!(r.outcome, Outcome::Error);
    assert!(r.error.as_deref().is_some_and(|e| e.contains("nope")));
}

#[test]
fn leftover_scratch_of_a_killed_drill_is_removed_and_reported() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(&ws, "");
    backup(&engine, "app");
    // What a drill killed with -9 leaves: its scratch directory, named with a dead pid.
    let stale = runbook_drill::scratch_root(&engine).join("app.4242424");
    fs::create_dir_all(&stale).expect("mkdir");
    fs::write(stale.join("app.db"), "half a restore").expect("write");
    let r = drill(&engine, "app");
    passes(&r);
    assert_eq!(r.leftovers_removed, [stale.display().to_string()]);
    assert!(!stale.exists());
}

fn files_engine(ws: &Ws) -> Engine {
    fs::create_dir_all(ws.path("state/uploads")).expect("mkdir");
    fs::write(ws.path("state/state.json"), r#"{"board": [1, 2, 3]}"#).expect("write");
    fs::write(ws.path("state/uploads/a.bin"), vec![7u8; 300_000]).expect("write");
    ws.engine("[targets.state]\nkind = \"files\"\npaths = [\"state\"]\n")
}

#[test]
fn files_drill_passes_and_checks_every_file_and_json() {
    let ws = Ws::new();
    let engine = files_engine(&ws);
    backup(&engine, "state");
    let r = drill(&engine, "state");
    passes(&r);
    assert_eq!(check(&r, "checksums").actual, "2 files match");
    assert_eq!(check(&r, "json").actual, "1 JSON files parse");
}

#[test]
fn files_drill_fails_on_a_json_file_that_does_not_parse() {
    let ws = Ws::new();
    let engine = files_engine(&ws);
    fs::write(ws.path("state/state.json"), r#"{"board": [1, 2"#).expect("write");
    backup(&engine, "state");
    let r = drill(&engine, "state");
    assert_fails_on(&r, "json");
    assert!(check(&r, "json").actual.contains("state.json"));
}

#[test]
fn checksum_verification_catches_a_restored_file_that_differs() {
    let ws = Ws::new();
    let engine = files_engine(&ws);
    backup(&engine, "state");
    let snap = engine.snapshots("state").expect("list").remove(0);
    let to = ws.path("restored");
    engine
        .restore("state", &snap.id, &to, false)
        .expect("restore");
    assert_eq!(
        engine
            .verify_restored("state", &snap.id, &to)
            .expect("verify"),
        (2, vec![])
    );
    let file = fs::read_dir(&to)
        .expect("dir")
        .flatten()
        .next()
        .expect("one root")
        .path();
    let bin = walk_find(&file, "a.bin").expect("a.bin restored");
    let mut bytes = fs::read(&bin).expect("read");
    bytes[150_000] ^= 1;
    fs::write(&bin, bytes).expect("write");
    let (n, problems) = engine
        .verify_restored("state", &snap.id, &to)
        .expect("verify");
    assert_eq!(n, 2);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].ends_with("a.bin: content differs from the snapshot"));
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

#[test]
fn content_changed_in_the_repository_fails_the_restore_check() {
    let ws = Ws::new();
    let engine = files_engine(&ws);
    backup(&engine, "state");
    // Flip a byte in the middle of every pack file: the data no longer authenticates.
    let data = ws.path("data/repo/state/data");
    let mut packs = Vec::new();
    for sub in fs::read_dir(&data).expect("data dir").flatten() {
        for f in fs::read_dir(sub.path()).expect("sub").flatten() {
            packs.push(f.path());
        }
    }
    assert!(!packs.is_empty());
    for p in &packs {
        let mut b = fs::read(p).expect("read pack");
        let mid = b.len() / 2;
        b[mid] ^= 0xff;
        fs::write(p, b).expect("write pack");
    }
    let r = drill(&engine, "state");
    assert_fails_on(&r, "restore");
    let c = check(&r, "restore");
    assert!(
        c.actual.to_lowercase().contains("mac") || c.actual.contains("check"),
        "the restore names the damage: {c:?}"
    );
}

// ---- PostgreSQL ----

fn scratch_databases(prefix: &str) -> String {
    psql(
        "postgres",
        &format!(
            "SELECT string_agg(datname, ',') FROM pg_database WHERE starts_with(datname, '{prefix}')"
        ),
    )
}

const PG_SHOP: &str = "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users(id), total numeric);
    CREATE VIEW big AS SELECT * FROM orders WHERE total > 10;
    CREATE FUNCTION total_of(u int) RETURNS numeric LANGUAGE sql AS 'SELECT sum(total) FROM orders WHERE user_id = u';
    INSERT INTO users (name) SELECT 'user' || g FROM generate_series(1, 500) g;
    INSERT INTO orders (user_id, total) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;";

fn pg_engine(ws: &Ws, target: &str, db: &str, extra: &str) -> Engine {
    ws.engine(&format!(
        "[targets.{target}]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{db}\"\n{extra}"
    ))
}

#[test]
fn postgres_drill_passes_and_drops_its_scratch_database() {
    let src = PgDb::create("drill_pass");
    psql(&src.0, PG_SHOP);
    let ws = Ws::new();
    let target = format!("pg-pass-{}", std::process::id());
    let engine = pg_engine(
        &ws,
        &target,
        &src.0,
        &format!(
            "[targets.{target}.drill]\nready_command = \"psql -X -q -t -A -c 'select 1' >/dev/null && test \\\"$DATABASE_URL\\\" = \\\"$RUNBOOK_DRILL_DATABASE_URL\\\" && test \\\"$PGDATABASE\\\" = \\\"$RUNBOOK_DRILL_DATABASE\\\" && psql -X -q -t -A \\\"$RUNBOOK_DRILL_DATABASE_URL\\\" -c 'select count(*) from users'\"\n[[targets.{target}.drill.checks]]\nsql = \"select count(*) = 500 from users\"\n[[targets.{target}.drill.checks]]\nrow_counts = {{ tolerance = \"0%\" }}\n"
        ),
    );
    backup(&engine, &target);
    let r = drill(&engine, &target);
    passes(&r);
    assert_eq!(
        check(&r, "object_counts").actual,
        "functions=1 sequences=2 tables=2 views=1"
    );
    assert_eq!(check(&r, "tables").actual, "all 2 present");
    assert_eq!(
        check(&r, "ready_command").actual.split(' ').next(),
        Some("exit")
    );
    let scratch = r.scratch.clone().expect("restored somewhere");
    assert!(
        scratch.starts_with("database runbook_drill_pg_pass_"),
        "{scratch}"
    );
    assert_eq!(
        scratch_databases(&runbook_drill::database_prefix(&target)),
        ""
    );
}

#[test]
fn postgres_snapshot_of_an_empty_database_fails_not_empty() {
    let src = PgDb::create("drill_empty");
    psql(
        &src.0,
        "CREATE TABLE users (id serial PRIMARY KEY, name text)",
    );
    let ws = Ws::new();
    let target = format!("pg-empty-{}", std::process::id());
    let engine = pg_engine(&ws, &target, &src.0, "");
    backup(&engine, &target);
    psql(&src.0, "INSERT INTO users (name) VALUES ('ada')");
    let r = drill(&engine, &target);
    assert_fails_on(&r, "not_empty");
    assert!(check(&r, "tables").ok && check(&r, "restore").ok);
    assert_eq!(
        scratch_databases(&runbook_drill::database_prefix(&target)),
        ""
    );
}

#[test]
fn postgres_dump_cut_short_fails_the_restore_check() {
    let src = PgDb::create("drill_short");
    psql(&src.0, PG_SHOP);
    let ws = Ws::new();
    // A pg_dump whose output is cut after 3000 bytes but which still exits 0 (a full disk on
    // a pipe, a proxy closing early): the backup cannot know; the drill must find out.
    let bin = ws.path("bin");
    fs::create_dir_all(&bin).expect("bin");
    let script = bin.join("pg_dump");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then exec {} --version; fi\n{} \"$@\" | head -c 3000\nexit 0\n",
            which("pg_dump"),
            which("pg_dump")
        ),
    )
    .expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    for tool in ["pg_restore", "psql"] {
        std::os::unix::fs::symlink(which(tool), bin.join(tool)).expect("symlink");
    }
    let target = format!("pg-short-{}", std::process::id());
    let engine = pg_engine(
        &ws,
        &target,
        &src.0,
        &format!("pg_bin_dir = \"{}\"\n", bin.display()),
    );
    backup(&engine, &target);
    let r = drill(&engine, &target);
    assert_fails_on(&r, "restore");
    assert!(
        check(&r, "restore").actual.contains("pg_restore"),
        "{:?}",
        r.checks
    );
    assert_eq!(
        scratch_databases(&runbook_drill::database_prefix(&target)),
        ""
    );
}

#[test]
fn postgres_scratch_database_of_a_killed_drill_is_dropped_at_the_next_start() {
    let src = PgDb::create("drill_left");
    psql(&src.0, PG_SHOP);
    let ws = Ws::new();
    let target = format!("pg-left-{}", std::process::id());
    let engine = pg_engine(&ws, &target, &src.0, "");
    backup(&engine, &target);
    // What a drill killed mid-restore leaves: its database, named in its marker file.
    let stale = format!("{}20200101000000", runbook_drill::database_prefix(&target));
    psql("postgres", &format!("CREATE DATABASE {stale}"));
    fs::create_dir_all(ws.path("data/locks")).expect("locks");
    fs::write(
        ws.path(&format!("data/locks/{target}.drill-database")),
        &stale,
    )
    .expect("marker");
    // `serve` does this at start; every drill does it first.
    assert_eq!(
        runbook_drill::clean_leftovers(&engine, &target).expect("clean"),
        [format!("database {stale}")]
    );
    assert_eq!(
        scratch_databases(&runbook_drill::database_prefix(&target)),
        ""
    );
    let r = drill(&engine, &target);
    passes(&r);
    assert!(r.leftovers_removed.is_empty(), "{:?}", r.leftovers_removed);
}

// ---- MariaDB ----

fn my_engine(ws: &Ws, target: &str, db: &str, extra: &str) -> Engine {
    ws.engine(&format!(
        "[targets.{target}]\nkind = \"mariadb\"\nurl = \"mysql://root@127.0.0.1:3306/{db}\"\n{extra}"
    ))
}

fn my_scratch(target: &str) -> String {
    mariadb(
        "",
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{}%'",
            runbook_drill::database_prefix(target).replace('_', "\\_")
        ),
    )
}

#[test]
fn mariadb_drill_passes_and_an_empty_snapshot_fails() {
    let src = MyDb::create("drill_my");
    mariadb(
        "",
        &format!(
            "USE {}; CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50));
         CREATE VIEW v AS SELECT name FROM users;
         CREATE FUNCTION two() RETURNS INT DETERMINISTIC RETURN 2;",
            src.0
        ),
    );
    let ws = Ws::new();
    let target = format!("my-{}", std::process::id());
    let engine = my_engine(
        &ws,
        &target,
        &src.0,
        &format!("[[targets.{target}.drill.checks]]\nsql = \"select count(*) >= 0 from users\"\n"),
    );
    // Empty when backed up, rows afterwards: the drill must fail.
    backup(&engine, &target);
    mariadb(
        "",
        &format!(
            "INSERT INTO {}.users (name) VALUES ('ada'), ('grace')",
            src.0
        ),
    );
    let r = drill(&engine, &target);
    assert_fails_on(&r, "not_empty");
    assert_eq!(my_scratch(&target), "0");
    // Backed up with its rows, the drill passes.
    backup(&engine, &target);
    let r = drill(&engine, &target);
    passes(&r);
    assert_eq!(
        check(&r, "object_counts").actual,
        "routines=1 sequences=0 tables=1 triggers=0 views=1"
    );
    assert_eq!(my_scratch(&target), "0");
}

#[test]
fn random_within_picks_only_snapshots_inside_the_window() {
    let ws = Ws::new();
    sqlite(&ws.path("app.db"), SHOP);
    let engine = sqlite_target(&ws, "snapshot = \"random-within:30d\"\n");
    let now = Timestamp::now();
    let at = |days: i64| BackupRequest {
        reason: format!("{days}d"),
        time: Some(now - SignedDuration::from_hours(24 * days)),
        keep_forever: false,
    };
    engine.backup("app", &at(40)).expect("old backup");
    let r = drill_at(&engine, "app", now);
    assert_fails_on(&r, "snapshot");
    assert_eq!(
        check(&r, "snapshot").actual,
        "no snapshot within the configured window"
    );
    engine.backup("app", &at(2)).expect("backup");
    engine.backup("app", &at(10)).expect("backup");
    for _ in 0..6 {
        let r = drill_at(&engine, "app", now);
        passes(&r);
        let reason = &r.snapshot.as_ref().expect("snapshot").reason;
        assert!(reason == "2d" || reason == "10d", "picked {reason}");
    }
}

#[test]
fn postgres_drill_on_a_drill_server_never_touches_a_database_it_did_not_create() {
    let src = PgDb::create("drill_srv");
    psql(&src.0, PG_SHOP);
    let ws = Ws::new();
    let target = format!("pg-srv-{}", std::process::id());
    let engine = pg_engine(
        &ws,
        &target,
        &src.0,
        &format!(
            "[targets.{target}.drill]\nserver = \"postgres://postgres@127.0.0.1:5432/postgres\"\n"
        ),
    );
    backup(&engine, &target);
    passes(&drill(&engine, &target));
    // Someone else's database holds the name this drill would use: the drill stops.
    let at: Timestamp = "2030-01-01T00:00:00Z".parse().expect("time");
    let taken = format!("{}20300101000000", runbook_drill::database_prefix(&target));
    let theirs = PgDb(taken.clone());
    psql("postgres", &format!("CREATE DATABASE {taken}"));
    psql(
        &taken,
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (7)",
    );
    let r = drill_at(&engine, &target, at);
    assert_eq!(r.outcome, Outcome::Error, "{}", r.summary());
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("already exists")),
        "{:?}",
        r.error
    );
    assert_eq!(
        psql(&theirs.0, "SELECT x FROM precious"),
        "7",
        "left as it was"
    );
}

#[test]
fn the_database_password_reaches_ready_command_but_never_the_report() {
    let src = PgDb::create("drill_secret");
    psql(&src.0, PG_SHOP);
    let ws = Ws::new();
    // Trust authentication here accepts any password, so the secret only has to travel.
    fs::write(ws.path("pg.pass"), "s3cr3t-pw\n").expect("password file");
    let target = format!("pg-secret-{}", std::process::id());
    let engine = pg_engine(
        &ws,
        &target,
        &src.0,
        &format!(
            "password_file = \"pg.pass\"\n[targets.{target}.drill]\nready_command = \"psql -X -q -t -A \\\"$RUNBOOK_DRILL_DATABASE_URL\\\" -c 'select 1' >/dev/null && echo \\\"$RUNBOOK_DRILL_DATABASE_URL\\\" && exit 3\"\n"
        ),
    );
    backup(&engine, &target);
    let r = drill(&engine, &target);
    assert_fails_on(&r, "ready_command");
    let c = check(&r, "ready_command");
    assert!(c.actual.starts_with("exit 3 after"), "{c:?}");
    assert!(
        c.actual.contains(":***@127.0.0.1"),
        "the URL had the password: {c:?}"
    );
    let json = serde_json::to_string(&r).expect("json");
    assert!(!json.contains("s3cr3t-pw"), "{json}");
    assert!(!r.summary().contains("s3cr3t-pw"));
}
