//! Names the commit the binary was built from, for `runbook --version`: `git describe` of the
//! checkout, or `RUNBOOK_COMMIT` when set (a packaging build from a tarball), else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RUNBOOK_COMMIT");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut watched = vec![".git/HEAD".to_string(), ".git/index".to_string()];
    if let Ok(head) = std::fs::read_to_string(root.join(".git/HEAD"))
        && let Some(r) = head.trim().strip_prefix("ref: ")
    {
        watched.push(format!(".git/{r}"));
    }
    for f in watched {
        let p = root.join(f);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    let commit = std::env::var("RUNBOOK_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(["describe", "--always", "--dirty", "--abbrev=12"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RUNBOOK_COMMIT={commit}");
}
