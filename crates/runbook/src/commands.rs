//! One module per command; `run` dispatches.

mod backup;
mod check;
mod config;
mod forget;
mod init;
mod restore;
mod snapshots;

use std::process::ExitCode;

use anyhow::Context;
use runbook_backup::Engine;
use runbook_config::Config;

use crate::cli::{Cli, Command, ConfigCommand};

/// Runs the command; `Ok` carries the exit code for commands that report partial failure.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init::run(&cli.config, &args),
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", runbook_config::EXAMPLE_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { json },
        } => config::check(&load(&cli.config)?, json),
        Command::Backup(args) => backup::run(&engine(&cli.config)?, &args),
        Command::Snapshots(args) => snapshots::run(&engine(&cli.config)?, &args),
        Command::Restore(args) => restore::run(&engine(&cli.config)?, &args),
        Command::Forget(args) => forget::run(&engine(&cli.config)?, &args),
        Command::Check(args) => check::run(&engine(&cli.config)?, &args),
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).context("invalid configuration")
}

fn engine(path: &std::path::Path) -> anyhow::Result<Engine> {
    Ok(Engine::new(load(path)?))
}

/// The targets a command works on: the one named, or all of them.
fn selected(engine: &Engine, target: Option<&String>) -> anyhow::Result<Vec<String>> {
    match target {
        Some(name) => Ok(vec![engine.config().target(name)?.name.clone()]),
        None => Ok(engine.config().targets.keys().cloned().collect()),
    }
}

/// Exit code for a command that ran on several targets, `failed` of which failed.
fn exit_code(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
