//! `runbook key rotate`: the repository password changes without a moment in which the
//! password file fails to open a repository, proven with stock restic.

use std::{fs, path::Path, process::Command};

use crate::helpers::*;

const KEY: &str = "runbook-data/repo.key";

/// Stock restic on the repository at `repo` with the password in `key`: restores the newest
/// snapshot and returns where, or the run when restic refused.
fn restic_restore(ws: &Workspace, repo: &Path, key: &Path, tag: &str) -> Result<String, Run> {
    let out = ws.path(&format!("restic-{tag}"));
    let _ = fs::remove_dir_all(&out);
    let run = output(
        Command::new("restic")
            .arg("-r")
            .arg(repo)
            .arg("--password-file")
            .arg(key)
            .args(["--no-cache", "restore", "latest", "--target"])
            .arg(&out)
            .output()
            .expect("restic is installed (the README test command installs it)"),
    );
    if run.code == 0 {
        Ok(out.to_str().expect("utf8").to_string())
    } else {
        Err(run)
    }
}

/// Every repository (two targets, and the copy of one) restores with stock restic and the
/// password in `key`, with the rows each holds.
fn all_restore(ws: &Workspace, key: &Path, tag: &str) {
    let root = ws.root_rel();
    for (repo, file, rows) in [
        (ws.repo("db"), "app.db", 40),
        (ws.repo("other"), "other.db", 7),
        (ws.path("offsite/db"), "app.db", 40),
    ] {
        let out = restic_restore(ws, &repo, key, tag)
            .unwrap_or_else(|r| panic!("{} with {tag}: {}", repo.display(), r.stderr));
        assert_eq!(
            count(
                &Path::new(&out).join(format!("{root}/{file}")),
                "SELECT count(*) FROM items"
            ),
            rows
        );
    }
}

fn killed_at(ws: &Workspace, point: &str) {
    let out = ws
        .command(&["key", "rotate"])
        .env("RUNBOOK_FAILPOINT", point)
        .output()
        .expect("run");
    assert!(!out.status.success(), "the fault point {point} was reached");
}

#[test]
fn the_repository_password_rotates_and_a_killed_rotation_leaves_one_that_opens_every_repository() {
    let ws = Workspace::new(&format!(
        "[repositories.offsite]\npath = \"offsite\"\n\n{}copy_to = [\"offsite\"]\n\n[targets.other]\nkind = \"sqlite\"\npath = \"other.db\"\n",
        sqlite_config("app.db")
    ));
    make_db(&ws.path("app.db"), 40);
    make_db(&ws.path("other.db"), 7);
    ws.run(&["backup", "--all"]).ok();
    let key = ws.path(KEY);
    let old = fs::read_to_string(&key).expect("key");

    // Killed at each step in turn; each run resumes the same rotation and dies at the next
    // point. Whatever the file holds then opens every repository, with stock restic.
    let mut new = old.clone();
    for point in [
        "rotate-after-new-password",
        "rotate-after-first-key",
        "rotate-before-switch",
        "rotate-after-switch",
        "rotate-after-first-removal",
    ] {
        killed_at(&ws, point);
        let now = fs::read_to_string(&key).expect("key");
        if matches!(
            point,
            "rotate-after-new-password" | "rotate-after-first-key" | "rotate-before-switch"
        ) {
            assert_eq!(now, old, "{point}: not switched yet");
        } else {
            assert_ne!(now, old, "{point}: switched");
            new = now;
        }
        all_restore(&ws, &key, point);
    }
    assert_ne!(new, old);

    // Finished: the old password opens nothing, the new one everything.
    let run = ws.run(&["key", "rotate", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["resumed"], true);
    assert_eq!(v["repositories"].as_array().map(Vec::len), Some(3));
    assert_eq!(fs::read_to_string(&key).expect("key"), new);
    let old_file = ws.path("old.key");
    fs::write(&old_file, &old).expect("write");
    let refused = restic_restore(&ws, &ws.repo("db"), &old_file, "old").expect_err("old refused");
    assert!(
        refused.stderr.contains("wrong password") || refused.stderr.contains("no key"),
        "{}",
        refused.stderr
    );
    all_restore(&ws, &key, "finished");
    assert!(!ws.path("runbook-data/repo.key.previous").exists());
    assert!(!ws.path("runbook-data/repo.key.rotating").exists());

    // runbook goes on with the new password: backups, and the ops log's anchor (re-keyed).
    ws.run(&["backup", "db"]).ok();
    ws.run(&["oplog", "verify"]).ok();
    let log = ws.run(&["oplog", "--json"]).ok();
    assert!(log.stdout.contains("key.rotate"), "{}", log.stdout);
    assert!(
        !log.stdout.contains(new.trim()),
        "the password is never logged"
    );

    // A second rotation, from the start, in one go.
    ws.run(&["key", "rotate"]).ok();
    let newer = fs::read_to_string(&key).expect("key");
    assert_ne!(newer, new);
    all_restore(&ws, &key, "second");
}

#[test]
fn a_password_from_the_environment_is_not_rotated() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 3);
    ws.run(&["backup", "db"]).ok();
    let out = ws
        .command(&["key", "rotate"])
        .env("RUNBOOK_REPOSITORY_PASSWORD", PASSWORD)
        .output()
        .expect("run");
    output(out).fails_with(&["RUNBOOK_REPOSITORY_PASSWORD", "password file"]);
}
