//! `runbook`: the command-line binary. Flag definitions and wiring only; the work lives in the
//! library crates.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    hold_malloc_threshold();
    quiet_panics();
    let _ = log::set_boxed_logger(Box::new(RepositoryWarnings))
        .map(|()| log::set_max_level(log::LevelFilter::Warn));
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // Usage errors on one line, like every other error (exit 2, as clap exits).
            eprintln!("runbook: error: {}", usage_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("runbook: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// Holds glibc's mmap threshold at its default of 128 KiB.
///
/// glibc raises the threshold each time a block above it is freed (up to 32 MiB), and from
/// then on blocks that size come from per-thread heaps that it returns to the system only
/// when their top is free: buffers of a few MiB, handed between the backup's threads, kept a
/// 512 MiB SQLite backup at 90-107 MiB of RSS, 68-77 MiB with the threshold held (BENCHMARKS.md).
/// Setting any malloc tunable turns the raising off, and glibc reads tunables only when a
/// process starts, so runbook starts itself once more with the threshold set (same pid,
/// arguments and environment). A `GLIBC_TUNABLES` already set is the operator's and stands.
fn hold_malloc_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        /// Where glibc takes its malloc settings from, when a process starts.
        const GLIBC_TUNABLES: &str = "GLIBC_TUNABLES";
        if std::env::var_os(GLIBC_TUNABLES).is_some() {
            return;
        }
        let mut args = std::env::args_os();
        let Some(arg0) = args.next() else {
            return;
        };
        // `exec` returns only when it failed (no /proc, say): then runbook runs on as it is.
        let _ = std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env(GLIBC_TUNABLES, "glibc.malloc.mmap_threshold=131072")
            .exec();
    }
}

/// clap's usage error on one line: its lines joined, without the "error:" prefix and the
/// pointer to `--help`.
fn usage_line(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.trim_start_matches("error: ").to_string())
        .collect();
    format!("{} (see runbook --help)", lines.join("; "))
}

/// The error chain on one line.
fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decides by the panic itself what to say:
/// - stdout closed under us (`runbook snapshots | head -1`): exit 0 quietly, as Unix tools do;
/// - a panic while repository work runs whose panics `runbook-backup` catches and reports as
///   one error line (the repository library unwinds its worker threads on read and write
///   errors): nothing here, the error line follows;
/// - anything else is a bug: one line with the message and where.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        if runbook_backup::panics_are_reported() {
            return;
        }
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "runbook: internal error at {location}: {}",
            msg.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }));
}

/// Set by `serve`: warnings go into the JSON log instead of plain stderr lines.
pub static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Shows warnings, one line each: all of runbook's own (a file saved before a restore empties a
/// database, a damaged pack moved aside), and of the repository library's, only the archiver's
/// "ignoring error" (a source file left out of the snapshot): its other messages are about
/// errors that fail an operation, which runbook reports once itself. Everything below warning
/// level stays quiet.
struct RepositoryWarnings;

impl log::Log for RepositoryWarnings {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::Level::Warn
            && (meta.target().starts_with("rustic") || meta.target().starts_with("runbook_backup"))
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        let left_out = msg.starts_with("ignoring error");
        if !left_out && !record.target().starts_with("runbook_backup") {
            return;
        }
        let line: String = msg.split_whitespace().collect::<Vec<_>>().join(" ");
        // The library's errors run long; runbook's own warnings are kept whole.
        let short: String = if left_out {
            let first = line.split(" Some additional details").next();
            first.unwrap_or(&line).chars().take(400).collect()
        } else {
            line
        };
        let json = JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed);
        match (left_out, json) {
            (true, true) => tracing::warn!(warning = %short, "left out of the snapshot"),
            (true, false) => eprintln!("runbook: warning: left out of the snapshot: {short}"),
            (false, true) => tracing::warn!(warning = %short, "warning"),
            (false, false) => eprintln!("runbook: warning: {short}"),
        }
    }

    fn flush(&self) {}
}
