//! What a package installs besides the binary: the version names the commit, and the shell
//! completions and the man page come from the CLI definition.

use std::process::{Command, Stdio};

use crate::helpers::*;

#[test]
fn the_version_names_the_commit() {
    let ws = Workspace::new("");
    let v = ws.run(&["--version"]).ok().stdout;
    assert!(
        v.starts_with(&format!("runbook {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let in_git = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(head) = in_git {
        assert!(v.contains(&head), "built from {head}: {v}");
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_cli() {
    let ws = Workspace::new("");
    let bash = ws.run(&["completions", "bash"]).ok().stdout;
    assert!(bash.contains("key") && bash.contains("restore"), "{bash}");
    // bash parses it.
    let mut check = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash");
    std::io::Write::write_all(check.stdin.as_mut().expect("stdin"), bash.as_bytes())
        .expect("write");
    assert!(check.wait().expect("bash -n").success());
    for shell in ["zsh", "fish"] {
        let out = ws.run(&["completions", shell]).ok().stdout;
        assert!(out.contains("restore"), "{shell}: {out}");
    }
    ws.run(&["completions", "tcsh"]).fails_with(&["tcsh"]);
    let man = ws.run(&["man"]).ok().stdout;
    assert!(man.contains(".TH runbook 1"), "{man}");
    assert!(man.contains("Backups that restore"), "{man}");
}
