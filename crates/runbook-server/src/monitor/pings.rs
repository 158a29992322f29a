//! Heartbeat pings are buffered in memory and written together: a ping is answered without
//! waiting for the state store, and the buffer is written every 100 ms by `serve`, and
//! before anything reads heartbeats (the API, rules, `runbook status`), so reads always see
//! every ping answered. A crash loses at most the last 100 ms of pings; the job pings again
//! on its next run.

use std::sync::{Mutex, PoisonError};

use runbook_store::HeartbeatEvent;

use crate::AppState;

/// A buffer this long is written by the ping that filled it (back-pressure).
const MAX_BUFFERED: usize = 20_000;

/// Pings answered and not yet written.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    events: Mutex<Vec<HeartbeatEvent>>,
    /// One writer at a time, so events are written in the order they came.
    writing: tokio::sync::Mutex<()>,
}

/// Adds a ping; true when the buffer is full and the caller should write it.
pub(crate) fn push(state: &AppState, event: HeartbeatEvent) -> bool {
    let mut events = state
        .monitor
        .pings
        .events
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    events.push(event);
    events.len() >= MAX_BUFFERED
}

/// Writes the buffered pings in one transaction; on failure they are kept for the next try.
///
/// # Errors
/// State-store errors.
pub(crate) async fn flush(state: &AppState) -> Result<(), runbook_store::Error> {
    let buffer = &state.monitor.pings;
    let _one = buffer.writing.lock().await;
    let events = std::mem::take(&mut *buffer.events.lock().unwrap_or_else(PoisonError::into_inner));
    if events.is_empty() {
        return Ok(());
    }
    if let Err(e) = state.store.heartbeat_apply(&events).await {
        let mut kept = buffer.events.lock().unwrap_or_else(PoisonError::into_inner);
        let newer = std::mem::replace(&mut *kept, events);
        kept.extend(newer);
        return Err(e);
    }
    Ok(())
}

/// Writes the buffer every 100 ms until told to stop (and once more then).
pub(crate) async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = flush(&state).await {
            tracing::error!(error = %e, "cannot write heartbeat pings; keeping them for the next try");
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
        }
    }
}
