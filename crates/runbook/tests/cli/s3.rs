//! Repositories on S3-compatible storage, against the local S3 server the test command starts
//! (moto's server at `$RUNBOOK_TEST_S3`, default `http://127.0.0.1:9333`).

use std::{fs, process::Command};

use crate::helpers::*;

fn endpoint() -> String {
    std::env::var("RUNBOOK_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9333".into())
}

/// A new, uniquely named bucket on the local server.
fn make_bucket(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let bucket = format!("rb-{tag}-{}-{nanos}", std::process::id());
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='PUT'), timeout=10)",
            &format!("{}/{bucket}", endpoint()),
        ])
        .status()
        .expect("python3 is installed (the README test command installs it)");
    assert!(
        status.success(),
        "the local S3 server answers at {} (the README test command starts it)",
        endpoint()
    );
    bucket
}

/// A workspace whose repositories live in `bucket` under `prod/`.
fn s3_workspace(bucket: &str, targets: &str) -> Workspace {
    Workspace::new(&format!(
        "[repository]\nurl = \"s3:{}/{bucket}/prod\"\n\n{targets}",
        endpoint()
    ))
}

fn with_keys(mut cmd: Command) -> Command {
    cmd.env("AWS_ACCESS_KEY_ID", "runbook-test")
        .env("AWS_SECRET_ACCESS_KEY", "runbook-test-secret")
        .env_remove("R2_ACCESS_KEY_ID")
        .env_remove("R2_SECRET_ACCESS_KEY");
    cmd
}

fn run_s3(ws: &Workspace, args: &[&str]) -> Run {
    output(with_keys(ws.command(args)).output().expect("run runbook"))
}

/// Stock restic on the S3 repository of `target` (under `prod/`).
fn restic_s3(ws: &Workspace, bucket: &str, target: &str, args: &[&str]) -> Run {
    restic_at(ws, &format!("{bucket}/prod/{target}"), args)
}

/// Stock restic on the S3 repository at `bucket/key-prefix`.
fn restic_at(ws: &Workspace, at: &str, args: &[&str]) -> Run {
    let mut cmd = with_keys(Command::new("restic"));
    let out = cmd
        .arg("-r")
        .arg(format!("s3:{}/{at}", endpoint()))
        .arg("--password-file")
        .arg(ws.path("runbook-data/repo.key"))
        .arg("--no-cache")
        .args(args)
        .output()
        .expect("restic is installed (the README test command installs it)");
    output(out)
}

#[test]
fn an_s3_repository_backs_up_restores_forgets_checks_and_drills() {
    let bucket = make_bucket("ops");
    let drill = "[targets.db.drill]\nmax_data_age = \"1h\"\n";
    let ws = s3_workspace(
        &bucket,
        &format!("{}{drill}{}", sqlite_config("app.db"), files_config()),
    );
    make_db(&ws.path("app.db"), 3000);
    fs::create_dir_all(ws.path("src/nested")).expect("mkdir");
    fs::write(ws.path("src/nested/blob.bin"), noise(2 << 20, 11)).expect("write");
    fs::write(ws.path("src/skip.tmp"), b"excluded").expect("write");

    run_s3(&ws, &["backup", "--all"]).ok();
    run_s3(&ws, &["backup", "db"]).ok();
    run_s3(&ws, &["backup", "db"]).ok();
    // keep = { last = 2 } applies after each backup, as on a local repository.
    let snaps = run_s3(&ws, &["snapshots", "db", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&snaps.stdout).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 2, "{}", snaps.stdout);
    // Nothing was written locally: the repositories are in the bucket.
    assert!(!ws.path("runbook-data/repo").exists());

    run_s3(&ws, &["restore", "db", "--to", "mine.db"]).ok();
    assert_eq!(
        count(&ws.path("mine.db"), "SELECT count(*) FROM items"),
        3000
    );
    run_s3(&ws, &["forget", "db"]).ok();
    run_s3(&ws, &["check", "--read-data", "100"]).ok();
    let drilled = run_s3(&ws, &["drill", "db", "--json"]).ok();
    assert!(drilled.stdout.contains("\"passed\""), "{}", drilled.stdout);

    // Stock restic reads, checks and restores what runbook wrote, byte-identical.
    for target in ["db", "files"] {
        restic_s3(&ws, &bucket, target, &["check", "--read-data"]).ok();
        let out = ws.path(&format!("restic-{target}"));
        restic_s3(
            &ws,
            &bucket,
            target,
            &["restore", "latest", "--target", out.to_str().expect("utf8")],
        )
        .ok();
    }
    let root = ws.root_rel();
    assert_eq!(
        fs::read(ws.path(&format!("restic-db/{root}/app.db"))).expect("restic's copy"),
        fs::read(ws.path("mine.db")).expect("runbook's copy")
    );
    assert_eq!(
        fs::read(ws.path(&format!("restic-files/{root}/src/nested/blob.bin"))).expect("restored"),
        fs::read(ws.path("src/nested/blob.bin")).expect("source")
    );
    assert!(
        !ws.path(&format!("restic-files/{root}/src/skip.tmp"))
            .exists()
    );
}

#[test]
fn s3_mistakes_are_one_clear_line() {
    let ws = s3_workspace(
        &format!("rb-missing-{}", std::process::id()),
        &sqlite_config("app.db"),
    );
    make_db(&ws.path("app.db"), 10);
    // A bucket that does not exist.
    run_s3(&ws, &["backup", "db"]).fails_with(&[
        "target `db`",
        "bucket does not exist",
        "rb-missing-",
    ]);
    run_s3(&ws, &["snapshots", "db"]).fails_with(&["bucket does not exist"]);
    // A storage that does not answer.
    let ws_down = Workspace::new(&format!(
        "[repository]\nurl = \"s3:http://127.0.0.1:9/b\"\n\n{}",
        sqlite_config("app.db")
    ));
    make_db(&ws_down.path("app.db"), 10);
    run_s3(&ws_down, &["backup", "db"])
        .fails_with(&["cannot reach the storage at http://127.0.0.1:9/"]);
    // No credentials at all: `config check` and a backup say which variables to set.
    let out = ws
        .command(&["backup", "db"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("R2_ACCESS_KEY_ID")
        .env_remove("R2_SECRET_ACCESS_KEY")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "{stderr}");
    // Keys in the config file are refused: they belong in the environment or a credentials file.
    let ws = Workspace::new(&format!(
        "[repository]\nurl = \"s3:{}/b\"\naccess_key_id = \"AKIA\"\n\n{}",
        endpoint(),
        sqlite_config("app.db")
    ));
    ws.run(&["config", "check", "--offline"])
        .fails_with(&["access_key_id"]);
    // And a url beside a path is ambiguous.
    let ws = Workspace::new(&format!(
        "[repository]\nurl = \"s3:{}/b\"\npath = \"repo\"\n\n{}",
        endpoint(),
        sqlite_config("app.db")
    ));
    ws.run(&["config", "check", "--offline"])
        .fails_with(&["repository.url", "not both"]);
}

#[test]
fn copies_reach_a_second_repository_and_a_cut_off_copy_resumes() {
    let bucket = make_bucket("copy");
    let target = "[targets.db]\nkind = \"sqlite\"\npath = \"app.db\"\nkeep = { last = 2 }\n";
    let ws = Workspace::new(target);
    make_db(&ws.path("app.db"), 500);
    for _ in 0..3 {
        add_rows(&ws.path("app.db"), 100);
        ws.run(&["backup", "db"]).ok();
    }
    // Now copy_to an S3 repository with its own retention; the first copy is cut off (as by
    // kill -9) after one snapshot.
    let offsite = format!(
        "[repositories.offsite]\nurl = \"s3:{}/{bucket}/offsite\"\nkeep = {{ last = 5 }}\n\n{target}copy_to = [\"offsite\"]\n",
        endpoint()
    );
    fs::write(ws.path("runbook.toml"), offsite).expect("config");
    let cut = with_keys(ws.command(&["copy", "db"]))
        .env("RUNBOOK_FAILPOINT", "copy-between-snapshots")
        .output()
        .expect("run");
    assert!(!cut.status.success(), "the failpoint stops the copy");
    let copied = |ws: &Workspace| -> usize {
        let run = run_s3(
            ws,
            &["--repository", "offsite", "snapshots", "db", "--json"],
        )
        .ok();
        let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        v.as_array().expect("array").len()
    };
    assert_eq!(copied(&ws), 1, "one whole snapshot before the cut");
    let resumed = run_s3(&ws, &["copy", "db"]).ok();
    assert!(
        resumed.stdout.contains("1 snapshot(s) copied to offsite"),
        "{}",
        resumed.stdout
    );
    assert_eq!(
        copied(&ws),
        2,
        "the main repository keeps 2; both are now off-site"
    );
    // Each backup copies; the copy keeps 5 while the main repository keeps 2.
    for _ in 0..4 {
        add_rows(&ws.path("app.db"), 100);
        let run = run_s3(&ws, &["backup", "db"]).ok();
        assert!(
            run.stdout.contains("copied to offsite (1 new)"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(ws.snapshot_ids("db").len(), 2);
    assert_eq!(copied(&ws), 5);

    // The copy restores through runbook, drills, and stock restic restores it byte-identical.
    run_s3(
        &ws,
        &["--repository", "offsite", "restore", "db", "--to", "off.db"],
    )
    .ok();
    assert_eq!(
        count(&ws.path("off.db"), "SELECT count(*) FROM items"),
        500 + 7 * 100
    );
    let drill = run_s3(&ws, &["--repository", "offsite", "drill", "db", "--json"]).ok();
    assert!(drill.stdout.contains("\"passed\""), "{}", drill.stdout);
    restic_at(
        &ws,
        &format!("{bucket}/offsite/db"),
        &["check", "--read-data"],
    )
    .ok();
    let out = ws.path("restic-off");
    restic_at(
        &ws,
        &format!("{bucket}/offsite/db"),
        &["restore", "latest", "--target", out.to_str().expect("utf8")],
    )
    .ok();
    assert_eq!(
        fs::read(ws.path(&format!("restic-off/{}/app.db", ws.root_rel()))).expect("restic's"),
        fs::read(ws.path("off.db")).expect("runbook's")
    );
    // A backup cannot be sent to a copy directly, and an unknown copy is named.
    run_s3(&ws, &["--repository", "offsite", "backup", "db"]).fails_with(&["copy_to"]);
    run_s3(&ws, &["--repository", "nope", "snapshots"])
        .fails_with(&["repositories.nope", "offsite"]);
}

fn add_rows(db: &std::path::Path, n: usize) {
    let conn = rusqlite::Connection::open(db).expect("open");
    for _ in 0..n {
        conn.execute("INSERT INTO items (body) VALUES ('more')", [])
            .expect("insert");
    }
}

/// Runs a Python snippet with boto3 (installed with moto) against the local server; `s3` is a
/// client. Returns what it prints.
fn boto(script: &str, args: &[&str]) -> String {
    let prelude = format!(
        "import sys, json, hashlib, boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='k', aws_secret_access_key='s', region_name='us-east-1')\n",
        endpoint()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const FILL: &str = "b, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    s3.put_object(Bucket=b, Key=f'{prefix}{i:04}.bin', Body=(f'object {i} ' * (i % 50 + 1)).encode(), ContentType='image/png' if i % 2 else 'text/plain', Metadata={'owner': f'u{i % 7}'})";

const DIGEST: &str = "b, prefix = sys.argv[1], sys.argv[2]
out = {}
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=b, Prefix=prefix):
    for o in page.get('Contents', []):
        h = s3.get_object(Bucket=b, Key=o['Key'])
        out[o['Key'][len(prefix):]] = [hashlib.sha256(h['Body'].read()).hexdigest(), h['ContentType'], h['Metadata']]
print(hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest(), len(out))";

fn last_sync(ws: &Workspace, target: &str) -> serde_json::Value {
    let text = fs::read_to_string(ws.path(&format!("runbook-data/mirror/{target}.last-sync.json")))
        .expect("last sync");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn a_bucket_round_trips_with_metadata_incrementally_and_its_drill_catches_drift() {
    let source = make_bucket("src");
    let dest = make_bucket("dst");
    boto(FILL, &[&source, "img/", "1000"]);
    boto(FILL, &[&source, "small/", "12"]);
    let ws = Workspace::new(&format!(
        "[targets.images]\nkind = \"bucket\"\nurl = \"s3:{e}/{source}/img\"\n\n[targets.small]\nkind = \"bucket\"\nurl = \"s3:{e}/{source}/small\"\nexclude = [\"0011.bin\"]\n[targets.small.drill]\nsample = \"100%\"\n",
        e = endpoint()
    ));
    run_s3(&ws, &["backup", "images"]).ok();
    assert_eq!(last_sync(&ws, "images")["downloaded"], 1000);
    // An unchanged bucket downloads nothing the second time.
    run_s3(&ws, &["backup", "images"]).ok();
    assert_eq!(last_sync(&ws, "images")["downloaded"], 0);
    assert_eq!(last_sync(&ws, "images")["listed"], 1000);

    // Restored into another bucket: every object, its bytes, content type and metadata.
    let into = format!("s3:{}/{dest}/copy", endpoint());
    run_s3(&ws, &["restore", "images", "--into", &into]).ok();
    assert_eq!(
        boto(DIGEST, &[&dest, "copy/"]),
        boto(DIGEST, &[&source, "img/"]),
        "same keys, bytes, content types and metadata"
    );
    // A bucket that holds objects is not written over without --force.
    run_s3(&ws, &["restore", "images", "--into", &into])
        .fails_with(&["already holds 1000 object(s)", "--force"]);

    // The drill passes on the untouched bucket, then catches a deleted and a changed object.
    run_s3(&ws, &["backup", "small"]).ok();
    assert_eq!(last_sync(&ws, "small")["listed"], 11, "exclude applies");
    let drill = run_s3(&ws, &["drill", "small", "--json"]).ok();
    assert!(drill.stdout.contains("\"passed\""), "{}", drill.stdout);
    boto(
        "s3.delete_object(Bucket=sys.argv[1], Key='small/0003.bin')",
        &[&source],
    );
    boto(
        "s3.put_object(Bucket=sys.argv[1], Key='small/0004.bin', Body=b'tampered')",
        &[&source],
    );
    let run = run_s3(&ws, &["drill", "small", "--json"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("0003.bin: gone from the live bucket"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("0004.bin: content differs"),
        "{}",
        run.stdout
    );
}

#[test]
fn refused_credentials_are_one_clear_line() {
    // A second local server that checks keys (moto with authentication on); the keys runbook
    // sends do not exist there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server (the README test command installs it)");
    let _server = runbook_testkit::KillOnDrop(server);
    let url = format!("http://127.0.0.1:{port}");
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "moto_server answers on {url}");
    let ws = Workspace::new(&format!(
        "[repository]\nurl = \"s3:{url}/b/prod\"\n\n{}",
        sqlite_config("app.db")
    ));
    make_db(&ws.path("app.db"), 10);
    run_s3(&ws, &["backup", "db"]).fails_with(&["target `db`", "refused the credentials"]);
}
