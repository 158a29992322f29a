//! Flags of the service and operations commands: smoke, status, secrets, notify, drill,
//! reports, tasks, keys, the ops log and config.

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Where the release runs, e.g. https://staging.example.com.
    #[arg(long)]
    pub base_url: String,
    /// The `[smoke.NAME]` suite (default: the only one; with none, /healthz, /readyz,
    /// /health/live and /health/ready).
    #[arg(long)]
    pub suite: Option<String>,
    /// Also write JUnit XML here, for CI.
    #[arg(long)]
    pub junit: Option<std::path::PathBuf>,
    /// Seconds each request may take.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Each secret's age and due date (never its value); exit 1 when one is overdue.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record that a secret was rotated now.
    Rotated {
        /// The secret.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test notice through a notifier now (`webhook`, `email` or a `[notifiers.NAME]`).
    Test {
        /// The notifier.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Targets to drill.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub targets: Vec<String>,
    /// Drill every configured target.
    #[arg(long)]
    pub all: bool,
    /// Snapshot id (or unique prefix) instead of the target's `drill.snapshot` choice.
    #[arg(long, conflicts_with = "backup_first")]
    pub snapshot: Option<String>,
    /// Back up first (reason `restore-drill`) and drill that fresh snapshot.
    #[arg(long)]
    pub backup_first: bool,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The restore drills of a period: date, snapshot, RTO, RPO, outcome, failing checks.
    Drills {
        /// How far back: 90d, 12w, 48h.
        #[arg(long, default_value = "90d")]
        since: String,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// md (a Markdown table) or json.
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
    /// The operations runbook of this installation, from the configuration and the records:
    /// targets, schedules, retention, last backups and drills, restore commands, alerts, secrets.
    Runbook {
        /// md (Markdown) or html (one standalone page).
        #[arg(long, default_value = "md", value_parser = ["md", "html"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// The configured tasks, their kinds and schedules.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a task now (as `serve` runs it on its schedule), recorded in the ops log.
    Run {
        /// The task (`[tasks.NAME]`).
        name: String,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// A new repository password: added to every repository (restic's key format), switched in
    /// the password file atomically, then the old one removed. Killed at any point, the file
    /// opens every repository; run it again to finish.
    Rotate {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the secret is printed once.
    Create {
        /// owner, operator (dispatcher) or readonly.
        #[arg(long)]
        role: String,
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key id from `keys list`.
        id: String,
    },
    /// Issue a successor of a key (same name and role; the secret is printed once) and revoke
    /// the old one after an overlap, so clients can switch over.
    Rotate {
        /// The key id from `keys list`.
        id: String,
        /// How long the old key keeps working: 24h, 7d, 0.
        #[arg(long, default_value = "24h")]
        overlap: String,
        /// Print the new key as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct OplogArgs {
    #[command(subcommand)]
    pub command: Option<OplogCommand>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Debug, Subcommand)]
pub enum OplogCommand {
    /// Check the hash chain; exits nonzero naming the first bad entry.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config file, the sources it names and the repository password.
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Do not connect to database servers (by default each database target's server and
        /// database must answer).
        #[arg(long)]
        offline: bool,
    },
    /// Print the example configuration.
    Example,
}
