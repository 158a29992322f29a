//! The monitor: probes run on their intervals, heartbeats judged against their schedules,
//! alert rules evaluated over both, and runbook's own health turned into built-in signals.
//!
//! [`tick`] does one round at the clock's time, so tests drive it without sleeping: it runs the
//! probes that are due (concurrently), stores their results, then evaluates every rule and
//! moves its alert along through [`crate::notify::raise`]. Raw probe results stay in memory
//! (as many as the rules look back over); the store keeps each probe's latest result and
//! hourly rollups, compacted to daily ones after 30 days, so state stays small.

mod cert;
pub(crate) mod heartbeat;
pub(crate) mod pings;
pub(crate) mod probe;
pub(crate) mod prom;
mod rules;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
};

use runbook_config::monitor::{AlertRule, Probe, Subject, When};
use runbook_store::ProbeResult;

use rules::{heartbeat_rule, probe_rule};

use crate::{
    AppState,
    notify::{AlertSpec, raise},
};

/// Results kept per probe for the rules (besides the window they look back over).
const KEEP_RESULTS: usize = 64;
const DAY_MS: i64 = 86_400_000;
/// Hourly rollups older than this become daily ones.
const HOURLY_DAYS: i64 = 30;
/// Daily rollups older than this go.
const DAILY_DAYS: i64 = 400;
/// Probes checked at once (a thousand due together do not open a thousand connections).
const IN_FLIGHT: usize = 64;
/// Built-in signals are looked at this often.
const SIGNALS_EVERY_MS: i64 = 60_000;

/// What the monitor holds in memory.
#[derive(Debug)]
pub(crate) struct MonitorState {
    tracks: Mutex<HashMap<String, Track>>,
    http: http_client::Client,
    /// When built-in signals and housekeeping last ran.
    last_signals: Mutex<Option<i64>>,
    last_housekeeping: Mutex<Option<i64>>,
    pub(crate) pings: pings::Buffer,
}

impl Default for MonitorState {
    fn default() -> Self {
        Self {
            tracks: Mutex::default(),
            http: probe::client(),
            last_signals: Mutex::default(),
            last_housekeeping: Mutex::default(),
            pings: pings::Buffer::default(),
        }
    }
}

/// One probe's recent past.
#[derive(Debug, Default, Clone)]
pub(crate) struct Track {
    next_due: i64,
    /// (time, passed), oldest first.
    recent: VecDeque<(i64, bool)>,
    /// The first failure since the last success.
    failing_since: Option<i64>,
    /// A prometheus probe's sums over the window its conditions look back over.
    sums: VecDeque<(i64, Vec<f64>)>,
    pub(crate) last: Option<ProbeResult>,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Probes run.
    pub probes_run: usize,
    /// Rules whose condition holds now.
    pub firing: Vec<String>,
}

impl MonitorState {
    pub(crate) fn tracks(&self) -> HashMap<String, Track> {
        self.tracks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How far back the rules on `probe` look.
fn window_ms(rules: &[&AlertRule], probe: &str) -> i64 {
    rules
        .iter()
        .filter(|r| *r.when.subject() == Subject::Probe(probe.to_string()))
        .map(|r| match &r.when {
            When::Failures { within, .. } => probe::ms(*within),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// One round of the monitor at the clock's time.
///
/// # Errors
/// State-store errors.
pub async fn tick(state: &AppState) -> Result<TickReport, runbook_store::Error> {
    let now = state.clock.now_ms();
    let config = state.engine.config().monitor.clone();
    let mut report = TickReport::default();
    let first = state
        .monitor
        .tracks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty();
    if first && !config.probes.is_empty() {
        // After a restart, a probe that was failing keeps its failing-since time.
        let stored = state.store.probe_statuses().await?;
        let mut tracks = state
            .monitor
            .tracks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for s in stored {
            if config.probes.contains_key(&s.last.probe) {
                tracks.insert(
                    s.last.probe.clone(),
                    Track {
                        failing_since: (!s.last.ok).then_some(s.since),
                        ..Track::default()
                    },
                );
            }
        }
    }
    let due: Vec<Probe> = {
        let tracks = state
            .monitor
            .tracks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        config
            .probes
            .values()
            .filter(|p| tracks.get(&p.name).is_none_or(|t| t.next_due <= now))
            .cloned()
            .collect()
    };
    let mut set = tokio::task::JoinSet::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    for p in due {
        let http = state.monitor.http.clone();
        let slots = slots.clone();
        set.spawn(async move {
            // Closed never: the semaphore lives until every probe of this tick is done.
            let _slot = slots.acquire_owned().await.ok();
            let outcome = probe::run(&p, &http).await;
            (p, outcome)
        });
    }
    let rules: Vec<&AlertRule> = config.alerts.values().collect();
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        let Ok((p, mut outcome)) = joined else {
            continue;
        };
        let window = window_ms(&rules, &p.name);
        let mut tracks = state
            .monitor
            .tracks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let t = tracks.entry(p.name.clone()).or_default();
        if outcome.ok && !p.series.is_empty() {
            let look_back = p
                .series
                .iter()
                .flat_map(|c| c.selectors())
                .filter_map(|term| term.increase)
                .map(probe::ms)
                .max()
                .unwrap_or(0);
            t.sums.push_back((now, std::mem::take(&mut outcome.sums)));
            // Keep one sample at or before the longest window's start.
            while t.sums.len() > 2 && t.sums.get(1).is_some_and(|(at, _)| *at <= now - look_back) {
                t.sums.pop_front();
            }
            if let Err(e) = prom::judge(&p.series, &t.sums) {
                outcome.ok = false;
                outcome.error = Some(e);
            }
        }
        let result = ProbeResult {
            probe: p.name.clone(),
            ok: outcome.ok,
            at: now,
            duration_ms: outcome.duration_ms,
            error: outcome.error,
        };
        t.next_due = now + probe::ms(p.interval);
        t.recent.push_back((now, result.ok));
        while t.recent.len() > KEEP_RESULTS
            && t.recent.front().is_some_and(|(at, _)| *at < now - window)
        {
            t.recent.pop_front();
        }
        t.failing_since = if result.ok {
            None
        } else {
            t.failing_since.or(Some(now))
        };
        t.last = Some(result.clone());
        results.push(result);
    }
    report.probes_run = results.len();
    if !results.is_empty() {
        state.store.record_probe_results(&results).await?;
    }
    let heartbeats = heartbeat_states(state, now).await?;
    for rule in config.alerts.values() {
        let (firing, message) = match rule.when.subject() {
            Subject::Probe(name) => {
                let t = state
                    .monitor
                    .tracks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(name)
                    .cloned()
                    .unwrap_or_default();
                probe_rule(&rule.when, &t, now)
            }
            Subject::Heartbeat(name) => {
                let Some((status, runs)) = heartbeats.get(name) else {
                    continue;
                };
                heartbeat_rule(&rule.when, status, runs, now)
            }
        };
        if firing {
            report.firing.push(rule.name.clone());
        }
        let subject = rule.when.subject().to_string();
        let spec = AlertSpec {
            rule: &rule.name,
            subject: &subject,
            severity: rule.severity,
            repeat: rule.repeat,
            notify: &rule.notify,
        };
        raise(state, &spec, firing, &message).await?;
    }
    if due_every(&state.monitor.last_signals, now, SIGNALS_EVERY_MS) {
        crate::signals::evaluate(state).await?;
    }
    if due_every(&state.monitor.last_housekeeping, now, DAY_MS / 24) {
        housekeeping(state, now).await?;
    }
    Ok(report)
}

/// True (and remembers `now`) when `every` has passed since the last time.
fn due_every(last: &Mutex<Option<i64>>, now: i64, every: i64) -> bool {
    let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
    if last.is_some_and(|l| now - l < every && l <= now) {
        return false;
    }
    *last = Some(now);
    true
}

type HeartbeatFacts = (heartbeat::Status, Vec<runbook_store::HeartbeatRun>);

/// Each heartbeat's state and recent runs; a started run past `max_runtime` is recorded as a
/// failed run here (once).
pub(crate) async fn heartbeat_states(
    state: &AppState,
    now: i64,
) -> Result<HashMap<String, HeartbeatFacts>, runbook_store::Error> {
    pings::flush(state).await?;
    let mut out = HashMap::new();
    for hb in state.engine.config().monitor.heartbeats.values() {
        let mut row = state.store.heartbeat(&hb.name, now).await?;
        if let (Some(start), Some(max)) = (row.started_at, hb.max_runtime)
            && now > start + probe::ms(max)
        {
            state
                .store
                .heartbeat_overran(&hb.name, start + probe::ms(max), probe::ms(max))
                .await?;
            row = state.store.heartbeat(&hb.name, now).await?;
        }
        let status = heartbeat::status(hb, &row, now);
        let runs = state.store.heartbeat_runs(&hb.name, 20).await?;
        out.insert(hb.name.clone(), (status, runs));
    }
    Ok(out)
}

/// Hourly rollups become daily ones after 30 days, daily ones go after 400; probes no longer
/// configured go; heartbeats keep their last 100 runs.
async fn housekeeping(state: &AppState, now: i64) -> Result<(), runbook_store::Error> {
    let today = now - now.rem_euclid(DAY_MS);
    let monitor = &state.engine.config().monitor;
    let keep: Vec<String> = monitor.probes.keys().cloned().collect();
    state
        .store
        .compact_probe_data(
            today - HOURLY_DAYS * DAY_MS,
            today - DAILY_DAYS * DAY_MS,
            &keep,
        )
        .await?;
    for name in monitor.heartbeats.keys() {
        state.store.expire_heartbeat_runs(name).await?;
    }
    Ok(())
}

/// Runs [`tick`] every second until told to stop.
pub(crate) async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        // Probes and alert rules run on the leader only (see `cluster`).
        if state.instance.is_leader()
            && let Err(e) = tick(&state).await
        {
            tracing::error!(error = %e, "monitor tick failed");
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}
