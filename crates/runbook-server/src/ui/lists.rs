//! The dashboard's lists: jobs, the ops log (filterable, with its verification status) and
//! the monitor (probes, heartbeats, alerts).

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Viewer, badge, page, signed_in};
use crate::{AppState, error::AppError, monitor};

fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

async fn render<F>(state: &AppState, headers: &HeaderMap, title: &str, body: F) -> Response
where
    F: AsyncFnOnce(&Viewer) -> Result<Markup, AppError>,
{
    let v = match signed_in(state, headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match body(&v).await {
        Ok(m) => page(title, Some(&v), m),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn jobs(State(state): State<AppState>, headers: HeaderMap) -> Response {
    render(&state, &headers, "Jobs", async |_v| {
        let jobs = state.store.jobs(None, 100).await?;
        Ok(html! {
            @if jobs.is_empty() { p { "No jobs yet." } }
            table.jobs {
                thead { tr { th { "Created" } th { "Kind" } th { "Target" } th { "State" } th { "By" } th { "Error" } } }
                tbody {
                    @for j in &jobs {
                        tr {
                            td { a href={"/jobs/" (j.id)} { (when(j.created_at)) } }
                            td { (j.kind.as_str()) }
                            td { a href={"/targets/" (j.target)} { (j.target) } }
                            td { (badge(j.state.as_str())) }
                            td { small { (j.requested_by) } }
                            td.error { (j.error.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
        })
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct OplogQuery {
    #[serde(default)]
    q: String,
}

pub(crate) async fn oplog(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<OplogQuery>,
) -> Response {
    render(&state, &headers, "Operations log", async |_v| {
        let verified = state.store.verify_oplog().await?;
        let needle = f.q.trim().to_lowercase();
        let entries: Vec<_> = state
            .store
            .oplog(1000)
            .await?
            .into_iter()
            .filter(|e| {
                needle.is_empty()
                    || [&e.actor, &e.action, &e.target, &e.outcome, &e.detail]
                        .iter()
                        .any(|s| s.to_lowercase().contains(&needle))
            })
            .take(200)
            .collect();
        Ok(html! {
            @match &verified {
                Ok(n) => p { (badge("ok")) " hash chain intact over " (n) " entries" }
                Err(bad) => p { (badge("critical")) " tampered: " (bad.to_string()) }
            }
            form.filter method="get" action="/oplog" role="search" {
                label for="q" { "Filter" }
                input id="q" name="q" value=(f.q) placeholder="action, target, who…";
                button type="submit" { "Filter" }
            }
            table.oplog {
                thead { tr { th { "#" } th { "Time" } th { "Who" } th { "Action" } th { "Target" } th { "Outcome" } th { "Detail" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (e.seq) }
                            td { (when(e.ts)) }
                            td { small { (e.actor) } }
                            td { (e.action) }
                            td { (e.target) }
                            td { (e.outcome) }
                            td { small { (e.detail) } }
                        }
                    }
                }
            }
        })
    })
    .await
}

pub(crate) async fn monitor(State(state): State<AppState>, headers: HeaderMap) -> Response {
    render(&state, &headers, "Monitor", async |_v| {
        let s = crate::status::summary(&state).await?;
        let now = state.clock.now_ms();
        let recent = state.store.alerts(20).await?;
        let facts = monitor::heartbeat_states(&state, now).await?;
        Ok(html! {
            section aria-labelledby="alerts-h" {
                h2 id="alerts-h" { "Alerts" }
                @if recent.is_empty() { p { "No alert has fired." } }
                table.alerts {
                    thead { tr { th { "Rule" } th { "Subject" } th { "State" } th { "Fired" } th { "Resolved" } th { "Why" } } }
                    tbody {
                        @for a in &recent {
                            tr {
                                td { (a.rule) } td { (a.subject) } td { (badge(&a.state)) }
                                td { (when(a.fired_at)) } td { (a.resolved_at.map(when).unwrap_or_default()) }
                                td { small { (a.message) } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="probes-h" {
                h2 id="probes-h" { "Probes" }
                @if s.probes.is_empty() { p { "No probes configured ([probes.NAME])." } }
                table.probes {
                    tbody { @for l in &s.probes { tr { td { (l.name) } td { (badge(&l.status)) } td { small { (l.message) } } } } }
                }
            }
            section aria-labelledby="heartbeats-h" {
                h2 id="heartbeats-h" { "Heartbeats" }
                @if facts.is_empty() { p { "No heartbeats configured ([heartbeats.NAME])." } }
                table.heartbeats {
                    tbody {
                        @for l in &s.heartbeats {
                            tr {
                                td { (l.name) } td { (badge(&l.status)) } td { small { (l.message) } }
                                td { small { (facts.get(&l.name).and_then(|(st, _)| st.next_due).map(|d| format!("next ping expected by {}", when(d))).unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
        })
    })
    .await
}
