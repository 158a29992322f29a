//! `runbook`: the command-line binary. Flag definitions and wiring only; the work lives in the
//! library crates.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("runbook: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error chain on one line.
fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
