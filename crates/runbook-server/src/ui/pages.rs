//! The dashboard's pages: the overview (one status per target, alerts, security), a target
//! (snapshots, drills, actions by role) and a job (its state, updated without reload).

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use maud::{Markup, html};
use runbook_store::Role;
use serde::Deserialize;

use super::{
    Viewer, badge,
    charts::{chart, rto_chart},
    page, page_status, signed_in,
};
use crate::{AppState, error::AppError, report::when, routes::health};

const PAGE: usize = 50;
const DAY_MS: i64 = 86_400_000;

/// `3 h 20 min`, `2 d 4 h`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

pub(super) fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", f / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", f / 1_048_576.0),
        _ => format!("{:.2} GiB", f / 1_073_741_824.0),
    }
}

/// A target's status: the worst of its health checks, and why in words.
fn target_status(checks: &[health::Check], target: &str) -> (&'static str, Vec<String>) {
    let mine: Vec<&health::Check> = checks
        .iter()
        .filter(|c| {
            c.name
                .split_once(':')
                .is_some_and(|(_, rest)| rest == target || rest.starts_with(&format!("{target}:")))
        })
        .collect();
    let worst = health::worst(mine.iter().map(|c| c.status));
    let why = mine
        .iter()
        .filter(|c| c.status != "ok")
        .map(|c| c.message.clone())
        .collect();
    (worst, why)
}

pub(crate) async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let v = match signed_in(&state, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match overview_body(&state, &v).await {
        Ok(body) => page("Overview", Some(&v), body),
        Err(e) => e.into_response(),
    }
}

async fn overview_body(state: &AppState, v: &Viewer) -> Result<Markup, AppError> {
    let now = state.clock.now_ms();
    let checks = health::checks(state).await?;
    let alerts = state.store.firing_alerts().await?;
    let mut warnings: Vec<String> = checks
        .iter()
        .filter(|c| {
            (matches!(c.name.as_str(), "auth" | "disk" | "repository")
                || c.name.starts_with("secret:"))
                && c.status != "ok"
        })
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    if v.may(Role::Owner) {
        for k in state.store.keys().await? {
            let last = k.last_used_at.unwrap_or(k.created_at);
            if k.revoked_at.is_none() && now - last > 90 * DAY_MS {
                warnings.push(format!(
                    "key {} ({}) unused for {} days: revoke it if nobody needs it",
                    k.name,
                    k.id,
                    (now - last) / DAY_MS
                ));
            }
        }
    }
    let disk = checks
        .iter()
        .find(|c| c.name == "disk")
        .map(|c| c.message.clone());
    let config = state.engine.config();
    let mut rows = Vec::new();
    for t in config.targets.values() {
        let (status, why) = target_status(&checks, &t.name);
        let (last, drill) = crate::report::last_backup_and_drill(state, &t.name).await?;
        rows.push((t, status, why, last, drill));
    }
    Ok(html! {
        section aria-labelledby="targets-h" {
            h2 id="targets-h" { "Targets" }
            table.targets {
                thead { tr { th { "Target" } th { "Status" } th { "Last backup" } th { "Last drill" } } }
                tbody {
                    @for (t, status, why, last, drill) in &rows {
                        tr data-target=(t.name) {
                            td { a href={"/targets/" (t.name)} { (t.name) } br; small { (t.kind.name()) } }
                            td {
                                (badge(status))
                                @for w in why { div.why { (w) } }
                            }
                            td {
                                @match last {
                                    Some(at) => { (age(now - at)) " ago" }
                                    None => { "never" }
                                }
                                br;
                                small { "schedule: " (t.schedule.as_ref().map_or("none", |s| s.as_str())) }
                            }
                            td {
                                @match drill {
                                    Some(d) => {
                                        (badge(if d.outcome == "passed" { "ok" } else { "critical" })) " " (d.outcome)
                                        br;
                                        small {
                                            "RTO " (d.restore_ms.map_or("–".to_string(), |m| format!("{:.1} s", m as f64 / 1000.0)))
                                            @if let Some(max) = t.drill.as_ref().and_then(|d| d.max_restore) { " (objective " (humantime::format_duration(max)) ")" }
                                            ", data age " (d.data_age_ms.map_or("–".to_string(), age))
                                        }
                                    }
                                    None => { "no drill yet" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="alerts-h" {
            h2 id="alerts-h" { "Alerts firing" }
            @if alerts.is_empty() { p.ok { "None." } }
            ul {
                @for a in &alerts {
                    li { (badge(if a.severity == "page" { "critical" } else { "warn" })) " " strong { (a.rule) } " on " (a.subject) " since " (when(a.fired_at)) ": " (a.message) }
                }
            }
        }
        section aria-labelledby="security-h" {
            h2 id="security-h" { "Security and host" }
            @if warnings.is_empty() { p.ok { "No warnings." } }
            ul { @for w in &warnings { li.warn { (w) } } }
            @if let Some(d) = disk { p { "Data directory: " (d) } }
        }
    })
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    page: usize,
}

pub(crate) async fn target(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = match signed_in(&state, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if state.engine.config().target(&name).is_err() {
        return page_status(
            StatusCode::NOT_FOUND,
            "No such target",
            Some(&v),
            html! { p { a href="/" { "Back to the overview" } } },
        );
    }
    match target_body(&state, &v, &name, q.page).await {
        Ok(body) => page(&name, Some(&v), body),
        Err(e) => e.into_response(),
    }
}

async fn target_body(
    state: &AppState,
    v: &Viewer,
    name: &str,
    page_no: usize,
) -> Result<Markup, AppError> {
    let config = state.engine.config();
    let t = config
        .target(name)
        .map_err(|e| AppError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    let checks = health::checks(state).await?;
    let (status, why) = target_status(&checks, name);
    let mut snaps = state.snapshot_list(name).await?;
    snaps.reverse();
    let pages = snaps.len().div_ceil(PAGE).max(1);
    let page_no = page_no.min(pages - 1);
    let shown = &snaps[(page_no * PAGE).min(snaps.len())..((page_no + 1) * PAGE).min(snaps.len())];
    let drills = state.store.drills(Some(name), 0, 50).await?;
    let csrf = &v.session.csrf;
    let live = t.kind.live_file().map(|p| p.display().to_string());
    let is_db = t.kind.database_url().is_some();
    Ok(html! {
        p { (badge(status)) @for w in &why { span.why { " " (w) } } }
        @if v.may(Role::Operator) {
            section.actions aria-labelledby="actions-h" {
                h2 id="actions-h" { "Actions" }
                form.inline method="post" action={"/targets/" (name) "/backup"} {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" id="backup-now" { "Back up now" }
                }
                @if t.drill.is_some() {
                    form.inline method="post" action={"/targets/" (name) "/drill"} {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" id="run-drill" { "Run drill" }
                    }
                }
                @if v.may(Role::Owner) {
                    details.restore {
                        summary id="restore" { "Restore…" }
                        form method="post" action={"/targets/" (name) "/restore"} {
                            input type="hidden" name="csrf" value=(csrf);
                            @if let Some(live) = &live {
                                p.warn { "Restores the latest snapshot over the live file " code { (live) } ". A pre-restore snapshot is taken first, so this can be undone." }
                            } @else if is_db {
                                label for="into" { "Database to restore into (refused if it has tables)" }
                                input id="into" name="into" required;
                            } @else {
                                label for="to" { "Directory below the restore roots" }
                                input id="to" name="to" required;
                            }
                            label for="confirm" { "Type the target's name, " strong { (name) } ", to confirm" }
                            input id="confirm" name="confirm" required autocomplete="off";
                            button type="submit" id="restore-confirm" { "Restore the latest snapshot" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="snapshots-h" {
            h2 id="snapshots-h" { "Snapshots (" (snaps.len()) ")" }
            @if snaps.len() > 1 { (chart(&snaps)) }
            table.snapshots {
                thead { tr { th { "Time" } th { "Id" } th { "Size" } th { "Added" } th { "Took" } th { "Reason" } } }
                tbody {
                    @for s in shown {
                        tr {
                            td { (when(s.time.as_millisecond())) }
                            td { code { (s.short_id()) } }
                            td { (bytes(s.source_bytes)) }
                            td { (bytes(s.added_bytes)) }
                            td { (format!("{:.1} s", s.duration_seconds)) }
                            td { (s.reason) }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="snapshot pages" {
                    @if page_no > 0 { a href={"?page=" (page_no - 1)} { "Newer" } }
                    span { "page " (page_no + 1) " of " (pages) }
                    @if page_no + 1 < pages { a href={"?page=" (page_no + 1)} { "Older" } }
                }
            }
        }
        section aria-labelledby="drills-h" {
            h2 id="drills-h" { "Restore drills" }
            @if drills.is_empty() { p { "No drill yet." } } @else {
            (rto_chart(&drills, t.drill.as_ref().and_then(|d| d.max_restore)))
            table.drills {
                thead { tr { th { "Finished" } th { "Outcome" } th { "RTO" } th { "Data age" } th { "Failed checks" } } }
                tbody {
                    @for d in drills.iter().take(PAGE) {
                        tr {
                            td { (when(d.drill.finished_at)) }
                            td { (badge(if d.drill.outcome == "passed" { "ok" } else { "critical" })) " " (d.drill.outcome) }
                            td { (d.drill.restore_ms.map_or("–".to_string(), |m| format!("{:.1} s", m as f64 / 1000.0))) }
                            td { (d.drill.data_age_ms.map_or("–".to_string(), age)) }
                            td { (d.drill.failed_checks.join(", ")) }
                        }
                    }
                }
            }
            }
        }
    })
}
