//! MariaDB targets against the server on this machine (root, empty password); every test makes
//! its own uniquely named databases and drops them.

use runbook_testkit::{MyDb as Db, mariadb as sql, run_ok};

use crate::helpers::Workspace;

fn config(url: &str) -> String {
    format!("[targets.my]\nkind = \"mariadb\"\nurl = \"{url}\"\n")
}

fn fingerprint(db: &str) -> Vec<String> {
    let tables = sql(
        db,
        &format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' AND table_type = 'BASE TABLE' ORDER BY table_name"
        ),
    );
    let mut out: Vec<String> = tables
        .lines()
        .map(|t| {
            format!(
                "{t}:{}:{}",
                sql(db, &format!("SELECT COUNT(*) FROM `{t}`")),
                sql(db, &format!("CHECKSUM TABLE `{t}` EXTENDED"))
                    .split('\t')
                    .nth(1)
                    .unwrap_or_default()
            )
        })
        .collect();
    out.push(sql(db, &format!("SELECT CONCAT('views:', COUNT(*)) FROM information_schema.views WHERE table_schema = '{db}'")));
    out.push(sql(db, &format!("SELECT CONCAT('routines:', COUNT(*)) FROM information_schema.routines WHERE routine_schema = '{db}'")));
    out.push(sql(db, &format!("SELECT CONCAT('triggers:', COUNT(*)) FROM information_schema.triggers WHERE trigger_schema = '{db}'")));
    out
}

#[test]
fn mariadb_round_trip_and_refusal_rules() {
    let src = Db::create("msrc");
    sql(&src.0, "CREATE TABLE c (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100), pic BLOB) ENGINE=InnoDB;
        CREATE TABLE o (id INT AUTO_INCREMENT PRIMARY KEY, c_id INT NOT NULL, FOREIGN KEY (c_id) REFERENCES c(id)) ENGINE=InnoDB;
        INSERT INTO c (name, pic) VALUES ('Zoë ✓ 東京', UNHEX('DEADBEEF00')), ('plain', NULL);
        INSERT INTO o (c_id) SELECT 1 FROM seq_1_to_500;
        CREATE VIEW v AS SELECT * FROM o WHERE id > 10;
        CREATE FUNCTION add1(i INT) RETURNS INT DETERMINISTIC RETURN i + 1;
        CREATE TRIGGER tr BEFORE INSERT ON o FOR EACH ROW SET NEW.c_id = NEW.c_id;");
    let ws = Workspace::new(&config(&format!("mysql://root@127.0.0.1:3306/{}", src.0)));
    ws.run(&["backup", "my"]).ok();
    let dst = Db::absent("mdst");
    let run = ws.run(&["restore", "my", "--into", &dst.0, "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let phases = v["phases"].as_object().expect("phases");
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(names, ["open", "prepare", "restore"], "{v}");
    let want = fingerprint(&src.0);
    assert!(want.iter().any(|l| l.starts_with("o:500:")), "{want:?}");
    assert_eq!(fingerprint(&dst.0), want);
    assert_eq!(
        sql(&dst.0, "SELECT HEX(pic) FROM c WHERE id = 1"),
        "DEADBEEF00"
    );

    ws.run(&["restore", "my", "--into", &dst.0]).fails_with(&[
        "target `my`",
        "not empty",
        "--force",
    ]);
    sql(&dst.0, "INSERT INTO c (name) VALUES ('extra')");
    ws.run(&["restore", "my", "--into", &dst.0, "--force"]).ok();
    assert_eq!(fingerprint(&dst.0), want, "--force replaced the content");

    // Regression: a database of routines alone counted as empty and was dropped unasked.
    let code_only = Db::create("mcode");
    sql(
        &code_only.0,
        "CREATE FUNCTION keep1() RETURNS INT DETERMINISTIC RETURN 1;",
    );
    ws.run(&["restore", "my", "--into", &code_only.0])
        .fails_with(&["not empty", "--force"]);
    assert_eq!(sql(&code_only.0, "SELECT keep1()"), "1");
}

/// The databases a forced restore into `db` keeps beside it, while it runs.
fn beside(db: &str) -> Vec<String> {
    sql(
        "",
        &format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME IN ('{db}__runbook_new', '{db}__runbook_old') ORDER BY 1"
        ),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Regression: a forced restore dropped the database before it loaded the dump, so a restore
/// that failed or was killed part-way left neither the old data nor the new. A database of
/// tables alone (most applications') now gets the dump loaded beside it, and its tables are
/// swapped with the loaded ones in one `RENAME TABLE` once the load is complete.
#[test]
fn a_forced_mariadb_restore_killed_part_way_leaves_the_database_as_it_was() {
    let src = Db::create("ksrc");
    sql(&src.0, "CREATE TABLE c (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB;
        CREATE TABLE o (id INT PRIMARY KEY, c_id INT NOT NULL, FOREIGN KEY (c_id) REFERENCES c(id)) ENGINE=InnoDB;
        INSERT INTO c VALUES (1, 'Zoë'), (2, 'plain'); INSERT INTO o SELECT seq, 1 + seq % 2 FROM seq_1_to_300;");
    let ws = Workspace::new(&config(&format!("mysql://root@127.0.0.1:3306/{}", src.0)));
    ws.run(&["backup", "my"]).ok();
    let busy = Db::create("kbusy");
    sql(
        &busy.0,
        "CREATE TABLE precious (y INT); INSERT INTO precious VALUES (42);",
    );
    // Dropped at the end whatever happens, as the test's other databases are.
    let _left = [
        Db(format!("{}__runbook_new", busy.0)),
        Db(format!("{}__runbook_old", busy.0)),
    ];
    let killed_at = |ws: &Workspace, point: &str| {
        let out = ws
            .command(&["restore", "my", "--into", &busy.0, "--force"])
            .env("RUNBOOK_FAILPOINT", point)
            .output()
            .expect("run");
        assert!(!out.status.success(), "the fault point {point} was reached");
    };

    killed_at(&ws, "mariadb-restore-loading");
    assert_eq!(
        sql(&busy.0, "SELECT y FROM precious"),
        "42",
        "left as it was"
    );
    assert_eq!(beside(&busy.0), [format!("{}__runbook_new", busy.0)]);

    // Killed after the swap: the restored tables are in place, the old ones beside.
    killed_at(&ws, "mariadb-restore-after-swap");
    assert_eq!(fingerprint(&busy.0), fingerprint(&src.0));
    assert_eq!(
        sql(
            &format!("{}__runbook_old", busy.0),
            "SELECT y FROM precious"
        ),
        "42"
    );

    // The next forced restore runs through and removes what the killed ones left.
    sql(&busy.0, "INSERT INTO c VALUES (3, 'extra')");
    let run = ws
        .run(&["restore", "my", "--into", &busy.0, "--force", "--json"])
        .ok();
    assert!(run.stdout.contains("\"swap\""), "{}", run.stdout);
    assert_eq!(fingerprint(&busy.0), fingerprint(&src.0));
    assert!(beside(&busy.0).is_empty(), "{:?}", beside(&busy.0));

    // A dump with a view cannot be swapped in by table: it is loaded beside first (so it is
    // known to load), then loaded again into the emptied database.
    let with_view = Db::create("kview");
    sql(
        &with_view.0,
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (7); CREATE VIEW v AS SELECT x FROM t;",
    );
    let other = Workspace::new(&config(&format!(
        "mysql://root@127.0.0.1:3306/{}",
        with_view.0
    )));
    other.run(&["backup", "my"]).ok();
    other
        .run(&["restore", "my", "--into", &busy.0, "--force"])
        .ok();
    assert_eq!(fingerprint(&busy.0), fingerprint(&with_view.0));
    assert_eq!(sql(&busy.0, "SELECT x FROM v"), "7");
    assert!(beside(&busy.0).is_empty(), "{:?}", beside(&busy.0));
}

/// The `.sql` files a restore saved for `ws`'s target `my`.
fn saved(ws: &Workspace) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(ws.path("runbook-data/saved/my"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Regression: a forced restore over a MariaDB database with a view, trigger, routine or event
/// dropped it before loading the dump (`RENAME TABLE` cannot move those), so a restore that
/// failed or was killed part-way lost what the database held. Now the dump is loaded beside it
/// first; only then is the database dumped into `data_dir/saved`, emptied and loaded again,
/// and a load that fails puts the saved dump back.
#[test]
fn a_forced_mariadb_restore_over_a_database_with_a_trigger_never_loses_it() {
    let src = Db::create("tsrc");
    sql(
        &src.0,
        "CREATE TABLE t (x INT); INSERT INTO t SELECT seq FROM seq_1_to_100;",
    );
    let ws = Workspace::new(&config(&format!("mysql://root@127.0.0.1:3306/{}", src.0)));
    ws.run(&["backup", "my"]).ok();
    let live = Db::create("tlive");
    sql(
        &live.0,
        "CREATE TABLE precious (y INT); INSERT INTO precious VALUES (42);
        CREATE TABLE audit (n INT);
        CREATE TRIGGER tr AFTER INSERT ON precious FOR EACH ROW INSERT INTO audit VALUES (NEW.y);
        CREATE VIEW big AS SELECT y FROM precious WHERE y > 40;",
    );
    let as_it_was = fingerprint(&live.0);
    let _left = [
        Db(format!("{}__runbook_new", live.0)),
        Db(format!("{}__runbook_old", live.0)),
    ];
    let restore = |point: &str| {
        ws.command(&["restore", "my", "--into", &live.0, "--force"])
            .env("RUNBOOK_FAILPOINT", point)
            .output()
            .expect("run")
    };

    // Killed while the dump loads beside: the database was not touched.
    let out = restore("mariadb-restore-loading");
    assert!(!out.status.success(), "the fault point was reached");
    assert_eq!(fingerprint(&live.0), as_it_was);
    assert!(saved(&ws).is_empty(), "{:?}", saved(&ws));

    // Killed once it has dumped the database into `saved`, before it touched the database:
    // that dump is no copy to load back (the database holds all it did, and may be written to
    // from now on), so no check names it; the next restore into the database removes it.
    let out = restore("mariadb-restore-saved");
    assert!(!out.status.success(), "the fault point was reached");
    assert_eq!(fingerprint(&live.0), as_it_was);
    let half = saved(&ws);
    assert_eq!(half.len(), 1, "{half:?}");
    assert_eq!(saved_check(&ws), None);

    // The load into the emptied database fails: the saved dump is put back, and removed. The
    // warning that named it comes first, then the one error line.
    crate::helpers::output(restore("mariadb-restore-reloading:error")).fails_after_warnings(
        &[
            "injected fault",
            &format!("database {} was put back as it was", live.0),
        ],
        &[&format!(
            "restore into {}: what it held is saved in ",
            live.0
        )],
    );
    assert_eq!(fingerprint(&live.0), as_it_was);
    assert_eq!(sql(&live.0, "SELECT y FROM big"), "42");
    assert!(saved(&ws).is_empty(), "{:?}", saved(&ws));
    assert!(beside(&live.0).is_empty(), "{:?}", beside(&live.0));

    // Killed while it loads: the saved dump, named in the warning, holds what the database
    // held, view and trigger included, and the stock client loads it back.
    let out = restore("mariadb-restore-reloading");
    assert!(!out.status.success(), "the fault point was reached");
    let files = saved(&ws);
    assert_eq!(files.len(), 1, "{files:?}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(warned.contains(&*files[0].to_string_lossy()), "{warned}");
    assert_ne!(
        fingerprint(&live.0),
        as_it_was,
        "killed with the database emptied"
    );
    // Until the file is removed, `runbook status` shows where it is, as critical.
    let check = saved_check(&ws).expect("a check names the saved dump");
    assert_eq!(check["status"], "critical", "{check}");
    let message = check["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&*files[0].to_string_lossy()) && message.contains(&live.0),
        "{message}"
    );
    run_ok(std::process::Command::new("sh").arg("-c").arg(format!(
        "mariadb -h 127.0.0.1 -uroot {} < {}",
        live.0,
        files[0].display()
    )));
    assert_eq!(fingerprint(&live.0), as_it_was);

    // A restore that runs through replaces the database, removes the file it saved, and leaves
    // the earlier one alone.
    // It also warns about the earlier file.
    let run = ws
        .run(&["restore", "my", "--into", &live.0, "--force", "--json"])
        .ok();
    assert!(run.stdout.contains("\"reload\""), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "an earlier restore into {} did not finish: what it held then is saved in {}",
            live.0,
            files[0].display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint(&live.0), fingerprint(&src.0));
    assert_eq!(saved(&ws), files);
    assert!(beside(&live.0).is_empty(), "{:?}", beside(&live.0));
    assert!(saved_check(&ws).is_some());

    // Once the user removes it, the check is gone.
    std::fs::remove_file(&files[0]).expect("remove the saved dump");
    assert_eq!(saved_check(&ws), None);

    // While a restore reloads the database, its own saved dump is no alarm, and a second
    // restore into the database is refused: a stand-in `mariadb` runs `runbook status` and a
    // second restore just before the load into the database itself.
    sql(
        &live.0,
        "CREATE TABLE audit (n INT);
        CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (NEW.x);",
    );
    let bin = ws.path("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let during = ws.path("status-during-reload.json");
    let second = ws.path("second-restore.txt");
    // Another target naming the same server and database, with the default port left out:
    // the same lock.
    let third = ws.path("third-restore.txt");
    let mut toml = std::fs::read_to_string(ws.path("runbook.toml")).expect("config");
    toml.push_str(&format!(
        "[targets.other]\nkind = \"mariadb\"\nurl = \"mysql://root@127.0.0.1/{}\"\n",
        src.0
    ));
    std::fs::write(ws.path("runbook.toml"), toml).expect("config");
    ws.run(&["backup", "other"]).ok();
    let script = format!(
        "#!/bin/sh\n\
         for a in \"$@\"; do [ \"$a\" = -e ] && exec {real} \"$@\"; done\n\
         for a in \"$@\"; do\n\
         if [ \"$a\" = {live} ] && [ ! -e {during} ]; then\n\
         {runbook} status --json > {during}\n\
         {runbook} restore my --into {live} --force > {second} 2>&1; echo \"exit $?\" >> {second}\n\
         {runbook} restore other --into {live} --force > {third} 2>&1; echo \"exit $?\" >> {third}\n\
         fi\n\
         done\n\
         exec {real} \"$@\"\n",
        real = runbook_testkit::which("mariadb"),
        live = live.0,
        during = during.display(),
        second = second.display(),
        third = third.display(),
        runbook = env!("CARGO_BIN_EXE_runbook"),
    );
    std::fs::write(bin.join("mariadb"), script).expect("script");
    std::fs::set_permissions(
        bin.join("mariadb"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = crate::helpers::output(
        ws.command(&["restore", "my", "--into", &live.0, "--force", "--json"])
            .env("PATH", path)
            .output()
            .expect("run"),
    )
    .ok();
    assert!(run.stdout.contains("\"reload\""), "{}", run.stdout);
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&during).expect("status ran during the load"),
    )
    .expect("status --json");
    let check = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "restore:my")
        .expect("a check names the restore's own dump");
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["message"]
            .as_str()
            .is_some_and(|m| m.contains("is replacing it")),
        "{check}"
    );
    for file in [&second, &third] {
        let refused = std::fs::read_to_string(file).expect("the second restore ran");
        assert!(
            refused.ends_with("exit 1\n")
                && refused.contains(&format!(
                    "another restore into database {} is running",
                    live.0
                )),
            "{refused}"
        );
    }
    assert_eq!(fingerprint(&live.0), fingerprint(&src.0));
    assert!(saved(&ws).is_empty(), "{:?}", saved(&ws));
    assert_eq!(saved_check(&ws), None);
}

/// The check of `runbook status --json` about dumps that restores into target `my` saved.
fn saved_check(ws: &Workspace) -> Option<serde_json::Value> {
    let status = ws.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json");
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "restore:my")
        .cloned()
}

/// Regression: stock restic restored streamed dumps as empty files. Now restic's own restore
/// gives the SQL dump, and the MariaDB client loads it into a database identical to the source.
#[test]
fn stock_restic_restores_a_mariadb_dump_that_loads() {
    let src = Db::create("mrsrc");
    sql(
        &src.0,
        "CREATE TABLE c (id INT PRIMARY KEY, name VARCHAR(100));
        INSERT INTO c SELECT seq, CONCAT('Zoë ', seq) FROM seq_1_to_300;",
    );
    let ws = Workspace::new(&config(&format!("mysql://root@127.0.0.1:3306/{}", src.0)));
    ws.run(&["backup", "my"]).ok();
    let out = ws.restic_restore_latest("my");
    let dump = out.join(format!("mariadb/{}.sql", src.0));
    let bytes = std::fs::read(&dump).expect("restic restored the dump");
    assert!(bytes.len() > 1000, "dump of {} bytes", bytes.len());
    let dst = Db::create("mrdst");
    run_ok(
        std::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", &dst.0])
            .stdin(std::fs::File::open(&dump).expect("dump")),
    );
    assert_eq!(fingerprint(&dst.0), fingerprint(&src.0));
}

#[test]
fn mariadb_failing_dump_leaves_no_snapshot_and_hides_the_password() {
    // root has an empty password here, so any password is refused by the server.
    let ws = Workspace::new(&config("mysql://root:wrong-sekret@127.0.0.1:3306/mysql"));
    let run = ws
        .run(&["backup", "my"])
        .fails_with(&["target `my`", "Access denied"]);
    assert!(!run.stderr.contains("wrong-sekret"), "{}", run.stderr);
    // The dump failed before its first byte: a first backup leaves no repository.
    assert!(!ws.repo("my").exists(), "no repository");
    let left: Vec<_> = std::fs::read_dir(ws.path("runbook-data/scratch"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "the defaults file holding the password is removed: {left:?}"
    );

    let ws = Workspace::new(&config(
        "mysql://root@127.0.0.1:3306/rbt_no_such_database_here",
    ));
    ws.run(&["backup", "my"]).fails_with(&[
        "target `my`",
        "Unknown database 'rbt_no_such_database_here'",
        "no snapshot was written",
    ]);
    // mariadb-dump writes its header before it opens the database; runbook opens it first,
    // so this first backup leaves no repository either.
    assert!(!ws.repo("my").exists(), "no repository");
}
