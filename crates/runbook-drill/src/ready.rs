//! `ready_command`: the application's own readiness or integrity check, run against the
//! restored copy. It gets `RUNBOOK_DRILL_PATH` (SQLite file, files directory) or
//! `RUNBOOK_DRILL_DATABASE_URL` (database targets) and must exit 0 within its timeout.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use runbook_backup::Database;
use runbook_config::Target;

use crate::{CheckResult, Place, seconds};

/// Runs `cmd` with `sh -c` in `cwd`; output goes to a file in `scratch` and its last line is
/// reported (with any password removed).
pub(crate) fn run(
    cmd: &str,
    timeout: Duration,
    cwd: &Path,
    place: &Place,
    database: Option<&Database>,
    target: &Target,
    scratch: &Path,
) -> CheckResult {
    let expected = format!("exit 0 within {}", seconds(timeout.as_secs_f64()));
    let fail = |actual: String| CheckResult::new("ready_command", expected.clone(), actual, false);
    let log = scratch.join("ready_command.log");
    let Ok(out) = std::fs::File::create(&log) else {
        return fail(format!("cannot create {}", log.display()));
    };
    let Ok(err) = out.try_clone() else {
        return fail("cannot open the output file twice".into());
    };
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .env("RUNBOOK_DRILL_TARGET", &target.name)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // Its own process group, so a timeout kills whatever the shell started too.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut secret = None;
    match place {
        Place::File(p) | Place::Dir(p) => {
            command.env("RUNBOOK_DRILL_PATH", p);
        }
        Place::Database(db) => {
            let Some(server) = database else {
                return fail("no database server".into());
            };
            match (server.connection_url(db), server.client_env(db)) {
                (Ok(url), Ok(env)) => {
                    secret = password_of(&url);
                    command.env("RUNBOOK_DRILL_DATABASE_URL", url);
                    command.env("RUNBOOK_DRILL_DATABASE", db);
                    // What the application's own checks read (`DATABASE_URL=… npm run …`).
                    command.envs(env);
                }
                (Err(e), _) | (_, Err(e)) => return fail(e.to_string()),
            }
        }
    }
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start sh: {e}")),
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                // The whole group: the shell and whatever it started.
                if let Some(group) = i32::try_from(child.id())
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return fail(format!("cannot wait for the command: {e}")),
        }
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(300)
        .collect::<String>();
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        last = last.replace(&s, "***");
    }
    let took = seconds(started.elapsed().as_secs_f64());
    let said = if last.is_empty() {
        String::new()
    } else {
        format!(": {last}")
    };
    match status {
        None => fail(format!("still running after {took}, killed{said}")),
        Some(s) if s.success() => {
            CheckResult::new("ready_command", expected, format!("exit 0 in {took}"), true)
        }
        Some(s) => fail(match s.code() {
            Some(c) => format!("exit {c} after {took}{said}"),
            None => format!("killed by a signal after {took}{said}"),
        }),
    }
}

/// The (percent-encoded) password of `scheme://user:password@host/…`.
fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let creds = &rest[..rest.rfind('@')?];
    creds.split_once(':').map(|(_, p)| p.to_string())
}
