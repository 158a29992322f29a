//! Command-line flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod service;

pub use service::*;

/// The version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RUNBOOK_COMMIT"),
    ")"
);

/// Backups that restore: back up, restore, check and prune the data of a service.
#[derive(Debug, Parser)]
#[command(name = "runbook", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "RUNBOOK_CONFIG",
        default_value = "runbook.toml"
    )]
    pub config: PathBuf,
    /// Work on the copy repository NAME (`[repositories.NAME]`) instead of the main one:
    /// for snapshots, restore, forget, check and drill.
    #[arg(long, global = true, value_name = "NAME")]
    pub repository: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented example config, create the data directory and a repository password.
    Init(InitArgs),
    /// Validate the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Back up targets now.
    Backup(BackupArgs),
    /// Copy snapshots to the targets' `copy_to` repositories (what each backup does; this
    /// resumes a copy that was cut off).
    Copy(CopyArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// Restore a snapshot to a path.
    Restore(RestoreArgs),
    /// Apply each target's `keep` rule and prune data no snapshot needs.
    Forget(ForgetArgs),
    /// Verify repositories; optionally read back a share of the data.
    Check(CheckArgs),
    /// Restore drill: restore a snapshot into scratch, check it, measure RTO and data age.
    Drill(DrillArgs),
    /// Reports for an operations log or an audit.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Run the scheduler, the job worker and the HTTP API.
    Serve,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Maintenance tasks (`[tasks.NAME]`): list them, or run one now.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Print shell completions to standard output (`runbook completions bash >
    /// /etc/bash_completion.d/runbook`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output (`runbook man | man -l -`).
    Man,
    /// Print the HTTP API's OpenAPI 3.1 document (as `serve` answers at `/api/openapi.json`),
    /// to generate a client without a running server.
    Openapi,
    /// The repository password: `runbook key rotate`.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Show the operations log, or verify its hash chain.
    Oplog(OplogArgs),
    /// At a glance: health checks, probes, heartbeats and firing alerts. Exits 1 when
    /// something is critical, down or firing.
    Status(StatusArgs),
    /// Run a release's smoke checks once against a base URL (`[smoke.NAME]`, or the standard
    /// health endpoints); exit 1 on any failure.
    Smoke(SmokeArgs),
    /// Secrets with ages (`[secrets.NAME]`).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Alert notifiers.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Also create a small sample SQLite database `app.db` to try runbook on.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Targets to back up.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub targets: Vec<String>,
    /// Back up every configured target.
    #[arg(long)]
    pub all: bool,
    /// Why this backup is taken; recorded in the snapshot.
    #[arg(long, default_value = "manual")]
    pub reason: String,
    /// Tag the snapshot `keep-forever`: retention never removes it (a final backup before a
    /// target is decommissioned: `--reason decommission --keep-forever`).
    #[arg(long)]
    pub keep_forever: bool,
    /// Print the snapshots as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Targets to copy.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub targets: Vec<String>,
    /// Every target that has `copy_to`.
    #[arg(long)]
    pub all: bool,
    /// Only to this repository (default: each of the target's `copy_to`).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only this target.
    pub target: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Target to restore.
    pub target: String,
    /// Snapshot id (or unique prefix), or `latest`.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// Where to write the restored data (files and sqlite targets).
    #[arg(long, required_unless_present = "into", conflicts_with = "into")]
    pub to: Option<PathBuf>,
    /// Database to restore into, on the target's server (postgres targets).
    #[arg(long)]
    pub into: Option<String>,
    /// Keep the dump's object owners (default: objects belong to the restoring user).
    #[arg(long)]
    pub keep_owners: bool,
    /// Parallel restore jobs for PostgreSQL (stages the dump in data_dir, removed afterwards).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Replace the destination if it exists, only once the restore has fully succeeded (a
    /// MariaDB database with views, triggers, routines or events is saved to data_dir/saved,
    /// emptied and loaded, and put back if the load fails).
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Only this target.
    pub target: Option<String>,
    /// Show what would be removed without removing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only this target.
    pub target: Option<String>,
    /// Also read and verify this percentage of the stored data (1-100).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub read_data: Option<f64>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("{s:?} must be between 0 (exclusive) and 100"))
    }
}
