//! `runbook serve`: the scheduler, the job worker and the secured HTTP API, all reading and
//! writing the same state store.
//!
//! [`Server::bind`] binds a listener (port 0 works in tests) and [`Server::run`] serves until a
//! shutdown future resolves. The worker exposes one step, [`worker::try_execute_next`], and the
//! scheduler one tick, [`scheduler::tick`]; both take the time from a [`Clock`] so tests drive
//! them without sleeping.

mod auth;
mod clock;
pub mod cluster;
mod error;
mod metrics;
mod middleware;
pub mod monitor;
pub mod notify;
pub mod ops;
mod ratelimit;
pub mod report;
mod routes;
pub mod scheduler;
pub mod secrets;
mod signals;
pub mod smoke;
mod state;
pub mod status;
pub mod tasks;
mod ui;
pub mod worker;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

pub use clock::{Clock, ManualClock, SystemClock};
pub use routes::openapi_json;
pub use runbook_config::Settings;
pub use state::AppState;

/// The HTTP API as a router, without a listener or the background loop: for router tests with
/// `tower::ServiceExt::oneshot` and for fuzzing. Each request needs a
/// `ConnectInfo<SocketAddr>` extension (the server adds it).
pub fn router(state: AppState) -> axum::Router {
    routes::router(state)
}

/// A bound, not yet running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    background: bool,
}

impl Server {
    /// Binds `state.settings.listen`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(state: AppState) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(state.settings.listen).await?;
        Ok(Self {
            listener,
            state,
            background: true,
        })
    }

    /// Serves the API only: no scheduler and no worker (tests drive [`scheduler::tick`] and
    /// [`worker::try_execute_next`] themselves).
    #[must_use]
    pub fn api_only(mut self) -> Self {
        self.background = false;
        self
    }

    /// The bound address (the real port when 0 was asked for).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the API and runs the scheduler and worker until `shutdown` resolves; then stops
    /// accepting requests and gives a running job `settings.shutdown_grace` to finish.
    ///
    /// # Errors
    /// Server I/O errors.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let background = if self.background {
            // Leadership first, so a lone instance leads from its first tick.
            if let Err(e) = cluster::step(&state).await {
                tracing::error!(error = %e, "cluster step failed");
            }
            let leases = tokio::spawn(cluster::run(state.clone(), stop_rx.clone()));
            let monitor = tokio::spawn(monitor::run(state.clone(), stop_rx.clone()));
            let worker = tokio::spawn(background(state.clone(), stop_rx.clone()));
            let pings = tokio::spawn(monitor::pings::run(state.clone(), stop_rx));
            tokio::spawn(async move {
                let _ = tokio::join!(leases, monitor, worker, pings);
            })
        } else {
            // Tests drive the monitor; pings are still written (reads flush them first).
            tokio::spawn(monitor::pings::run(state.clone(), stop_rx))
        };
        let app = routes::router(state.clone());
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        let _ = stop_tx.send(true);
        let grace = state.settings.shutdown_grace;
        if tokio::time::timeout(grace, background).await.is_err() {
            worker::abandon_running(&state).await;
        }
        Ok(())
    }
}

/// At start: scratch left by drills that were killed (files, scratch databases) is removed and
/// reported in the log and the ops log.
async fn remove_drill_leftovers(state: &AppState) {
    for target in state.engine.config().targets.keys() {
        let engine = state.engine.clone();
        let name = target.clone();
        let cleaned =
            tokio::task::spawn_blocking(move || runbook_drill::clean_leftovers(&engine, &name))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
        match cleaned {
            Ok(removed) => {
                for left in removed {
                    tracing::warn!(target_name = %target, leftover = %left, "removed scratch left by an interrupted drill");
                    // A failure is logged by `audit`; the cleanup itself is done.
                    let _ = state
                        .audit("worker", "drill.cleanup", target, "ok", left)
                        .await;
                }
            }
            Err(e) => {
                tracing::error!(target_name = %target, error = %e, "cannot remove scratch left by an interrupted drill");
            }
        }
    }
}

/// Scheduler ticks and worker steps until told to stop.
async fn background(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    // On a SQLite store this is the only instance: every running job is its own from before
    // the stop, whatever its lease says. On PostgreSQL, jobs whose lease still holds run on
    // another instance.
    let horizon = if state.store.engine() == runbook_store::Engine::Sqlite {
        i64::MAX
    } else {
        state.clock.now_ms()
    };
    if let Err(e) = cluster::requeue_interrupted(&state, horizon).await {
        tracing::error!(error = %e, "cannot recover interrupted jobs");
    }
    remove_drill_leftovers(&state).await;
    // Open every repository once now, so the first look at the dashboard or the API after a
    // start does not wait for each repository's key derivation (about 0.3 s each).
    let warm = state.clone();
    tokio::spawn(async move {
        for name in warm.engine.config().targets.keys() {
            // A repository that cannot be read is logged there and shows in /api/health.
            let _ = warm.snapshot_list(name).await;
        }
    });
    loop {
        if *stop.borrow() {
            return;
        }
        // Schedules and notice delivery run on the leader only (one instance at a time).
        if state.instance.is_leader() {
            if let Err(e) = scheduler::tick(&state).await {
                tracing::error!(error = %e, "scheduler tick failed");
            }
            if let Err(e) = notify::deliver_due(&state).await {
                tracing::error!(error = %e, "alert delivery step failed");
            }
        }
        match worker::try_execute_next(&state).await {
            Ok(worker::Outcome::Ran(_)) => continue,
            Ok(worker::Outcome::Idle) => {}
            Err(e) => tracing::error!(error = %e, "worker step failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Shared pointer to a clock.
pub type SharedClock = Arc<dyn Clock>;
