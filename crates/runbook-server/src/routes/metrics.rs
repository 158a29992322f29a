//! `/metrics`: this process's counters plus per-target facts from the repository and the
//! state store.

use axum::{extract::State, http::header, response::IntoResponse};

use super::api::ApiResult;
use crate::AppState;

/// Prometheus metrics
///
/// The text exposition format, or OpenMetrics when the `Accept` header asks for it.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses(
    (status = 200, description = "metric families", content(
        (String = "text/plain; version=0.0.4"),
        (String = "application/openmetrics-text; version=1.0.0")))))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let mut targets = Vec::new();
    for t in state.engine.config().targets.keys() {
        // However the backup was made: by this service, the CLI or a cron job.
        let last = state.last_backup_ms(t).await.unwrap_or(None);
        #[allow(clippy::cast_precision_loss)]
        targets.push((t.clone(), last.map(|ms| ms as f64 / 1000.0)));
    }
    let mut drills = Vec::new();
    for t in state.engine.config().targets.keys() {
        let last = state.store.last_drill(t, None).await?.map(|r| r.drill);
        let passed = state
            .store
            .last_drill(t, Some("passed"))
            .await?
            .map(|r| r.drill);
        if last.is_none() && state.engine.config().targets[t].drill.is_none() {
            continue;
        }
        drills.push(crate::metrics::DrillFacts {
            target: t.clone(),
            last_success_ms: passed.map(|d| d.finished_at),
            restore_ms: last.as_ref().and_then(|d| d.restore_ms),
            data_age_ms: last.as_ref().and_then(|d| d.data_age_ms),
            failures: state.store.drill_failures(t).await?,
        });
    }
    let now = state.clock.now_ms();
    let mut monitor = crate::metrics::MonitorFacts::default();
    let tracks = state.monitor.tracks();
    for name in state.engine.config().monitor.probes.keys() {
        if let Some(last) = tracks.get(name).and_then(|t| t.last.as_ref()) {
            #[allow(clippy::cast_precision_loss)]
            monitor
                .probes
                .push((name.clone(), last.ok, last.duration_ms as f64 / 1000.0));
        }
    }
    for (name, (status, _)) in crate::monitor::heartbeat_states(&state, now).await? {
        monitor
            .heartbeats
            .push((name, matches!(status.state, "up" | "late")));
    }
    monitor.heartbeats.sort();
    let mut firing = std::collections::BTreeMap::<String, i64>::new();
    for a in state.store.firing_alerts().await? {
        *firing.entry(a.rule).or_default() += 1;
    }
    for rule in state.engine.config().monitor.alerts.keys() {
        firing.entry(rule.clone()).or_default();
    }
    monitor.firing = firing.into_iter().collect();
    let cluster = crate::cluster::view(&state).await?;
    monitor.instances = i64::try_from(cluster.instances.len()).unwrap_or(i64::MAX);
    monitor.leader = cluster.leader.as_ref() == Some(&cluster.instance);
    let text = state.metrics.render(&targets, &drills, &monitor);
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    Ok(if openmetrics {
        ([(header::CONTENT_TYPE, crate::metrics::OPENMETRICS)], text)
    } else {
        (
            [(header::CONTENT_TYPE, crate::metrics::TEXT)],
            crate::metrics::to_text_format(&text),
        )
    })
}
