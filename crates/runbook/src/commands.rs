//! One module per command; `run` dispatches.

mod backup;
mod check;
mod config;
mod copy;
mod drill;
mod forget;
mod init;
mod key;
mod keys;
mod oplog;
mod restore;
mod secrets;
mod serve;
mod smoke;
mod snapshots;
mod status;
mod task;

use std::process::ExitCode;

use anyhow::Context;
use runbook_backup::Engine;
use runbook_config::Config;

use crate::cli::{Cli, Command, ConfigCommand, KeyCommand, ReportCommand};

/// Runs the command; `Ok` carries the exit code for commands that report partial failure.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let copy = cli.repository.as_deref();
    match cli.command {
        Command::Init(args) => init::run(&cli.config, &args),
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", runbook_config::EXAMPLE_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { json, offline },
        } => config::check(&load(&cli.config)?, json, offline),
        Command::Snapshots(args) => snapshots::run(&on(&cli.config, copy)?, &args),
        Command::Restore(args) => restore::run(&on(&cli.config, copy)?, &args),
        Command::Forget(args) => forget::run(&on(&cli.config, copy)?, &args),
        Command::Check(args) => check::run(&on(&cli.config, copy)?, &args),
        Command::Drill(args) => drill::run(&on(&cli.config, copy)?, &args),
        _ if copy.is_some() => anyhow::bail!(
            "--repository is for snapshots, restore, forget, check and drill; backups go to the main repository and reach copies through copy_to"
        ),
        Command::Backup(args) => backup::run(&engine(&cli.config)?, &args),
        Command::Copy(args) => copy::run(&engine(&cli.config)?, &args),
        Command::Report {
            command:
                ReportCommand::Drills {
                    since,
                    target,
                    format,
                },
        } => drill::report(&load(&cli.config)?, &since, target.as_deref(), &format),
        Command::Report {
            command: ReportCommand::Runbook { format },
        } => status::report(load(&cli.config)?, &format),
        Command::Serve => serve::run(load(&cli.config)?),
        Command::Keys { command } => keys::run(&load(&cli.config)?, command),
        Command::Task { command } => task::run(&Engine::new(load(&cli.config)?), command),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "runbook",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", runbook_server::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut std::io::stdout())
                .context("cannot write the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Key {
            command: KeyCommand::Rotate { json },
        } => key::rotate(&Engine::new(load(&cli.config)?), json),
        Command::Oplog(args) => oplog::run(&load(&cli.config)?, &args),
        Command::Status(args) => status::run(load(&cli.config)?, &args),
        Command::Smoke(args) => smoke::run(&load(&cli.config)?, &args),
        Command::Secrets { command } => secrets::run(load(&cli.config)?, command),
        Command::Notify {
            command: crate::cli::NotifyCommand::Test { name },
        } => status::notify_test(load(&cli.config)?, &name),
    }
}

/// The configuration with the seeds' `BACKUP_*` variables applied: every command sees the
/// same targets, schedules and retention as `serve`.
fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let mut config = Config::load(path).context("invalid configuration")?;
    runbook_config::apply_seed_env(&mut config, |k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?;
    Ok(config)
}

fn engine(path: &std::path::Path) -> anyhow::Result<Engine> {
    Ok(Engine::new(load(path)?))
}

/// The engine for the repository `--repository` names, else the main one.
fn on(path: &std::path::Path, copy: Option<&str>) -> anyhow::Result<Engine> {
    let engine = engine(path)?;
    match copy {
        Some(name) => Ok(engine.on_copy(name)?),
        None => Ok(engine),
    }
}

/// The targets a command works on: the one named, or all of them.
fn selected(engine: &Engine, target: Option<&String>) -> anyhow::Result<Vec<String>> {
    match target {
        Some(name) => Ok(vec![engine.config().target(name)?.name.clone()]),
        None => Ok(engine.config().targets.keys().cloned().collect()),
    }
}

/// The targets named on the command line (all checked before any work starts), or every
/// configured target with `--all`.
fn named_or_all(engine: &Engine, names: &[String], all: bool) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = if all {
        engine.config().targets.keys().cloned().collect()
    } else {
        for name in names {
            engine.config().target(name)?;
        }
        names.to_vec()
    };
    if names.is_empty() {
        anyhow::bail!(
            "no targets configured in {}",
            engine.config().file.display()
        );
    }
    Ok(names)
}

/// Exit code for a command that ran on several targets, `failed` of which failed.
fn exit_code(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A runtime for the async state store, for commands that are otherwise synchronous.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Opens the state store named by the config.
async fn store(config: &Config) -> anyhow::Result<runbook_store::Store> {
    if let Some(dir) = config
        .state_url
        .strip_prefix("sqlite://")
        .and_then(|p| std::path::Path::new(p).parent())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let store = runbook_store::Store::open(&config.state_url)
        .await
        .context("state store")?;
    // The ops log's head is anchored outside the database, authenticated by the repository
    // password; without a password there is nothing to authenticate it with.
    Ok(match config.password() {
        Err(_) => store,
        // Keyed from the file as it reads at each append: a `serve` that runs through
        // `runbook key rotate` keeps anchoring with the current password.
        Ok(_) if std::env::var(runbook_config::ENV_PASSWORD).is_ok_and(|v| !v.is_empty()) => store
            .with_anchor(runbook_store::Anchor::new(
                config.data_dir.join("oplog.anchor"),
                &config.password()?,
            )),
        Ok(_) => store.with_anchor(runbook_store::Anchor::from_password_file(
            config.data_dir.join("oplog.anchor"),
            config.repository.password_file.clone(),
        )),
    })
}

/// Records a CLI mutation in the ops log (actor `cli`). The operation itself has already
/// happened; when its entry cannot be written the command must not report success, so this
/// prints one error line and returns false, and the caller exits nonzero.
#[must_use]
fn audit(config: &Config, action: &str, target: &str, outcome: &str, detail: String) -> bool {
    match try_audit(config, action, target, outcome, detail) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "runbook: error: target `{target}`: {action} {outcome}, but it could not be recorded in the ops log: {e:#}"
            );
            false
        }
    }
}

fn try_audit(
    config: &Config,
    action: &str,
    target: &str,
    outcome: &str,
    detail: String,
) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let store = store(config).await?;
        let entry = runbook_store::NewEntry {
            actor: "cli".into(),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
            detail,
        };
        store
            .append(entry, jiff::Timestamp::now().as_millisecond())
            .await?;
        Ok(())
    })
}
