//! `runbook drill` and `runbook report drills` through the real binary: passing and failing
//! drills, the record they leave, and a drill killed with -9 cleaned up by the next one.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use runbook_testkit::{mariadb, psql, which};

use crate::helpers::*;

fn drill_config(drill: &str) -> String {
    format!("{}[targets.db.drill]\n{drill}", sqlite_config("app.db"))
}

#[test]
fn drill_passes_is_recorded_and_reported() {
    let ws = Workspace::new(&drill_config(
        "max_data_age = \"26h\"\n[[targets.db.drill.checks]]\nsql = \"select count(*) = 50 from items\"\n",
    ));
    make_db(&ws.path("app.db"), 50);
    ws.run(&["backup", "db", "--reason", "restore-drill"]).ok();
    let run = ws.run(&["drill", "db"]).ok();
    assert!(
        run.stdout.starts_with("db: drill passed: snapshot "),
        "{}",
        run.stdout
    );
    for check in [
        "integrity_check",
        "foreign_key_check",
        "not_empty",
        "sql: select count(*) = 50 from items",
    ] {
        assert!(run.stdout.contains(check), "{check} not in {}", run.stdout);
    }
    let json = ws.run(&["drill", "--all", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v[0]["outcome"], "passed");
    assert_eq!(v[0]["snapshot"]["reason"], "restore-drill");
    assert!(v[0]["restore_seconds"].as_f64().is_some_and(|s| s > 0.0));
    assert!(v[0]["data_age_seconds"].as_f64().is_some());

    let md = ws.run(&["report", "drills"]).ok();
    assert!(
        md.stdout.contains("2 run, 2 passed, 0 not passed"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("| RTO (restore) | RPO (data age) |"),
        "{}",
        md.stdout
    );
    assert_eq!(md.stdout.matches("| db |").count(), 2, "{}", md.stdout);
    assert!(
        md.stdout.contains(" (≤ 1d02h) | passed |"),
        "RPO with its objective: {}",
        md.stdout
    );
    let js = ws
        .run(&["report", "drills", "--since", "1d", "--format", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&js.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert!(v[0]["restore_ms"].as_i64().is_some());
    let log = ws.run(&["oplog", "--json"]).ok();
    assert_eq!(
        log.stdout.matches("\"drill.run\"").count(),
        2,
        "{}",
        log.stdout
    );
    ws.run(&["oplog", "verify"]).ok();
    assert_scratch_empty(&ws);
}

#[test]
fn failing_drill_exits_nonzero_with_one_line_naming_the_check() {
    let ws = Workspace::new(&drill_config(
        "[[targets.db.drill.checks]]\nsql = \"select count(*) > 1000 from items\"\n",
    ));
    make_db(&ws.path("app.db"), 5);
    ws.run(&["backup", "db"]).ok();
    let run = ws.run(&["drill", "db"]).fails_with(&[
        "db",
        "drill failed",
        "sql: select count(*) > 1000 from items",
        "expected true, got 0",
    ]);
    assert!(
        run.stdout.contains("FAIL  sql: select count(*) > 1000"),
        "{}",
        run.stdout
    );
    let md = ws.run(&["report", "drills"]).ok();
    assert!(
        md.stdout
            .contains("| failed | sql: select count(*) > 1000 from items |"),
        "{}",
        md.stdout
    );
    ws.run(&["drill", "nope"]).fails_with(&["nope", "db"]);
    ws.run(&["report", "drills", "--since", "soon"])
        .fails_with(&["--since", "90d"]);
    assert_scratch_empty(&ws);
}

#[test]
fn backup_first_drills_a_fresh_restore_drill_snapshot() {
    let ws = Workspace::new(&drill_config(""));
    make_db(&ws.path("app.db"), 20);
    let run = ws.run(&["drill", "db", "--backup-first", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v[0]["outcome"], "passed", "{v}");
    assert_eq!(v[0]["snapshot"]["reason"], "restore-drill");
    assert_eq!(v[0]["checks"][0]["name"], "backup");
    assert_eq!(ws.snapshot_ids("db").len(), 1);
    let both = ws.run(&["drill", "db", "--backup-first", "--snapshot", "latest"]);
    assert_ne!(both.code, 0);
    assert!(
        both.stderr
            .contains("'--backup-first' cannot be used with '--snapshot")
    );
}

#[test]
fn drill_all_passes_for_sqlite_postgres_mariadb_and_files() {
    let pid = std::process::id();
    let pg = format!("rbt_drillall_{pid}");
    let my = format!("rbt_drillall_{pid}");
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {pg} WITH (FORCE)"),
    );
    psql("postgres", &format!("CREATE DATABASE {pg}"));
    psql(
        &pg,
        "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('a'), ('b');",
    );
    mariadb(
        "",
        &format!(
            "DROP DATABASE IF EXISTS {my}; CREATE DATABASE {my}; CREATE TABLE {my}.t (id INT PRIMARY KEY); INSERT INTO {my}.t VALUES (1), (2);"
        ),
    );
    let ws = Workspace::new(&format!(
        "{}{}[targets.pg-{pid}]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{pg}\"\n[[targets.pg-{pid}.drill.checks]]\nsql = \"select count(*) = 2 from t\"\n[targets.my-{pid}]\nkind = \"mariadb\"\nurl = \"mysql://root@127.0.0.1:3306/{my}\"\n[[targets.my-{pid}.drill.checks]]\nsql = \"select count(*) = 2 from t\"\n",
        sqlite_config("app.db"),
        files_config(),
    ));
    make_db(&ws.path("app.db"), 10);
    fs::create_dir_all(ws.path("src")).expect("src");
    fs::write(ws.path("src/state.json"), r#"{"ok": true}"#).expect("json");
    ws.run(&["backup", "--all"]).ok();
    let run = ws.run(&["drill", "--all", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let kinds: Vec<(&str, &str)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for kind in ["sqlite", "postgres", "mariadb", "files"] {
        assert!(kinds.contains(&(kind, "passed")), "{kind}: {kinds:?}");
    }
    for prefix in [
        format!("runbook_drill_pg_{pid}_"),
        format!("runbook_drill_my_{pid}_"),
    ] {
        assert_eq!(
            psql(
                "postgres",
                &format!("SELECT count(*) FROM pg_database WHERE starts_with(datname, '{prefix}')")
            ),
            "0"
        );
        assert_eq!(
            mariadb(
                "",
                &format!(
                    "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE LEFT(SCHEMA_NAME, {}) = '{prefix}'",
                    prefix.len()
                )
            ),
            "0"
        );
    }
    assert_scratch_empty(&ws);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {pg} WITH (FORCE)"),
    );
    mariadb("", &format!("DROP DATABASE IF EXISTS {my}"));
}

fn assert_scratch_empty(ws: &Workspace) {
    let left: Vec<_> = fs::read_dir(ws.path("runbook-data/scratch/drills"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "drill scratch left: {left:?}");
}

#[test]
fn postgres_drill_killed_mid_way_is_cleaned_up_by_the_next_drill() {
    let pid = std::process::id();
    let src = format!("rbt_drillkill_{pid}");
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {src} WITH (FORCE)"),
    );
    psql("postgres", &format!("CREATE DATABASE {src}"));
    psql(
        &src,
        "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) SELECT 'row' || g FROM generate_series(1, 1000) g;",
    );
    let target = format!("kill-{pid}");
    let ws = Workspace::new("");
    // pg_restore that stalls while `slow` exists, after telling the test its pid.
    let bin = ws.path("bin");
    fs::create_dir_all(&bin).expect("bin");
    let script = bin.join("pg_restore");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {slow} ]; then echo $$ > {started}; sleep 60; fi\nexec {real} \"$@\"\n",
            slow = ws.path("slow").display(),
            started = ws.path("started").display(),
            real = which("pg_restore"),
        ),
    )
    .expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    for tool in ["pg_dump", "psql"] {
        std::os::unix::fs::symlink(which(tool), bin.join(tool)).expect("symlink");
    }
    fs::write(
        ws.path("runbook.toml"),
        format!(
            "[targets.{target}]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{src}\"\npg_bin_dir = \"bin\"\n"
        ),
    )
    .expect("config");
    ws.run(&["backup", &target]).ok();
    fs::write(ws.path("slow"), "").expect("flag");
    let mut child = ws
        .command(&["drill", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ws.path("started").exists() {
        assert!(
            Instant::now() < deadline,
            "the drill never reached pg_restore"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let stalled = fs::read_to_string(ws.path("started")).expect("pid");
    let _ = Command::new("kill").args(["-9", stalled.trim()]).status();
    let prefix = format!("runbook_drill_kill_{pid}_");
    let scratch = |p: &str| {
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE starts_with(datname, '{p}')"),
        )
    };
    assert_eq!(
        scratch(&prefix),
        "1",
        "the killed drill left its scratch database"
    );

    fs::remove_file(ws.path("slow")).expect("unflag");
    let run = ws.run(&["drill", &target]).ok();
    assert!(
        run.stderr
            .contains("removed scratch left by an interrupted drill: database runbook_drill_kill_"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("drill passed"), "{}", run.stdout);
    assert_eq!(scratch(&prefix), "0", "nothing left behind");
    assert_scratch_empty(&ws);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {src} WITH (FORCE)"),
    );
}
