//! Maintenance tasks (`[tasks.NAME]`): `sqlite-optimize` through the engine, and `command`
//! tasks run with a timeout. Both run as jobs (kind `task`, the task's name as the target), so
//! each run is recorded with its duration and outcome, in the ops log, and a failure raises
//! `task.failed` like a failed backup.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use runbook_backup::Engine;
use runbook_config::tasks::{Task, TaskKind};

use crate::ops::OpError;

/// What one run of a task did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRun {
    /// The task.
    pub task: String,
    /// `sqlite-optimize` or `command`.
    pub kind: &'static str,
    /// Seconds it ran.
    pub seconds: f64,
    /// A command's exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The end of what a command printed (stdout and stderr, at most 2 KiB).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// What `sqlite-optimize` did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimize: Option<runbook_backup::OptimizeReport>,
}

const OUTPUT_KEPT: usize = 2048;

/// Runs `task` now, on the calling (blocking) thread.
///
/// # Errors
/// The task failed: why, in one line (a command's exit code and its last line of output).
pub fn run(engine: &Engine, task: &Task) -> Result<TaskRun, OpError> {
    let started = Instant::now();
    match &task.kind {
        TaskKind::SqliteOptimize {
            target,
            vacuum_free_percent,
        } => {
            let report = engine.sqlite_optimize(target, *vacuum_free_percent)?;
            Ok(TaskRun {
                task: task.name.clone(),
                kind: task.kind.name(),
                seconds: started.elapsed().as_secs_f64(),
                exit_code: None,
                output: String::new(),
                optimize: Some(report),
            })
        }
        TaskKind::Command { argv } => {
            let dir = engine
                .config()
                .file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(
                    || std::path::PathBuf::from("."),
                    std::path::Path::to_path_buf,
                );
            let (code, output) = run_command(argv, &dir, task.timeout)
                .map_err(|message| OpError::from(format!("task `{}`: {message}", task.name)))?;
            let run = TaskRun {
                task: task.name.clone(),
                kind: task.kind.name(),
                seconds: started.elapsed().as_secs_f64(),
                exit_code: Some(code),
                output,
                optimize: None,
            };
            if code == 0 {
                Ok(run)
            } else {
                let last = run.output.lines().last().unwrap_or("").trim().to_string();
                Err(OpError::from(format!(
                    "task `{}`: {} exited with {code}{}",
                    task.name,
                    argv[0],
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                )))
            }
        }
    }
}

/// Runs `argv` in `dir`, killing it after `timeout`; its exit code and the end of its output.
fn run_command(
    argv: &[String],
    dir: &std::path::Path,
    timeout: Duration,
) -> Result<(i32, String), String> {
    let (program, args) = argv.split_first().ok_or("no command")?;
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    })
    .collect();
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // Our own child, by its handle: kill(2) on its pid.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} ran past its timeout of {} and was stopped",
                    humantime::format_duration(timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("cannot wait for {program}: {e}")),
        }
    };
    let mut output = Vec::new();
    for r in readers {
        output.extend(r.join().unwrap_or_default());
    }
    let start = output.len().saturating_sub(OUTPUT_KEPT);
    let text = String::from_utf8_lossy(&output[start..]).to_string();
    Ok((status.code().unwrap_or(-1), text))
}
