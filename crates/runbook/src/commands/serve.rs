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
        let store = super::store(&config).await?;
        let state =
            AppState::new(Engine::new(config), store, settings, Arc::new(SystemClock)).await?;
        let server = Server::bind(state)
            .await
            .context("cannot bind the listen address")?;
        let addr = server.local_addr()?;
        tracing::info!(%addr, "runbook serve listening");
        eprintln!("runbook: listening on http://{addr}");
        server.run(shutdown_signal()).await?;
        tracing::info!("runbook serve stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
