//! End-to-end tests of the `runbook` binary against real repositories, real SQLite files,
//! Debian's `restic` and a real (tmpfs) full disk.

mod cluster;
mod drill;
mod helpers;
mod key;
mod mariadb;
mod monitor;
mod package;
mod postgres;
mod s3;
mod serve;
mod task;

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use helpers::*;

#[test]
fn init_writes_config_data_dir_and_private_key_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = Workspace { dir };
    let run = ws.run(&["init", "--demo"]).ok();
    assert!(
        run.stderr.contains("IMPORTANT"),
        "loud warning: {}",
        run.stderr
    );
    let mode = fs::metadata(ws.path("runbook-data/repo.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        fs::read_to_string(ws.path("runbook-data/repo.key"))
            .expect("key")
            .trim()
            .len()
            >= 32
    );
    ws.run(&["config", "check"]).ok();
    let key = fs::read(ws.path("runbook-data/repo.key")).expect("key");
    ws.run(&["init", "--demo"])
        .fails_with(&["runbook.toml", "already exists"]);
    // Regression: `init` with an existing config refused and set up nothing. It keeps the
    // config and the password and sets up a data directory that is missing.
    let config = fs::read(ws.path("runbook.toml")).expect("config");
    let again = ws.run(&["init"]).ok();
    assert!(again.stdout.contains("kept existing"), "{}", again.stdout);
    assert_eq!(fs::read(ws.path("runbook.toml")).expect("config"), config);
    assert_eq!(
        fs::read(ws.path("runbook-data/repo.key")).expect("key"),
        key
    );
    let copy = tempfile::tempdir().expect("tempdir");
    fs::copy(ws.path("runbook.toml"), copy.path().join("runbook.toml")).expect("copy");
    let other = Workspace { dir: copy };
    other.run(&["init"]).ok();
    assert!(other.path("runbook-data/repo.key").exists());
    // The demo round trip the README quick start runs.
    ws.run(&["backup", "--all"]).ok();
    ws.run(&["restore", "app-db", "--to", "restored.db"]).ok();
    assert_eq!(
        count(&ws.path("restored.db"), "SELECT count(*) FROM users"),
        1000
    );
}

#[test]
fn sqlite_round_trip_and_restore_refuses_to_overwrite() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 2000);
    let run = ws.run(&["backup", "db", "--reason", "restore-drill"]).ok();
    assert!(run.stdout.contains("db: snapshot"), "{}", run.stdout);
    let list = ws.run(&["snapshots", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    let s = &v[0];
    assert_eq!(s["target"], "db");
    assert_eq!(s["kind"], "sqlite");
    assert_eq!(s["reason"], "restore-drill");
    assert_eq!(s["runbook_version"], env!("CARGO_PKG_VERSION"));
    assert!(s["source_bytes"].as_u64().expect("size") > 0);
    assert!(s["duration_seconds"].as_f64().is_some());

    ws.run(&["restore", "db", "--to", "out/restored.db"]).ok();
    assert_eq!(
        count(&ws.path("out/restored.db"), "SELECT count(*) FROM items"),
        2000
    );

    // Existing destination: refused, and left exactly as it was.
    fs::write(ws.path("taken.db"), b"precious").expect("write");
    ws.run(&["restore", "db", "--to", "taken.db"]).fails_with(&[
        "taken.db",
        "already exists",
        "--force",
    ]);
    assert_eq!(fs::read(ws.path("taken.db")).expect("read"), b"precious");
    // A stale WAL beside the destination counts too: restoring next to it would corrupt the copy.
    fs::write(ws.path("fresh.db-wal"), b"stale").expect("write");
    ws.run(&["restore", "db", "--to", "fresh.db"])
        .fails_with(&["fresh.db-wal", "already exists"]);
    ws.run(&["restore", "db", "--to", "fresh.db", "--force"])
        .ok();
    assert!(
        !ws.path("fresh.db-wal").exists(),
        "stale WAL removed with --force"
    );
    ws.run(&[
        "restore",
        "db",
        "--to",
        "taken.db",
        "--force",
        "--snapshot",
        "latest",
    ])
    .ok();
    assert_eq!(
        count(&ws.path("taken.db"), "SELECT count(*) FROM items"),
        2000
    );
    let leftovers: Vec<_> = fs::read_dir(ws.dir.path())
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("runbook-restore"))
        .collect();
    assert!(leftovers.is_empty(), "no staging files left: {leftovers:?}");
}

/// Regression: a backup taken while another process keeps committing must restore to a
/// database that passes integrity_check and holds a consistent prefix of the writes.
#[test]
fn backup_during_concurrent_writes_restores_consistent_prefix() {
    let ws = Workspace::new(&sqlite_config("live.db"));
    let db = ws.path("live.db");
    make_db(&db, 20_000);
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch(
            "CREATE TABLE log (i INTEGER PRIMARY KEY, payload BLOB NOT NULL);
             CREATE TABLE meta (n INTEGER NOT NULL); INSERT INTO meta VALUES (0);",
        )
        .expect("schema");
    }
    // The writer is another process, committing one row and the counter per transaction.
    let script = r#"
import sqlite3, sys, os
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("PRAGMA busy_timeout=30000")
i = 0
while not os.path.exists(sys.argv[2]):
    i += 1
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO log VALUES (?, randomblob(2000))", (i,))
    c.execute("UPDATE meta SET n = ?", (i,))
    c.execute("COMMIT")
print(i)
"#;
    let stop = ws.path("stop-writer");
    let writer = Command::new("python3")
        .args(["-c", script])
        .arg(&db)
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    // Let the writer get going, then back up twice while it runs.
    let until = Instant::now() + Duration::from_secs(10);
    while count(&db, "SELECT n FROM meta") < 200 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    ws.run(&["backup", "db"]).ok();
    ws.run(&["backup", "db"]).ok();
    fs::write(&stop, b"").expect("stop");
    let out = writer.wait_with_output().expect("writer");
    let written: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count");

    ws.run(&["restore", "db", "--to", "restored.db"]).ok();
    let restored = ws.path("restored.db");
    let conn = rusqlite::Connection::open(&restored).expect("open restored");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let n: i64 = conn
        .query_row("SELECT n FROM meta", [], |r| r.get(0))
        .expect("n");
    let (rows, max): (i64, i64) = conn
        .query_row("SELECT count(*), coalesce(max(i), 0) FROM log", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("log");
    assert!(
        n >= 200,
        "backup taken while writes were going on (n = {n})"
    );
    assert!(
        n < written,
        "writer kept committing after the backup ({n} < {written})"
    );
    assert_eq!(
        (rows, max),
        (n, n),
        "restored log is exactly the prefix 1..={n}"
    );
}

#[test]
fn stock_restic_restores_snapshots_byte_identical() {
    let config = format!("{}{}", sqlite_config("app.db"), files_config());
    let ws = Workspace::new(&config);
    make_db(&ws.path("app.db"), 5000);
    fs::create_dir_all(ws.path("src/nested")).expect("mkdir");
    fs::write(ws.path("src/state.json"), br#"{"ok": true}"#).expect("write");
    fs::write(ws.path("src/nested/blob.bin"), noise(3 << 20, 7)).expect("write");
    fs::write(ws.path("src/skip.tmp"), b"excluded").expect("write");
    ws.run(&["backup", "--all"]).ok();

    for target in ["db", "files"] {
        ws.restic(target, &["check", "--read-data"]).ok();
        let out = ws.path(&format!("restic-{target}"));
        ws.restic(
            target,
            &["restore", "latest", "--target", out.to_str().expect("utf8")],
        )
        .ok();
    }
    let root = ws.root_rel();
    let via = |target: &str, rel: &str| ws.path(&format!("restic-{target}/{root}/{rel}"));
    // restic and runbook restore the same bytes; the data is the source's.
    ws.run(&["restore", "db", "--to", "mine.db"]).ok();
    assert_eq!(
        fs::read(via("db", "app.db")).expect("db"),
        fs::read(ws.path("mine.db")).expect("mine")
    );
    // In WAL mode the pages are read in place, not through a copy that rewrites the header:
    // the restored file is the live one byte for byte (its WAL was checkpointed on close).
    assert!(
        fs::read(via("db", "app.db")).expect("db") == fs::read(ws.path("app.db")).expect("live"),
        "stock restic restores the live database's exact bytes"
    );
    assert_eq!(
        count(&via("db", "app.db"), "SELECT count(*) FROM items"),
        5000
    );
    for rel in ["src/state.json", "src/nested/blob.bin"] {
        assert_eq!(
            fs::read(via("files", rel)).expect("restored"),
            fs::read(ws.path(rel)).expect("src"),
            "{rel}"
        );
    }
    assert!(
        !via("files", "src/skip.tmp").exists(),
        "excluded file not backed up"
    );

    // And runbook's own restore of the files target gives the same bytes.
    ws.run(&["restore", "files", "--to", "mine"]).ok();
    let mine = ws.path(&format!("mine/{root}/src/nested/blob.bin"));
    assert_eq!(
        fs::read(mine).expect("mine"),
        fs::read(ws.path("src/nested/blob.bin")).expect("src")
    );
}

/// runbook restores a files target's tree itself (not through rustic's restorer): every kind
/// of entry and its metadata must come back as the source had it and as stock restic restores
/// it — nested and read-only directories, empty and duplicated files, a file repeating its own
/// chunks, symlinks (dangling too), a FIFO, modes with setuid, old mtimes, and owners.
#[test]
fn a_files_restore_gives_back_every_entry_and_its_metadata_as_restic_does() {
    use std::os::unix::fs::{chown, symlink};
    let ws = Workspace::new(files_config());
    let src = ws.path("src");
    fs::create_dir_all(src.join("a/b/c")).expect("mkdir");
    fs::create_dir_all(src.join("ro")).expect("mkdir");
    let big = noise(9 << 20, 11);
    fs::write(src.join("big.bin"), &big).expect("write");
    fs::write(src.join("a/copy.bin"), &big).expect("write");
    fs::write(src.join("a/twice.bin"), [big.clone(), big.clone()].concat()).expect("write");
    fs::write(src.join("empty"), b"").expect("write");
    fs::write(src.join("a/b/c/deep.txt"), b"deep").expect("write");
    fs::write(src.join("ro/locked.txt"), b"read only").expect("write");
    symlink("../big.bin", src.join("a/link")).expect("symlink");
    symlink("/nonexistent/target", src.join("dangling")).expect("symlink");
    let fifo = Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .expect("mkfifo");
    assert!(fifo.success());
    let mode = |rel: &str, m: u32| {
        fs::set_permissions(src.join(rel), fs::Permissions::from_mode(m)).expect("chmod");
    };
    mode("a/b/c/deep.txt", 0o640);
    mode("a/copy.bin", 0o4755);
    mode("ro/locked.txt", 0o444);
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200);
    fs::File::options()
        .write(true)
        .open(src.join("a/b/c/deep.txt"))
        .and_then(|f| f.set_modified(old))
        .expect("mtime");
    if running_as_root() {
        chown(src.join("a/b"), Some(1234), Some(5678)).expect("chown");
        chown(src.join("a/b/c/deep.txt"), Some(4321), Some(8765)).expect("chown");
    }
    mode("ro", 0o555);
    ws.run(&["backup", "files"]).ok();

    ws.run(&["restore", "files", "--to", "mine"]).ok();
    let root = ws.root_rel();
    let mine = ws.path(&format!("mine/{root}/src"));
    let theirs = ws
        .restic_restore_latest("files")
        .join(format!("{root}/src"));
    let source = entries(&src);
    assert_eq!(source.len(), 13, "{source:#?}");
    assert_eq!(entries(&mine), source, "runbook's restore");
    assert_eq!(entries(&theirs), source, "restic's restore");
    for rel in [
        "big.bin",
        "a/copy.bin",
        "a/twice.bin",
        "a/b/c/deep.txt",
        "ro/locked.txt",
    ] {
        assert!(
            fs::read(mine.join(rel)).expect("mine") == fs::read(src.join(rel)).expect("src"),
            "{rel} byte for byte"
        );
    }
}

/// Whether the tests run as root (as in CI): only root can give files to other owners.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Every entry below `dir`: path, type, permission bits, owner, size (files), mtime (all but
/// directories, whose times the walk itself changes) and link target.
fn entries(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let path = e.expect("entry").path();
            let m = fs::symlink_metadata(&path).expect("lstat");
            let kind = m.file_type();
            let rel = path.strip_prefix(dir).expect("below").display().to_string();
            let link = fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let (size, mtime) = if kind.is_dir() {
                stack.push(path.clone());
                (0, 0)
            } else {
                (if kind.is_file() { m.len() } else { 0 }, m.mtime())
            };
            out.push(format!(
                "{rel} {:o} {}:{} {size} {mtime} {link}",
                m.mode(),
                m.uid(),
                m.gid()
            ));
        }
    }
    out.sort();
    out
}

/// SQLite pages are packed by runbook's own pipeline (not rustic's archiver): stock restic must
/// read every snapshot of it, the second backup must store only the pages that changed, and a
/// page that repeats within one backup must be stored once and still restore everywhere.
#[test]
fn sqlite_pages_are_stored_once_and_stock_restic_restores_every_snapshot() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    let db = ws.path("app.db");
    make_db(&db, 20_000);
    {
        // Free pages zeroed by secure_delete: hundreds of identical pages in one file.
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch(
            "PRAGMA secure_delete = ON;
             CREATE TABLE junk (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
             INSERT INTO junk SELECT randomblob(3000) FROM n;
             DELETE FROM junk;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .expect("zeroed free pages");
    }
    assert!(
        count(&db, "PRAGMA freelist_count") > 200,
        "the test needs many free (zeroed) pages"
    );
    ws.run(&["backup", "db"]).ok();
    // Each distinct page once: the hundreds of zeroed pages are one blob (the index lists every
    // stored copy of a blob).
    let listed = ws.restic("db", &["list", "blobs"]).ok();
    let data: Vec<&str> = listed
        .stdout
        .lines()
        .filter(|l| l.starts_with("data "))
        .collect();
    let distinct: std::collections::HashSet<&&str> = data.iter().collect();
    assert_eq!(distinct.len(), data.len(), "a page was stored twice");
    let pages = fs::metadata(&db).expect("db").len() / 4096;
    assert!(
        (data.len() as u64) + 200 < pages,
        "{} blobs for {pages} pages",
        data.len()
    );
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute(
            "UPDATE items SET body = 'changed ' || body WHERE id BETWEEN 100 AND 160",
            [],
        )
        .expect("update");
    }
    ws.run(&["backup", "db"]).ok();

    let list = ws.run(&["snapshots", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    let snaps = v.as_array().expect("list");
    assert_eq!(snaps.len(), 2, "{}", list.stdout);
    let added = |s: &serde_json::Value| s["added_bytes"].as_u64().expect("added");
    let (first, second) = if snaps[0]["time"].as_str() < snaps[1]["time"].as_str() {
        (&snaps[0], &snaps[1])
    } else {
        (&snaps[1], &snaps[0])
    };
    let size = first["source_bytes"].as_u64().expect("size");
    // Every page of the first backup is new, but the zeroed ones are stored once (and compress).
    assert!(added(first) < size, "{} of {size}", added(first));
    // The update touched a few pages: the second backup stores those, not the file again.
    assert!(
        added(second) * 10 < added(first),
        "second backup added {} bytes, the first {}",
        added(second),
        added(first)
    );

    ws.restic("db", &["check", "--read-data"]).ok();
    let root = ws.root_rel();
    for (snap, changed) in [(first, 0), (second, 61)] {
        let id = snap["id"].as_str().expect("id");
        // The full id, as restic prints it, and runbook finds the snapshot by it.
        assert_eq!(id.len(), 64, "{id}");
        ws.run(&[
            "restore",
            "db",
            "--snapshot",
            id,
            "--to",
            &format!("by-id-{id}.db"),
        ])
        .ok();
        let out = ws.path(&format!("restic-{id}"));
        ws.restic(
            "db",
            &["restore", id, "--target", out.to_str().expect("utf8")],
        )
        .ok();
        let restored = out.join(format!("{root}/app.db"));
        assert_eq!(
            count(
                &restored,
                "SELECT count(*) FROM items WHERE body LIKE 'changed %'"
            ),
            changed,
            "snapshot {id}"
        );
        assert_eq!(count(&restored, "SELECT count(*) FROM items"), 20_000);
        assert!(
            count(&restored, "PRAGMA freelist_count") > 200,
            "snapshot {id}"
        );
    }
    // runbook's own restore of the latest gives restic's bytes.
    ws.run(&["restore", "db", "--to", "mine.db"]).ok();
    let id = second["id"].as_str().expect("id");
    assert_eq!(
        fs::read(ws.path(&format!("restic-{id}/{root}/app.db"))).expect("restic's"),
        fs::read(ws.path("mine.db")).expect("mine")
    );
}

#[test]
fn bad_inputs_give_one_clear_line_and_no_snapshot() {
    let config = format!(
        "{}{}[targets.notdb]\nkind = \"sqlite\"\npath = \"notes.txt\"\n[targets.gone]\nkind = \"files\"\npaths = [\"missing-dir\"]\n",
        sqlite_config("app.db"),
        files_config()
    );
    let ws = Workspace::new(&config);
    make_db(&ws.path("app.db"), 10);
    fs::write(
        ws.path("notes.txt"),
        "this is not a database, just some text that is long enough ".repeat(100),
    )
    .expect("write");

    ws.run(&["backup", "nope"])
        .fails_with(&["unknown target `nope`", "db"]);
    ws.run(&["backup", "notdb"])
        .fails_with(&["target `notdb`", "not a SQLite database"]);
    ws.run(&["backup", "gone"])
        .fails_with(&["target `gone`", "cannot read source", "missing-dir"]);
    ws.run(&["backup", "files"])
        .fails_with(&["target `files`", "cannot read source", "src"]);
    ws.run(&["restore", "db", "--to", "x.db"])
        .fails_with(&["target `db`", "no backups yet"]);
    // `config check` lists every problem, one line each, then a count.
    let all = ws.run(&["config", "check"]);
    assert_ne!(all.code, 0);
    assert!(
        all.stderr.contains("missing-dir")
            && all.stderr.contains("`files`")
            && all.stderr.contains("2 problem(s) found"),
        "{}",
        all.stderr
    );

    ws.run(&["backup", "db"]).ok();
    ws.run(&["restore", "db", "--snapshot", "ffffffff", "--to", "x.db"])
        .fails_with(&["target `db`", "no snapshot", "ffffffff"]);

    // Wrong password: named as such, for the target.
    let run = ws
        .command(&["snapshots", "db"])
        .env("RUNBOOK_REPOSITORY_PASSWORD", "wrong")
        .output()
        .expect("run");
    assert_ne!(run.status.code(), Some(0));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("target `db`") && err.contains("wrong repository password"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // Missing password file.
    fs::rename(ws.path("runbook-data/repo.key"), ws.path("key.bak")).expect("move key");
    ws.run(&["backup", "db"]).fails_with(&[
        "repository password unavailable",
        "repo.key",
        "RUNBOOK_REPOSITORY_PASSWORD",
    ]);
    fs::rename(ws.path("key.bak"), ws.path("runbook-data/repo.key")).expect("restore key");

    // A broken config names the file and the line.
    fs::write(
        ws.path("bad.toml"),
        "[targets.db]\nkind = \"sqlite\"\npath = \"app.db\"\nschedul = \"daily\"\n",
    )
    .expect("write");
    ws.run(&["--config", "bad.toml", "snapshots"]).fails_with(&[
        "bad.toml:",
        "[targets.db]",
        "schedul",
    ]);

    // Exactly one snapshot: none of the failures left anything visible.
    assert_eq!(ws.snapshot_ids("db").len(), 1);
    for t in ["notdb", "gone", "files"] {
        assert!(ws.snapshot_ids(t).is_empty(), "{t}");
    }
}

#[test]
fn corrupted_pack_is_found_by_check_and_fails_restore() {
    let ws = Workspace::new(files_config());
    fs::create_dir_all(ws.path("src")).expect("mkdir");
    fs::write(ws.path("src/data.bin"), noise(2 << 20, 3)).expect("write");
    ws.run(&["backup", "files"]).ok();
    ws.run(&["check", "files", "--read-data", "100"]).ok();

    let pack = damage_largest_pack(&ws.repo("files"));

    ws.run(&["check", "files", "--read-data", "100"])
        .fails_with(&["target `files`", "check found"]);
    ws.run(&["restore", "files", "--to", "out"])
        .fails_with(&["target `files`", "restore failed"]);
    assert!(
        !ws.path("out").exists(),
        "no partial restore left at the destination"
    );

    // Regression: the next backup reused the damaged blobs and its snapshot could not be
    // restored either. Now the damaged pack goes to quarantine and the data is stored again.
    next_backup_quarantines(&ws, "files", &pack);
    // The older snapshot was rewritten without the lost data (restic's `repair snapshots`),
    // so both checkers are clean again.
    ws.run(&["check", "files", "--read-data", "100"]).ok();
    ws.restic("files", &["check", "--read-data"]).ok();
    latest_restores_source_through_runbook_and_restic(&ws, "src/data.bin");
}

/// The SQLite restore reads packs itself (not through rustic's restorer): damage it meets is one
/// line naming the target, leaves nothing at the destination, and is healed by the next backup.
#[test]
fn a_damaged_sqlite_pack_fails_the_restore_and_the_next_backup_heals_it() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 20_000);
    ws.run(&["backup", "db"]).ok();
    let pack = damage_largest_pack(&ws.repo("db"));

    ws.run(&["restore", "db", "--to", "out.db"])
        .fails_with(&["target `db`", "repository data is damaged"]);
    assert!(
        !ws.path("out.db").exists(),
        "nothing left at the destination"
    );

    next_backup_quarantines(&ws, "db", &pack);
    ws.restic("db", &["check", "--read-data"]).ok();
    ws.run(&["restore", "db", "--to", "out.db"]).ok();
    assert_eq!(
        count(&ws.path("out.db"), "SELECT count(*) FROM items"),
        20_000
    );
}

/// Backs `target` up again: the damaged `pack` goes to quarantine, out of the repository.
fn next_backup_quarantines(ws: &Workspace, target: &str, pack: &std::path::Path) {
    ws.run(&["backup", target]).ok();
    let quarantined = walk(&ws.path(&format!("runbook-data/quarantine/{target}")));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(!pack.exists(), "the damaged pack left the repository");
}

/// Flips 64 bytes in the middle of the largest data pack of `repo`; returns the pack's path.
fn damage_largest_pack(repo: &std::path::Path) -> std::path::PathBuf {
    let mut packs: Vec<_> = walk(&repo.join("data"));
    packs.sort_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let pack = packs.pop().expect("a data pack");
    let mut bytes = fs::read(&pack).expect("read pack");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xff;
    }
    fs::write(&pack, bytes).expect("write pack");
    pack
}

/// The newest snapshot of the `files` target gives back `rel` byte for byte, restored by
/// runbook and by stock restic.
fn latest_restores_source_through_runbook_and_restic(ws: &Workspace, rel: &str) {
    let source = fs::read(ws.path(rel)).expect("source");
    ws.run(&["restore", "files", "--to", "by-runbook"]).ok();
    let root = ws.root_rel();
    let mine = fs::read(ws.path(&format!("by-runbook/{root}/{rel}"))).expect("restored");
    assert!(mine == source, "runbook restored {rel} byte for byte");
    let out = ws.restic_restore_latest("files");
    let theirs = fs::read(out.join(format!("{root}/{rel}"))).expect("restic restored");
    assert!(theirs == source, "restic restored {rel} byte for byte");
}

/// Regression: with a pack deleted from the repository, `backup` exited 0 and saved a
/// snapshot that referred to the missing pack. Now the missing pack leaves the index first,
/// the data is stored again, and the new snapshot restores (through runbook and restic).
#[test]
fn a_deleted_pack_does_not_poison_the_next_backup() {
    let ws = Workspace::new(files_config());
    fs::create_dir_all(ws.path("src")).expect("mkdir");
    fs::write(ws.path("src/data.bin"), noise(3 << 20, 9)).expect("write");
    ws.run(&["backup", "files"]).ok();
    let mut packs: Vec<_> = walk(&ws.repo("files").join("data"));
    packs.sort_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    fs::remove_file(packs.pop().expect("a data pack")).expect("delete pack");

    ws.run(&["backup", "files"]).ok();
    latest_restores_source_through_runbook_and_restic(&ws, "src/data.bin");
}

/// Regression: `kill -9` in the middle of a backup must leave every earlier snapshot
/// restorable and, once the next run has cleaned up, `check` clean.
#[test]
fn kill_during_backup_leaves_earlier_snapshots_and_clean_check() {
    let ws = Workspace::new(files_config());
    fs::create_dir_all(ws.path("src")).expect("mkdir");
    fs::write(ws.path("src/small.txt"), b"version one").expect("write");
    ws.run(&["backup", "files"]).ok();
    let before = ws.snapshot_ids("files");

    fs::write(ws.path("src/big.bin"), noise(400 << 20, 11)).expect("write");
    let mut child = ws
        .command(&["backup", "files"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let data = ws.repo("files").join("data");
    let packs_before = walk(&data).len();
    let until = Instant::now() + Duration::from_secs(120);
    while walk(&data).len() < packs_before + 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    assert!(
        walk(&data).len() >= packs_before + 2,
        "the backup was writing when killed"
    );
    assert_eq!(
        ws.snapshot_ids("files"),
        before,
        "no half-written snapshot is visible"
    );

    // The next run clears the debris by itself, then check is clean for runbook and restic.
    fs::remove_file(ws.path("src/big.bin")).expect("rm");
    ws.run(&["backup", "files"]).ok();
    let check = ws.run(&["check", "files", "--read-data", "100"]).ok();
    assert!(
        check.stdout.contains("ok (0 warning(s))"),
        "{}",
        check.stdout
    );
    let restic = ws.restic("files", &["check", "--read-data"]).ok();
    assert!(
        !restic.stdout.contains("not referenced"),
        "{}",
        restic.stdout
    );
    ws.run(&[
        "restore",
        "files",
        "--snapshot",
        &before[0],
        "--to",
        "earlier",
    ])
    .ok();
    let root = ws.root_rel();
    assert_eq!(
        fs::read(ws.path(&format!("earlier/{root}/src/small.txt"))).expect("read"),
        b"version one"
    );
}

#[test]
fn leftover_scratch_from_a_killed_run_is_removed() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    let stale = ws.path("runbook-data/scratch/db.4242424");
    fs::create_dir_all(&stale).expect("mkdir");
    fs::write(stale.join("app.db"), b"half a copy").expect("write");
    ws.run(&["backup", "db"]).ok();
    let left: Vec<_> = fs::read_dir(ws.path("runbook-data/scratch"))
        .expect("ls")
        .flatten()
        .collect();
    assert!(left.is_empty(), "scratch is empty after a backup: {left:?}");
}

/// Needs root (it mounts a 2 MiB tmpfs): `./scripts/test.sh` runs it when it is root, as CI is;
/// elsewhere `cargo test -- --ignored full_disk` as root.
#[test]
#[ignore = "mounts a tmpfs: needs root; scripts/test.sh runs it as root"]
fn full_disk_fails_cleanly() {
    let ws = Workspace::new(
        "[repository]\npath = \"small\"\n[targets.files]\nkind = \"files\"\npaths = [\"src\"]\n",
    );
    fs::create_dir_all(ws.path("small")).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(ws.path("small"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "cannot mount a tmpfs here: run this test as root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(ws.path("small"));
    fs::create_dir_all(ws.path("src")).expect("mkdir");
    fs::write(ws.path("src/big.bin"), noise(8 << 20, 5)).expect("write");
    ws.run(&["backup", "files"])
        .fails_with(&["target `files`", "No space left on device"]);
    assert!(ws.snapshot_ids("files").is_empty());
}

#[test]
fn forget_dry_run_lists_and_forget_removes() {
    // Four snapshots taken before the `keep` rule was written (a backup applies it).
    let ws = Workspace::new(&sqlite_config("app.db").replace("keep = { last = 2 }\n", ""));
    make_db(&ws.path("app.db"), 10);
    for _ in 0..4 {
        ws.run(&["backup", "db"]).ok();
    }
    fs::write(ws.path("runbook.toml"), sqlite_config("app.db")).expect("config");
    let ids = ws.snapshot_ids("db");
    let dry = ws.run(&["forget", "--dry-run"]).ok();
    assert!(
        dry.stdout.contains("keeping 2, would remove 2"),
        "{}",
        dry.stdout
    );
    assert_eq!(ws.snapshot_ids("db"), ids, "dry run removes nothing");
    ws.run(&["forget", "db"]).ok();
    assert_eq!(
        ws.snapshot_ids("db"),
        ids[2..].to_vec(),
        "keeps the newest two"
    );
    ws.run(&["check", "--read-data", "100"]).ok();
    ws.run(&["restore", "db", "--to", "r.db"]).ok();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn cli_mutations_are_audited_and_a_tampered_oplog_fails_verify() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db", "--reason", "audit"]).ok();
    let secret = ws
        .run(&["keys", "create", "--role", "dispatcher", "--name", "ci"])
        .ok();
    assert!(secret.stdout.trim().starts_with("rbk_"));
    let keys = ws.run(&["keys", "list", "--json"]).ok();
    assert!(!keys.stdout.contains("rbk_"), "secrets are never listed");
    let v: serde_json::Value = serde_json::from_str(&keys.stdout).expect("json");
    assert_eq!(v[0]["role"], "operator");
    let id = v[0]["id"].as_str().expect("id").to_string();
    ws.run(&["keys", "revoke", &id]).ok();
    ws.run(&["keys", "revoke", &id]).fails_with(&["not found"]);
    ws.run(&["keys", "create", "--role", "god", "--name", "x"])
        .fails_with(&["unknown role"]);

    let log = ws.run(&["oplog", "--json"]).ok();
    let entries: serde_json::Value = serde_json::from_str(&log.stdout).expect("json");
    let actions: Vec<&str> = entries
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["key.revoke", "key.create", "backup.run"]);
    assert!(
        !log.stdout.contains(secret.stdout.trim()),
        "no secret in the ops log"
    );
    let ok = ws.run(&["oplog", "verify"]).ok();
    assert!(ok.stdout.contains("3 entries"), "{}", ok.stdout);

    let conn = rusqlite::Connection::open(ws.path("runbook-data/state.db")).expect("state");
    conn.execute("UPDATE oplog SET outcome = 'failed' WHERE seq = 1", [])
        .expect("tamper");
    drop(conn);
    ws.run(&["oplog", "verify"])
        .fails_with(&["ops log", "entry 1", "edited"]);
}

/// Regression: the repository library leaves a file it cannot read out of the snapshot and
/// carries on; the user must be told. (/proc/self/mem fails to read even for root.)
#[test]
fn a_source_file_that_cannot_be_read_is_reported() {
    let ws = Workspace::new(
        "[targets.files]\nkind = \"files\"\npaths = [\"src\", \"/proc/self/mem\"]\n",
    );
    fs::create_dir_all(ws.path("src")).expect("mkdir");
    fs::write(ws.path("src/a.txt"), b"a").expect("write");
    let run = ws.run(&["backup", "files"]).ok();
    assert!(
        run.stderr
            .contains("runbook: warning: left out of the snapshot"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Input/output error"), "{}", run.stderr);
}

/// runbook's own files are never a restore destination, even with `--force` on the CLI.
#[test]
fn restore_never_replaces_runbooks_own_files() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    let key = fs::read(ws.path("runbook-data/repo.key")).expect("key");
    for to in [
        "runbook-data/repo.key",
        "runbook-data",
        "runbook-data/repo/db/x.db",
        ".",
    ] {
        ws.run(&["restore", "db", "--to", to, "--force"])
            .fails_with(&["refused", "runbook's own"]);
    }
    assert_eq!(
        fs::read(ws.path("runbook-data/repo.key")).expect("key"),
        key
    );
    ws.run(&["restore", "db", "--to", "runbook-data/restores/ok.db"])
        .ok();
}

/// Regression: a SQLite target that is a FIFO hung forever holding the target lock. Now one
/// line naming the file type, at once.
#[test]
fn a_fifo_as_sqlite_target_is_refused_at_once() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    let made = Command::new("mkfifo")
        .arg(ws.path("app.db"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let started = Instant::now();
    ws.run(&["backup", "db"])
        .fails_with(&["target `db`", "not a regular file", "FIFO"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    // The lock was released: a second run gives the same line, not "busy".
    ws.run(&["backup", "db"]).fails_with(&["FIFO"]);
}

/// Every file below `dir` with its size and modification time.
fn listing(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| {
            let m = fs::metadata(&p).expect("meta");
            (p, m.len(), m.modified().expect("mtime"))
        })
        .collect();
    out.sort();
    out
}

/// Regression: after a failed backup left its "writing" marker, `check` ran a prune (and
/// failed on a read-only repository). Checking never writes; the next backup cleans up.
#[test]
fn check_after_an_interrupted_write_changes_nothing() {
    let config = format!(
        "{}[targets.other]\nkind = \"files\"\npaths = [\"other\"]\n",
        files_config()
    );
    let ws = Workspace::new(&config);
    fs::create_dir_all(ws.path("src")).expect("mkdir");
    fs::create_dir_all(ws.path("other")).expect("mkdir");
    fs::write(ws.path("src/a.bin"), noise(1 << 20, 5)).expect("write");
    fs::write(ws.path("other/b.bin"), noise(1 << 20, 6)).expect("write");
    ws.run(&["backup", "--all"]).ok();
    // What a killed backup leaves: its marker and a pack no index refers to.
    let foreign = walk(&ws.repo("other").join("data"))
        .into_iter()
        .next()
        .expect("a pack");
    let stray = ws
        .repo("files")
        .join(foreign.strip_prefix(ws.repo("other")).expect("inside"));
    fs::create_dir_all(stray.parent().expect("dir")).expect("mkdir");
    fs::copy(&foreign, &stray).expect("copy");
    fs::write(ws.path("runbook-data/locks/files.writing"), b"").expect("marker");

    let before = listing(&ws.repo("files"));
    ws.run(&["check", "files"]).ok();
    assert_eq!(listing(&ws.repo("files")), before, "check wrote nothing");
    assert!(stray.exists() && ws.path("runbook-data/locks/files.writing").exists());

    // The next write removes the debris; then check is clean for runbook and restic.
    ws.run(&["backup", "files"]).ok();
    assert!(!stray.exists(), "the next backup pruned the stray pack");
    assert!(!ws.path("runbook-data/locks/files.writing").exists());
    ws.run(&["check", "files", "--read-data", "100"]).ok();
}

/// Regression: deleting the newest ops-log entries went unnoticed (the chain before them is
/// intact), and so did a whole chain recomputed by someone who can write the database. The
/// anchor outside the database, authenticated by the repository password, catches both.
#[test]
fn deleting_the_newest_oplog_entries_is_caught_by_the_anchor() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    ws.run(&["keys", "create", "--role", "readonly", "--name", "a"])
        .ok();
    ws.run(&["keys", "create", "--role", "readonly", "--name", "b"])
        .ok();
    ws.run(&["oplog", "verify"]).ok();
    assert!(ws.path("runbook-data/oplog.anchor").exists());

    let conn = rusqlite::Connection::open(ws.path("runbook-data/state.db")).expect("state");
    conn.execute("DELETE FROM oplog WHERE seq >= 2", [])
        .expect("tamper");
    ws.run(&["oplog", "verify"])
        .fails_with(&["entry 2", "entries 2..=3 were deleted"]);

    // Recomputing the chain does not help without the repository password: rewrite entry 1
    // with a new hash and the anchor no longer matches anything.
    conn.execute("DELETE FROM oplog", []).expect("wipe");
    drop(conn);
    ws.run(&["oplog", "verify"]).fails_with(&["were deleted"]);
    fs::remove_file(ws.path("runbook-data/oplog.anchor")).expect("rm anchor");
    ws.run(&["keys", "create", "--role", "readonly", "--name", "c"])
        .ok();
    fs::write(
        ws.path("runbook-data/oplog.anchor"),
        b"{\"seq\":1,\"hash\":\"x\",\"mac\":\"y\"}",
    )
    .expect("forge");
    ws.run(&["oplog", "verify"])
        .fails_with(&["anchor", "altered"]);
}

/// Regression: a `forget` killed after removing snapshots left their data unpruned forever
/// (later runs removed no snapshot and so never pruned). Now the next run prunes it.
#[test]
fn a_forget_killed_before_pruning_is_finished_by_the_next_run() {
    // Four snapshots taken before the `keep` rule was written (a backup applies it).
    let ws = Workspace::new(&sqlite_config("app.db").replace("keep = { last = 2 }\n", ""));
    for i in 0..4 {
        fs::write(ws.path(&format!("blob{i}")), noise(1 << 20, 40 + i)).expect("write");
        for f in ["app.db", "app.db-wal", "app.db-shm"] {
            let _ = fs::remove_file(ws.path(f));
        }
        make_db(&ws.path("app.db"), 2000 * (i as usize + 1));
        ws.run(&["backup", "db"]).ok();
    }
    fs::write(ws.path("runbook.toml"), sqlite_config("app.db")).expect("config");
    let packs = |ws: &Workspace| walk(&ws.repo("db").join("data")).len();
    let before = packs(&ws);
    let killed = ws
        .command(&["forget", "db"])
        .env("RUNBOOK_FAILPOINT", "forget-before-prune")
        .output()
        .expect("run");
    assert!(!killed.status.success(), "the failpoint killed it");
    assert_eq!(ws.snapshot_ids("db").len(), 2, "snapshots were removed");
    assert_eq!(packs(&ws), before, "nothing was pruned yet");

    ws.run(&["forget", "db"]).ok();
    assert!(
        packs(&ws) < before,
        "the next run pruned the data left behind"
    );
    ws.run(&["check", "db", "--read-data", "100"]).ok();
    ws.run(&["restore", "db", "--to", "r.db"]).ok();
}

/// Regression: a restore reads the packs it planned from the index it loaded first. A backup
/// beside it whose retention pruned (at once, on a local repository) deleted those packs under
/// it, and the restore failed half-way ("cannot read pack"). The prune is now put off while a
/// restore reads, with a warning, and the next forget on the target does it.
#[test]
fn a_prune_is_put_off_while_a_restore_reads() {
    // keep = { last = 2 }; each database's pages are its own, so a snapshot forgotten leaves
    // whole packs that nothing else refers to.
    let ws = Workspace::new(&sqlite_config("app.db"));
    let fill = |seed: u64| {
        for f in ["app.db", "app.db-wal", "app.db-shm"] {
            let _ = fs::remove_file(ws.path(f));
        }
        let conn = rusqlite::Connection::open(ws.path("app.db")).expect("open");
        conn.execute_batch("CREATE TABLE b (x BLOB NOT NULL)")
            .expect("schema");
        for i in 0..600 {
            conn.execute("INSERT INTO b VALUES (?1)", [noise(3000, seed * 1000 + i)])
                .expect("insert");
        }
    };
    fill(1);
    ws.run(&["backup", "db"]).ok();
    let id = ws.snapshot_ids("db")[0].clone();
    let gate = ws.path("gate");
    let restore = ws
        .command(&["restore", "db", "--snapshot", &id, "--to", "r.db"])
        .env(
            "RUNBOOK_FAILPOINT",
            format!("restore-planned:wait={}", gate.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("restore");
    let mut restore = runbook_testkit::KillOnDrop(restore);
    serve::wait_for("the restore to plan its reads", 60, || {
        ws.path("gate.reached").exists()
    });
    let packs = |ws: &Workspace| walk(&ws.repo("db").join("data")).len();
    fill(2);
    ws.run(&["backup", "db"]).ok();
    fill(3);
    let third = ws.run(&["backup", "db"]).ok();
    assert!(
        third.stderr.contains("a restore is reading the repository"),
        "{}",
        third.stderr
    );
    let put_off = packs(&ws);
    assert!(!ws.snapshot_ids("db").contains(&id), "retention removed it");
    fs::write(&gate, b"").expect("gate");
    let status = restore.0.wait().expect("wait");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut restore.0.stderr.take().expect("piped"), &mut stderr)
        .expect("stderr");
    assert!(status.success(), "the restore went through: {stderr}");
    let conn = rusqlite::Connection::open(ws.path("r.db")).expect("open");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM b", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 600);
    let last: Vec<u8> = conn
        .query_row("SELECT x FROM b WHERE rowid = 600", [], |r| r.get(0))
        .expect("row");
    assert!(last == noise(3000, 1599), "the first database's rows");
    drop(conn);
    // The next forget does the prune that was put off.
    ws.run(&["forget", "db"]).ok();
    assert!(
        packs(&ws) < put_off,
        "the data the first snapshot held went"
    );
    ws.run(&["check", "db", "--read-data", "100"]).ok();
}

/// Regression: a restore killed with -9 left `.NAME.runbook-restore-PID/` (as large as the
/// database) beside the destination forever. The next restore to that destination removes
/// it, and puts back an old destination that the killed run had moved aside.
#[test]
fn a_killed_restores_leftovers_are_cleaned_by_the_next_restore() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    // What `kill -9` leaves, from a pid that no longer runs.
    let dead = 999_999_999_u32;
    let staging = ws.path(&format!(".out.db.runbook-restore-{dead}"));
    fs::create_dir_all(staging.join("deep")).expect("mkdir");
    fs::write(staging.join("deep/partial.db"), noise(1 << 20, 1)).expect("write");
    ws.run(&["restore", "db", "--to", "out.db"]).ok();
    assert!(!staging.exists(), "the dead run's staging is gone");
    assert_eq!(count(&ws.path("out.db"), "SELECT count(*) FROM items"), 10);

    // Killed between moving the old destination aside and putting the new one in place: the
    // old data comes back, and without --force it is not overwritten.
    fs::rename(
        ws.path("out.db"),
        ws.path(&format!(".out.db.runbook-restore-{dead}.aside")),
    )
    .expect("aside");
    ws.run(&["restore", "db", "--to", "out.db"])
        .fails_after_warnings(
            &["already exists", "--force"],
            &["put out.db back from an interrupted restore"],
        );
    assert_eq!(count(&ws.path("out.db"), "SELECT count(*) FROM items"), 10);
    assert!(
        !ws.path(&format!(".out.db.runbook-restore-{dead}.aside"))
            .exists()
    );
}

/// Regression: a forced restore over a SQLite database in WAL mode deleted the old WAL before
/// it put the new database in place, so a restore killed (or failing) in between put the old
/// database back without the transactions its WAL held. The WAL now moves aside with its
/// database and comes back with it.
#[test]
fn a_forced_restore_killed_before_its_rename_puts_the_old_database_back_with_its_wal() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    make_db(&ws.path("app-copy.db"), 3);
    // An application that stopped (or crashed) with five more rows committed to its WAL, not
    // yet in the database file: both files copied while its connection was open (closing
    // the last connection copies the WAL into the database). A restore over a file that a
    // running application has open is refused.
    let app = rusqlite::Connection::open(ws.path("app-copy.db")).expect("open");
    app.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("no checkpoints");
    app.execute_batch("INSERT INTO items (body) VALUES ('a'), ('b'), ('c'), ('d'), ('e')")
        .expect("insert");
    for suffix in ["", "-wal"] {
        fs::copy(
            ws.path(&format!("app-copy.db{suffix}")),
            ws.path(&format!("live.db{suffix}")),
        )
        .expect("copy");
    }
    assert_eq!(
        count(&ws.path("app-copy.db"), "SELECT count(*) FROM items"),
        8
    );
    drop(app);
    let as_it_was = |suffix: &str| fs::read(ws.path(&format!("live.db{suffix}"))).expect("read");
    let (db, wal) = (as_it_was(""), as_it_was("-wal"));
    assert!(!wal.is_empty());

    let out = ws
        .command(&["restore", "db", "--to", "live.db", "--force"])
        .env("RUNBOOK_FAILPOINT", "restore-before-rename")
        .output()
        .expect("run");
    assert!(!out.status.success(), "the fault point was reached");
    assert!(
        !ws.path("live.db").exists(),
        "killed with the old database aside"
    );
    // The next restore puts the database and its WAL back, says so, and without --force
    // leaves them.
    ws.run(&["restore", "db", "--to", "live.db"])
        .fails_after_warnings(
            &["already exists", "--force"],
            &[
                "put live.db back from an interrupted restore",
                "put live.db-wal back from an interrupted restore",
            ],
        );
    assert!(as_it_was("") == db && as_it_was("-wal") == wal);

    // A forced restore that runs through replaces both: the old WAL's rows do not leak into
    // the restored database, and nothing is left aside.
    ws.run(&["restore", "db", "--to", "live.db", "--force"])
        .ok();
    assert_eq!(count(&ws.path("live.db"), "SELECT count(*) FROM items"), 10);
    let left: Vec<_> = fs::read_dir(ws.path(""))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("runbook-restore"))
        .collect();
    assert!(left.is_empty(), "left beside the database: {left:?}");
}

/// Regression: a password file with a trailing space was read differently from restic, so
/// stock restic could not open the repository with the same file. runbook trims as restic does.
#[test]
fn a_password_file_is_read_exactly_as_restic_reads_it() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    fs::write(ws.path("runbook-data/repo.key"), "  spaced secret \t\n").expect("key");
    ws.run(&["backup", "db"]).ok();
    let out = ws.restic_restore_latest("db");
    let root = ws.root_rel();
    assert_eq!(
        count(
            &out.join(format!("{root}/app.db")),
            "SELECT count(*) FROM items"
        ),
        10
    );
}

/// A mutation whose audit entry cannot be written does not report success: the backup is
/// kept, and the command says it is unrecorded and exits nonzero.
#[test]
fn a_cli_mutation_that_cannot_be_audited_exits_nonzero() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    // The state store becomes unwritable: its oplog table is gone.
    let conn = rusqlite::Connection::open(ws.path("runbook-data/state.db")).expect("state");
    conn.execute_batch("DROP TABLE oplog").expect("drop");
    drop(conn);
    ws.run(&["backup", "db"])
        .fails_with(&["target `db`", "could not be recorded in the ops log"]);
    assert_eq!(ws.snapshot_ids("db").len(), 2, "the backup itself was kept");
}

/// Regression: only `serve` applied retention after a backup, so `runbook backup` from cron
/// never pruned; and `runbook forget` ignored `BACKUP_RETENTION_DAYS`.
#[test]
fn cli_backups_apply_keep_and_forget_honours_backup_retention_days() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    for _ in 0..3 {
        ws.run(&["backup", "db"]).ok();
    }
    assert_eq!(
        ws.snapshot_ids("db").len(),
        2,
        "keep = {{ last = 2 }} applied"
    );

    let ws = Workspace::new(&sqlite_config("app.db").replace("keep = { last = 2 }\n", ""));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    // An old snapshot (stock restic can stamp one in the past).
    fs::write(ws.path("old.txt"), b"x").expect("write");
    ws.restic(
        "db",
        &[
            "backup",
            "--time",
            "2020-01-01 00:00:00",
            ws.path("old.txt").to_str().expect("utf8"),
        ],
    )
    .ok();
    assert_eq!(ws.snapshot_ids("db").len(), 2);
    ws.run(&["forget", "db"]).ok();
    assert_eq!(
        ws.snapshot_ids("db").len(),
        2,
        "no keep rule: nothing removed"
    );
    let forget = ws
        .command(&["forget", "db"])
        .env("BACKUP_RETENTION_DAYS", "1")
        .output()
        .expect("run");
    assert!(forget.status.success());
    assert_eq!(
        ws.snapshot_ids("db").len(),
        1,
        "BACKUP_RETENTION_DAYS=1 removed the 2020 snapshot"
    );
    let bad = ws
        .command(&["forget", "db"])
        .env("BACKUP_RETENTION_DAYS", "soon")
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("BACKUP_RETENTION_DAYS"),
        "the variable is read by forget"
    );
}

/// Regression: `runbook snapshots | head -1` printed an internal error and exited 101 when
/// the reader went away. A closed stdout ends the command quietly with 0, as Unix tools do.
#[test]
fn a_closed_stdout_exits_zero_quietly() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    let mut child = ws
        .command(&["snapshots", "db", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The reader goes away before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A drill that cannot be put on record fails the command, even when it passed.
#[test]
fn a_drill_that_cannot_be_recorded_exits_nonzero() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    ws.run(&["drill", "db"]).ok();
    let conn = rusqlite::Connection::open(ws.path("runbook-data/state.db")).expect("state");
    conn.execute_batch("DROP TABLE drills").expect("drop");
    drop(conn);
    ws.run(&["drill", "db"])
        .fails_with(&["db", "the drill ran (passed) but could not be recorded"]);
}

#[test]
fn restoring_over_the_live_file_keeps_an_undo_point() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    // Rows written after the backup: what a restore over the live file replaces.
    let conn = rusqlite::Connection::open(ws.path("app.db")).expect("open");
    for _ in 0..5 {
        conn.execute("INSERT INTO items (body) VALUES ('later')", [])
            .expect("insert");
    }
    drop(conn);
    let run = ws
        .run(&["restore", "db", "--to", "app.db", "--force", "--json"])
        .ok();
    assert_eq!(count(&ws.path("app.db"), "SELECT count(*) FROM items"), 10);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let pre = v["pre_restore_snapshot"]["id"]
        .as_str()
        .expect("an undo point was taken")
        .to_string();
    assert_eq!(v["pre_restore_snapshot"]["reason"], "pre-restore");
    // Restoring the undo point brings back the rows the restore replaced.
    ws.run(&["restore", "db", "--snapshot", &pre, "--to", "undone.db"])
        .ok();
    assert_eq!(
        count(&ws.path("undone.db"), "SELECT count(*) FROM items"),
        15
    );
    // A restore elsewhere replaces nothing live and takes no undo point.
    let run = ws
        .run(&["restore", "db", "--to", "elsewhere.db", "--json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert!(v["pre_restore_snapshot"].is_null(), "{v}");
    // Where the time went, phase by phase, adding up to no more than the whole.
    let phases = v["phases"].as_object().expect("phases");
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(names, ["check", "open", "plan", "sync", "write"], "{v}");
    let sum: f64 = phases.values().filter_map(serde_json::Value::as_f64).sum();
    assert!(sum <= v["seconds"].as_f64().expect("seconds"), "{v}");
}

/// Regression: a forced restore over a SQLite file that an application still had open moved
/// the file away under it; the application went on writing to the old file, and lost all it
/// wrote. Now the restore is refused, naming the process, and nothing is taken or replaced.
#[test]
fn a_restore_over_a_file_a_process_has_open_is_refused() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 10);
    ws.run(&["backup", "db"]).ok();
    let conn = rusqlite::Connection::open(ws.path("app.db")).expect("open");
    conn.execute("INSERT INTO items (body) VALUES ('later')", [])
        .expect("insert");
    drop(conn);
    let snapshots = || ws.run(&["snapshots", "db", "--json"]).ok().stdout;
    let before = snapshots();
    // A process holding a file open (this test's own child) and its pid.
    let holding = |name: &str| {
        let file = std::fs::File::open(ws.path(name)).expect("open");
        let child = std::process::Command::new("sleep")
            .arg("600")
            .stdin(file)
            .spawn()
            .expect("sleep");
        let pid = child.id().to_string();
        (runbook_testkit::KillOnDrop(child), pid)
    };
    let (app, pid) = holding("app.db");
    for to in ["app.db", "./app.db"] {
        ws.run(&["restore", "db", "--to", to, "--force"])
            .fails_with(&["app.db is open by pid", &pid, "(sleep)", "stop it first"]);
    }
    assert_eq!(count(&ws.path("app.db"), "SELECT count(*) FROM items"), 11);
    assert_eq!(snapshots(), before, "no pre-restore snapshot was taken");
    drop(app);
    // Over a file elsewhere, and through a WAL, too.
    std::fs::copy(ws.path("app.db"), ws.path("other.db")).expect("copy");
    std::fs::write(ws.path("app.db-wal"), b"").expect("wal");
    for (to, open) in [("other.db", "other.db"), ("app.db", "app.db-wal")] {
        let (_held, pid) = holding(open);
        ws.run(&["restore", "db", "--to", to, "--force"])
            .fails_with(&[&format!("{open} is open by pid {pid}")]);
    }
    // Once nothing has it open, the restore goes through.
    ws.run(&["restore", "db", "--to", "app.db", "--force"]).ok();
    assert_eq!(count(&ws.path("app.db"), "SELECT count(*) FROM items"), 10);
}

#[test]
fn a_keep_forever_backup_outlives_retention() {
    // keep = { last = 2 }
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 12);
    let run = ws
        .run(&[
            "backup",
            "db",
            "--reason",
            "decommission",
            "--keep-forever",
            "--json",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let forever = v[0]["id"].as_str().expect("id").to_string();
    assert_eq!(v[0]["keep_forever"], true);
    for _ in 0..3 {
        ws.run(&["backup", "db"]).ok();
    }
    let ids = ws.snapshot_ids("db");
    assert_eq!(ids.len(), 3, "two by keep last, one kept forever: {ids:?}");
    assert!(ids.contains(&forever));
    // Stock restic sees the tag, so `restic forget --keep-tag keep-forever` keeps it too.
    let tagged = ws
        .restic("db", &["snapshots", "--tag", "keep-forever", "--json"])
        .ok();
    assert!(tagged.stdout.contains(&forever), "{}", tagged.stdout);
    // Without the flag, the same history keeps only the last two.
    let plain = Workspace::new(&sqlite_config("app.db"));
    make_db(&plain.path("app.db"), 12);
    for _ in 0..4 {
        plain.run(&["backup", "db"]).ok();
    }
    assert_eq!(plain.snapshot_ids("db").len(), 2);
}

#[test]
fn a_backup_reports_where_its_time_went() {
    let ws = Workspace::new(&format!(
        "{}\n[targets.files]\nkind = \"files\"\npaths = [\"src\"]\n\
         [targets.old]\nkind = \"sqlite\"\npath = \"old.db\"\n",
        sqlite_config("app.db")
    ));
    make_db(&ws.path("app.db"), 500);
    // A database in rollback-journal mode: copied before it is read.
    let old = rusqlite::Connection::open(ws.path("old.db")).expect("open");
    old.execute_batch("CREATE TABLE t (v); INSERT INTO t VALUES (1);")
        .expect("fill");
    fs::create_dir_all(ws.path("src")).expect("mkdir");
    fs::write(ws.path("src/a.txt"), noise(100_000, 7)).expect("write");
    let run = ws.run(&["backup", "--all", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    for snap in v.as_array().expect("array") {
        let phases = snap["phases"].as_object().expect("phases");
        // A WAL database is pinned and read in place; the other is copied first.
        let want: &[&str] = match snap["target"].as_str() {
            Some("db") => &["check", "open", "pin", "store"],
            Some("old") => &["check", "copy", "open", "store"],
            _ => &["open", "store"],
        };
        assert_eq!(
            phases.keys().map(String::as_str).collect::<Vec<_>>(),
            want,
            "{snap}"
        );
        let sum: f64 = phases.values().map(|s| s.as_f64().expect("seconds")).sum();
        let total = snap["duration_seconds"].as_f64().expect("duration");
        assert!(phases.values().all(|s| s.as_f64() >= Some(0.0)), "{snap}");
        assert!(
            sum <= total + 0.05,
            "phases {sum} within the whole {total}: {snap}"
        );
        // Inside `store`, its stages in thread-seconds: every kind's pipeline read, cut and
        // stored something.
        let stages = snap["stages"].as_object().expect("stages");
        assert_eq!(
            stages.keys().map(String::as_str).collect::<Vec<_>>(),
            ["chunk", "source", "upload"],
            "{snap}"
        );
        assert!(stages.values().all(|s| s.as_f64() > Some(0.0)), "{snap}");
    }
    // The same phases and stages when the snapshots are listed later (stored with the
    // snapshot).
    let list = ws.run(&["snapshots", "db", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    assert!(v[0]["phases"]["pin"].as_f64().is_some(), "{v}");
    assert!(v[0]["stages"]["upload"].as_f64() > Some(0.0), "{v}");
    let text = ws.run(&["backup", "old"]).ok().stdout;
    assert!(text.contains("copy ") && text.contains("store "), "{text}");
}

/// A database that opens but fails `PRAGMA integrity_check` (an index page overwritten) is
/// refused: the backup fails naming the check, and no snapshot is written — also when the
/// check runs beside the upload. In rollback-journal mode the check runs on the copy.
#[test]
fn a_database_failing_its_integrity_check_is_not_backed_up() {
    refused_when_its_check_fails("delete");
}

/// The same in WAL mode, where the pages are read in place and the check runs on a second
/// read transaction of the live file.
#[test]
fn a_wal_database_failing_its_integrity_check_is_not_backed_up() {
    refused_when_its_check_fails("wal");
}

fn refused_when_its_check_fails(journal: &str) {
    let ws = Workspace::new(&sqlite_config("app.db"));
    let path = ws.path("app.db");
    let root: u64 = {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.pragma_update(None, "journal_mode", journal)
            .expect("journal mode");
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE INDEX t_v ON t (v);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t (v) SELECT printf('value %08d', i) FROM n;",
        )
        .expect("fill");
        conn.query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 't_v'",
            [],
            |r| r.get(0),
        )
        .expect("rootpage")
    };
    // Zero the index's root page: the schema still reads, the index does not.
    runbook_testkit::zero_sqlite_page(&path, root);
    let run = ws.run(&["backup", "db"]);
    assert_ne!(run.code, 0, "{journal}: {}", run.stdout);
    let line = run.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("integrity"), "{journal}: {line}");
    assert!(ws.snapshot_ids("db").is_empty(), "no snapshot was written");
    // Nor is the pack it was filling left behind half-written.
    let left: Vec<_> = walk(&ws.repo("db"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-tmp-"))
        .collect();
    assert!(left.is_empty(), "{journal}: {left:?}");
    // Stock restic agrees: the repository holds no snapshot.
    if ws.repo("db").join("config").exists() {
        let listed = ws.restic("db", &["snapshots", "--json"]);
        assert_eq!(listed.stdout.trim(), "[]", "{}", listed.stderr);
    }
}
