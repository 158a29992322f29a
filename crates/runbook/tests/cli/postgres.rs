//! PostgreSQL targets against the server on this machine; every test makes its own uniquely
//! named databases and drops them.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    sync::atomic::{AtomicBool, Ordering},
};

use runbook_testkit::{PgDb as Db, psql, run_ok};

use crate::helpers::Workspace;

fn config(db: &str, extra: &str) -> String {
    format!(
        "[targets.pg]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{db}\"\n{extra}"
    )
}

const SCHEMA: &str = "
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, avatar bytea);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), note text, doc oid);
CREATE SEQUENCE invoice_no START 1000;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE id > 5;
CREATE FUNCTION add1(i int) RETURNS int LANGUAGE sql AS 'SELECT i + 1';
INSERT INTO customers (name, avatar) SELECT 'Zoë ✓ 東京 ' || g, decode(md5(g::text) || '00ff', 'hex') FROM generate_series(1, 200) g;
INSERT INTO orders (customer_id, note, doc) SELECT (g % 200) + 1, 'naïve café ' || g,
  CASE WHEN g = 1 THEN lo_from_bytea(0, '\\xdeadbeef00') END FROM generate_series(1, 2000) g;
SELECT setval('invoice_no', 1234);
";

/// Row count and content checksum of every user table, and counts of object kinds.
fn fingerprint(db: &str) -> Vec<String> {
    let tables = psql(
        db,
        "SELECT string_agg(quote_ident(schemaname) || '.' || quote_ident(tablename), ' ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
    );
    let mut out: Vec<String> = tables
        .split_whitespace()
        .map(|t| {
            psql(db, &format!("SELECT '{t}:' || count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"))
        })
        .collect();
    out.push(psql(
        db,
        "SELECT 'views:' || count(*) FROM pg_views WHERE schemaname = 'public'",
    ));
    out.push(psql(db, "SELECT 'functions:' || count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"));
    out.push(psql(
        db,
        "SELECT 'sequences:' || count(*) FROM pg_sequences WHERE schemaname = 'public'",
    ));
    out.push(psql(
        db,
        "SELECT 'invoice_no:' || last_value FROM invoice_no",
    ));
    out.push(psql(
        db,
        "SELECT 'fks:' || count(*) FROM pg_constraint WHERE contype = 'f'",
    ));
    out.push(psql(
        db,
        "SELECT 'lo:' || string_agg(encode(lo_get(oid), 'hex'), ',') FROM pg_largeobject_metadata",
    ));
    out
}

#[test]
fn postgres_round_trip_restores_every_table_and_object() {
    let src = Db::create("src");
    psql(&src.0, SCHEMA);
    let ws = Workspace::new(&config(&src.0, ""));
    ws.run(&["backup", "pg"]).ok();
    let dst = Db::absent("dst");
    let run = ws.run(&["restore", "pg", "--into", &dst.0, "--json"]).ok();
    // Where the time went, phase by phase, adding up to no more than the whole.
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let phases = v["phases"].as_object().expect("phases");
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(names, ["analyze", "open", "prepare", "restore"], "{v}");
    let sum: f64 = phases.values().filter_map(serde_json::Value::as_f64).sum();
    assert!(sum <= v["seconds"].as_f64().expect("seconds"), "{v}");
    let want = fingerprint(&src.0);
    assert!(
        want.iter().any(|l| l.starts_with("public.orders:2000:")),
        "{want:?}"
    );
    assert!(want.iter().any(|l| l == "lo:deadbeef00"), "{want:?}");
    assert_eq!(fingerprint(&dst.0), want);
}

/// Regression: stock restic restored streamed dumps as empty files with mode 0000 (the tree
/// node had no size, mode or times). Now restic's own restore gives the whole dump, and
/// `pg_restore` loads it into a database identical to the source.
#[test]
fn stock_restic_restores_a_postgres_dump_that_loads() {
    let src = Db::create("stock_src");
    psql(&src.0, SCHEMA);
    let ws = Workspace::new(&config(&src.0, ""));
    // Regression: a dump backed up with --keep-forever was not tagged, so retention could
    // remove it.
    ws.run(&["backup", "pg", "--keep-forever"]).ok();
    let tagged = ws
        .restic("pg", &["snapshots", "--tag", "keep-forever", "--json"])
        .ok();
    assert!(tagged.stdout.contains("keep-forever"), "{}", tagged.stdout);
    let out = ws.restic_restore_latest("pg");
    let dump = out.join(format!("postgres/{}.dump", src.0));
    let meta = fs::metadata(&dump).expect("restic restored the dump");
    assert!(meta.len() > 10_000, "dump of {} bytes", meta.len());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let age = std::time::SystemTime::now()
        .duration_since(meta.modified().expect("mtime"))
        .expect("mtime in the past");
    assert!(age.as_secs() < 3600, "mtime is the dump time, not 1901");
    run_ok(
        std::process::Command::new("pg_restore")
            .arg("-l")
            .arg(&dump),
    );
    let dst = Db::create("stock_dst");
    run_ok(
        std::process::Command::new("pg_restore")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "--no-owner",
                "-d",
                &dst.0,
            ])
            .arg(&dump),
    );
    assert_eq!(fingerprint(&dst.0), fingerprint(&src.0));
}

/// A database with table `t` (two rows) backed up as target `pg`, and another database,
/// `busy`, whose table `precious` holds 42.
fn backed_up_and_busy(tag: &str) -> (Db, Workspace, Db) {
    let src = Db::create(&format!("{tag}src"));
    psql(
        &src.0,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);",
    );
    let ws = Workspace::new(&config(&src.0, ""));
    ws.run(&["backup", "pg"]).ok();
    let busy = Db::create(&format!("{tag}busy"));
    psql(
        &busy.0,
        "CREATE TABLE precious (y int); INSERT INTO precious VALUES (42);",
    );
    (src, ws, busy)
}

/// `runbook restore pg --into BUSY --force` succeeds, and `busy` then holds the backed-up `t`
/// and no longer `precious`.
fn forced_restore_replaces_busy(ws: &Workspace, busy: &str) {
    ws.run(&["restore", "pg", "--into", busy, "--force"]).ok();
    assert_eq!(psql(busy, "SELECT count(*) FROM t"), "2");
    assert_eq!(
        psql(
            busy,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'precious'"
        ),
        "0",
        "replaced"
    );
}

#[test]
fn restore_refuses_a_non_empty_database_without_force() {
    let (_src, ws, busy) = backed_up_and_busy("r");
    ws.run(&["restore", "pg", "--into", &busy.0]).fails_with(&[
        "target `pg`",
        &busy.0,
        "not empty",
        "--force",
    ]);
    assert_eq!(
        psql(&busy.0, "SELECT y FROM precious"),
        "42",
        "left as it was"
    );
    forced_restore_replaces_busy(&ws, &busy.0);
    let empty = Db::create("empty");
    ws.run(&["restore", "pg", "--into", &empty.0]).ok();
    assert_eq!(psql(&empty.0, "SELECT count(*) FROM t"), "2");
    // Parallel restore stages the dump in data_dir and removes it afterwards.
    let par = Db::absent("par");
    ws.run(&["restore", "pg", "--into", &par.0, "--jobs", "2"])
        .ok();
    assert_eq!(psql(&par.0, "SELECT count(*) FROM t"), "2");
    let left: Vec<_> = fs::read_dir(ws.path("runbook-data/scratch"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staged dump removed: {left:?}");
    ws.run(&["restore", "pg", "--into", "bad-name;drop"])
        .fails_with(&["database name"]);
    ws.run(&["restore", "pg", "--to", "x.dump"])
        .fails_with(&["--into"]);
}

/// The databases a forced restore into `db` keeps beside it, while it runs.
fn beside(db: &str) -> Vec<String> {
    psql(
        "postgres",
        &format!(
            "SELECT datname FROM pg_database WHERE starts_with(datname, '{db}__runbook') ORDER BY 1"
        ),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Regression: a forced restore dropped the database before it loaded the dump, so a restore
/// that failed or was killed part-way left neither the old data nor the new. The dump now
/// goes into a database beside it, which takes the old one's name only once it is complete.
#[test]
fn a_forced_restore_killed_part_way_leaves_the_database_as_it_was() {
    let (_src, ws, busy) = backed_up_and_busy("k");
    // Dropped at the end whatever happens, as the test's other databases are.
    let _left = [
        Db(format!("{}__runbook_new", busy.0)),
        Db(format!("{}__runbook_old", busy.0)),
    ];
    let killed_at = |point: &str| {
        let out = ws
            .command(&["restore", "pg", "--into", &busy.0, "--force"])
            .env("RUNBOOK_FAILPOINT", point)
            .output()
            .expect("run");
        assert!(!out.status.success(), "the fault point {point} was reached");
    };

    killed_at("postgres-restore-loading");
    assert_eq!(
        psql(&busy.0, "SELECT y FROM precious"),
        "42",
        "left as it was"
    );
    assert_eq!(beside(&busy.0), [format!("{}__runbook_new", busy.0)]);

    // A session on the database (the application's) does not stop the swap: it is ended,
    // as a forced restore always did. Killed after the swap, the old data is what is left
    // beside the restored database.
    let mut session = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &busy.0,
            "-c",
            "SELECT pg_sleep(60)",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let sessions = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
        busy.0
    );
    for _ in 0..200 {
        if psql("postgres", &sessions) != "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_ne!(psql("postgres", &sessions), "0", "the session connected");
    killed_at("postgres-restore-after-swap");
    let _ = session.wait();
    assert_eq!(psql(&busy.0, "SELECT count(*) FROM t"), "2");
    assert_eq!(beside(&busy.0), [format!("{}__runbook_old", busy.0)]);

    // The next forced restore runs through and removes what the killed ones left.
    forced_restore_replaces_busy(&ws, &busy.0);
    assert!(beside(&busy.0).is_empty(), "{:?}", beside(&busy.0));
}

#[test]
fn dump_taken_during_writes_is_consistent() {
    let src = Db::create("live");
    psql(&src.0, "CREATE TABLE log (i int PRIMARY KEY, pad text); CREATE TABLE meta (n int); INSERT INTO meta VALUES (0);
                  INSERT INTO log SELECT g, repeat('x', 500) FROM generate_series(1, 20000) g; UPDATE meta SET n = 20000;");
    let ws = Workspace::new(&config(&src.0, ""));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut i = 20_000;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                psql(
                    &src.0,
                    &format!(
                        "BEGIN; INSERT INTO log VALUES ({i}, 'y'); UPDATE meta SET n = {i}; COMMIT;"
                    ),
                );
            }
            i
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        ws.run(&["backup", "pg"]).ok();
        stop.store(true, Ordering::SeqCst);
        writer.join().expect("writer");
    });
    let dst = Db::absent("livedst");
    ws.run(&["restore", "pg", "--into", &dst.0]).ok();
    let n = psql(&dst.0, "SELECT n FROM meta");
    let rows = psql(&dst.0, "SELECT count(*) || ':' || max(i) FROM log");
    assert_eq!(
        rows,
        format!("{n}:{n}"),
        "log holds exactly the rows the counter says"
    );
}

/// A stand-in `pg_dump` that records its arguments and environment, writes half a dump and
/// fails, printing the password it was given (as a careless tool might).
fn fake_tools(ws: &Workspace) -> std::path::PathBuf {
    let dir = ws.path("fakebin");
    fs::create_dir_all(&dir).expect("mkdir");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then exec /usr/bin/pg_dump --version; fi\necho \"$@\" > {args}\necho \"$PGPASSWORD\" > {env}\nhead -c 200000 /dev/urandom\necho \"FATAL: password $PGPASSWORD rejected\" >&2\nexit 1\n",
        args = ws.path("args.txt").display(),
        env = ws.path("env.txt").display()
    );
    fs::write(dir.join("pg_dump"), script).expect("script");
    fs::set_permissions(dir.join("pg_dump"), fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("/usr/bin/psql", dir.join("psql")).expect("symlink");
    dir
}

#[test]
fn failing_or_cut_short_dump_leaves_no_snapshot_and_no_password_anywhere() {
    let src = Db::create("fail");
    let dir = tempfile::tempdir().expect("tmp");
    let ws = Workspace { dir };
    fs::create_dir_all(ws.path("runbook-data")).expect("data");
    fs::write(ws.path("runbook-data/repo.key"), "pw\n").expect("key");
    let bin = fake_tools(&ws);
    fs::write(
        ws.path("runbook.toml"),
        format!(
            "[targets.pg]\nkind = \"postgres\"\nurl = \"postgres://postgres:sekret-pw@127.0.0.1:5432/{}\"\npg_bin_dir = \"{}\"\n",
            src.0,
            bin.display()
        ),
    )
    .expect("config");
    let run = ws.run(&["backup", "pg"]).fails_with(&[
        "target `pg`",
        "pg_dump failed",
        "no snapshot was written",
    ]);
    assert!(
        !run.stderr.contains("sekret-pw"),
        "password redacted: {}",
        run.stderr
    );
    assert!(run.stderr.contains("***"), "{}", run.stderr);
    let args = fs::read_to_string(ws.path("args.txt")).expect("args");
    assert!(
        !args.contains("sekret"),
        "password not in pg_dump's arguments: {args}"
    );
    assert_eq!(
        fs::read_to_string(ws.path("env.txt")).expect("env").trim(),
        "sekret-pw",
        "passed by environment"
    );
    assert!(
        ws.snapshot_ids("pg").is_empty(),
        "no snapshot from a failed dump"
    );
    // The next run cleans what the aborted one wrote; the repository checks clean.
    fs::remove_file(bin.join("pg_dump")).expect("rm");
    std::os::unix::fs::symlink("/usr/bin/pg_dump", bin.join("pg_dump")).expect("real pg_dump");
    ws.run(&["backup", "pg"]).ok();
    ws.run(&["check", "pg", "--read-data", "100"]).ok();

    // A database that does not exist: the real tool fails, with a clear line.
    fs::write(
        ws.path("runbook.toml"),
        config("rbt_does_not_exist_at_all", ""),
    )
    .expect("config");
    ws.run(&["backup", "pg"])
        .fails_with(&["target `pg`", "does not exist"]);
}

/// pg_dump starts while the repository's key is derived: a repository that then does not
/// open fails the backup with its own error and saves nothing, and the pg_dump started beside
/// it is stopped (no session of it is left on the server).
#[test]
fn a_repository_that_does_not_open_stops_the_dump_started_beside_it() {
    let db = Db::create("beside");
    psql(
        &db.0,
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g",
    );
    let ws = Workspace::new(&config(&db.0, ""));
    ws.run(&["backup", "pg"]).ok();
    fs::write(ws.path("runbook-data/repo.key"), "not the password\n").expect("key");
    ws.run(&["backup", "pg"])
        .fails_with(&["target `pg`", "wrong repository password"]);
    let sessions = || {
        psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'pg_dump'",
                db.0
            ),
        )
    };
    // The server notices a killed client within moments; bounded, not a schedule.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sessions() != "0" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(sessions(), "0", "pg_dump's session is gone");
    fs::write(
        ws.path("runbook-data/repo.key"),
        format!("{}\n", crate::helpers::PASSWORD),
    )
    .expect("key");
    assert_eq!(
        ws.snapshot_ids("pg").len(),
        1,
        "only the first backup saved"
    );
}

/// A first backup that cannot start its dump (here: no such database) creates no repository,
/// though the repository opens beside the dump's start.
#[test]
fn a_first_backup_that_cannot_start_leaves_no_repository() {
    let ws = Workspace::new(&config(
        &format!("rbt_never_created_{}", std::process::id()),
        "",
    ));
    ws.run(&["backup", "pg"])
        .fails_with(&["target `pg`", "does not exist"]);
    // Nothing written at all: the key was derived beside the start, never stored.
    assert!(
        !ws.repo("pg").exists(),
        "no repository (not even its directory) at {}",
        ws.repo("pg").display()
    );
}

/// A `pg_dump` older than the server refuses it before writing a byte; only then are the
/// versions compared, for an error that says what to install. A stand-in `pg_dump` reports
/// `version` and fails as the real one does on a newer server.
fn refusing_pg_dump(ws: &Workspace, version: &str) -> std::path::PathBuf {
    let dir = ws.path("oldbin");
    fs::create_dir_all(&dir).expect("mkdir");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) {version}'; exit 0; fi\necho 'pg_dump: error: aborting because of server version mismatch' >&2\nexit 1\n"
    );
    fs::write(dir.join("pg_dump"), script).expect("script");
    fs::set_permissions(dir.join("pg_dump"), fs::Permissions::from_mode(0o755)).expect("chmod");
    if !dir.join("psql").exists() {
        std::os::unix::fs::symlink("/usr/bin/psql", dir.join("psql")).expect("symlink");
    }
    dir
}

#[test]
fn a_server_newer_than_pg_dump_is_named_with_what_to_install() {
    let db = Db::create("newer");
    let ws = Workspace::new("");
    let server: u32 = psql("postgres", "SHOW server_version_num")
        .parse::<u32>()
        .expect("server version")
        / 10_000;
    let bin = refusing_pg_dump(&ws, "9.6.24");
    let with_bin = |bin: &std::path::Path| {
        fs::write(
            ws.path("runbook.toml"),
            config(&db.0, &format!("pg_bin_dir = \"{}\"\n", bin.display())),
        )
        .expect("config");
    };
    with_bin(&bin);
    ws.run(&["backup", "pg"]).fails_with(&[
        "target `pg`",
        "version mismatch",
        &format!("server is PostgreSQL {server} but pg_dump is 9"),
        &format!("install postgresql-client-{server}"),
    ]);
    assert!(!ws.repo("pg").exists(), "no repository");

    // The same refusal from a pg_dump of the server's own version: its own words stand, and
    // nothing claims a mismatch the versions do not show.
    let bin = refusing_pg_dump(&ws, &format!("{server}.0"));
    with_bin(&bin);
    let run = ws.run(&["backup", "pg"]).fails_with(&[
        "target `pg`",
        "pg_dump failed",
        "aborting because of server version mismatch",
    ]);
    assert!(
        !run.stderr.contains("install postgresql-client"),
        "{}",
        run.stderr
    );
    assert!(!ws.repo("pg").exists(), "no repository");
}

/// Regression: `config check` passed a PostgreSQL URL whose database does not exist and
/// stopped at the first problem. It connects (unless `--offline`) and lists every problem.
#[test]
fn config_check_connects_to_each_database_and_lists_every_problem() {
    let ws = Workspace::new(&format!(
        "{}[targets.pg2]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/rbt_also_missing_{}\"\n",
        config(&format!("rbt_no_such_db_{}", std::process::id()), ""),
        std::process::id()
    ));
    let run = ws.run(&["config", "check"]);
    assert_ne!(run.code, 0);
    for needle in [
        "target `pg`",
        "target `pg2`",
        "does not exist",
        "2 problem(s)",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    ws.run(&["config", "check", "--offline"]).ok();
    let src = Db::create("cfgcheck");
    let ws = Workspace::new(&config(&src.0, ""));
    ws.run(&["config", "check"]).ok();
}

/// Over loopback the tools connect without TLS, which there protects nothing and costs a
/// cipher over every byte of the dump on both ends (`PGSSLMODE=allow`: TLS only when the
/// server insists); a PGSSLMODE in runbook's environment wins. The server itself says which:
/// a stand-in `pg_dump` asks it about its own connection, then runs the real one.
#[test]
fn over_loopback_the_dump_skips_tls_unless_pgsslmode_asks_for_it() {
    assert_eq!(
        psql("postgres", "SHOW ssl"),
        "on",
        "the server offers TLS (Debian's default), else this test proves nothing"
    );
    let db = Db::create("tls");
    psql(&db.0, "CREATE TABLE t (x int); INSERT INTO t VALUES (1);");
    let ws = Workspace::new("");
    let bin = ws.path("bin");
    fs::create_dir_all(&bin).expect("mkdir");
    let seen = ws.path("ssl.txt");
    let script = format!(
        "#!/bin/sh\npsql -XtAc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' > {}\nexec {} \"$@\"\n",
        seen.display(),
        runbook_testkit::which("pg_dump")
    );
    fs::write(bin.join("pg_dump"), script).expect("script");
    fs::set_permissions(bin.join("pg_dump"), fs::Permissions::from_mode(0o755)).expect("chmod");
    for tool in ["psql", "pg_restore"] {
        std::os::unix::fs::symlink(runbook_testkit::which(tool), bin.join(tool)).expect("link");
    }
    fs::write(
        ws.path("runbook.toml"),
        config(&db.0, &format!("pg_bin_dir = \"{}\"\n", bin.display())),
    )
    .expect("config");
    let ssl = || {
        fs::read_to_string(&seen)
            .expect("pg_dump ran")
            .trim()
            .to_string()
    };

    ws.run(&["backup", "pg"]).ok();
    assert_eq!(ssl(), "f", "no TLS over loopback");
    let run = ws
        .command(&["backup", "pg"])
        .env("PGSSLMODE", "require")
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(ssl(), "t", "the user's PGSSLMODE=require wins");
    let restored = Db::absent("tlsr");
    ws.run(&["restore", "pg", "--into", &restored.0]).ok();
    assert_eq!(psql(&restored.0, "SELECT x FROM t"), "1");
}
