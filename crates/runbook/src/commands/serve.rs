//! `runbook serve`: JSON logs, settings from the environment, graceful shutdown on SIGTERM.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use runbook_backup::Engine;
use runbook_config::Config;
use runbook_server::{AppState, Server, Settings, SystemClock};

pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNBOOK_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    crate::JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
    let env = |k: &str| std::env::var(k).ok();
    let settings = Settings::from_env(env).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // The handlers are installed before anything else, so a SIGTERM at any moment from
        // here on (systemd stopping a service that just started) stops the server cleanly
        // instead of killing it.
        let shutdown = shutdown_signal()?;
        let store = super::store(&config).await?;
        let state =
            AppState::new(Engine::new(config), store, settings, Arc::new(SystemClock)).await?;
        let server = Server::bind(state)
            .await
            .context("cannot bind the listen address")?;
        let addr = server.local_addr()?;
        tracing::info!(%addr, "runbook serve listening");
        eprintln!("runbook: listening on http://{addr}");
        server.run(shutdown).await?;
        tracing::info!("runbook serve stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM or SIGINT, their handlers installed now: the future only waits for one of them.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
